//! Graph builders of the convolution family for the Python layers: `_core.conv`,
//! `_core.pool`, `_core.pad` and `_core.upsample`, each taking the layer's `Graph`.
//! Arguments arrive already normalized by the Python layer; they are checked again here so
//! that a wrong value is a `ValueError`, never a panic.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::model::{node_check, PyGraph};
use crate::graph::{NodeId, Shape};
use crate::ops::conv::{ConvSpec, Layout, Padding};
use crate::ops::pad::{PadSpec, UpSampleSpec};
use crate::ops::pool::{PoolKind, PoolSpec};
use crate::ops::Op;

fn layout(rank: usize, data_format: &str) -> PyResult<Layout> {
    if !(1..=3).contains(&rank) {
        return Err(PyValueError::new_err(format!(
            "expected 1, 2 or 3 spatial axes, received rank={rank}"
        )));
    }
    let channels_first = match data_format {
        "channels_last" => false,
        "channels_first" => true,
        other => {
            return Err(PyValueError::new_err(format!(
                "Invalid value received for argument `data_format`. Expected 'channels_last' or 'channels_first'. Received: data_format={other:?}"
            )))
        }
    };
    Ok(Layout {
        rank,
        channels_first,
    })
}

fn padding(name: &str) -> PyResult<Padding> {
    match name {
        "valid" => Ok(Padding::Valid),
        "same" => Ok(Padding::Same),
        "full" => Ok(Padding::Full),
        other => Err(PyValueError::new_err(format!(
            "Invalid value received for argument `padding`. Expected 'valid', 'same' or 'full'. Received: padding={other:?}"
        ))),
    }
}

/// `v` (one positive entry per spatial axis) padded in front with 1s to three.
fn sizes(arg: &str, v: &[usize], rank: usize) -> PyResult<[usize; 3]> {
    if v.len() != rank || v.contains(&0) {
        return Err(PyValueError::new_err(format!(
            "Invalid value received for argument `{arg}`. Expected {rank} positive integers. Received: {arg}={v:?}"
        )));
    }
    let mut a = [1; 3];
    a[3 - rank..].copy_from_slice(v);
    Ok(a)
}

fn amounts(arg: &str, v: &[isize], rank: usize) -> PyResult<[isize; 3]> {
    if v.len() != rank {
        return Err(PyValueError::new_err(format!(
            "Invalid value received for argument `{arg}`. Expected {rank} integers. Received: {arg}={v:?}"
        )));
    }
    let mut a = [0; 3];
    a[3 - rank..].copy_from_slice(v);
    Ok(a)
}

/// The convolution a layer's arguments describe, each checked.
fn conv_spec(
    rank: usize,
    data_format: &str,
    kernel_size: &[usize],
    strides: &[usize],
    dilation_rate: &[usize],
    padding_mode: &str,
) -> PyResult<ConvSpec> {
    Ok(ConvSpec {
        layout: layout(rank, data_format)?,
        kernel: sizes("kernel_size", kernel_size, rank)?,
        strides: sizes("strides", strides, rank)?,
        dilation: sizes("dilation_rate", dilation_rate, rank)?,
        padding: padding(padding_mode)?,
    })
}

/// Convolution of `x` with `kernel` (Keras layout `(k.., in, out)`), plus `bias` (`(out,)`),
/// followed by a ReLU with `relu` (one fused op).
#[pyfunction]
#[pyo3(signature = (graph, x, kernel, rank, data_format, kernel_size, strides, dilation_rate, padding_mode, bias=None, relu=false))]
#[allow(clippy::too_many_arguments)]
fn conv(
    graph: &mut PyGraph,
    x: NodeId,
    kernel: NodeId,
    rank: usize,
    data_format: &str,
    kernel_size: Vec<usize>,
    strides: Vec<usize>,
    dilation_rate: Vec<usize>,
    padding_mode: &str,
    bias: Option<NodeId>,
    relu: bool,
) -> PyResult<NodeId> {
    let spec = conv_spec(
        rank,
        data_format,
        &kernel_size,
        &strides,
        &dilation_rate,
        padding_mode,
    )?;
    let g = graph.graph()?;
    node_check(g, x)?;
    node_check(g, kernel)?;
    let op = if relu {
        Op::ConvRelu(spec)
    } else {
        Op::Conv(spec)
    };
    match bias {
        Some(b) => {
            node_check(g, b)?;
            Ok(g.push(op, &[x, kernel, b])?)
        }
        None => Ok(g.push(op, &[x, kernel])?),
    }
}

/// Transposed convolution of `x` with `kernel` (Keras layout `(k.., filters, in)`) to
/// per-sample dims `out_dims`: the input gradient of the convolution `out -> x`.
#[pyfunction]
#[pyo3(signature = (graph, x, kernel, rank, data_format, kernel_size, strides, dilation_rate, padding_mode, out_dims))]
#[allow(clippy::too_many_arguments)]
fn conv_transpose(
    graph: &mut PyGraph,
    x: NodeId,
    kernel: NodeId,
    rank: usize,
    data_format: &str,
    kernel_size: Vec<usize>,
    strides: Vec<usize>,
    dilation_rate: Vec<usize>,
    padding_mode: &str,
    out_dims: Vec<usize>,
) -> PyResult<NodeId> {
    let spec = conv_spec(
        rank,
        data_format,
        &kernel_size,
        &strides,
        &dilation_rate,
        padding_mode,
    )?;
    if out_dims.len() != rank + 1 || out_dims.contains(&0) {
        return Err(PyValueError::new_err(format!(
            "transposed convolution: expected {} positive output dims, received {out_dims:?}",
            rank + 1
        )));
    }
    let g = graph.graph()?;
    node_check(g, x)?;
    node_check(g, kernel)?;
    Ok(g.push(
        Op::ConvGradInput(spec, Shape::batched(&out_dims)),
        &[x, kernel],
    )?)
}

/// Max (`kind='max'`) or average (`'avg'`) pooling.
#[pyfunction]
#[pyo3(signature = (graph, x, kind, rank, data_format, pool_size, strides, padding_mode))]
#[allow(clippy::too_many_arguments)]
fn pool(
    graph: &mut PyGraph,
    x: NodeId,
    kind: &str,
    rank: usize,
    data_format: &str,
    pool_size: Vec<usize>,
    strides: Vec<usize>,
    padding_mode: &str,
) -> PyResult<NodeId> {
    let kind = match kind {
        "max" => PoolKind::Max,
        "avg" => PoolKind::Avg,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown pooling kind {other:?}: expected 'max' or 'avg'"
            )))
        }
    };
    let padding = padding(padding_mode)?;
    if padding == Padding::Full {
        return Err(PyValueError::new_err(
            "Invalid value received for argument `padding`. Expected 'valid' or 'same'. Received: padding='full'",
        ));
    }
    let spec = PoolSpec {
        kind,
        layout: layout(rank, data_format)?,
        pool: sizes("pool_size", &pool_size, rank)?,
        strides: sizes("strides", &strides, rank)?,
        padding,
    };
    let g = graph.graph()?;
    node_check(g, x)?;
    Ok(g.push(Op::Pool(spec), &[x])?)
}

/// Zero padding (positive amounts) or cropping (negative amounts) of each spatial axis.
#[pyfunction]
fn pad(
    graph: &mut PyGraph,
    x: NodeId,
    rank: usize,
    data_format: &str,
    before: Vec<isize>,
    after: Vec<isize>,
) -> PyResult<NodeId> {
    let spec = PadSpec {
        layout: layout(rank, data_format)?,
        before: amounts("before", &before, rank)?,
        after: amounts("after", &after, rank)?,
    };
    let g = graph.graph()?;
    node_check(g, x)?;
    Ok(g.push(Op::Pad(spec), &[x])?)
}

/// Nearest-neighbour upsampling by `size` along each spatial axis.
#[pyfunction]
fn upsample(
    graph: &mut PyGraph,
    x: NodeId,
    rank: usize,
    data_format: &str,
    size: Vec<usize>,
) -> PyResult<NodeId> {
    let spec = UpSampleSpec {
        layout: layout(rank, data_format)?,
        factor: sizes("size", &size, rank)?,
    };
    let g = graph.graph()?;
    node_check(g, x)?;
    Ok(g.push(Op::UpSample(spec), &[x])?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(conv, m)?)?;
    m.add_function(wrap_pyfunction!(conv_transpose, m)?)?;
    m.add_function(wrap_pyfunction!(pool, m)?)?;
    m.add_function(wrap_pyfunction!(pad, m)?)?;
    m.add_function(wrap_pyfunction!(upsample, m)?)?;
    Ok(())
}
