//! Activations by their Keras names, as graph compositions of the primitive ops.

use crate::error::Result;
use crate::graph::{Graph, NodeId};
use crate::ops::{Op, UnaryOp};

/// Every name `activation=` accepts (Keras 3's plus the classic tutorial's table).
pub const NAMES: &[&str] = &[
    "linear",
    "identity",
    "relu",
    "relu6",
    "sigmoid",
    "hard_sigmoid",
    "tanh",
    "softmax",
    "softplus",
    "softsign",
    "elu",
    "selu",
    "exponential",
    "swish",
    "silu",
    "gelu",
    "leaky_relu",
    "binary_step",
    "arctan",
];

/// The unary op behind a name, or `None` for softmax and the identity.
pub fn unary_of(name: &str) -> Result<Option<UnaryOp>> {
    use UnaryOp::*;
    Ok(Some(match name {
        "linear" | "identity" | "softmax" => return Ok(None),
        "relu" => Relu,
        "relu6" => Clip(0.0, 6.0),
        "sigmoid" => Sigmoid,
        "hard_sigmoid" => HardSigmoid,
        "tanh" => Tanh,
        "softplus" => Softplus,
        "softsign" => Softsign,
        "elu" => Elu(1.0),
        "selu" => Selu,
        "exponential" => Exp,
        "swish" | "silu" => Swish,
        "gelu" => Gelu,
        // Keras 3's `leaky_relu` activation; the LeakyReLU layer passes its own slope.
        "leaky_relu" => LeakyRelu(0.2),
        "binary_step" => BinaryStep,
        "arctan" => Arctan,
        other => {
            return crate::value_error!(
            "Could not interpret activation function identifier: '{other}'. Expected one of: {}",
            NAMES.join(", ")
        )
        }
    }))
}

/// Applies the named activation to `x`.
pub fn apply(g: &mut Graph, name: &str, x: NodeId) -> Result<NodeId> {
    match (name, unary_of(name)?) {
        ("softmax", _) => g.push(Op::Softmax, &[x]),
        (_, Some(u)) => g.unary(u, x),
        (_, None) => Ok(x),
    }
}
