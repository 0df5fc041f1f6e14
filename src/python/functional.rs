//! Stateless functions on numpy arrays: `rustkeras.losses.<name>(y_true, y_pred)`,
//! metric functions and `rustkeras.backend.dot`, computed by the same graph ops the models use.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::graph::{Graph, NodeId, Shape};
use crate::ops::Ctx;
use crate::program::Program;

fn batched(a: &PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<(usize, Vec<usize>)> {
    match a.shape().split_first() {
        Some((&n, rest)) => Ok((n, rest.to_vec())),
        None => Err(PyValueError::new_err(format!(
            "{what} must have at least one axis, received a scalar"
        ))),
    }
}

/// Builds `f(y_true, y_pred)` on two batched inputs and evaluates it on the arrays.
fn eval_pair<'py>(
    py: Python<'py>,
    y_true: PyReadonlyArrayDyn<'py, f32>,
    y_pred: PyReadonlyArrayDyn<'py, f32>,
    build: impl FnOnce(&mut Graph, NodeId, NodeId) -> crate::Result<NodeId>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (nt, dt) = batched(&y_true, "y_true")?;
    let (np_, dp) = batched(&y_pred, "y_pred")?;
    if nt != np_ {
        return Err(PyValueError::new_err(format!(
            "y_true and y_pred must have the same first dimension, received {nt} and {np_}"
        )));
    }
    let t = y_true
        .as_slice()
        .map_err(|_| PyValueError::new_err("y_true must be C-contiguous"))?;
    let p = y_pred
        .as_slice()
        .map_err(|_| PyValueError::new_err("y_pred must be C-contiguous"))?;
    let mut g = Graph::new();
    let a = g.input(Shape::batched(&dt));
    let b = g.input(Shape::batched(&dp));
    let out = build(&mut g, a, b)?;
    let mut prog = Program::plan(&g, &[out], nt)?;
    prog.run(
        &[],
        &[t, p],
        &Ctx {
            training: false,
            seed: 0,
            step: 0,
        },
    )?;
    let dims = prog.dims(out).to_vec();
    Ok(numpy::PyArray1::from_slice(py, prog.value(out))
        .reshape(dims)?
        .to_dyn()
        .clone())
}

/// The per-sample loss `name(y_true, y_pred)` (the last axis reduced).
#[pyfunction]
fn loss<'py>(
    py: Python<'py>,
    name: &str,
    y_true: PyReadonlyArrayDyn<'py, f32>,
    y_pred: PyReadonlyArrayDyn<'py, f32>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    eval_pair(py, y_true, y_pred, |g, t, p| {
        crate::losses::build(g, name, t, p)
    })
}

/// The per-sample values of a metric (`accuracy` resolved by shapes as in `compile`).
#[pyfunction]
#[pyo3(signature = (name, y_true, y_pred, k=5))]
fn metric<'py>(
    py: Python<'py>,
    name: &str,
    y_true: PyReadonlyArrayDyn<'py, f32>,
    y_pred: PyReadonlyArrayDyn<'py, f32>,
    k: usize,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    if k == 0 {
        return Err(PyValueError::new_err(
            "Invalid value received for argument `k`. Expected an integer > 0. Received: k=0",
        ));
    }
    eval_pair(py, y_true, y_pred, |g, t, p| {
        let (ts, ps) = (g.shape(t).clone(), g.shape(p).clone());
        let m = crate::metrics::resolve(
            name,
            "",
            ts.rank(),
            ts.last().unwrap_or(1),
            ps.rank(),
            ps.last().unwrap_or(1),
        )?;
        let m = match m {
            crate::metrics::Metric::TopKCategoricalAccuracy(_) => {
                crate::metrics::Metric::TopKCategoricalAccuracy(k)
            }
            crate::metrics::Metric::SparseTopKCategoricalAccuracy(_) => {
                crate::metrics::Metric::SparseTopKCategoricalAccuracy(k)
            }
            other => other,
        };
        crate::metrics::build(g, m, t, p)
    })
}

/// A named activation applied to an array (the same kernels a layer uses).
#[pyfunction]
fn activation<'py>(
    py: Python<'py>,
    name: &str,
    x: PyReadonlyArrayDyn<'py, f32>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let dims = x.shape().to_vec();
    let data = x
        .as_slice()
        .map_err(|_| PyValueError::new_err("x must be C-contiguous"))?;
    let mut g = Graph::new();
    let (batch, per) = match dims.split_first() {
        Some((&n, rest)) if !rest.is_empty() => (n, rest.to_vec()),
        _ => (1, dims.clone()),
    };
    let a = g.input(Shape::batched(&per));
    let out = crate::activations::apply(&mut g, name, a)?;
    let out = if out == a { g.reshape(a, &per)? } else { out };
    let mut prog = Program::plan(&g, &[out], batch)?;
    prog.run(
        &[],
        &[data],
        &Ctx {
            training: false,
            seed: 0,
            step: 0,
        },
    )?;
    Ok(numpy::PyArray1::from_slice(py, prog.value(out))
        .reshape(dims)?
        .to_dyn()
        .clone())
}

/// `a @ b` for 2-D float32 arrays, on the engine's GEMM.
#[pyfunction]
fn dot<'py>(
    py: Python<'py>,
    a: PyReadonlyArrayDyn<'py, f32>,
    b: PyReadonlyArrayDyn<'py, f32>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    if sa.len() != 2 || sb.len() != 2 || sa[1] != sb[0] {
        return Err(PyValueError::new_err(format!(
            "dot: expected 2-D arrays (m, k) and (k, n), received shapes {sa:?} and {sb:?}"
        )));
    }
    let (m, k, n) = (sa[0], sa[1], sb[1]);
    let av = a
        .as_slice()
        .map_err(|_| PyValueError::new_err("dot: `a` must be C-contiguous"))?;
    let bv = b
        .as_slice()
        .map_err(|_| PyValueError::new_err("dot: `b` must be C-contiguous"))?;
    let mut out = vec![0.0f32; m * n];
    py.detach(|| crate::ops::matmul::gemm_strided(m, n, k, av, k, 1, bv, n, 1, &mut out, false));
    Ok(numpy::PyArray1::from_vec(py, out)
        .reshape(vec![m, n])?
        .to_dyn()
        .clone())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(loss, m)?)?;
    m.add_function(wrap_pyfunction!(metric, m)?)?;
    m.add_function(wrap_pyfunction!(dot, m)?)?;
    m.add_function(wrap_pyfunction!(activation, m)?)?;
    Ok(())
}
