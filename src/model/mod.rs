//! A model: the forward graph its layers built (one or more inputs, one or more outputs),
//! the variables it owns, and once compiled, a training graph (forward, per-output losses
//! and metrics, gradients; see `compile.rs`) whose programs are planned once per batch size
//! and replayed by the fit, evaluate and predict loops in `fit.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use smallvec::SmallVec;

use crate::device::gpu::GpuBuffer;
use crate::device::Device;
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape, VarId};
use crate::initializers::{self, InitParams};
use crate::optimizers::Optimizer;

mod compile;
mod fit;
mod resident;
mod run;
mod vars;

use run::{Batch, LogSums, Pass, Planned};
use vars::Vars;

use compile::Compiled;
pub use compile::{CompileSpec, Fragment, MetricEntry, MetricKind, OutputSpec, CUSTOM};
pub use fit::{Control, Dataset, Epoch, EpochLogs, Hook, NoHook, PassKind};

/// An optimizer's state, as [`Model::optimizer_state`] reads it.
pub struct OptimizerState {
    /// Keras' raw `iterations` (every step, accumulation-only ones included).
    pub iterations: u64,
    pub learning_rate: f32,
    /// The slots in Keras' order (`optimizer.variables[2:]`): name, the index (among
    /// [`Model::trainable_vars`]) of the variable it belongs to (None for a scalar of the
    /// optimizer's own), values.
    pub slots: Vec<(&'static str, Option<usize>, Vec<f32>)>,
}

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
    vars: Vars,
    trainable: Vec<bool>,
    device: Device,
    log_sums: LogSums,
    /// The pass whose running sums `log_sums` holds (see [`Model::claim_log_sums`]), and
    /// the sums of passes set aside while another used them.
    log_owner: Weak<()>,
    log_stash: Vec<(Weak<()>, Vec<f64>)>,
    /// Datasets kept on the GPU during a `fit` (see `resident.rs`).
    resident: Vec<resident::Resident>,
    resident_limit: usize,
    uploads: u64,
    seed: u64,
    step: u64,
    epoch: u64,
    predict_programs: HashMap<usize, Planned>,
    compiled: Option<Compiled>,
    /// Scalar nodes added to the training loss (see [`Model::set_extra_losses`]).
    extra_losses: Vec<NodeId>,
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
        let vars = Vars::zeros(&Device::Cpu, &graph.var_shapes)?;
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
            log_sums: LogSums::Host(Vec::new()),
            log_owner: Weak::new(),
            log_stash: Vec::new(),
            resident: Vec::new(),
            resident_limit: resident::DEFAULT_LIMIT,
            uploads: 0,
            seed,
            step: 0,
            epoch: 0,
            predict_programs: HashMap::new(),
            compiled: None,
            extra_losses: Vec::new(),
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

    /// Variable `v`'s values, copied to the host.
    pub fn var(&self, v: VarId) -> Vec<f32> {
        self.vars.get(v).to_vec()
    }

    /// Makes variable `v` the very variable `ov` of `other`: a layer used by both models has
    /// its weights once, trained by either. Both models must be on the same device.
    pub fn share_var(&mut self, v: VarId, other: &Model, ov: VarId) -> Result<()> {
        if self.device != other.device {
            return crate::value_error!(
                "a layer's weights live on the '{}' backend of the model that holds them; this model is on '{}': build models that share layers with one backend",
                other.device.name(),
                self.device.name()
            );
        }
        self.vars.share(v, &other.vars, ov)?;
        self.forget_programs();
        Ok(())
    }

    /// Forgets the datasets kept on the GPU (the Python `fit` calls it when it returns).
    pub fn release_data(&mut self) {
        self.resident.clear();
    }

    /// Most bytes of a dataset `fit` keeps on the GPU; larger ones stream batch by batch.
    pub fn set_resident_limit(&mut self, bytes: usize) {
        self.resident_limit = bytes;
        self.resident.clear();
    }

    /// The index of `d` among the datasets kept on the GPU, uploading it when it is new and
    /// fits; `None` on the CPU or when it streams.
    pub(super) fn resident_index(&mut self, d: &Dataset<'_>) -> Result<Option<usize>> {
        let Device::Gpu(ctx) = &self.device else {
            return Ok(None);
        };
        if let Some(i) = self.resident.iter().position(|r| r.matches(d)) {
            return Ok(Some(i));
        }
        let labelled = (0..self.outputs.len())
            .map(|i| self.has_labels(i))
            .collect::<Result<Vec<_>>>()?;
        self.uploads += 1;
        let Some(r) =
            resident::Resident::upload(ctx, d, &labelled, self.resident_limit, self.uploads)?
        else {
            return Ok(None);
        };
        if self.resident.len() >= 2 {
            self.resident.remove(0);
        }
        self.resident.push(r);
        Ok(Some(self.resident.len() - 1))
    }

    /// Whether the row order of the resident dataset `index` is the one pass `owner` wrote.
    pub(super) fn resident_order_of(&self, index: usize, owner: &Weak<()>) -> bool {
        self.resident[index].order_owner.ptr_eq(owner)
    }

    /// Writes the row order of pass `owner` for the resident dataset `index`.
    pub(super) fn set_resident_order(&mut self, index: usize, order: &[usize], owner: Weak<()>) {
        if let Device::Gpu(ctx) = &self.device {
            let r = &mut self.resident[index];
            r.set_order(ctx, order);
            r.order_owner = owner;
        }
    }

    /// Drops every planned program (they are bound to the variables' buffers).
    fn forget_programs(&mut self) {
        self.predict_programs.clear();
        if let Some(t) = self.compiled.as_mut().and_then(|c| c.train.as_mut()) {
            t.train_programs.clear();
            t.eval_programs.clear();
        }
    }

    pub fn set_var(&mut self, v: VarId, values: &[f32]) -> Result<()> {
        let Some(mut dst) = self.vars.get_mut(v) else {
            return crate::value_error!("variable {v} does not exist");
        };
        if dst.numel() != values.len() {
            return crate::value_error!(
                "variable {v}: expected {} values, received {}",
                dst.numel(),
                values.len()
            );
        }
        dst.write(values)
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

    /// A new non-trainable variable holding `data` (of `shape`): an array that user code
    /// traced into a loss or metric closed over.
    pub fn add_constant(&mut self, shape: &[usize], data: Vec<f32>) -> Result<VarId> {
        if shape.iter().product::<usize>() != data.len() {
            return crate::value_error!(
                "constant of shape {shape:?} needs {} values, received {}",
                shape.iter().product::<usize>(),
                data.len()
            );
        }
        let v = self.vars.push(&self.device, shape, data)?;
        let gv = self.graph.declare_var(shape);
        debug_assert_eq!(v, gv);
        self.trainable.push(false);
        Ok(v)
    }

    /// Scalar nodes of the forward graph (a layer's `add_loss`) added to the training loss.
    pub fn set_extra_losses(&mut self, nodes: Vec<NodeId>) -> Result<()> {
        for &n in &nodes {
            if n >= self.graph.nodes.len() {
                return crate::value_error!("extra loss: node {n} does not exist");
            }
            let s = self.graph.shape(n);
            if s.batched || s.dims.iter().product::<usize>() != 1 {
                return crate::value_error!(
                    "add_loss: a loss must be a scalar, received a tensor of shape {}",
                    s.display()
                );
            }
        }
        self.extra_losses = nodes;
        if let Some(c) = self.compiled.as_mut() {
            c.train = None;
        }
        Ok(())
    }

    pub fn is_trainable(&self, v: VarId) -> bool {
        self.trainable.get(v).copied().unwrap_or(false)
    }

    /// Moves the model (variables, optimizer state) to `device`; programs are planned anew.
    pub fn set_device(&mut self, device: Device) -> Result<()> {
        if device == self.device {
            return Ok(());
        }
        if let Some(c) = self.compiled.as_mut() {
            c.optimizer.move_state(&device)?;
        }
        self.vars.move_to(&device)?;
        self.forget_programs();
        self.log_sums = LogSums::new(&device, self.log_sums.len())?;
        self.device = device;
        Ok(())
    }

    pub fn device(&self) -> &Device {
        &self.device
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
        let mut guards = self.vars.write_some(|v| self.trainable[v]);
        if self.device.is_gpu() {
            let params: Vec<GpuBuffer> = guards.iter().filter_map(|w| w.gpu().cloned()).collect();
            return c.optimizer.finalize_gpu(&params);
        }
        let mut params: SmallVec<[&mut [f32]; 32]> =
            guards.iter_mut().filter_map(|w| w.host_mut()).collect();
        c.optimizer.finalize_variable_values(&mut params)
    }

    /// The optimizer (learning rate, iterations); its slots stay where they live.
    pub fn optimizer_mut(&mut self) -> Option<&mut Optimizer> {
        self.compiled.as_mut().map(|c| &mut c.optimizer)
    }

    /// The optimizer with its slots copied to the host when they live on the GPU (for
    /// `slot_variables`): a readback, so only for reading the slots themselves.
    pub fn optimizer_with_slots(&mut self) -> Option<&Optimizer> {
        self.compiled.as_mut().map(|c| {
            c.optimizer.pull_gpu_state();
            &c.optimizer
        })
    }

    /// The variables the optimizer updates, in the order it holds their slots.
    pub fn trainable_vars(&self) -> Vec<VarId> {
        (0..self.vars.len())
            .filter(|&v| self.trainable[v])
            .collect()
    }

    /// What a resumed `fit` needs besides the weights and the optimizer: the seed of the
    /// dropout masks and the shuffling, the training steps taken (each step's masks are drawn
    /// from the seed and the step) and the epochs run (each epoch's order is drawn from the
    /// seed and the epoch), as `(seed, step, epoch)`.
    pub fn engine_state(&self) -> (u64, u64, u64) {
        (self.seed, self.step, self.epoch)
    }

    /// Restores [`Model::engine_state`].
    pub fn set_engine_state(&mut self, seed: u64, step: u64, epoch: u64) {
        self.seed = seed;
        self.step = step;
        self.epoch = epoch;
    }

    /// The optimizer's state as Keras saves it: raw `iterations`, the learning rate, then its
    /// slots for Keras' variable order `order` (Keras' trainable variable
    /// `j` is `trainable_vars()[order[j]]`); the slots are read back from the GPU. `None`
    /// while the model is not compiled.
    pub fn optimizer_state(&mut self, order: &[usize]) -> Result<Option<OptimizerState>> {
        let Some(o) = self.optimizer_with_slots() else {
            return Ok(None);
        };
        let slots = o
            .slot_variables_in_order(order)?
            .into_iter()
            .zip(o.slot_owners(order))
            .map(|((name, v), owner)| (name, owner, v.to_vec()))
            .collect();
        Ok(Some(OptimizerState {
            iterations: o.raw_iterations(),
            learning_rate: o.learning_rate(),
            slots,
        }))
    }

    /// Restores the optimizer's iterations, learning rate and slots (in Keras' variable order
    /// `order`, see [`Model::optimizer_state`]); with no slots, the optimizer starts afresh at
    /// `iterations`, as Keras' unbuilt optimizer does.
    pub fn load_optimizer_state(
        &mut self,
        iterations: u64,
        learning_rate: f32,
        order: &[usize],
        slots: &[&[f32]],
    ) -> Result<()> {
        let lens: Vec<usize> = self
            .trainable_vars()
            .iter()
            .map(|&v| self.graph.var_shapes[v].iter().product())
            .collect();
        let Some(c) = self.compiled.as_mut() else {
            return crate::value_error!("the model is not compiled: it has no optimizer to load");
        };
        let o = &mut c.optimizer;
        if slots.is_empty() {
            o.reset(iterations);
        } else {
            o.load_variables_in_order(iterations, &lens, order, slots)?;
        }
        o.set_learning_rate(learning_rate);
        // Training programs on the GPU recorded the slots' buffers; they are replaced.
        self.forget_programs();
        Ok(())
    }

    /// One optimizer step on a batch of `batch` rows; writes the logs (see `log_names`,
    /// `log_width` values) into `logs`. `xs` holds one array per input; `ys` and `sws` one per output (empty for an
    /// output without targets).
    pub fn train_batch(
        &mut self,
        xs: &[&[f32]],
        ys: &[&[f32]],
        sws: &[&[f32]],
        batch: usize,
        logs: &mut [f64],
    ) -> Result<()> {
        self.batch_logs(Pass::Train, xs, ys, sws, batch, logs)
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
        self.batch_logs(Pass::Test, xs, ys, sws, batch, logs)
    }

    /// One batch whose sums join those of the earlier batches of the same `owner` (a pass
    /// fed batch by batch from the host, as a generator's is; `fresh` starts it): the logs
    /// over every row of the pass so far (`seen`, this batch's included). Metric classes
    /// (AUC, precision, ...) then read the pass's value, not a mean of batch values.
    ///
    /// With `export`, a training batch hands its gradients (one vector per trainable
    /// variable) to it instead of applying them: one replica's step of data-parallel training.
    /// The step counter advances and state updates apply; the optimizer waits for
    /// [`Model::apply_gradients`].
    #[allow(clippy::too_many_arguments)]
    pub fn stream_batch(
        &mut self,
        train: bool,
        xs: &[&[f32]],
        ys: &[&[f32]],
        sws: &[&[f32]],
        batch: usize,
        owner: &Weak<()>,
        fresh: bool,
        seen: usize,
        logs: &mut [f64],
        export: Option<&mut Vec<Vec<f32>>>,
    ) -> Result<()> {
        self.ensure_train_graph()?;
        self.claim_log_sums(owner, fresh)?;
        let pass = if train { Pass::Train } else { Pass::Test };
        self.step_with(pass, Batch::Host { xs, ys, sws }, batch, export)?;
        self.read_logs(logs, seen)
    }

    /// One optimizer step with `grads` (one slice per trainable variable, in order, of the
    /// variables' sizes), as if a training step had computed them.
    pub fn apply_gradients(&mut self, grads: &mut [&mut [f32]]) -> Result<()> {
        if matches!(self.device, Device::Gpu(_)) {
            return Err(crate::Error::NotImplemented(
                "apply_gradients runs on the 'cpu' backend only".into(),
            ));
        }
        let c = self
            .compiled
            .as_mut()
            .ok_or_else(|| crate::Error::Value("the model is not compiled".into()))?;
        run::apply_on_cpu(&self.vars, &self.trainable, &mut c.optimizer, grads)
    }

    /// One batch with fresh log sums, and its logs.
    fn batch_logs(
        &mut self,
        pass: Pass,
        xs: &[&[f32]],
        ys: &[&[f32]],
        sws: &[&[f32]],
        batch: usize,
        logs: &mut [f64],
    ) -> Result<()> {
        self.ensure_train_graph()?;
        let token = Arc::new(());
        self.claim_log_sums(&Arc::downgrade(&token), true)?;
        self.step(pass, Batch::Host { xs, ys, sws }, batch)?;
        self.read_logs(logs, batch)
    }

    /// Makes the running log sums those of pass `owner`: zeroed when `fresh` (a pass
    /// begins), else the pass's own sums. Passes can nest (a callback evaluates in the
    /// middle of an epoch): the sums of a pass still running are set aside when another
    /// claims them, and put back when it resumes. A pass that was dropped unfinished (an
    /// exception) leaves nothing behind: its token is gone.
    pub(super) fn claim_log_sums(&mut self, owner: &Weak<()>, fresh: bool) -> Result<()> {
        self.ensure_train_graph()?;
        let n = self
            .compiled
            .as_ref()
            .and_then(|c| c.train.as_ref())
            .map_or(0, |t| t.sums_len);
        if self.log_owner.ptr_eq(owner) && self.log_sums.len() == n {
            if fresh {
                self.log_sums.reset();
            }
            return Ok(());
        }
        if self.log_owner.strong_count() > 0 && !self.log_owner.ptr_eq(owner) {
            let sums = self.log_sums.read();
            if let Device::Gpu(ctx) = &self.device {
                ctx.check()?;
            }
            self.log_stash.push((self.log_owner.clone(), sums));
        }
        self.log_stash.retain(|(w, _)| w.strong_count() > 0);
        if self.log_sums.len() != n {
            self.log_sums = LogSums::new(&self.device, n)?;
        }
        self.log_sums.reset();
        self.log_owner = owner.clone();
        if fresh {
            return Ok(());
        }
        let Some(i) = self.log_stash.iter().position(|(w, _)| w.ptr_eq(owner)) else {
            return crate::value_error!(
                "the model was recompiled during this pass; its running logs are lost"
            );
        };
        let (_, sums) = self.log_stash.swap_remove(i);
        if sums.len() != n {
            return crate::value_error!(
                "the model was recompiled during this pass; its running logs are lost"
            );
        }
        self.log_sums.write(&sums);
        Ok(())
    }

    /// The logs' values from their sums after `seen` rows (read back from the GPU: a
    /// synchronisation), written to `logs` (`log_width` values).
    pub(super) fn read_logs(&self, logs: &mut [f64], seen: usize) -> Result<()> {
        let sums = self.log_sums.read();
        if let Device::Gpu(ctx) = &self.device {
            ctx.check()?;
        }
        let c = self.compiled_ref()?;
        let Some(t) = c.train.as_ref() else {
            return crate::value_error!("the training graph is not built");
        };
        for l in &t.logs {
            let (s, n) = l.sums;
            let (v, w) = l.value;
            l.finalize.read(&sums[s..s + n], seen, &mut logs[v..v + w]);
        }
        Ok(())
    }

    /// Whether some variable is written after every batch (a stateful layer's state); such
    /// a model's batches must keep one size.
    pub fn is_stateful(&self) -> bool {
        self.graph.updates.iter().any(|u| u.always)
    }
}

#[cfg(test)]
mod tests;
