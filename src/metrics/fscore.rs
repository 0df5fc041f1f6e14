//! Keras' `FBetaScore` and `F1Score`: per-class true positives, false positives, false
//! negatives and support summed over the epoch, and the F-beta score read from them.
//!
//! A prediction is positive above `threshold`, or without one where it is its sample's
//! largest (and not 0). The score per class is
//! `(1 + b^2) * p * r / (b^2 * p + r + eps)` with `p = tp / (tp + fp + eps)` and
//! `r = tp / (tp + fn + eps)`; `average` gives the classes' scores (None), the score of the
//! summed counts ("micro"), their mean ("macro") or their mean weighted by support
//! ("weighted").
//!
//! ```
//! use rustkeras::metrics::{FBeta, Params};
//!
//! let f1 = FBeta::from_params("f1_score", &Params::default()).unwrap();
//! // One class: tp 2, fp 1, fn 1, support 3: precision = recall = 2/3.
//! let mut out = [0.0];
//! f1.result(&[2.0, 1.0, 1.0, 3.0], &mut out);
//! assert!((out[0] - 2.0 / 3.0).abs() < 1e-6);
//! ```

use super::{join, weights_like, Param, Params};
use crate::error::Result;
use crate::graph::{Graph, NodeId};
use crate::ops::{BinaryOp, ReduceKind, UnaryOp};

/// Keras' `backend.epsilon()`.
const EPSILON: f64 = 1e-7;

/// How the classes' scores combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Average {
    /// One score per class.
    None,
    Micro,
    Macro,
    Weighted,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FBeta {
    pub average: Average,
    pub beta: f64,
    /// `None`: the largest prediction of each sample is the positive one.
    pub threshold: Option<f64>,
}

impl FBeta {
    /// `average` (None, "micro", "macro", "weighted"), `beta` (1.0; `fbeta_score` only) and
    /// `threshold` (None, or in `(0, 1]`).
    pub fn from_params(kind: &str, p: &Params) -> Result<FBeta> {
        let known: &[&str] = if kind == "f1_score" {
            &["average", "threshold"]
        } else {
            &["average", "beta", "threshold"]
        };
        p.only(kind, known)?;
        let average = match p.str("average")? {
            None => Average::None,
            Some("micro") => Average::Micro,
            Some("macro") => Average::Macro,
            Some("weighted") => Average::Weighted,
            Some(other) => {
                return crate::value_error!(
                    "Invalid `average` argument value. Expected one of: {{None, 'micro', 'macro', 'weighted'}}. Received: average={other}"
                )
            }
        };
        let beta = match p.get("beta") {
            Param::None => 1.0,
            Param::Float(b) => *b,
            other => {
                return crate::value_error!(
                    "Invalid `beta` argument value. It should be a Python float. Received: beta={other:?}"
                )
            }
        };
        if beta <= 0.0 {
            return crate::value_error!(
                "Invalid `beta` argument value. It should be > 0. Received: beta={beta}"
            );
        }
        let threshold = match p.get("threshold") {
            Param::None => None,
            Param::Float(t) => Some(*t),
            other => {
                return crate::value_error!(
                    "Invalid `threshold` argument value. It should be a Python float. Received: threshold={other:?}"
                )
            }
        };
        if let Some(t) = threshold {
            if !(t > 0.0 && t <= 1.0) {
                return crate::value_error!(
                    "Invalid `threshold` argument value. It should verify 0 < threshold <= 1. Received: threshold={t}"
                );
            }
        }
        Ok(FBeta {
            average,
            beta,
            threshold,
        })
    }

    /// `[tp, fp, fn, support]`, each one per class (or one in all for "micro").
    pub(super) fn sums(
        &self,
        g: &mut Graph,
        y_true: NodeId,
        y_pred: NodeId,
        sw: Option<NodeId>,
    ) -> Result<NodeId> {
        let (ts, ps) = (g.shape(y_true).clone(), g.shape(y_pred).clone());
        if ts.rank() != 2 || ps.rank() != 2 || ts != ps {
            return crate::value_error!(
                "FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received input shapes: y_pred.shape={} and y_true.shape={}.",
                ps.display(),
                ts.display()
            );
        }
        let pred = match self.threshold {
            Some(t) => {
                let t = g.scalar(t as f32);
                g.binary(BinaryOp::Greater, y_pred, t)?
            }
            None => {
                let m = g.reduce_last(ReduceKind::Max, y_pred, true)?;
                let top = g.binary(BinaryOp::GreaterEqual, y_pred, m)?;
                let a = g.unary(UnaryOp::Abs, y_pred)?;
                let tiny = g.scalar(1e-9);
                let nonzero = g.binary(BinaryOp::Greater, a, tiny)?;
                g.mul(top, nonzero)?
            }
        };
        let one_minus = |g: &mut Graph, x: NodeId| -> Result<NodeId> {
            let n = g.unary(UnaryOp::Neg, x)?;
            g.unary(UnaryOp::AddScalar(1.0), n)
        };
        let not_pred = one_minus(g, pred)?;
        let not_true = one_minus(g, y_true)?;
        let w = sw.map(|w| weights_like(g, w, y_pred)).transpose()?;
        let terms = [(pred, y_true), (pred, not_true), (not_pred, y_true)];
        let mut parts = Vec::with_capacity(4);
        let sum = |g: &mut Graph, v: NodeId| -> Result<NodeId> {
            let v = match w {
                Some(w) => g.mul(v, w)?,
                None => v,
            };
            if self.average == Average::Micro {
                g.reduce_all(ReduceKind::Sum, v)
            } else {
                g.reduce(ReduceKind::Sum, v, &[0], false)
            }
        };
        for (a, b) in terms {
            let m = g.mul(a, b)?;
            parts.push(sum(g, m)?);
        }
        parts.push(sum(g, y_true)?);
        join(g, &parts)
    }

    /// The dims of the score: one per class without averaging.
    pub fn result_dims(&self, pred_dims: &[usize]) -> Vec<usize> {
        match self.average {
            Average::None => vec![pred_dims.last().copied().unwrap_or(1)],
            _ => Vec::new(),
        }
    }

    /// The score from the sums `[tp, fp, fn, support]`.
    pub fn result(&self, sums: &[f64], out: &mut [f64]) {
        let c = sums.len() / 4;
        let (tp, rest) = sums.split_at(c);
        let (fp, rest) = rest.split_at(c);
        let (fnn, support) = rest.split_at(c);
        let b2 = self.beta * self.beta;
        let score = |k: usize| {
            let p = tp[k] / (tp[k] + fp[k] + EPSILON);
            let r = tp[k] / (tp[k] + fnn[k] + EPSILON);
            (1.0 + b2) * (p * r) / (b2 * p + r + EPSILON)
        };
        match self.average {
            Average::None => {
                for (k, o) in out.iter_mut().enumerate() {
                    *o = score(k);
                }
            }
            Average::Micro | Average::Macro => {
                out[0] = (0..c).map(score).sum::<f64>() / c as f64;
            }
            Average::Weighted => {
                let total: f64 = support.iter().sum::<f64>() + EPSILON;
                out[0] = (0..c).map(|k| score(k) * support[k] / total).sum();
            }
        }
    }
}
