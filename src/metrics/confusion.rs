//! Confusion-matrix metrics: Keras' `TruePositives`, `FalsePositives`, `TrueNegatives`,
//! `FalseNegatives`, `Precision`, `Recall` and `AUC`.
//!
//! A prediction counts as positive at threshold `t` when `y_pred > t`, a label as positive
//! when it is not 0; each pair adds its sample weight to one of the four counts at every
//! threshold. As in Keras, thresholds spread evenly over `[0, 1]` (AUC's default 200) are
//! counted in one pass: each prediction falls in the bucket `ceil(p * (T - 1))` (predictions
//! clipped to `[0, 1]`), the buckets' weights are scattered into a vector, and a reversed
//! cumulative sum gives every threshold's count; other thresholds are compared one by one.
//!
//! ```
//! use rustkeras::metrics::{Auc, MetricSpec, Params};
//!
//! // Keras' example: thresholds [-1e-7, 0.5, 1 + 1e-7]; tp = [2, 1, 0], fp = [2, 0, 0],
//! // tn = [0, 2, 2], fn = [0, 1, 2]; the ROC area is 0.75.
//! let auc = Auc::from_params(&Params(vec![(
//!     "num_thresholds".into(),
//!     rustkeras::metrics::Param::Int(3),
//! )]))
//! .unwrap();
//! let sums = [2., 1., 0., 2., 0., 0., 0., 2., 2., 0., 1., 2.];
//! assert!((auc.result(&sums) - 0.75).abs() < 1e-12);
//! ```

use super::{divide_no_nan, join, same_rank, weights_like, Params};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};
use crate::ops::cumulative::Cumulative;
use crate::ops::{BinaryOp, Op, ReduceKind, UnaryOp};

/// Keras' stand-in for minus infinity: the threshold of a top-k precision or recall, and the
/// value given to predictions outside the top k.
pub const NEG_INF: f32 = -1e10;

/// Keras' `backend.epsilon()`, the margin of AUC's end thresholds.
const EPSILON: f64 = 1e-7;

/// One cell of the confusion matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    TruePositives,
    FalsePositives,
    TrueNegatives,
    FalseNegatives,
}

/// Thresholds and the preprocessing every confusion metric shares.
#[derive(Clone, Debug, PartialEq)]
pub struct Confusion {
    /// In the order the counts are kept.
    pub thresholds: Vec<f64>,
    /// Keras' `thresholds_distributed_evenly`: counted by buckets (see the module docs).
    pub even: bool,
    /// Only the `top_k` largest predictions of each sample count as positive.
    pub top_k: Option<usize>,
    /// Only this class (an index on the last axis) is counted.
    pub class_id: Option<usize>,
}

/// A count of one confusion-matrix cell at each threshold (`TruePositives`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Count {
    pub cond: Cond,
    pub confusion: Confusion,
}

/// Which curve `AUC` integrates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    Roc,
    Pr,
    PrGain,
}

/// How `AUC` sums the area between thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summation {
    Interpolation,
    Minoring,
    Majoring,
}

/// Keras' `AUC`: the four counts at `num_thresholds` thresholds, and the area under the ROC
/// or precision-recall curve they trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Auc {
    /// `-eps`, the user's thresholds (or `num_thresholds - 2` evenly spread ones), `1 + eps`.
    pub confusion: Confusion,
    pub curve: Curve,
    pub summation: Summation,
    /// One curve per label (the last axis), averaged; else every prediction counts alike.
    pub multi_label: bool,
    /// Weights of the labels: in the counts, or in the average of the labels' areas when
    /// `multi_label`.
    pub label_weights: Option<Vec<f64>>,
    /// Predictions are logits: a sigmoid comes first.
    pub from_logits: bool,
}

/// Keras' `is_evenly_distributed_thresholds`: at least 3 thresholds, close to
/// `0, 1/(n-1), ..., 1`.
fn evenly_distributed(ts: &[f64]) -> bool {
    let n = ts.len();
    n >= 3
        && ts.iter().enumerate().all(|(i, &t)| {
            let e = f64::from(i as f32 / (n - 1) as f32);
            (t - e).abs() <= EPSILON + 1e-5 * e.abs()
        })
}

/// Keras' `parse_init_thresholds`: the given thresholds, each in `[0, 1]`, or the default.
fn parse_thresholds(given: Option<Vec<f64>>, default: f64) -> Result<Vec<f64>> {
    match given {
        None => Ok(vec![default]),
        Some(ts) => {
            let bad: Vec<f64> = ts
                .iter()
                .copied()
                .filter(|t| !(0.0..=1.0).contains(t))
                .collect();
            if !bad.is_empty() {
                return crate::value_error!(
                    "Threshold values must be in [0, 1]. Received: {bad:?}"
                );
            }
            if ts.is_empty() {
                return crate::value_error!("Invalid value received for argument `thresholds`. Expected at least one threshold. Received: []");
            }
            Ok(ts)
        }
    }
}

fn positive(p: &Params, key: &str, min: i64) -> Result<Option<usize>> {
    match p.int(key)? {
        Some(v) if v < min => crate::value_error!(
            "Invalid value received for argument `{key}`. Expected an integer >= {min}. Received: {key}={v}"
        ),
        v => Ok(v.map(|v| v as usize)),
    }
}

impl Confusion {
    /// Precision's or recall's arguments: `thresholds`, `top_k`, `class_id`.
    pub fn from_params(kind: &str, p: &Params) -> Result<Confusion> {
        p.only(kind, &["thresholds", "top_k", "class_id"])?;
        let top_k = positive(p, "top_k", 1)?;
        let default = if top_k.is_some() {
            f64::from(NEG_INF)
        } else {
            0.5
        };
        let thresholds = parse_thresholds(p.floats("thresholds")?, default)?;
        Ok(Confusion {
            even: evenly_distributed(&thresholds),
            thresholds,
            top_k,
            class_id: positive(p, "class_id", 0)?,
        })
    }

    fn with_epsilon(&self) -> bool {
        self.thresholds.first().is_some_and(|&t| t < 0.0)
            || self.thresholds.last().is_some_and(|&t| t > 1.0)
    }

    /// The thresholds as a constant, where they are compared one by one.
    pub fn constants(&self) -> Vec<(Vec<usize>, Vec<f32>)> {
        if self.even {
            return Vec::new();
        }
        let t: Vec<f32> = self.thresholds.iter().map(|&t| t as f32).collect();
        vec![(vec![t.len()], t)]
    }

    /// The labels (1 where not 0) and predictions after the shared preprocessing: targets
    /// brought to the predictions' rank, a sigmoid for logits, the top-k filter, the class.
    fn prepare(
        &self,
        g: &mut Graph,
        y_true: NodeId,
        y_pred: NodeId,
        from_logits: bool,
    ) -> Result<(NodeId, NodeId)> {
        let mut t = same_rank(g, y_true, y_pred)?;
        if g.shape(t) != g.shape(y_pred) {
            return crate::value_error!(
                "confusion metric: y_true shape {} does not match y_pred shape {}",
                g.shape(y_true).display(),
                g.shape(y_pred).display()
            );
        }
        let mut p = y_pred;
        if from_logits {
            p = g.unary(UnaryOp::Sigmoid, p)?;
        }
        if let Some(k) = self.top_k {
            p = filter_top_k(g, p, k)?;
        }
        if let Some(c) = self.class_id {
            let s = g.shape(p).clone();
            let Some(&n) = s.dims.last() else {
                return crate::value_error!(
                    "When class_id is provided, y_pred must be a 2D array with shape (num_samples, num_classes), found shape: {}",
                    s.display()
                );
            };
            if c >= n {
                return crate::value_error!(
                    "Invalid value received for argument `class_id`. Expected an index below the number of classes {n}. Received: class_id={c}"
                );
            }
            let axis = s.rank() - 1;
            let op = Op::SliceAxis {
                axis,
                start: c,
                len: 1,
            };
            p = g.push(op.clone(), &[p])?;
            t = g.push(op, &[t])?;
        }
        let zero = g.scalar(0.0);
        let lab = g.binary(BinaryOp::NotEqual, t, zero)?;
        Ok((lab, p))
    }

    /// The counts `conds` at each threshold: `(T,)` each, or `(T, L)` per label when
    /// `per_label` (predictions `(N, L)`). `w` holds the weights, broadcast over `p`'s shape.
    #[allow(clippy::too_many_arguments)]
    fn counts(
        &self,
        g: &mut Graph,
        lab: NodeId,
        p: NodeId,
        w: Option<NodeId>,
        per_label: bool,
        consts: &[NodeId],
        conds: &[Cond],
    ) -> Result<Vec<NodeId>> {
        let not_lab = {
            let n = g.unary(UnaryOp::Neg, lab)?;
            g.unary(UnaryOp::AddScalar(1.0), n)?
        };
        let weigh = |g: &mut Graph, x: NodeId| match w {
            Some(w) => g.mul(x, w),
            None => Ok(x),
        };
        let pos_w = weigh(g, lab)?;
        let neg_w = weigh(g, not_lab)?;
        let dims = g.shape(p).dims.clone();
        let t = self.thresholds.len();
        if self.even {
            // Bucket b = ceil(p * (T - 1)) in 0..T: a prediction is positive at thresholds
            // below b (Keras' bucket index plus one; with the end epsilons, bucket 0 joins
            // bucket 1, as 0 is above -eps).
            let labels = if per_label {
                *dims.last().unwrap_or(&1)
            } else {
                1
            };
            let c = g.unary(UnaryOp::Clip(0.0, 1.0), p)?;
            let c = g.unary(UnaryOp::Scale((t - 1) as f32), c)?;
            let mut b = g.unary(UnaryOp::Ceil, c)?;
            if self.with_epsilon() {
                let one = g.scalar(1.0);
                b = g.binary(BinaryOp::Maximum, b, one)?;
            }
            if per_label {
                let l = g.iota(&[labels], 0)?;
                b = g.unary(UnaryOp::Scale(labels as f32), b)?;
                b = g.add(b, l)?;
            }
            let rows = (t + 1) * labels;
            let bucketed = |g: &mut Graph, v: NodeId| -> Result<NodeId> {
                let s = g.push(Op::ScatterAddRows(Shape::fixed(&[rows, 1])), &[v, b])?;
                let s = g.reshape(s, &[t + 1, labels])?;
                let s = g.push(
                    Op::Cumulative {
                        kind: Cumulative::Sum,
                        axis: 0,
                        reverse: true,
                    },
                    &[s],
                )?;
                let s = g.push(
                    Op::SliceAxis {
                        axis: 0,
                        start: 1,
                        len: t,
                    },
                    &[s],
                )?;
                if per_label {
                    Ok(s)
                } else {
                    g.reshape(s, &[t])
                }
            };
            let total = |g: &mut Graph, v: NodeId| -> Result<NodeId> {
                if per_label {
                    g.reduce(ReduceKind::Sum, v, &[0], false)
                } else {
                    g.reduce_all(ReduceKind::Sum, v)
                }
            };
            // True and false positives, each scattered once however many counts need it.
            let mut cache: [Option<NodeId>; 2] = [None, None];
            let mut positives = |g: &mut Graph, k: usize| -> Result<NodeId> {
                if let Some(v) = cache[k] {
                    return Ok(v);
                }
                let v = bucketed(g, [pos_w, neg_w][k])?;
                cache[k] = Some(v);
                Ok(v)
            };
            let mut out = Vec::with_capacity(conds.len());
            for &cond in conds {
                let v = match cond {
                    Cond::TruePositives => positives(g, 0)?,
                    Cond::FalsePositives => positives(g, 1)?,
                    Cond::FalseNegatives => {
                        let tp = positives(g, 0)?;
                        let all = total(g, pos_w)?;
                        g.sub(all, tp)?
                    }
                    Cond::TrueNegatives => {
                        let fp = positives(g, 1)?;
                        let all = total(g, neg_w)?;
                        g.sub(all, fp)?
                    }
                };
                out.push(v);
            }
            return Ok(out);
        }
        // One comparison per threshold: predictions (N, 1, K) against thresholds (T, 1).
        let k: usize = dims.iter().product();
        let Some(&th) = consts.first() else {
            return crate::value_error!("confusion metric: the thresholds constant is missing");
        };
        let th = g.reshape(th, &[t, 1])?;
        let flat = |g: &mut Graph, v: NodeId| g.reshape(v, &[1, k]);
        let pf = flat(g, p)?;
        let pos = g.binary(BinaryOp::Greater, pf, th)?;
        let neg = {
            let n = g.unary(UnaryOp::Neg, pos)?;
            g.unary(UnaryOp::AddScalar(1.0), n)?
        };
        let (lw, nw) = (flat(g, pos_w)?, flat(g, neg_w)?);
        let axes: &[usize] = if per_label { &[0] } else { &[0, 2] };
        let mut out = Vec::with_capacity(conds.len());
        for &cond in conds {
            let (l, q) = match cond {
                Cond::TruePositives => (lw, pos),
                Cond::FalsePositives => (nw, pos),
                Cond::TrueNegatives => (nw, neg),
                Cond::FalseNegatives => (lw, neg),
            };
            let m = g.mul(l, q)?;
            out.push(g.reduce(ReduceKind::Sum, m, axes, false)?);
        }
        Ok(out)
    }

    /// The sums of `conds` (each `(T,)`, in order) for a batch.
    pub(super) fn sums(
        &self,
        g: &mut Graph,
        y_true: NodeId,
        y_pred: NodeId,
        sw: Option<NodeId>,
        consts: &[NodeId],
        conds: &[Cond],
    ) -> Result<NodeId> {
        let (lab, p) = self.prepare(g, y_true, y_pred, false)?;
        let w = sw.map(|w| weights_like(g, w, p)).transpose()?;
        let parts = self.counts(g, lab, p, w, false, consts, conds)?;
        join(g, &parts)
    }
}

/// `x` with all but the `k` largest values of its last axis set to [`NEG_INF`] (ties go to
/// the lower index, as `top_k` orders them).
fn filter_top_k(g: &mut Graph, x: NodeId, k: usize) -> Result<NodeId> {
    let dims = g.shape(x).dims.clone();
    let Some(&c) = dims.last() else {
        return crate::value_error!(
            "top_k: predictions need a class axis, received one value per sample"
        );
    };
    let lead = &dims[..dims.len() - 1];
    // rank[c] = #{j : x_j > x_c} + #{j < c : x_j == x_c}; kept where rank < k.
    let xc = g.reshape(x, &[lead, &[c, 1][..]].concat())?;
    let xj = g.reshape(x, &[lead, &[1, c][..]].concat())?;
    let greater = g.binary(BinaryOp::Greater, xj, xc)?;
    let equal = g.binary(BinaryOp::Equal, xj, xc)?;
    let row = g.iota(&[c, c], 0)?;
    let col = g.iota(&[c, c], 1)?;
    let before = g.binary(BinaryOp::Less, col, row)?;
    let ties = g.mul(equal, before)?;
    let above = g.add(greater, ties)?;
    let rank = g.reduce_last(ReduceKind::Sum, above, false)?;
    let kk = g.scalar(k as f32);
    let keep = g.binary(BinaryOp::Less, rank, kk)?;
    let floor = g.scalar(NEG_INF);
    g.push(Op::Where, &[keep, x, floor])
}

impl Count {
    pub fn from_params(kind: &str, p: &Params) -> Result<Count> {
        p.only(kind, &["thresholds"])?;
        let cond = match kind {
            "true_positives" => Cond::TruePositives,
            "false_positives" => Cond::FalsePositives,
            "true_negatives" => Cond::TrueNegatives,
            "false_negatives" => Cond::FalseNegatives,
            other => return crate::value_error!("unknown confusion count '{other}'"),
        };
        let thresholds = parse_thresholds(p.floats("thresholds")?, 0.5)?;
        Ok(Count {
            cond,
            confusion: Confusion {
                even: evenly_distributed(&thresholds),
                thresholds,
                top_k: None,
                class_id: None,
            },
        })
    }

    pub(super) fn sums(
        &self,
        g: &mut Graph,
        y_true: NodeId,
        y_pred: NodeId,
        sw: Option<NodeId>,
        consts: &[NodeId],
    ) -> Result<NodeId> {
        self.confusion
            .sums(g, y_true, y_pred, sw, consts, &[self.cond])
    }
}

impl Auc {
    /// Keras' `AUC` arguments: `num_thresholds` (200), `curve` ("ROC", "PR" or "PRGAIN"),
    /// `summation_method` ("interpolation", "minoring", "majoring"), `thresholds`,
    /// `multi_label`, `num_labels`, `label_weights`, `from_logits`.
    pub fn from_params(p: &Params) -> Result<Auc> {
        p.only(
            "AUC",
            &[
                "num_thresholds",
                "curve",
                "summation_method",
                "thresholds",
                "multi_label",
                "num_labels",
                "label_weights",
                "from_logits",
            ],
        )?;
        let curve = match p.str("curve")?.unwrap_or("ROC") {
            "ROC" | "roc" => Curve::Roc,
            "PR" | "pr" => Curve::Pr,
            "PRGAIN" | "prgain" => Curve::PrGain,
            other => {
                return crate::value_error!(
                    "Invalid AUC curve value: \"{other}\". Expected values are [\"PR\", \"ROC\", \"PRGAIN\"]"
                )
            }
        };
        let summation = match p.str("summation_method")?.unwrap_or("interpolation") {
            "interpolation" | "Interpolation" => Summation::Interpolation,
            "majoring" | "Majoring" => Summation::Majoring,
            "minoring" | "Minoring" => Summation::Minoring,
            other => {
                return crate::value_error!(
                    "Invalid AUC summation method value: \"{other}\". Expected values are [\"interpolation\", \"majoring\", \"minoring\"]"
                )
            }
        };
        let (inner, even) = match p.floats("thresholds")? {
            Some(mut ts) => {
                if ts.iter().any(|t| t.is_nan()) {
                    return crate::value_error!("Invalid value received for argument `thresholds`. Expected numbers. Received: {ts:?}");
                }
                ts.sort_by(f64::total_cmp);
                let with_ends: Vec<f64> = [&[0.0][..], &ts, &[1.0]].concat();
                (ts, evenly_distributed(&with_ends))
            }
            None => {
                let n = p.int("num_thresholds")?.unwrap_or(200);
                if n <= 1 {
                    return crate::value_error!(
                        "Argument `num_thresholds` must be an integer > 1. Received: num_thresholds={n}"
                    );
                }
                let n = n as usize;
                let ts = (0..n - 2)
                    .map(|i| (i + 1) as f64 / (n - 1) as f64)
                    .collect();
                (ts, true)
            }
        };
        let thresholds = [&[-EPSILON][..], &inner, &[1.0 + EPSILON]].concat();
        let multi_label = p.bool("multi_label", false)?;
        let num_labels = positive(p, "num_labels", 1)?;
        if num_labels.is_some() && !multi_label {
            return crate::value_error!("`num_labels` is needed only when `multi_label` is True.");
        }
        let label_weights = p.floats("label_weights")?;
        if let (Some(n), Some(w)) = (num_labels, &label_weights) {
            if w.len() != n {
                return crate::value_error!(
                    "Invalid value received for argument `label_weights`. Expected {n} weights (num_labels). Received: {} weights",
                    w.len()
                );
            }
        }
        Ok(Auc {
            confusion: Confusion {
                thresholds,
                even,
                top_k: None,
                class_id: None,
            },
            curve,
            summation,
            multi_label,
            label_weights,
            from_logits: p.bool("from_logits", false)?,
        })
    }

    /// The thresholds (where compared one by one), then the label weights (where they weigh
    /// the counts).
    pub fn constants(&self) -> Vec<(Vec<usize>, Vec<f32>)> {
        let mut c = self.confusion.constants();
        if let (Some(w), false) = (&self.label_weights, self.multi_label) {
            c.push((vec![w.len()], w.iter().map(|&v| v as f32).collect()));
        }
        c
    }

    /// `[tp, fp, tn, fn]`, each `T` (or `T x L` per label) counts.
    pub(super) fn sums(
        &self,
        g: &mut Graph,
        y_true: NodeId,
        y_pred: NodeId,
        sw: Option<NodeId>,
        consts: &[NodeId],
    ) -> Result<NodeId> {
        let c = &self.confusion;
        let (lab, p) = c.prepare(g, y_true, y_pred, self.from_logits)?;
        let s = g.shape(p).clone();
        if self.multi_label && s.rank() != 2 {
            return crate::value_error!(
                "`y_pred` must have rank 2 when `multi_label=True`. Found rank {}. Full shape received for `y_pred`: {}",
                s.rank(),
                s.display()
            );
        }
        let labels = *s.dims.last().unwrap_or(&1);
        if let Some(lw) = &self.label_weights {
            if lw.len() != labels {
                return crate::value_error!(
                    "AUC: `label_weights` holds {} weights but the predictions have {labels} labels",
                    lw.len()
                );
            }
        }
        let mut w = sw.map(|w| weights_like(g, w, p)).transpose()?;
        if let (Some(_), false) = (&self.label_weights, self.multi_label) {
            let Some(&node) = consts.get(usize::from(!c.even)) else {
                return crate::value_error!("AUC: the label weights constant is missing");
            };
            w = Some(match w {
                Some(w) => g.mul(w, node)?,
                None => node,
            });
        }
        let conds = [
            Cond::TruePositives,
            Cond::FalsePositives,
            Cond::TrueNegatives,
            Cond::FalseNegatives,
        ];
        let parts = c.counts(g, lab, p, w, self.multi_label, consts, &conds)?;
        join(g, &parts)
    }

    /// The area from the sums `[tp, fp, tn, fn]` (each `T` or `T x L`), as Keras'
    /// `AUC.result` computes it.
    pub fn result(&self, sums: &[f64]) -> f64 {
        let t = self.confusion.thresholds.len();
        let n = sums.len() / 4;
        let labels = (n / t).max(1);
        let (tp, rest) = sums.split_at(n);
        let (fp, rest) = rest.split_at(n);
        let (tn, fnn) = rest.split_at(n);
        let at = |v: &[f64], i: usize, l: usize| v[i * labels + l];
        let mut areas = Vec::with_capacity(labels);
        for l in 0..labels {
            let mut area = 0.0;
            if self.curve == Curve::Pr && self.summation == Summation::Interpolation {
                // Davis & Goadrich interpolation: precision varies along the interval as
                // TP and P = TP + FP vary linearly.
                for i in 0..t - 1 {
                    let (tp_a, tp_b) = (at(tp, i, l), at(tp, i + 1, l));
                    let (p_a, p_b) = (tp_a + at(fp, i, l), tp_b + at(fp, i + 1, l));
                    let dtp = tp_a - tp_b;
                    let dp = p_a - p_b;
                    let slope = divide_no_nan(dtp, dp.max(0.0));
                    let intercept = tp_b - slope * p_b;
                    let ratio = if p_a > 0.0 && p_b > 0.0 {
                        divide_no_nan(p_a, p_b.max(0.0))
                    } else {
                        1.0
                    };
                    let pos = (tp_b + at(fnn, i + 1, l)).max(0.0);
                    area += divide_no_nan(slope * (dtp + intercept * ratio.ln()), pos);
                }
            } else {
                let point = |i: usize| -> (f64, f64) {
                    let (tp, fp, tn, fnn) =
                        (at(tp, i, l), at(fp, i, l), at(tn, i, l), at(fnn, i, l));
                    let recall = divide_no_nan(tp, tp + fnn);
                    match self.curve {
                        Curve::Roc => (divide_no_nan(fp, fp + tn), recall),
                        Curve::Pr => (recall, divide_no_nan(tp, tp + fp)),
                        Curve::PrGain => {
                            let scale = divide_no_nan(tp + fnn, tn + fp);
                            let (rg, pg) = if tp == 0.0 {
                                (0.0, 1.0)
                            } else {
                                (1.0 - scale * (fnn / tp), 1.0 - scale * (fp / tp))
                            };
                            (rg.max(0.0), pg)
                        }
                    }
                };
                for i in 0..t - 1 {
                    let ((xa, ya), (xb, yb)) = (point(i), point(i + 1));
                    let h = match self.summation {
                        Summation::Interpolation => (ya + yb) / 2.0,
                        Summation::Minoring => ya.min(yb),
                        Summation::Majoring => ya.max(yb),
                    };
                    area += (xa - xb) * h;
                }
            }
            areas.push(area);
        }
        if !self.multi_label {
            return areas[0];
        }
        match &self.label_weights {
            None => areas.iter().sum::<f64>() / labels as f64,
            Some(w) => divide_no_nan(
                areas.iter().zip(w).map(|(a, w)| a * w).sum(),
                w.iter().sum(),
            ),
        }
    }
}
