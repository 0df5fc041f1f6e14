//! `compile`: per-output losses, loss weights and metrics, and the training graph they make.
//!
//! For a model with outputs `o_1..o_m`, the training graph appends, for each output that has
//! targets (a loss or a metric), a labels input and a sample-weight input, and computes
//! `loss = sum_i w_i * mean(loss_i(y_i, o_i) * sw_i) + regularizers`. The logs are, as in
//! Keras 3: `loss`; `<output>_loss` for each output with a loss when more than one has one;
//! then each output's metrics, named `<output>_<metric>` when the model has several outputs.
//! A single-output model logs `loss` and its metrics by the names the user gave.

use std::collections::HashMap;

use super::Model;
use crate::autodiff;
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape, VarId};
use crate::losses;
use crate::metrics::{self, Metric};
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

/// What `compile` fixed for one model output.
#[derive(Clone, Debug, Default)]
pub struct OutputSpec {
    /// The loss, or `None` when this output adds nothing to the loss (Keras' `None` entry);
    /// [`CUSTOM`] with `custom_loss` for a traced function.
    pub loss: Option<String>,
    /// The traced loss function, when `loss` is [`CUSTOM`].
    pub custom_loss: Option<Fragment>,
    /// Traced metric functions, by their name in `metrics`.
    pub custom_metrics: Vec<(String, Fragment)>,
    /// The loss's factor in the total loss (Keras' `loss_weights`).
    pub loss_weight: f32,
    /// Metric names, as the user spelled them.
    pub metrics: Vec<String>,
}

impl OutputSpec {
    /// An output trained with `loss` at weight 1 and no metrics.
    pub fn loss(loss: &str) -> OutputSpec {
        OutputSpec {
            loss: Some(loss.into()),
            custom_loss: None,
            custom_metrics: Vec::new(),
            loss_weight: 1.0,
            metrics: Vec::new(),
        }
    }

    /// Whether the output is fed targets: it has a loss or a metric.
    pub fn has_labels(&self) -> bool {
        self.loss.is_some() || !self.metrics.is_empty()
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
                let m = &self.spec.outputs[i].metrics;
                !m.is_empty() && m.iter().all(|n| n.starts_with("sparse_"))
            }
        }
    }
}

/// The training graph: the forward graph, its losses, metrics and gradients.
pub(super) struct TrainGraph {
    pub graph: Graph,
    /// What `log_names` names: the total loss (first), per-output losses, metrics.
    pub logs: Vec<NodeId>,
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
        for o in spec.outputs.iter_mut() {
            let frags = o
                .custom_loss
                .iter_mut()
                .chain(o.custom_metrics.iter_mut().map(|(_, f)| f));
            for f in frags {
                if f.constants.len() != f.graph.var_shapes.len() {
                    return crate::value_error!(
                        "compile: a traced function has {} variables but {} values",
                        f.graph.var_shapes.len(),
                        f.constants.len()
                    );
                }
                let mut vars = Vec::with_capacity(f.constants.len());
                for (shape, data) in f.graph.var_shapes.iter().zip(&f.constants) {
                    vars.push(self.add_constant(shape, data.clone())?);
                }
                f.vars = vars;
            }
        }
        for (i, o) in spec.outputs.iter().enumerate() {
            let loss = match o.loss.as_deref() {
                Some(CUSTOM) if o.custom_loss.is_some() => Some(CUSTOM),
                other => other.map(losses::canonical).transpose()?,
            };
            for m in &o.metrics {
                if o.custom_metrics.iter().any(|(n, _)| n == m) {
                    continue;
                }
                // Validate the names now; shapes resolve "accuracy" when the graph is built.
                metrics::resolve(m, loss.unwrap_or(""), 2, 2, 2, 2)?;
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
        let mut metric_nodes = Vec::new();
        for (i, o) in c.spec.outputs.iter().enumerate() {
            if !o.has_labels() {
                continue;
            }
            let y_dims = self.label_dims(i)?;
            let y_true = g.input(Shape::batched(&y_dims));
            let sw = g.input(Shape::batched(&[]));
            let pred = self.outputs[i];
            if let Some(loss) = c.losses[i] {
                let per = match &o.custom_loss {
                    Some(f) if loss == CUSTOM => g.inline(&f.graph, &[y_true, pred], &f.vars, f.output)?,
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
            let pred_shape = g.shape(pred).clone();
            for name in &o.metrics {
                if let Some((_, f)) = o.custom_metrics.iter().find(|(n, _)| n == name) {
                    let v = g.inline(&f.graph, &[y_true, pred], &f.vars, f.output)?;
                    metric_nodes.push(g.reduce_all(ReduceKind::Mean, v)?);
                    continue;
                }
                let m = metrics::resolve(
                    name,
                    c.losses[i].unwrap_or(""),
                    y_dims.len() + 1,
                    y_dims.last().copied().unwrap_or(1),
                    pred_shape.rank(),
                    pred_shape.last().unwrap_or(1),
                )?;
                let sparse_metric = matches!(
                    m,
                    Metric::SparseCategoricalAccuracy | Metric::SparseTopKCategoricalAccuracy(_)
                );
                if c.sparse_labels(i) && !sparse_metric {
                    return crate::value_error!(
                        "metric '{name}' needs one-hot labels, but the loss '{}' takes integer labels",
                        c.losses[i].unwrap_or("(none)")
                    );
                }
                let v = metrics::build(&mut g, m, y_true, pred)?;
                metric_nodes.push(g.reduce_all(ReduceKind::Mean, v)?);
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
        let mut logs = vec![loss];
        if output_losses.len() > 1 {
            logs.extend(output_losses);
        }
        logs.extend(metric_nodes);
        let trainable: Vec<VarId> = (0..self.vars.len())
            .filter(|&v| self.trainable[v])
            .collect();
        let params: Vec<NodeId> = trainable.iter().map(|&v| g.param(v)).collect();
        let mut grads = autodiff::gradients(&mut g, loss, &params)?;
        // Each gradient needs a buffer of its own for the optimizer's in-place clipping.
        for i in 0..grads.len() {
            if grads[..i].contains(&grads[i]) || logs.contains(&grads[i]) {
                let dims = g.shape(grads[i]).dims.clone();
                grads[i] = g.reshape(grads[i], &dims)?;
            }
        }
        let c = self.compiled.as_mut().expect("checked above");
        c.train = Some(TrainGraph {
            graph: g,
            logs,
            grads,
            train_programs: HashMap::new(),
            eval_programs: HashMap::new(),
        });
        Ok(())
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
        for (o, name) in c.spec.outputs.iter().zip(&self.output_names) {
            for m in &o.metrics {
                v.push(if multi {
                    format!("{name}_{m}")
                } else {
                    m.clone()
                });
            }
        }
        Ok(v)
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
