//! Per-sample metric functions as graph compositions (Keras' `binary_accuracy`,
//! `categorical_accuracy`, ... and the losses used as metrics): the values that
//! [`super::MetricSpec::Mean`] averages over the epoch, and what `rustkeras.metrics.<name>`
//! returns on arrays.

use crate::error::Result;
use crate::graph::{Graph, NodeId};
use crate::losses;
use crate::ops::{BinaryOp, Op};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// 1.0 where `y_true == (y_pred > threshold)`, per element.
    BinaryAccuracy(f32),
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    TopKCategoricalAccuracy(usize),
    SparseTopKCategoricalAccuracy(usize),
    /// A loss function used as a metric (mse, mae, crossentropies...).
    Loss(&'static str),
}

/// Resolves a metric identifier. `"accuracy"`/`"acc"` depend on the loss and the shapes, as
/// in Keras: a one-unit output is binary, integer labels (lower rank, or a last axis of 1
/// against a wider output) are sparse, anything else categorical.
pub fn resolve(
    name: &str,
    loss: &str,
    true_rank: usize,
    true_last: usize,
    pred_rank: usize,
    pred_last: usize,
) -> Result<Metric> {
    Ok(match name {
        "accuracy" | "acc" => {
            if pred_last == 1 || loss == "binary_crossentropy" && true_last == pred_last {
                Metric::BinaryAccuracy(0.5)
            } else if losses::is_sparse(loss) || true_rank < pred_rank || true_last == 1 {
                Metric::SparseCategoricalAccuracy
            } else {
                Metric::CategoricalAccuracy
            }
        }
        "binary_accuracy" => Metric::BinaryAccuracy(0.5),
        "categorical_accuracy" => Metric::CategoricalAccuracy,
        "sparse_categorical_accuracy" => Metric::SparseCategoricalAccuracy,
        "top_k_categorical_accuracy" => Metric::TopKCategoricalAccuracy(5),
        "sparse_top_k_categorical_accuracy" => Metric::SparseTopKCategoricalAccuracy(5),
        other => match losses::canonical(other) {
            Ok(l) => Metric::Loss(l),
            Err(_) => {
                return crate::value_error!(
                    "Could not interpret metric identifier: '{other}'. Expected a metric class name ('auc', \
                     'precision', 'recall', 'f1_score', 'root_mean_squared_error', ...), 'accuracy', 'binary_accuracy', \
                     'categorical_accuracy', 'sparse_categorical_accuracy', 'top_k_categorical_accuracy', \
                     'sparse_top_k_categorical_accuracy' or a loss name"
                )
            }
        },
    })
}

/// Per-sample (or per-element, for binary accuracy) metric values.
pub fn build(g: &mut Graph, m: Metric, y_true: NodeId, y_pred: NodeId) -> Result<NodeId> {
    // Sparse labels may arrive with a trailing axis of 1; drop it.
    let squeeze = |g: &mut Graph, y: NodeId| -> Result<NodeId> {
        let s = g.shape(y).clone();
        if s.dims.last() == Some(&1) && s.rank() == g.shape(y_pred).rank() {
            g.reshape(y, &s.dims[..s.dims.len() - 1])
        } else {
            Ok(y)
        }
    };
    let same_shape = |g: &Graph| -> Result<()> {
        if g.shape(y_true) != g.shape(y_pred) {
            return crate::value_error!(
                "{m:?}: y_true shape {} does not match y_pred shape {}",
                g.shape(y_true).display(),
                g.shape(y_pred).display()
            );
        }
        Ok(())
    };
    match m {
        Metric::BinaryAccuracy(_)
        | Metric::CategoricalAccuracy
        | Metric::TopKCategoricalAccuracy(_) => same_shape(g)?,
        _ => {}
    }
    match m {
        Metric::BinaryAccuracy(threshold) => {
            let t = g.scalar(threshold);
            let p = g.binary(BinaryOp::Greater, y_pred, t)?;
            g.binary(BinaryOp::Equal, y_true, p)
        }
        Metric::CategoricalAccuracy => {
            let a = g.push(Op::ArgMax, &[y_true])?;
            let b = g.push(Op::ArgMax, &[y_pred])?;
            g.binary(BinaryOp::Equal, a, b)
        }
        Metric::SparseCategoricalAccuracy => {
            let t = squeeze(g, y_true)?;
            let b = g.push(Op::ArgMax, &[y_pred])?;
            g.binary(BinaryOp::Equal, t, b)
        }
        Metric::TopKCategoricalAccuracy(k) => {
            let t = g.push(Op::ArgMax, &[y_true])?;
            g.push(Op::InTopK(k), &[y_pred, t])
        }
        Metric::SparseTopKCategoricalAccuracy(k) => {
            let t = squeeze(g, y_true)?;
            g.push(Op::InTopK(k), &[y_pred, t])
        }
        Metric::Loss(name) => {
            let t = if losses::is_sparse(name) {
                squeeze(g, y_true)?
            } else {
                y_true
            };
            losses::build(g, name, t, y_pred)
        }
    }
}
