//! `compile`: per-output losses, loss weights and metrics, and the training graph they make.
//!
//! For a model with outputs `o_1..o_m`, the training graph appends, for each output that has
//! targets (a loss or a metric), a labels input and a sample-weight input, and computes
//! `loss = sum_i w_i * mean(loss_i(y_i, o_i) * sw_i) + regularizers`. The logs are, as in
//! Keras 3: `loss`; `<output>_loss` for each output with a loss when more than one has one;
//! then each output's metrics, then each output's weighted metrics, named
//! `<output>_<metric>` when the model has several outputs. A single-output model logs `loss`
//! and its metrics by their names; a repeated name gets `_1`, `_2`, ... (a weighted metric
//! first tries `weighted_<metric>`).
//!
//! Each log keeps a vector of sums over the epoch (see [`crate::metrics`]): the graph
//! computes a batch's sums, the model adds them up on its device, and the log's
//! [`Finalize`] reads the value when logs are read.

use std::collections::HashMap;

use super::Model;
use crate::autodiff;
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape, VarId};
use crate::losses;
use crate::metrics::{self, Finalize, MetricSpec};
use crate::ops::{ReduceKind, UnaryOp};
use crate::optimizers::Optimizer;

/// User code traced in Python (a custom loss or metric function): a graph whose input 0 is
/// `y_true` and input 1 `y_pred`, the node of its per-sample value, and the values of the
/// graph's variables (arrays the function closed over, kept as constants).
#[derive(Clone, Debug)]
pub struct Fragment {
    pub graph: Graph,
    pub output: NodeId,
    pub constants: Vec<Vec<f32>>,
    /// The model variable of each fragment variable (filled by `compile`).
    pub vars: Vec<VarId>,
}

/// The canonical name of a custom (traced) loss.
pub const CUSTOM: &str = "custom";

/// One metric of an output: the name it logs under (before the output's prefix) and what
/// it computes.
#[derive(Clone, Debug)]
pub struct MetricEntry {
    pub name: String,
    pub kind: MetricKind,
    /// The model constants the metric reads (filled by `compile`).
    pub consts: Vec<VarId>,
}

#[derive(Clone, Debug)]
pub enum MetricKind {
    /// The name is the metric: a metric class (`"auc"`, with its defaults), a per-sample
    /// function (`"accuracy"`, resolved by the shapes) or a loss.
    Named,
    Spec(MetricSpec),
    /// A traced per-sample function, averaged over the samples (Keras' `MeanMetricWrapper`).
    Traced(Fragment),
}

impl MetricEntry {
    /// A metric given by name, logged under that name.
    pub fn named(name: &str) -> MetricEntry {
        MetricEntry {
            name: name.to_string(),
            kind: MetricKind::Named,
            consts: Vec::new(),
        }
    }

    /// A metric object, logged under `name`.
    pub fn spec(name: &str, spec: MetricSpec) -> MetricEntry {
        MetricEntry {
            name: name.to_string(),
            kind: MetricKind::Spec(spec),
            consts: Vec::new(),
        }
    }

    /// Whether the metric takes integer class labels.
    fn sparse(&self) -> bool {
        match &self.kind {
            MetricKind::Named => self.name.starts_with("sparse_"),
            MetricKind::Spec(s) => s.sparse_labels(),
            MetricKind::Traced(_) => false,
        }
    }
}

impl From<&str> for MetricEntry {
    fn from(name: &str) -> MetricEntry {
        MetricEntry::named(name)
    }
}

impl From<String> for MetricEntry {
    fn from(name: String) -> MetricEntry {
        MetricEntry::named(&name)
    }
}

/// What `compile` fixed for one model output.
#[derive(Clone, Debug, Default)]
pub struct OutputSpec {
    /// The loss, or `None` when this output adds nothing to the loss (Keras' `None` entry);
    /// [`CUSTOM`] with `custom_loss` for a traced function.
    pub loss: Option<String>,
    /// The traced loss function, when `loss` is [`CUSTOM`].
    pub custom_loss: Option<Fragment>,
    /// The loss's factor in the total loss (Keras' `loss_weights`).
    pub loss_weight: f32,
    /// compile's `metrics` for this output (sample weights do not apply).
    pub metrics: Vec<MetricEntry>,
    /// compile's `weighted_metrics` for this output (weighted by the sample weights).
    pub weighted_metrics: Vec<MetricEntry>,
}

impl OutputSpec {
    /// An output trained with `loss` at weight 1 and no metrics.
    pub fn loss(loss: &str) -> OutputSpec {
        OutputSpec {
            loss: Some(loss.into()),
            loss_weight: 1.0,
            ..Default::default()
        }
    }

    /// Whether the output is fed targets: it has a loss or a metric.
    pub fn has_labels(&self) -> bool {
        self.loss.is_some() || !self.metrics.is_empty() || !self.weighted_metrics.is_empty()
    }

    /// Every metric with whether it is weighted: `metrics`, then `weighted_metrics`.
    fn all_metrics(&self) -> impl Iterator<Item = (&MetricEntry, bool)> {
        self.metrics
            .iter()
            .map(|m| (m, false))
            .chain(self.weighted_metrics.iter().map(|m| (m, true)))
    }
}

/// What `compile` fixed: per-output losses, weights and metrics, the optimizer and the weight
/// penalties.
#[derive(Clone, Debug)]
pub struct CompileSpec {
    /// One entry per model output, in the model's output order.
    pub outputs: Vec<OutputSpec>,
    pub optimizer_kind: String,
    pub optimizer_params: Vec<(String, f64)>,
    /// `(variable, l1, l2)`: Keras' regularizers, added to the loss.
    pub regularizers: Vec<(VarId, f32, f32)>,
}

pub(super) struct Compiled {
    pub spec: CompileSpec,
    /// The canonical loss name of each output.
    pub losses: Vec<Option<&'static str>>,
    pub optimizer: Optimizer,
    pub train: Option<TrainGraph>,
}

impl Compiled {
    /// Whether output `i` takes integer class labels (a sparse loss, or with no loss, only
    /// sparse metrics).
    fn sparse_labels(&self, i: usize) -> bool {
        match self.losses[i] {
            Some(l) => losses::is_sparse(l),
            None => {
                let o = &self.spec.outputs[i];
                o.has_labels() && o.all_metrics().all(|(m, _)| m.sparse())
            }
        }
    }
}

/// One log of the training graph: the node of a batch's sums, where they go in the epoch's
/// sums, and how they read.
pub(super) struct Log {
    pub node: NodeId,
    /// Offset and length of its sums in the epoch's sums.
    pub sums: (usize, usize),
    /// Offset and length of its value in the logs read out.
    pub value: (usize, usize),
    pub finalize: Finalize,
}

/// The training graph: the forward graph, its losses, metrics and gradients.
pub(super) struct TrainGraph {
    pub graph: Graph,
    /// What `log_names` names: the total loss (first), per-output losses, metrics.
    pub logs: Vec<Log>,
    /// The length of the epoch's sums (all logs').
    pub sums_len: usize,
    pub grads: Vec<NodeId>,
    pub train_programs: HashMap<usize, super::Planned>,
    pub eval_programs: HashMap<usize, super::Planned>,
}

impl Model {
    pub fn compile(&mut self, mut spec: CompileSpec) -> Result<()> {
        if spec.outputs.len() != self.outputs.len() {
            return crate::value_error!(
                "compile: expected one loss entry per model output ({}), received {}",
                self.outputs.len(),
                spec.outputs.len()
            );
        }
        if spec.outputs.iter().all(|o| o.loss.is_none()) && self.extra_losses.is_empty() {
            return crate::value_error!(
                "compile: a `loss` is required for training, but every output's loss is None"
            );
        }
        let mut canonical = Vec::with_capacity(spec.outputs.len());
        for (i, o) in spec.outputs.iter_mut().enumerate() {
            let loss = match o.loss.as_deref() {
                Some(CUSTOM) if o.custom_loss.is_some() => Some(CUSTOM),
                other => other.map(losses::canonical).transpose()?,
            };
            for m in o.metrics.iter_mut().chain(o.weighted_metrics.iter_mut()) {
                if let MetricKind::Named = m.kind {
                    // A class name stands for the class with its defaults; other names are
                    // checked now and resolved by the shapes when the graph is built.
                    match MetricSpec::from_name(&m.name)? {
                        Some(spec) => m.kind = MetricKind::Spec(spec),
                        None => {
                            metrics::resolve(&m.name, loss.unwrap_or(""), 2, 2, 2, 2)?;
                        }
                    }
                }
            }
            if !o.loss_weight.is_finite() {
                return crate::value_error!(
                    "compile: the loss weight of output '{}' must be a finite number, received {}",
                    self.output_names[i],
                    o.loss_weight
                );
            }
            canonical.push(loss);
        }
        for o in spec.outputs.iter_mut() {
            if let Some(f) = o.custom_loss.as_mut() {
                f.vars = self.add_constants(&f.graph.var_shapes, &f.constants)?;
            }
            for m in o.metrics.iter_mut().chain(o.weighted_metrics.iter_mut()) {
                match &mut m.kind {
                    MetricKind::Traced(f) => {
                        f.vars = self.add_constants(&f.graph.var_shapes, &f.constants)?;
                    }
                    MetricKind::Spec(spec) => {
                        let (shapes, values): (Vec<_>, Vec<_>) =
                            spec.constants().into_iter().unzip();
                        m.consts = self.add_constants(&shapes, &values)?;
                    }
                    MetricKind::Named => {}
                }
            }
        }
        for &(v, _, _) in &spec.regularizers {
            if v >= self.vars.len() {
                return crate::value_error!("regularizer on variable {v}, which does not exist");
            }
        }
        let optimizer = Optimizer::from_spec(&spec.optimizer_kind, &spec.optimizer_params)?;
        self.compiled = Some(Compiled {
            spec,
            losses: canonical,
            optimizer,
            train: None,
        });
        Ok(())
    }

    /// New model constants holding `values` (of `shapes`): the arrays a traced function
    /// closed over, or a metric's thresholds.
    fn add_constants(&mut self, shapes: &[Vec<usize>], values: &[Vec<f32>]) -> Result<Vec<VarId>> {
        if shapes.len() != values.len() {
            return crate::value_error!(
                "compile: a traced function has {} variables but {} values",
                shapes.len(),
                values.len()
            );
        }
        shapes
            .iter()
            .zip(values)
            .map(|(shape, data)| self.add_constant(shape, data.clone()))
            .collect()
    }

    pub fn is_compiled(&self) -> bool {
        self.compiled.is_some()
    }

    /// Per-sample dims of the labels output `i` expects: the output's, or without the class
    /// axis for sparse labels; empty when the output has no loss and no metric.
    pub fn label_dims(&self, i: usize) -> Result<Vec<usize>> {
        let c = self.compiled_ref()?;
        if i >= self.outputs.len() {
            return crate::value_error!("output {i} does not exist");
        }
        if !c.spec.outputs[i].has_labels() {
            return Ok(Vec::new());
        }
        let d = &self.output_shape(i).dims;
        Ok(if c.sparse_labels(i) {
            d[..d.len().saturating_sub(1)].to_vec()
        } else {
            d.clone()
        })
    }

    /// Whether output `i` is fed targets (it has a loss or a metric).
    pub fn has_labels(&self, i: usize) -> Result<bool> {
        Ok(self
            .compiled_ref()?
            .spec
            .outputs
            .get(i)
            .is_some_and(OutputSpec::has_labels))
    }

    pub(super) fn compiled_ref(&self) -> Result<&Compiled> {
        match &self.compiled {
            Some(c) => Ok(c),
            None => crate::value_error!(
                "You must call `compile()` before using the model for training or evaluation."
            ),
        }
    }

    /// Builds (once per compile) the graph of losses, metrics and gradients.
    pub(super) fn ensure_train_graph(&mut self) -> Result<()> {
        let c = self.compiled_ref()?;
        if c.train.is_some() {
            return Ok(());
        }
        let mut g = self.graph.clone();
        let mut total: Option<NodeId> = None;
        let mut output_losses = Vec::new();
        // Each labelled output's targets and sample weights.
        let mut targets: Vec<Option<(NodeId, NodeId)>> = vec![None; c.spec.outputs.len()];
        for (i, o) in c.spec.outputs.iter().enumerate() {
            if !o.has_labels() {
                continue;
            }
            let y_dims = self.label_dims(i)?;
            let y_true = g.input(Shape::batched(&y_dims));
            let sw = g.input(Shape::batched(&[]));
            targets[i] = Some((y_true, sw));
            let pred = self.outputs[i];
            if let Some(loss) = c.losses[i] {
                let per = match &o.custom_loss {
                    Some(f) if loss == CUSTOM => {
                        g.inline(&f.graph, &[y_true, pred], &f.vars, f.output)?
                    }
                    _ => losses::build(&mut g, loss, y_true, pred)?,
                };
                let per_rank = g.shape(per).dims.len();
                let sw_b = if per_rank > 0 {
                    g.reshape(sw, &vec![1; per_rank])?
                } else {
                    sw
                };
                let weighted = g.mul(per, sw_b)?;
                let mean = g.reduce_all(ReduceKind::Mean, weighted)?;
                output_losses.push(mean);
                let term = if o.loss_weight == 1.0 {
                    mean
                } else {
                    g.scale(mean, o.loss_weight)?
                };
                total = Some(match total {
                    None => term,
                    Some(t) => g.add(t, term)?,
                });
            }
        }
        // Every output's metrics, then every output's weighted metrics (Keras' order).
        let mut metric_logs = Vec::new();
        for weighted in [false, true] {
            for (i, o) in c.spec.outputs.iter().enumerate() {
                let Some((y_true, sw)) = targets[i] else {
                    continue;
                };
                let entries = if weighted {
                    &o.weighted_metrics
                } else {
                    &o.metrics
                };
                for m in entries {
                    let w = weighted.then_some(sw);
                    metric_logs.push(self.metric_sums(&mut g, c, i, m, y_true, w)?);
                }
            }
        }
        for &e in &self.extra_losses {
            let e = if g.shape(e).rank() > 0 {
                g.reduce_all(ReduceKind::Sum, e)?
            } else {
                e
            };
            total = Some(match total {
                None => e,
                Some(t) => g.add(t, e)?,
            });
        }
        let Some(mut loss) = total else {
            return crate::value_error!("compile: no output has a loss");
        };
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
        let mut loss_nodes = vec![loss];
        if output_losses.len() > 1 {
            loss_nodes.extend(output_losses);
        }
        let mut logs = Vec::new();
        let (mut sums_at, mut value_at) = (0, 0);
        let entries = loss_nodes
            .into_iter()
            .map(|n| (n, Finalize::PerRow, Vec::new()))
            .chain(metric_logs);
        for (node, finalize, dims) in entries {
            let n = g.shape(node).numel(1);
            let width: usize = dims.iter().product();
            logs.push(Log {
                node,
                sums: (sums_at, n),
                value: (value_at, width),
                finalize,
            });
            sums_at += n;
            value_at += width;
        }
        let trainable: Vec<VarId> = (0..self.vars.len())
            .filter(|&v| self.trainable[v])
            .collect();
        let params: Vec<NodeId> = trainable.iter().map(|&v| g.param(v)).collect();
        let mut grads = autodiff::gradients(&mut g, loss, &params)?;
        // Each gradient needs a buffer of its own for the optimizer's in-place clipping.
        for i in 0..grads.len() {
            if grads[..i].contains(&grads[i]) || logs.iter().any(|l| l.node == grads[i]) {
                let dims = g.shape(grads[i]).dims.clone();
                grads[i] = g.reshape(grads[i], &dims)?;
            }
        }
        let c = self.compiled.as_mut().expect("checked above");
        c.train = Some(TrainGraph {
            graph: g,
            logs,
            sums_len: sums_at,
            grads,
            train_programs: HashMap::new(),
            eval_programs: HashMap::new(),
        });
        Ok(())
    }

    /// The metric entry `m` of output `i`: the node of a batch's sums (weighted by `sw` when
    /// given), how they read, and the dims of the value.
    fn metric_sums(
        &self,
        g: &mut Graph,
        c: &Compiled,
        i: usize,
        m: &MetricEntry,
        y_true: NodeId,
        sw: Option<NodeId>,
    ) -> Result<(NodeId, Finalize, Vec<usize>)> {
        let pred = self.outputs[i];
        let pred_shape = g.shape(pred).clone();
        let spec = match &m.kind {
            MetricKind::Traced(f) => {
                let v = g.inline(&f.graph, &[y_true, pred], &f.vars, f.output)?;
                return Ok((metrics::mean_sums(g, v, sw)?, Finalize::Mean, Vec::new()));
            }
            MetricKind::Spec(spec) => spec.clone(),
            MetricKind::Named => {
                let y_shape = g.shape(y_true).clone();
                MetricSpec::Mean(metrics::resolve(
                    &m.name,
                    c.losses[i].unwrap_or(""),
                    y_shape.rank(),
                    y_shape.last().unwrap_or(1),
                    pred_shape.rank(),
                    pred_shape.last().unwrap_or(1),
                )?)
            }
        };
        if c.sparse_labels(i) && !spec.sparse_labels() {
            return crate::value_error!(
                "metric '{}' needs targets shaped like the predictions, but output '{}' takes integer labels (loss '{}')",
                m.name,
                self.output_names[i],
                c.losses[i].unwrap_or("(none)")
            );
        }
        let consts: Vec<NodeId> = m.consts.iter().map(|&v| g.param(v)).collect();
        let node = spec.sums(g, y_true, pred, sw, &consts)?;
        Ok((node, spec.finalize(), spec.result_dims(&pred_shape.dims)))
    }

    /// Names of the values `train_batch`/`test_batch` return, in order (see the module docs).
    pub fn log_names(&self) -> Result<Vec<String>> {
        let c = self.compiled_ref()?;
        let multi = self.outputs.len() > 1;
        let mut v = vec!["loss".to_string()];
        if c.losses.iter().filter(|l| l.is_some()).count() > 1 {
            for (l, name) in c.losses.iter().zip(&self.output_names) {
                if l.is_some() {
                    v.push(format!("{name}_loss"));
                }
            }
        }
        let prefixed = |out: &str, m: &str| {
            if multi {
                format!("{out}_{m}")
            } else {
                m.to_string()
            }
        };
        // How many times each name was taken, for Keras' `_1`, `_2` suffixes.
        let mut taken: HashMap<String, usize> = HashMap::new();
        fn take(taken: &mut HashMap<String, usize>, name: String, v: &mut Vec<String>) {
            let k = taken.entry(name.clone()).or_insert(0);
            v.push(if *k == 0 { name } else { format!("{name}_{k}") });
            *k += 1;
        }
        for (o, out) in c.spec.outputs.iter().zip(&self.output_names) {
            for m in &o.metrics {
                take(&mut taken, prefixed(out, &m.name), &mut v);
            }
        }
        for (o, out) in c.spec.outputs.iter().zip(&self.output_names) {
            for m in &o.weighted_metrics {
                let mut name = prefixed(out, &m.name);
                if taken.contains_key(&name) {
                    name = prefixed(out, &format!("weighted_{}", m.name));
                }
                take(&mut taken, name, &mut v);
            }
        }
        Ok(v)
    }

    /// The dims of each log's value (see `log_names`): `[]` for a scalar, `[n]` for a metric
    /// with one value per threshold or per class.
    pub fn log_dims(&self) -> Result<Vec<Vec<usize>>> {
        let c = self.compiled_ref()?;
        let names = self.log_names()?;
        let losses = 1 + if c.losses.iter().filter(|l| l.is_some()).count() > 1 {
            c.losses.iter().filter(|l| l.is_some()).count()
        } else {
            0
        };
        let mut dims = vec![Vec::new(); losses];
        for weighted in [false, true] {
            for (i, o) in c.spec.outputs.iter().enumerate() {
                let pred = &self.output_shape(i).dims;
                let entries = if weighted {
                    &o.weighted_metrics
                } else {
                    &o.metrics
                };
                for m in entries {
                    dims.push(match &m.kind {
                        MetricKind::Spec(s) => s.result_dims(pred),
                        _ => Vec::new(),
                    });
                }
            }
        }
        debug_assert_eq!(dims.len(), names.len());
        Ok(dims)
    }

    /// How many values the logs hold in all (a vector-valued log holds several).
    pub fn log_width(&self) -> Result<usize> {
        Ok(self
            .log_dims()?
            .iter()
            .map(|d| d.iter().product::<usize>())
            .sum())
    }

    /// The training graph's feeds: each x, then labels and sample weights of each output that
    /// has targets (`ys` and `sws` hold one entry per output).
    pub(super) fn train_feeds<'a>(
        &self,
        xs: &[&'a [f32]],
        ys: &[&'a [f32]],
        sws: &[&'a [f32]],
    ) -> Result<super::Feeds<'a>> {
        let c = self.compiled_ref()?;
        let n_out = self.outputs.len();
        if xs.len() != self.inputs.len() || ys.len() != n_out || sws.len() != n_out {
            return crate::value_error!(
                "expected {} x arrays and {n_out} y and sample-weight arrays, received {}, {} and {}",
                self.inputs.len(),
                xs.len(),
                ys.len(),
                sws.len()
            );
        }
        let mut feeds: super::Feeds<'a> = xs.iter().copied().collect();
        for (i, o) in c.spec.outputs.iter().enumerate() {
            if o.has_labels() {
                feeds.push(ys[i]);
                feeds.push(sws[i]);
            }
        }
        Ok(feeds)
    }
}
