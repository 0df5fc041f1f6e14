//! Keras 3's losses as compositions of primitive ops. Each returns the per-sample loss
//! (the last axis reduced, as `keras.losses.<name>(y_true, y_pred)` returns it); the model
//! applies sample weights and the `sum_over_batch_size` reduction.

use crate::error::Result;
use crate::graph::{Graph, NodeId};
use crate::ops::{BinaryOp, Op, ReduceKind, UnaryOp};

/// Keras' fuzz factor `backend.epsilon()`.
pub const EPSILON: f32 = 1e-7;

pub const NAMES: &[&str] = &[
    "mean_squared_error",
    "mse",
    "mean_absolute_error",
    "mae",
    "mean_absolute_percentage_error",
    "mape",
    "mean_squared_logarithmic_error",
    "msle",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
    "kullback_leibler_divergence",
    "kl_divergence",
    "kld",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
    "poisson",
    "cosine_similarity",
    "cosine_proximity",
    "huber",
    "log_cosh",
    "logcosh",
];

/// The canonical name of a loss identifier (aliases resolved), or a ValueError.
pub fn canonical(name: &str) -> Result<&'static str> {
    Ok(match name {
        "mean_squared_error" | "mse" | "MSE" => "mean_squared_error",
        "mean_absolute_error" | "mae" | "MAE" => "mean_absolute_error",
        "mean_absolute_percentage_error" | "mape" | "MAPE" => "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error" | "msle" | "MSLE" => "mean_squared_logarithmic_error",
        "categorical_crossentropy" => "categorical_crossentropy",
        "sparse_categorical_crossentropy" => "sparse_categorical_crossentropy",
        "binary_crossentropy" => "binary_crossentropy",
        "kullback_leibler_divergence" | "kl_divergence" | "kld" | "KLD" => "kl_divergence",
        "hinge" => "hinge",
        "squared_hinge" => "squared_hinge",
        "categorical_hinge" => "categorical_hinge",
        "poisson" => "poisson",
        "cosine_similarity" | "cosine_proximity" | "cosine" => "cosine_similarity",
        "huber" | "huber_loss" => "huber",
        "log_cosh" | "logcosh" => "log_cosh",
        other => {
            return crate::value_error!(
                "Could not interpret loss identifier: '{other}'. Expected one of: {}",
                NAMES.join(", ")
            )
        }
    })
}

/// Whether the loss takes integer class labels rather than a tensor shaped like `y_pred`.
pub fn is_sparse(name: &str) -> bool {
    name == "sparse_categorical_crossentropy"
}

fn mean_last(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    g.reduce_last(ReduceKind::Mean, x, false)
}

fn sum_last(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    g.reduce_last(ReduceKind::Sum, x, false)
}

/// `p / sum(p, -1)` clipped to `[eps, 1 - eps]`: Keras 3's probability clean-up.
fn normalized_probs(g: &mut Graph, p: NodeId) -> Result<NodeId> {
    let s = g.reduce_last(ReduceKind::Sum, p, true)?;
    let q = g.div(p, s)?;
    g.unary(UnaryOp::Clip(EPSILON, 1.0 - EPSILON), q)
}

/// `x / max(||x||, eps)` over the last axis.
fn l2_normalize(g: &mut Graph, x: NodeId) -> Result<NodeId> {
    let sq = g.unary(UnaryOp::Square, x)?;
    let ss = g.reduce_last(ReduceKind::Sum, sq, true)?;
    let n = g.unary(UnaryOp::Sqrt, ss)?;
    let eps = g.scalar(EPSILON);
    let d = g.binary(BinaryOp::Maximum, n, eps)?;
    g.div(x, d)
}

/// Keras 3 maps {0, 1} labels to {-1, 1} for the hinge losses when every label is 0 or 1:
/// `y + b * (y - 1)` with `b = 1` exactly when the batch is binary.
fn hinge_labels(g: &mut Graph, y: NodeId) -> Result<NodeId> {
    let zero = g.scalar(0.0);
    let one = g.scalar(1.0);
    let e0 = g.binary(BinaryOp::Equal, y, zero)?;
    let e1 = g.binary(BinaryOp::Equal, y, one)?;
    let either = g.add(e0, e1)?;
    let neg = g.unary(UnaryOp::Neg, either)?;
    let max_neg = g.reduce_all(ReduceKind::Max, neg)?;
    let is_binary = g.unary(UnaryOp::Neg, max_neg)?;
    let ym1 = g.unary(UnaryOp::AddScalar(-1.0), y)?;
    let shift = g.mul(is_binary, ym1)?;
    g.add(y, shift)
}

/// The per-sample loss `name(y_true, y_pred)`.
pub fn build(g: &mut Graph, name: &str, y_true: NodeId, y_pred: NodeId) -> Result<NodeId> {
    use UnaryOp::*;
    let name = canonical(name)?;
    if is_sparse(name) {
        let p = normalized_probs(g, y_pred)?;
        let picked = g.push(Op::TakeLast, &[p, y_true])?;
        let lp = g.unary(Log, picked)?;
        return g.unary(Neg, lp);
    }
    if g.shape(y_true) != g.shape(y_pred) {
        return crate::value_error!(
            "{name}: y_true shape {} does not match y_pred shape {}",
            g.shape(y_true).display(),
            g.shape(y_pred).display()
        );
    }
    match name {
        "mean_squared_error" => {
            let d = g.sub(y_pred, y_true)?;
            let s = g.unary(Square, d)?;
            mean_last(g, s)
        }
        "mean_absolute_error" => {
            let d = g.sub(y_pred, y_true)?;
            let a = g.unary(Abs, d)?;
            mean_last(g, a)
        }
        "mean_absolute_percentage_error" => {
            let d = g.sub(y_true, y_pred)?;
            let at = g.unary(Abs, y_true)?;
            let eps = g.scalar(EPSILON);
            let den = g.binary(BinaryOp::Maximum, at, eps)?;
            let r = g.div(d, den)?;
            let a = g.unary(Abs, r)?;
            let m = mean_last(g, a)?;
            g.scale(m, 100.0)
        }
        "mean_squared_logarithmic_error" => {
            let eps = g.scalar(EPSILON);
            let lp = g.binary(BinaryOp::Maximum, y_pred, eps)?;
            let lp = g.unary(AddScalar(1.0), lp)?;
            let lp = g.unary(Log, lp)?;
            let lt = g.binary(BinaryOp::Maximum, y_true, eps)?;
            let lt = g.unary(AddScalar(1.0), lt)?;
            let lt = g.unary(Log, lt)?;
            let d = g.sub(lp, lt)?;
            let s = g.unary(Square, d)?;
            mean_last(g, s)
        }
        "categorical_crossentropy" => {
            let p = normalized_probs(g, y_pred)?;
            let lp = g.unary(Log, p)?;
            let t = g.mul(y_true, lp)?;
            let s = sum_last(g, t)?;
            g.unary(Neg, s)
        }
        "binary_crossentropy" => {
            let p = g.unary(Clip(EPSILON, 1.0 - EPSILON), y_pred)?;
            let lp = g.unary(Log, p)?;
            let a = g.mul(y_true, lp)?;
            let q = g.unary(Neg, p)?;
            let q = g.unary(AddScalar(1.0), q)?;
            let lq = g.unary(Log, q)?;
            let nt = g.unary(Neg, y_true)?;
            let nt = g.unary(AddScalar(1.0), nt)?;
            let b = g.mul(nt, lq)?;
            let s = g.add(a, b)?;
            let m = mean_last(g, s)?;
            g.unary(Neg, m)
        }
        "kl_divergence" => {
            let t = g.unary(Clip(EPSILON, 1.0), y_true)?;
            let p = g.unary(Clip(EPSILON, 1.0), y_pred)?;
            let r = g.div(t, p)?;
            let l = g.unary(Log, r)?;
            let m = g.mul(t, l)?;
            sum_last(g, m)
        }
        "hinge" | "squared_hinge" => {
            let t = hinge_labels(g, y_true)?;
            let m = g.mul(t, y_pred)?;
            let m = g.unary(Neg, m)?;
            let m = g.unary(AddScalar(1.0), m)?;
            let h = g.unary(Relu, m)?;
            let h = if name == "squared_hinge" {
                g.unary(Square, h)?
            } else {
                h
            };
            mean_last(g, h)
        }
        "categorical_hinge" => {
            let pm = g.mul(y_true, y_pred)?;
            let pos = sum_last(g, pm)?;
            let nt = g.unary(Neg, y_true)?;
            let nt = g.unary(AddScalar(1.0), nt)?;
            let nm = g.mul(nt, y_pred)?;
            let neg = g.reduce_last(ReduceKind::Max, nm, false)?;
            let d = g.sub(neg, pos)?;
            let d = g.unary(AddScalar(1.0), d)?;
            g.unary(Relu, d)
        }
        "poisson" => {
            let lp = g.unary(AddScalar(EPSILON), y_pred)?;
            let lp = g.unary(Log, lp)?;
            let t = g.mul(y_true, lp)?;
            let d = g.sub(y_pred, t)?;
            mean_last(g, d)
        }
        "cosine_similarity" => {
            let a = l2_normalize(g, y_true)?;
            let b = l2_normalize(g, y_pred)?;
            let m = g.mul(a, b)?;
            let s = sum_last(g, m)?;
            g.unary(Neg, s)
        }
        "huber" => {
            let delta = 1.0;
            let e = g.sub(y_pred, y_true)?;
            let a = g.unary(Abs, e)?;
            let q = g.unary(Clip(0.0, delta), a)?;
            let q2 = g.unary(Square, q)?;
            let half = g.scale(q2, 0.5)?;
            let lin = g.sub(a, q)?;
            let lin = g.scale(lin, delta)?;
            let s = g.add(half, lin)?;
            mean_last(g, s)
        }
        "log_cosh" => {
            let e = g.sub(y_pred, y_true)?;
            let l = g.unary(LogCosh, e)?;
            mean_last(g, l)
        }
        _ => unreachable!("canonical() returned a name build() lacks"),
    }
}
