//! Metrics as Keras 3 computes them: each metric keeps a vector of sums over the epoch (Keras'
//! metric variables), a batch adds to it, and the metric's value is read from the sums when
//! logs are read (Keras' `result()`).
//!
//! A [`MetricSpec`] says what a metric is; [`MetricSpec::sums`] adds to a graph the nodes that
//! compute one batch's sums (a fixed vector, summed over the epoch on the model's device like
//! the loss), and [`Finalize`] turns the epoch's sums into the value:
//!
//! - [`MetricSpec::Mean`]: a per-sample function ([`Metric`]) averaged over the samples,
//!   sample-weighted: sums `[Σ w·v, Σ w]` (Keras' `MeanMetricWrapper`);
//! - [`MetricSpec::RootMeanSquaredError`]: the same sums of squared errors, under a root;
//! - confusion-matrix metrics ([`confusion`]): counts per threshold, precision, recall, AUC;
//! - F-scores ([`fscore`]).
//!
//! ```
//! use rustkeras::graph::{Graph, Shape};
//! use rustkeras::metrics::MetricSpec;
//!
//! let spec = MetricSpec::from_name("auc").unwrap().unwrap();
//! let mut g = Graph::new();
//! let y_true = g.input(Shape::batched(&[1]));
//! let y_pred = g.input(Shape::batched(&[1]));
//! let sums = spec.sums(&mut g, y_true, y_pred, None, &[]).unwrap();
//! // True and false positives, true and false negatives at each of 200 thresholds.
//! assert_eq!(g.shape(sums), &Shape::fixed(&[800]));
//! ```

pub mod confusion;
pub mod fscore;
mod state;
mod values;

pub use confusion::{Auc, Cond, Confusion, Count};
pub use fscore::FBeta;
pub use state::MetricState;
pub use values::{build, resolve, Metric};

use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};
use crate::losses;
use crate::ops::{Op, ReduceKind};

/// A metric: what a batch adds to its sums, and how the sums read.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricSpec {
    /// The (sample-weighted) mean of a per-sample function over the epoch.
    Mean(Metric),
    /// `sqrt` of the mean squared error.
    RootMeanSquaredError,
    /// A confusion-matrix count at each threshold (`TruePositives`, ...).
    Count(Count),
    Precision(Confusion),
    Recall(Confusion),
    Auc(Auc),
    FBeta(FBeta),
}

/// One argument of a metric's configuration, as [`MetricSpec::from_params`] takes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Floats(Vec<f64>),
}

/// A metric's arguments by name (those not given take Keras' defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(pub Vec<(String, Param)>);

impl Params {
    fn get(&self, key: &str) -> &Param {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or(&Param::None, |(_, v)| v)
    }

    /// An optional integer argument.
    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            Param::None => Ok(None),
            Param::Int(v) => Ok(Some(*v)),
            other => bad_param(key, "an integer", other),
        }
    }

    /// An optional float argument (an integer is taken as a float).
    pub fn float(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            Param::None => Ok(None),
            Param::Int(v) => Ok(Some(*v as f64)),
            Param::Float(v) => Ok(Some(*v)),
            other => bad_param(key, "a float", other),
        }
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            Param::None => Ok(default),
            Param::Bool(v) => Ok(*v),
            other => bad_param(key, "a boolean", other),
        }
    }

    pub fn str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            Param::None => Ok(None),
            Param::Str(v) => Ok(Some(v)),
            other => bad_param(key, "a string", other),
        }
    }

    /// An optional list of floats (one float is a list of one).
    pub fn floats(&self, key: &str) -> Result<Option<Vec<f64>>> {
        match self.get(key) {
            Param::None => Ok(None),
            Param::Int(v) => Ok(Some(vec![*v as f64])),
            Param::Float(v) => Ok(Some(vec![*v])),
            Param::Floats(v) => Ok(Some(v.clone())),
            other => bad_param(key, "a float or a list of floats", other),
        }
    }

    /// Fails on an argument not in `known` (no argument is silently ignored).
    fn only(&self, kind: &str, known: &[&str]) -> Result<()> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => crate::value_error!(
                "{kind}: unexpected argument `{k}`; expected one of {}",
                known.join(", ")
            ),
            None => Ok(()),
        }
    }
}

fn bad_param<T>(key: &str, expected: &str, got: &Param) -> Result<T> {
    crate::value_error!(
        "Invalid value received for argument `{key}`. Expected {expected}. Received: {key}={got:?}"
    )
}

/// The kinds [`MetricSpec::from_params`] takes.
pub const KINDS: &[&str] = &[
    "auc",
    "precision",
    "recall",
    "true_positives",
    "false_positives",
    "true_negatives",
    "false_negatives",
    "root_mean_squared_error",
    "f1_score",
    "fbeta_score",
    "binary_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "mean",
];

impl MetricSpec {
    /// The metric a class name stands for, with its default arguments (`"auc"` or `"AUC"`,
    /// `"precision"`, `"f1_score"`, ...), as Keras' `metrics.get` resolves a string; `None`
    /// for a name that is not a stateful metric class (a per-sample function name such as
    /// `"accuracy"` resolves by shapes, see [`resolve`]).
    pub fn from_name(name: &str) -> Result<Option<MetricSpec>> {
        let kind = match name {
            "auc" | "AUC" => "auc",
            "precision" | "Precision" => "precision",
            "recall" | "Recall" => "recall",
            "true_positives" | "TruePositives" => "true_positives",
            "false_positives" | "FalsePositives" => "false_positives",
            "true_negatives" | "TrueNegatives" => "true_negatives",
            "false_negatives" | "FalseNegatives" => "false_negatives",
            "root_mean_squared_error" | "RootMeanSquaredError" => "root_mean_squared_error",
            "f1_score" | "F1Score" => "f1_score",
            "f_beta_score" | "FBetaScore" => "fbeta_score",
            _ => return Ok(None),
        };
        MetricSpec::from_params(kind, &Params::default()).map(Some)
    }

    /// A metric class by its kind (`"auc"`, `"precision"`, `"recall"`, `"true_positives"`,
    /// `"false_positives"`, `"true_negatives"`, `"false_negatives"`,
    /// `"root_mean_squared_error"`, `"f1_score"`, `"fbeta_score"`, `"mean"` with `fn` a
    /// per-sample function name, `"binary_accuracy"` with `threshold`,
    /// `"top_k_categorical_accuracy"` and `"sparse_top_k_categorical_accuracy"` with `k`)
    /// and its Keras constructor arguments.
    pub fn from_params(kind: &str, p: &Params) -> Result<MetricSpec> {
        Ok(match kind {
            "auc" => MetricSpec::Auc(Auc::from_params(p)?),
            "precision" | "recall" => {
                let c = Confusion::from_params(kind, p)?;
                if kind == "precision" {
                    MetricSpec::Precision(c)
                } else {
                    MetricSpec::Recall(c)
                }
            }
            "true_positives" | "false_positives" | "true_negatives" | "false_negatives" => {
                MetricSpec::Count(Count::from_params(kind, p)?)
            }
            "root_mean_squared_error" => {
                p.only(kind, &[])?;
                MetricSpec::RootMeanSquaredError
            }
            "f1_score" | "fbeta_score" => MetricSpec::FBeta(FBeta::from_params(kind, p)?),
            "binary_accuracy" => {
                p.only(kind, &["threshold"])?;
                let t = p.float("threshold")?.unwrap_or(0.5);
                MetricSpec::Mean(Metric::BinaryAccuracy(t as f32))
            }
            "top_k_categorical_accuracy" | "sparse_top_k_categorical_accuracy" => {
                p.only(kind, &["k"])?;
                let k = p.int("k")?.unwrap_or(5);
                if k <= 0 {
                    return crate::value_error!(
                        "Invalid value received for argument `k`. Expected an integer > 0. Received: k={k}"
                    );
                }
                let k = k as usize;
                MetricSpec::Mean(if kind.starts_with("sparse") {
                    Metric::SparseTopKCategoricalAccuracy(k)
                } else {
                    Metric::TopKCategoricalAccuracy(k)
                })
            }
            "mean" => {
                p.only(kind, &["fn"])?;
                let Some(name) = p.str("fn")? else {
                    return crate::value_error!(
                        "mean metric: the argument `fn` (a function name) is required"
                    );
                };
                if matches!(name, "accuracy" | "acc") {
                    return crate::value_error!(
                        "mean metric: 'accuracy' depends on the shapes; use 'binary_accuracy', \
                         'categorical_accuracy' or 'sparse_categorical_accuracy'"
                    );
                }
                MetricSpec::Mean(resolve(name, "", 2, 2, 2, 2)?)
            }
            other => {
                return crate::value_error!(
                    "Unknown metric class '{other}'. Expected one of: {}",
                    KINDS.join(", ")
                )
            }
        })
    }

    /// Whether the metric takes integer class labels rather than targets shaped like the
    /// predictions.
    pub fn sparse_labels(&self) -> bool {
        matches!(
            self,
            MetricSpec::Mean(
                Metric::SparseCategoricalAccuracy | Metric::SparseTopKCategoricalAccuracy(_)
            )
        ) || matches!(self, MetricSpec::Mean(Metric::Loss(l)) if losses::is_sparse(l))
    }

    /// Fixed arrays the sums read (thresholds, label weights), each `(shape, values)`: the
    /// caller declares them as variables of the graph and passes their nodes to [`sums`].
    ///
    /// [`sums`]: MetricSpec::sums
    pub fn constants(&self) -> Vec<(Vec<usize>, Vec<f32>)> {
        match self {
            MetricSpec::Count(c) => c.confusion.constants(),
            MetricSpec::Precision(c) | MetricSpec::Recall(c) => c.constants(),
            MetricSpec::Auc(a) => a.constants(),
            _ => Vec::new(),
        }
    }

    /// Adds the nodes of one batch's sums: a fixed vector, to be summed over the epoch.
    /// `sw` is the batch's sample weights (batched, one per sample) or `None` (all 1);
    /// `consts` the nodes of [`constants`], in order.
    ///
    /// [`constants`]: MetricSpec::constants
    pub fn sums(
        &self,
        g: &mut Graph,
        y_true: NodeId,
        y_pred: NodeId,
        sw: Option<NodeId>,
        consts: &[NodeId],
    ) -> Result<NodeId> {
        match self {
            MetricSpec::Mean(m) => {
                let v = build(g, *m, y_true, y_pred)?;
                mean_sums(g, v, sw)
            }
            MetricSpec::RootMeanSquaredError => {
                let t = same_rank(g, y_true, y_pred)?;
                if g.shape(t) != g.shape(y_pred) {
                    return crate::value_error!(
                        "RootMeanSquaredError: y_true shape {} does not match y_pred shape {}",
                        g.shape(y_true).display(),
                        g.shape(y_pred).display()
                    );
                }
                let d = g.sub(y_pred, t)?;
                let sq = g.unary(crate::ops::UnaryOp::Square, d)?;
                mean_sums(g, sq, sw)
            }
            MetricSpec::Count(c) => c.sums(g, y_true, y_pred, sw, consts),
            MetricSpec::Precision(c) => c.sums(
                g,
                y_true,
                y_pred,
                sw,
                consts,
                &[Cond::TruePositives, Cond::FalsePositives],
            ),
            MetricSpec::Recall(c) => c.sums(
                g,
                y_true,
                y_pred,
                sw,
                consts,
                &[Cond::TruePositives, Cond::FalseNegatives],
            ),
            MetricSpec::Auc(a) => a.sums(g, y_true, y_pred, sw, consts),
            MetricSpec::FBeta(f) => f.sums(g, y_true, y_pred, sw),
        }
    }

    /// How the sums read.
    pub fn finalize(&self) -> Finalize {
        match self {
            MetricSpec::Mean(_) => Finalize::Mean,
            MetricSpec::RootMeanSquaredError => Finalize::RootMean,
            MetricSpec::Count(_) => Finalize::Counts,
            MetricSpec::Precision(_) | MetricSpec::Recall(_) => Finalize::Ratio,
            MetricSpec::Auc(a) => Finalize::Auc(a.clone()),
            MetricSpec::FBeta(f) => Finalize::FBeta(f.clone()),
        }
    }

    /// The dims of the metric's value for predictions of per-sample dims `pred_dims`: `[]`
    /// for a scalar, `[n]` for one value per threshold or per class.
    pub fn result_dims(&self, pred_dims: &[usize]) -> Vec<usize> {
        let per_threshold = |t: usize| if t == 1 { Vec::new() } else { vec![t] };
        match self {
            MetricSpec::Count(c) => per_threshold(c.confusion.thresholds.len()),
            MetricSpec::Precision(c) | MetricSpec::Recall(c) => per_threshold(c.thresholds.len()),
            MetricSpec::FBeta(f) => f.result_dims(pred_dims),
            _ => Vec::new(),
        }
    }
}

/// How a log's epoch sums become its value.
#[derive(Clone, Debug, PartialEq)]
pub enum Finalize {
    /// A loss: batch means added with their row counts, divided by the rows seen.
    PerRow,
    /// `[total, count]`: `total / count` (0 when the count is 0).
    Mean,
    /// The root of [`Finalize::Mean`].
    RootMean,
    /// The sums themselves (one per threshold).
    Counts,
    /// `[a (T), b (T)]`: `a / (a + b)` at each threshold (0 where that is 0); precision and
    /// recall.
    Ratio,
    Auc(Auc),
    FBeta(FBeta),
}

impl Finalize {
    /// The factor of a batch's sums as they are added to the epoch's: a loss (a batch mean)
    /// counts once per row, metric sums once.
    pub fn batch_scale(&self, rows: usize) -> f64 {
        match self {
            Finalize::PerRow => rows as f64,
            _ => 1.0,
        }
    }

    /// The value from the sums (`rows`: the rows seen, for [`Finalize::PerRow`]), written to
    /// `out` (as many values as the metric's [`MetricSpec::result_dims`] hold).
    pub fn read(&self, sums: &[f64], rows: usize, out: &mut [f64]) {
        match self {
            Finalize::PerRow => out[0] = sums[0] / rows.max(1) as f64,
            Finalize::Mean => out[0] = divide_no_nan(sums[0], sums[1]),
            Finalize::RootMean => out[0] = divide_no_nan(sums[0], sums[1]).sqrt(),
            Finalize::Counts => out.copy_from_slice(sums),
            Finalize::Ratio => {
                let t = sums.len() / 2;
                for (k, o) in out.iter_mut().enumerate() {
                    *o = divide_no_nan(sums[k], sums[k] + sums[t + k]);
                }
            }
            Finalize::Auc(a) => out[0] = a.result(sums),
            Finalize::FBeta(f) => f.result(sums, out),
        }
    }
}

/// `a / b`, or 0 where `b` is 0 (Keras' `divide_no_nan`).
pub(crate) fn divide_no_nan(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// `y` with a trailing axis of 1 dropped or added to match `like`'s rank, as Keras'
/// `squeeze_or_expand_to_same_rank` does for targets.
pub(crate) fn same_rank(g: &mut Graph, y: NodeId, like: NodeId) -> Result<NodeId> {
    let (s, l) = (g.shape(y).clone(), g.shape(like).clone());
    if s.rank() == l.rank() + 1 && s.dims.last() == Some(&1) {
        g.reshape(y, &s.dims[..s.dims.len() - 1])
    } else if l.rank() == s.rank() + 1 && l.dims.last() == Some(&1) {
        let mut d = s.dims.clone();
        d.push(1);
        g.reshape(y, &d)
    } else {
        Ok(y)
    }
}

/// The sample weights `sw` (one per sample) reshaped to broadcast over a tensor of `x`'s
/// rank.
pub(crate) fn weights_like(g: &mut Graph, sw: NodeId, x: NodeId) -> Result<NodeId> {
    let r = g.shape(x).dims.len();
    if r == 0 {
        return Ok(sw);
    }
    g.reshape(sw, &vec![1; r])
}

/// Fixed scalars or vectors joined into one vector.
pub(crate) fn join(g: &mut Graph, parts: &[NodeId]) -> Result<NodeId> {
    let mut flat = Vec::with_capacity(parts.len());
    for &p in parts {
        let n: usize = g.shape(p).dims.iter().product();
        flat.push(g.reshape(p, &[n])?);
    }
    if flat.len() == 1 {
        return Ok(flat[0]);
    }
    g.push(Op::Concat { axis: 0 }, &flat)
}

/// Ones shaped like the batched tensor `x`'s batch axis (one per sample).
pub(crate) fn ones_per_sample(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let one = g.scalar(1.0);
    let s = g.shape(x);
    if !s.batched {
        return crate::value_error!(
            "metric: expected a batched tensor, received {}",
            s.display()
        );
    }
    g.push(Op::BroadcastTo(Shape::batched(&[])), &[one])
}

/// `[Σ w·v, Σ w]` of per-sample values `v` (averaged over their per-sample axes first), as
/// Keras' `Mean` accumulates them; without weights `[Σ v, samples]`.
pub fn mean_sums(g: &mut Graph, v: NodeId, sw: Option<NodeId>) -> Result<NodeId> {
    let s = g.shape(v).clone();
    if !s.batched {
        return crate::value_error!(
            "metric: expected one value per sample, received a tensor of shape {}",
            s.display()
        );
    }
    let per = if s.dims.is_empty() {
        v
    } else {
        let axes: Vec<usize> = (1..=s.dims.len()).collect();
        g.reduce(ReduceKind::Mean, v, &axes, false)?
    };
    let (weighted, w) = match sw {
        Some(w) => (g.mul(per, w)?, w),
        None => (per, ones_per_sample(g, per)?),
    };
    let total = g.reduce_all(ReduceKind::Sum, weighted)?;
    let count = g.reduce_all(ReduceKind::Sum, w)?;
    join(g, &[total, count])
}

#[cfg(test)]
mod tests;
