//! A model: the forward graph its layers built, the variables it owns, and once compiled,
//! a training graph (forward, loss, metrics, gradients) whose programs are planned once per
//! batch size and replayed by the fit, evaluate and predict loops in `fit.rs`.

use std::collections::HashMap;

use smallvec::SmallVec;

use crate::autodiff;
use crate::device::Device;
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape, VarId};
use crate::initializers::{self, InitParams};
use crate::losses;
use crate::metrics::{self, Metric};
use crate::ops::{Ctx, ReduceKind, UnaryOp};
use crate::optimizers::Optimizer;
use crate::program::Program;

mod fit;

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

/// What `compile` fixed: loss, metrics, optimizer and the weight penalties.
#[derive(Clone, Debug)]
pub struct CompileSpec {
    pub loss: String,
    pub metrics: Vec<String>,
    pub optimizer_kind: String,
    pub optimizer_params: Vec<(String, f64)>,
    /// `(variable, l1, l2)`: Keras' regularizers, added to the loss.
    pub regularizers: Vec<(VarId, f32, f32)>,
}

struct Compiled {
    spec: CompileSpec,
    loss: &'static str,
    optimizer: Optimizer,
    train: Option<TrainGraph>,
}

/// The training graph for one label shape.
struct TrainGraph {
    y_dims: Vec<usize>,
    graph: Graph,
    loss: NodeId,
    metrics: Vec<NodeId>,
    grads: Vec<NodeId>,
    train_programs: HashMap<usize, Program>,
    eval_programs: HashMap<usize, Program>,
}

pub struct Model {
    pub graph: Graph,
    pub input: NodeId,
    pub output: NodeId,
    vars: Vec<Vec<f32>>,
    trainable: Vec<bool>,
    device: Device,
    seed: u64,
    step: u64,
    epoch: u64,
    predict_programs: HashMap<usize, Program>,
    compiled: Option<Compiled>,
    // Reused batch buffers: gathered rows of x, y and sample weights.
    bx: Vec<f32>,
    by: Vec<f32>,
    bw: Vec<f32>,
}

impl Model {
    /// A model whose forward graph is `graph`, fed by `input`, producing `output`.
    pub fn new(graph: Graph, input: NodeId, output: NodeId, seed: u64) -> Result<Model> {
        if !matches!(graph.nodes[input].op, crate::ops::Op::Input(0)) || graph.num_inputs() != 1 {
            return crate::value_error!("a model needs exactly one input node");
        }
        let vars = graph
            .var_shapes
            .iter()
            .map(|s| vec![0.0; s.iter().product()])
            .collect();
        let trainable = vec![true; graph.var_shapes.len()];
        Ok(Model {
            graph,
            input,
            output,
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

    pub fn input_shape(&self) -> &Shape {
        self.graph.shape(self.input)
    }

    pub fn output_shape(&self) -> &Shape {
        self.graph.shape(self.output)
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

    pub fn compile(&mut self, spec: CompileSpec) -> Result<()> {
        let loss = losses::canonical(&spec.loss)?;
        for m in &spec.metrics {
            // Validate the names now; shapes resolve "accuracy" when the labels are known.
            metrics::resolve(m, loss, 2, 2, 2, 2)?;
        }
        for &(v, _, _) in &spec.regularizers {
            if v >= self.vars.len() {
                return crate::value_error!("regularizer on variable {v}, which does not exist");
            }
        }
        let optimizer = Optimizer::from_spec(&spec.optimizer_kind, &spec.optimizer_params)?;
        self.compiled = Some(Compiled {
            spec,
            loss,
            optimizer,
            train: None,
        });
        Ok(())
    }

    pub fn is_compiled(&self) -> bool {
        self.compiled.is_some()
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

    /// Per-sample dims of the labels the loss expects: the output's, or without the class
    /// axis for sparse labels.
    pub fn label_dims(&self) -> Result<Vec<usize>> {
        self.label_dims_ref().map(<[usize]>::to_vec)
    }

    fn label_dims_ref(&self) -> Result<&[usize]> {
        let c = self.compiled_ref()?;
        let d = &self.output_shape().dims;
        Ok(if losses::is_sparse(c.loss) {
            &d[..d.len().saturating_sub(1)]
        } else {
            d
        })
    }

    fn compiled_ref(&self) -> Result<&Compiled> {
        match &self.compiled {
            Some(c) => Ok(c),
            None => crate::value_error!(
                "You must call `compile()` before using the model for training or evaluation."
            ),
        }
    }

    /// Builds (once per label shape) the graph of loss, metrics and gradients.
    fn ensure_train_graph(&mut self) -> Result<()> {
        let c = self.compiled_ref()?;
        if c.train
            .as_ref()
            .is_some_and(|t| Ok(t.y_dims.as_slice()) == self.label_dims_ref())
        {
            return Ok(());
        }
        let y_dims = self.label_dims()?;
        let c = self.compiled.as_ref().expect("checked above");
        let mut g = self.graph.clone();
        let y_true = g.input(Shape::batched(&y_dims));
        let sw = g.input(Shape::batched(&[]));
        let pred = self.output;
        let per = losses::build(&mut g, c.loss, y_true, pred)?;
        let per_rank = g.shape(per).dims.len();
        let sw_b = if per_rank > 0 {
            g.reshape(sw, &vec![1; per_rank])?
        } else {
            sw
        };
        let weighted = g.mul(per, sw_b)?;
        let mut loss = g.reduce_all(ReduceKind::Mean, weighted)?;
        for &(v, l1, l2) in &c.spec.regularizers {
            let w = g.param(v);
            for (coef, u) in [(l1, UnaryOp::Abs), (l2, UnaryOp::Square)] {
                if coef != 0.0 {
                    let t = g.unary(u, w)?;
                    let s = g.reduce_all(ReduceKind::Sum, t)?;
                    let s = g.scale(s, coef)?;
                    loss = g.add(loss, s)?;
                }
            }
        }
        let pred_shape = g.shape(pred).clone();
        let mut metric_nodes = Vec::new();
        for name in &c.spec.metrics {
            let m = metrics::resolve(
                name,
                c.loss,
                y_dims.len() + 1,
                y_dims.last().copied().unwrap_or(1),
                pred_shape.rank(),
                pred_shape.last().unwrap_or(1),
            )?;
            let t = if matches!(
                m,
                Metric::SparseCategoricalAccuracy | Metric::SparseTopKCategoricalAccuracy(_)
            ) || !losses::is_sparse(c.loss)
            {
                y_true
            } else {
                return crate::value_error!(
                    "metric '{name}' needs one-hot labels, but the loss '{}' takes integer labels",
                    c.loss
                );
            };
            let v = metrics::build(&mut g, m, t, pred)?;
            metric_nodes.push(g.reduce_all(ReduceKind::Mean, v)?);
        }
        let trainable: Vec<VarId> = (0..self.vars.len())
            .filter(|&v| self.trainable[v])
            .collect();
        let params: Vec<NodeId> = trainable.iter().map(|&v| g.param(v)).collect();
        let mut grads = autodiff::gradients(&mut g, loss, &params)?;
        // Each gradient needs a buffer of its own for the optimizer's in-place clipping.
        for i in 0..grads.len() {
            if grads[..i].contains(&grads[i])
                || metric_nodes.contains(&grads[i])
                || grads[i] == loss
            {
                let dims = g.shape(grads[i]).dims.clone();
                grads[i] = g.reshape(grads[i], &dims)?;
            }
        }
        let c = self.compiled.as_mut().expect("checked above");
        c.train = Some(TrainGraph {
            y_dims,
            graph: g,
            loss,
            metrics: metric_nodes,
            grads,
            train_programs: HashMap::new(),
            eval_programs: HashMap::new(),
        });
        Ok(())
    }

    /// Names of the values `train_batch`/`test_batch` return: "loss", then each metric as the
    /// user spelled it.
    pub fn log_names(&self) -> Result<Vec<String>> {
        let c = self.compiled_ref()?;
        let mut v = vec!["loss".to_string()];
        v.extend(c.spec.metrics.iter().cloned());
        Ok(v)
    }

    /// One optimizer step on a batch of `batch` rows; writes loss and metrics into `logs`.
    pub fn train_batch(
        &mut self,
        x: &[f32],
        y: &[f32],
        sw: &[f32],
        batch: usize,
        logs: &mut [f64],
    ) -> Result<()> {
        self.ensure_train_graph()?;
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
            let mut outs = vec![t.loss];
            outs.extend(&t.metrics);
            outs.extend(&t.grads);
            outs.extend(t.graph.updates.iter().map(|u| u.value));
            t.train_programs
                .insert(batch, Program::plan(&t.graph, &outs, batch)?);
        }
        let p = t.train_programs.get_mut(&batch).expect("inserted above");
        p.run(&self.vars, &[x, y, sw], &ctx)?;
        logs[0] = p.value(t.loss)[0] as f64;
        for (l, &m) in logs[1..].iter_mut().zip(&t.metrics) {
            *l = p.value(m)[0] as f64;
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

    /// Loss and metrics of a batch in inference mode.
    pub fn test_batch(
        &mut self,
        x: &[f32],
        y: &[f32],
        sw: &[f32],
        batch: usize,
        logs: &mut [f64],
    ) -> Result<()> {
        self.ensure_train_graph()?;
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
            let mut outs = vec![t.loss];
            outs.extend(&t.metrics);
            outs.extend(update_values(&t.graph, false));
            t.eval_programs
                .insert(batch, Program::plan(&t.graph, &outs, batch)?);
        }
        let p = t.eval_programs.get_mut(&batch).expect("inserted above");
        p.run(&self.vars, &[x, y, sw], &ctx)?;
        logs[0] = p.value(t.loss)[0] as f64;
        for (l, &m) in logs[1..].iter_mut().zip(&t.metrics) {
            *l = p.value(m)[0] as f64;
        }
        apply_updates(&mut self.vars, &t.graph, p, false);
        Ok(())
    }

    /// Outputs for a batch in inference mode, written to `out`.
    pub fn predict_batch(&mut self, x: &[f32], batch: usize, out: &mut [f32]) -> Result<()> {
        let ctx = Ctx {
            device: self.device,
            training: false,
            seed: self.seed,
            step: self.step,
        };
        if !self.predict_programs.contains_key(&batch) {
            let mut outs = vec![self.output];
            outs.extend(update_values(&self.graph, false));
            self.predict_programs
                .insert(batch, Program::plan(&self.graph, &outs, batch)?);
        }
        let p = self
            .predict_programs
            .get_mut(&batch)
            .expect("inserted above");
        p.run(&self.vars, &[x], &ctx)?;
        out.copy_from_slice(p.value(self.output));
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
