//! Graph builders for the recurrent and embedding layers: `rustkeras._core.rnn`,
//! `gather`, `index_mask`, `value_mask`, `sequence_dropout`, `repeat`, `concat_last`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::model::{node_check, PyGraph};
use crate::graph::{NodeId, Shape};
use crate::ops::recurrent::{self, Cell, RnnSpec, Slice};
use crate::ops::{BinaryOp, Op, ReduceKind, UnaryOp};

fn activation(layer: &str, arg: &str, name: &str) -> PyResult<UnaryOp> {
    let u = match name {
        "linear" | "identity" => UnaryOp::Identity,
        other => crate::activations::unary_of(other)?.unwrap_or(UnaryOp::Identity),
    };
    if !recurrent::SUPPORTED_ACTIVATIONS.contains(&u) || name == "softmax" {
        return Err(pyo3::exceptions::PyNotImplementedError::new_err(format!(
            "{layer}: `{arg}` must be one of tanh, sigmoid, hard_sigmoid, relu, linear in rustkeras. Received: {arg}={name:?}"
        )));
    }
    Ok(u)
}

/// Adds a fused recurrent layer on the projected input `xproj (batch, T, gates*units)`.
/// Starts from `initial_state` (`[h0]`, or `[h0, c0]` for LSTM) when given, else zeros.
/// Returns `(output, [h_last] or [h_last, c_last])`.
#[pyfunction]
#[pyo3(signature = (graph, cell, units, activation_name, recurrent_activation, go_backwards, xproj, recurrent_kernel, bias, mask, return_sequences, reverse_output=false, recurrent_mask=None, initial_state=None))]
#[allow(clippy::too_many_arguments)]
fn rnn(
    graph: &mut PyGraph,
    cell: &str,
    units: usize,
    activation_name: &str,
    recurrent_activation: &str,
    go_backwards: bool,
    xproj: NodeId,
    recurrent_kernel: NodeId,
    bias: Option<NodeId>,
    mask: Option<NodeId>,
    return_sequences: bool,
    reverse_output: bool,
    recurrent_mask: Option<NodeId>,
    initial_state: Option<Vec<NodeId>>,
) -> PyResult<(NodeId, Vec<NodeId>)> {
    let (layer, cell) = match cell {
        "simple" => ("SimpleRNN", Cell::Simple),
        "lstm" => ("LSTM", Cell::Lstm),
        "gru" => ("GRU", Cell::Gru { reset_after: true }),
        "gru_reset_before" => ("GRU", Cell::Gru { reset_after: false }),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown recurrent cell '{other}'"
            )))
        }
    };
    let spec = RnnSpec {
        cell,
        units,
        act: activation(layer, "activation", activation_name)?,
        rec_act: activation(layer, "recurrent_activation", recurrent_activation)?,
        go_backwards,
        has_bias: false,
        has_mask: false,
        has_rec_mask: false,
        has_init: false,
    };
    let init = initial_state.unwrap_or_default();
    let g = graph.graph()?;
    for n in [
        Some(xproj),
        Some(recurrent_kernel),
        bias,
        mask,
        recurrent_mask,
    ]
    .into_iter()
    .flatten()
    .chain(init.iter().copied())
    {
        node_check(g, n)?;
    }
    let b = recurrent::build(
        g,
        spec,
        xproj,
        recurrent_kernel,
        bias,
        &init,
        mask,
        recurrent_mask,
        return_sequences,
        reverse_output,
    )?;
    Ok((b.output, b.states))
}

/// Rows of `table (V, D)` at the indices `idx (batch, ..)`.
#[pyfunction]
fn gather(graph: &mut PyGraph, table: NodeId, idx: NodeId) -> PyResult<NodeId> {
    let g = graph.graph()?;
    node_check(g, table)?;
    node_check(g, idx)?;
    Ok(g.push(Op::Gather, &[table, idx])?)
}

/// 1.0 where `x != value`, else 0.0 (Embedding's `mask_zero`).
#[pyfunction]
fn index_mask(graph: &mut PyGraph, x: NodeId, value: f32) -> PyResult<NodeId> {
    let g = graph.graph()?;
    node_check(g, x)?;
    let v = g.scalar(value);
    let eq = g.binary(BinaryOp::Equal, x, v)?;
    let neg = g.unary(UnaryOp::Neg, eq)?;
    Ok(g.unary(UnaryOp::AddScalar(1.0), neg)?)
}

/// Masking: `(masked x, mask)` where a timestep is kept if any feature differs from `value`.
#[pyfunction]
fn value_mask(graph: &mut PyGraph, x: NodeId, value: f32) -> PyResult<(NodeId, NodeId)> {
    let keep = index_mask(graph, x, value)?;
    let g = graph.graph()?;
    let r = g.shape(x).rank();
    if r != 3 {
        return Err(PyValueError::new_err(format!(
            "Masking expects a 3D input (batch, timesteps, features), received {}",
            g.shape(x).display()
        )));
    }
    let m = g.reduce(ReduceKind::Max, keep, &[2], true)?;
    let y = g.mul(x, m)?;
    let steps = g.shape(x).dims[0];
    let m = g.reshape(m, &[steps])?;
    Ok((y, m))
}

/// `x (batch, T, d) * mask (batch, 1, d)`: inverted dropout with one mask per sequence.
#[pyfunction]
fn sequence_dropout(graph: &mut PyGraph, x: NodeId, rate: f32, key: u64) -> PyResult<NodeId> {
    let g = graph.graph()?;
    node_check(g, x)?;
    let s = g.shape(x).clone();
    if s.dims.len() != 2 {
        return Err(PyValueError::new_err(format!(
            "sequence dropout expects (batch, timesteps, features), received {}",
            s.display()
        )));
    }
    let zeros = g.zeros(Shape::batched(&[1, s.dims[1]]));
    let ones = g.unary(UnaryOp::AddScalar(1.0), zeros)?;
    let mask = g.push(Op::Dropout { rate, key }, &[ones])?;
    Ok(g.mul(x, mask)?)
}

/// A recurrent dropout mask `(batch, units)`: inverted dropout of ones in training (one mask
/// per sequence), ones at inference.
#[pyfunction]
fn state_dropout_mask(graph: &mut PyGraph, units: usize, rate: f32, key: u64) -> PyResult<NodeId> {
    let g = graph.graph()?;
    if units == 0 || !(0.0..1.0).contains(&rate) {
        return Err(PyValueError::new_err(format!(
            "recurrent dropout mask: expected units >= 1 and rate in [0, 1), received units={units}, rate={rate}"
        )));
    }
    let zeros = g.zeros(Shape::batched(&[units]));
    let ones = g.unary(UnaryOp::AddScalar(1.0), zeros)?;
    Ok(g.push(Op::Dropout { rate, key }, &[ones])?)
}

/// RepeatVector: `(batch, d) -> (batch, n, d)`.
#[pyfunction]
fn repeat(graph: &mut PyGraph, x: NodeId, n: usize) -> PyResult<NodeId> {
    let g = graph.graph()?;
    node_check(g, x)?;
    let s = g.shape(x).clone();
    if s.dims.len() != 1 || n == 0 {
        return Err(PyValueError::new_err(format!(
            "RepeatVector expects a 2D input (batch, features) and n >= 1, received {} and n={n}",
            s.display()
        )));
    }
    let d = s.dims[0];
    let r = g.reshape(x, &[1, d])?;
    Ok(g.push(Op::BroadcastTo(Shape::batched(&[n, d])), &[r])?)
}

/// Concatenation of two batched tensors of equal leading shape along the last axis.
#[pyfunction]
fn concat_last(graph: &mut PyGraph, a: NodeId, b: NodeId) -> PyResult<NodeId> {
    let g = graph.graph()?;
    node_check(g, a)?;
    node_check(g, b)?;
    let (sa, sb) = (g.shape(a).clone(), g.shape(b).clone());
    let lead = |s: &Shape| s.dims[..s.dims.len().saturating_sub(1)].to_vec();
    if !sa.batched
        || !sb.batched
        || sa.dims.is_empty()
        || sb.dims.is_empty()
        || lead(&sa) != lead(&sb)
        || sa.dims.len() > 2
    {
        return Err(PyValueError::new_err(format!(
            "cannot concatenate {} and {} on the last axis",
            sa.display(),
            sb.display()
        )));
    }
    let (la, lb) = (sa.dims[sa.dims.len() - 1], sb.dims[sb.dims.len() - 1]);
    let steps = if sa.dims.len() == 2 { sa.dims[0] } else { 1 };
    let wide = Shape::batched(&[steps, la + lb]);
    let a3 = g.reshape(a, &[steps, la])?;
    let b3 = g.reshape(b, &[steps, lb])?;
    let pa = g.push(Op::RnnUnslice(Slice::all(0, la), wide.clone()), &[a3])?;
    let pb = g.push(Op::RnnUnslice(Slice::all(la, lb), wide), &[b3])?;
    let sum = g.add(pa, pb)?;
    let mut dims = lead(&sa);
    dims.push(la + lb);
    Ok(g.reshape(sum, &dims)?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rnn, m)?)?;
    m.add_function(wrap_pyfunction!(gather, m)?)?;
    m.add_function(wrap_pyfunction!(index_mask, m)?)?;
    m.add_function(wrap_pyfunction!(value_mask, m)?)?;
    m.add_function(wrap_pyfunction!(sequence_dropout, m)?)?;
    m.add_function(wrap_pyfunction!(state_dropout_mask, m)?)?;
    m.add_function(wrap_pyfunction!(repeat, m)?)?;
    m.add_function(wrap_pyfunction!(concat_last, m)?)?;
    Ok(())
}
