//! A model: the forward graph its layers built (one or more inputs, one or more outputs),
//! the variables it owns, and once compiled, a training graph (forward, per-output losses
//! and metrics, gradients; see `compile.rs`) whose programs are planned once per batch size
//! and replayed by the fit, evaluate and predict loops in `fit.rs`.

use std::collections::HashMap;

use smallvec::SmallVec;

use crate::device::Device;
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape, VarId};
use crate::initializers::{self, InitParams};
use crate::ops::Ctx;
use crate::optimizers::Optimizer;
use crate::program::Program;

mod compile;
mod fit;

use compile::Compiled;
pub use compile::{CompileSpec, OutputSpec};
pub use fit::{BatchEnd, Dataset, EpochLogs};

/// `u64::MAX` while no seed was set.
static DEFAULT_SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// The seed `rustkeras.utils.set_random_seed` sets; Python derives per-layer seeds from it.
pub fn set_default_seed(seed: u64) {
    DEFAULT_SEED.store(seed & (u64::MAX >> 1), std::sync::atomic::Ordering::Relaxed);
    SEED_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Counts `set_default_seed` calls, so that setting the same seed again restarts its sequence.
static SEED_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The global seed and how many times a seed was set, or `None` while none was.
pub fn default_seed() -> Option<(u64, u64)> {
    let s = DEFAULT_SEED.load(std::sync::atomic::Ordering::Relaxed);
    (s != u64::MAX).then(|| {
        (
            s,
            SEED_GENERATION.load(std::sync::atomic::Ordering::Relaxed),
        )
    })
}

/// Feeds of a training-graph program: each x, then (labels, sample weights) of each output
/// that has targets. Inline for up to 16 feeds, so that a step allocates nothing.
type Feeds<'a> = SmallVec<[&'a [f32]; 16]>;

pub struct Model {
    pub graph: Graph,
    /// The graph's input nodes, in order (input `i` is fed `x[i]`).
    pub inputs: Vec<NodeId>,
    /// The nodes `predict` returns, in order.
    pub outputs: Vec<NodeId>,
    output_names: Vec<String>,
    vars: Vec<Vec<f32>>,
    trainable: Vec<bool>,
    device: Device,
    seed: u64,
    step: u64,
    epoch: u64,
    predict_programs: HashMap<usize, Program>,
    compiled: Option<Compiled>,
    // Reused batch buffers: gathered rows of each x array, each y array and each output's
    // sample weights.
    bx: Vec<Vec<f32>>,
    by: Vec<Vec<f32>>,
    bw: Vec<Vec<f32>>,
}

impl Model {
    /// A model whose forward graph is `graph`, fed by `inputs` (every input node of the graph,
    /// in order), producing `outputs`.
    pub fn new(
        mut graph: Graph,
        inputs: Vec<NodeId>,
        mut outputs: Vec<NodeId>,
        seed: u64,
    ) -> Result<Model> {
        Model::check_io(&graph, &inputs, &outputs)?;
        for o in outputs.iter_mut() {
            let node = &graph.nodes[*o];
            // An input or a variable returned as it is (`Model(x, x)`) gets a computed copy:
            // programs hand out the values of the nodes they compute.
            if matches!(node.op, crate::ops::Op::Input(_) | crate::ops::Op::Param(_)) {
                let dims = node.shape.dims.clone();
                *o = graph.reshape(*o, &dims)?;
            }
        }
        let vars = graph
            .var_shapes
            .iter()
            .map(|s| vec![0.0; s.iter().product()])
            .collect();
        let trainable = vec![true; graph.var_shapes.len()];
        let output_names = (0..outputs.len()).map(|i| format!("output_{i}")).collect();
        Ok(Model {
            graph,
            inputs,
            outputs,
            output_names,
            vars,
            trainable,
            device: Device::default(),
            seed,
            step: 0,
            epoch: 0,
            predict_programs: HashMap::new(),
            compiled: None,
            bx: Vec::new(),
            by: Vec::new(),
            bw: Vec::new(),
        })
    }

    /// Checks that `inputs` are every input node of `graph` in order and that `outputs` are
    /// nodes of it (what `new` requires).
    pub fn check_io(graph: &Graph, inputs: &[NodeId], outputs: &[NodeId]) -> Result<()> {
        if inputs.is_empty() || inputs.len() != graph.num_inputs() {
            return crate::value_error!(
                "a model's inputs must be every input node of its graph, in order: the graph has {}, received {}",
                graph.num_inputs(),
                inputs.len()
            );
        }
        for (k, &id) in inputs.iter().enumerate() {
            if graph.nodes.get(id).map(|n| &n.op) != Some(&crate::ops::Op::Input(k)) {
                return crate::value_error!("inputs[{k}]: node {id} is not input {k} of the graph");
            }
        }
        if outputs.is_empty() {
            return crate::value_error!("a model needs at least one output");
        }
        if let Some((k, o)) = outputs
            .iter()
            .enumerate()
            .find(|&(_, &o)| o >= graph.nodes.len())
        {
            return crate::value_error!("outputs[{k}]: node {o} does not exist in this graph");
        }
        Ok(())
    }

    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }

    pub fn num_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// Shape of input `i`; panics if there is no such input.
    pub fn input_shape(&self, i: usize) -> &Shape {
        self.graph.shape(self.inputs[i])
    }

    /// Shape of output `i`; panics if there is no such output.
    pub fn output_shape(&self, i: usize) -> &Shape {
        self.graph.shape(self.outputs[i])
    }

    /// Names the per-output logs (`<name>_loss`, `<name>_<metric>`) of a multi-output model.
    pub fn set_output_names(&mut self, names: Vec<String>) -> Result<()> {
        if names.len() != self.outputs.len() {
            return crate::value_error!(
                "expected {} output names, received {}",
                self.outputs.len(),
                names.len()
            );
        }
        self.output_names = names;
        Ok(())
    }

    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    pub fn num_vars(&self) -> usize {
        self.vars.len()
    }

    pub fn var_shape(&self, v: VarId) -> &[usize] {
        &self.graph.var_shapes[v]
    }

    pub fn var(&self, v: VarId) -> &[f32] {
        &self.vars[v]
    }

    pub fn set_var(&mut self, v: VarId, values: &[f32]) -> Result<()> {
        let Some(dst) = self.vars.get_mut(v) else {
            return crate::value_error!("variable {v} does not exist");
        };
        if dst.len() != values.len() {
            return crate::value_error!(
                "variable {v}: expected {} values, received {}",
                dst.len(),
                values.len()
            );
        }
        dst.copy_from_slice(values);
        Ok(())
    }

    pub fn initialize_var(
        &mut self,
        v: VarId,
        name: &str,
        params: &InitParams,
        seed: u64,
    ) -> Result<()> {
        let shape = self.graph.var_shapes[v].clone();
        let w = initializers::initialize(name, &shape, params, seed)?;
        self.set_var(v, &w)
    }

    pub fn set_trainable(&mut self, v: VarId, trainable: bool) {
        if let Some(t) = self.trainable.get_mut(v) {
            *t = trainable;
        }
    }

    pub fn is_trainable(&self, v: VarId) -> bool {
        self.trainable.get(v).copied().unwrap_or(false)
    }

    pub fn set_device(&mut self, device: Device) {
        self.device = device;
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Writes the optimizer's moving averages into the weights when it keeps them
    /// (`use_ema`), as Keras does at the end of `fit`.
    pub fn finalize_weights(&mut self) -> Result<()> {
        let Some(c) = self.compiled.as_ref() else {
            return Ok(());
        };
        let mut params: SmallVec<[&mut [f32]; 32]> = SmallVec::new();
        for (v, w) in self.vars.iter_mut().enumerate() {
            if self.trainable[v] {
                params.push(w.as_mut_slice());
            }
        }
        c.optimizer.finalize_variable_values(&mut params)
    }

    pub fn optimizer_mut(&mut self) -> Option<&mut Optimizer> {
        self.compiled.as_mut().map(|c| &mut c.optimizer)
    }

    /// One optimizer step on a batch of `batch` rows; writes the logs (see `log_names`) into
    /// `logs`. `xs` holds one array per input; `ys` and `sws` one per output (empty for an
    /// output without targets).
    pub fn train_batch(
        &mut self,
        xs: &[&[f32]],
        ys: &[&[f32]],
        sws: &[&[f32]],
        batch: usize,
        logs: &mut [f64],
    ) -> Result<()> {
        self.ensure_train_graph()?;
        let feeds = self.train_feeds(xs, ys, sws)?;
        self.step += 1;
        let ctx = Ctx {
            device: self.device,
            training: true,
            seed: self.seed,
            step: self.step,
        };
        let c = self.compiled.as_mut().expect("ensured");
        let t = c.train.as_mut().expect("ensured");
        if !t.train_programs.contains_key(&batch) {
            let mut outs = t.logs.clone();
            outs.extend(&t.grads);
            outs.extend(t.graph.updates.iter().map(|u| u.value));
            t.train_programs
                .insert(batch, Program::plan(&t.graph, &outs, batch)?);
        }
        let p = t.train_programs.get_mut(&batch).expect("inserted above");
        p.run(&self.vars, &feeds, &ctx)?;
        for (l, &n) in logs.iter_mut().zip(&t.logs) {
            *l = p.value(n)[0] as f64;
        }
        let mut grads: SmallVec<[&mut [f32]; 32]> = SmallVec::new();
        p.values_mut(&t.grads, &mut grads);
        let mut params: SmallVec<[&mut [f32]; 32]> = SmallVec::new();
        for (v, w) in self.vars.iter_mut().enumerate() {
            if self.trainable[v] {
                params.push(w.as_mut_slice());
            }
        }
        c.optimizer.apply(&mut params, &mut grads)?;
        drop(params);
        drop(grads);
        apply_updates(&mut self.vars, &t.graph, p, true);
        Ok(())
    }

    /// The logs of a batch in inference mode (arguments as for `train_batch`).
    pub fn test_batch(
        &mut self,
        xs: &[&[f32]],
        ys: &[&[f32]],
        sws: &[&[f32]],
        batch: usize,
        logs: &mut [f64],
    ) -> Result<()> {
        self.ensure_train_graph()?;
        let feeds = self.train_feeds(xs, ys, sws)?;
        let ctx = Ctx {
            device: self.device,
            training: false,
            seed: self.seed,
            step: self.step,
        };
        let t = self
            .compiled
            .as_mut()
            .and_then(|c| c.train.as_mut())
            .expect("ensured");
        if !t.eval_programs.contains_key(&batch) {
            let mut outs = t.logs.clone();
            outs.extend(update_values(&t.graph, false));
            t.eval_programs
                .insert(batch, Program::plan(&t.graph, &outs, batch)?);
        }
        let p = t.eval_programs.get_mut(&batch).expect("inserted above");
        p.run(&self.vars, &feeds, &ctx)?;
        for (l, &n) in logs.iter_mut().zip(&t.logs) {
            *l = p.value(n)[0] as f64;
        }
        apply_updates(&mut self.vars, &t.graph, p, false);
        Ok(())
    }

    /// Every output for a batch in inference mode: `xs` holds one array per input, and
    /// output `i` is written to `outs[i]`.
    pub fn predict_batch(
        &mut self,
        xs: &[&[f32]],
        batch: usize,
        outs: &mut [&mut [f32]],
    ) -> Result<()> {
        if xs.len() != self.inputs.len() || outs.len() != self.outputs.len() {
            return crate::value_error!(
                "predict: expected {} x arrays and {} output buffers, received {} and {}",
                self.inputs.len(),
                self.outputs.len(),
                xs.len(),
                outs.len()
            );
        }
        let ctx = Ctx {
            device: self.device,
            training: false,
            seed: self.seed,
            step: self.step,
        };
        if !self.predict_programs.contains_key(&batch) {
            let mut outs = self.outputs.clone();
            outs.extend(update_values(&self.graph, false));
            self.predict_programs
                .insert(batch, Program::plan(&self.graph, &outs, batch)?);
        }
        let p = self
            .predict_programs
            .get_mut(&batch)
            .expect("inserted above");
        p.run(&self.vars, xs, &ctx)?;
        for (out, &o) in outs.iter_mut().zip(&self.outputs) {
            let v = p.value(o);
            if out.len() != v.len() {
                return crate::value_error!(
                    "predict: output buffer holds {} values, expected {}",
                    out.len(),
                    v.len()
                );
            }
            out.copy_from_slice(v);
        }
        apply_updates(&mut self.vars, &self.graph, p, false);
        Ok(())
    }

    /// Whether some variable is written after every batch (a stateful layer's state); such
    /// a model's batches must keep one size.
    pub fn is_stateful(&self) -> bool {
        self.graph.updates.iter().any(|u| u.always)
    }
}

/// The values of the updates a program must compute: all after a training step, only the
/// `always` ones (stateful layers) after evaluation or prediction.
fn update_values(g: &Graph, training: bool) -> impl Iterator<Item = NodeId> + '_ {
    g.updates
        .iter()
        .filter(move |u| training || u.always)
        .map(|u| u.value)
}

/// Writes the updates a program computed into the variables.
fn apply_updates(vars: &mut [Vec<f32>], g: &Graph, p: &Program, training: bool) {
    for u in g.updates.iter().filter(|u| training || u.always) {
        u.apply(&mut vars[u.var], p.value(u.value));
    }
}

#[cfg(test)]
mod tests;
