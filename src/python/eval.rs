//! `rustkeras._core.eval_graph`: runs a graph once on the CPU and returns the values of some
//! of its nodes. This is how `ops.*` and `K.*` compute eagerly on arrays: the Python side
//! builds a small graph whose arrays are variables of fixed shape, then evaluates it here,
//! with the same kernels a model runs.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::graph::{node_check, PyGraph};
use crate::graph::NodeId;
use crate::ops::Ctx;
use crate::program::Program;

/// The values of `outputs` (a list of node ids) with `vars[v]` as variable v's value and
/// `feeds[i]` as input i's, for a batch of `batch` rows (batched inputs and outputs have that
/// leading axis), in inference mode. Returns one float32 array per output.
#[pyfunction]
#[pyo3(signature = (graph, outputs, vars, feeds=Vec::new(), batch=1))]
fn eval_graph<'py>(
    py: Python<'py>,
    graph: &mut PyGraph,
    outputs: Vec<NodeId>,
    vars: Vec<PyReadonlyArrayDyn<'py, f32>>,
    feeds: Vec<PyReadonlyArrayDyn<'py, f32>>,
    batch: usize,
) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
    let g = graph.graph()?;
    for &n in &outputs {
        node_check(g, n)?;
    }
    if vars.len() != g.var_shapes.len() {
        return Err(PyValueError::new_err(format!(
            "eval_graph: the graph has {} variables, received {} values",
            g.var_shapes.len(),
            vars.len()
        )));
    }
    for (v, (a, shape)) in vars.iter().zip(&g.var_shapes).enumerate() {
        if a.shape() != shape.as_slice() {
            return Err(PyValueError::new_err(format!(
                "eval_graph: variable {v} has shape {shape:?}, received a value of shape {:?}",
                a.shape()
            )));
        }
    }
    if feeds.len() != g.num_inputs() {
        return Err(PyValueError::new_err(format!(
            "eval_graph: the graph has {} inputs, received {} arrays",
            g.num_inputs(),
            feeds.len()
        )));
    }
    if batch == 0 {
        return Err(PyValueError::new_err(
            "eval_graph: `batch` must be at least 1",
        ));
    }
    let var_data = vars
        .iter()
        .map(|a| super::arrays::as_f32(a, "vars"))
        .collect::<PyResult<Vec<_>>>()?;
    let feed_data = feeds
        .iter()
        .map(|a| super::arrays::as_f32(a, "feeds"))
        .collect::<PyResult<Vec<_>>>()?;
    let g = &*g;
    let (values, dims) = py.detach(|| -> crate::Result<_> {
        let mut p = Program::plan(g, &outputs, batch)?;
        p.run(&var_data, &feed_data, &Ctx::default())?;
        let mut values = Vec::with_capacity(outputs.len());
        let mut dims = Vec::with_capacity(outputs.len());
        for &o in &outputs {
            // A variable or input asked for as an output is returned as it came in.
            let d = g.shape(o).concrete(batch);
            let v = match g.nodes[o].op {
                crate::ops::Op::Param(v) => var_data[v].to_vec(),
                crate::ops::Op::Input(i) => feed_data[i].to_vec(),
                _ => p.read(o),
            };
            values.push(v);
            dims.push(d);
        }
        Ok((values, dims))
    })?;
    values
        .into_iter()
        .zip(dims)
        .map(|(v, d)| {
            Ok(numpy::PyArray1::from_vec(py, v)
                .reshape(d)?
                .to_dyn()
                .clone())
        })
        .collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(eval_graph, m)?)?;
    Ok(())
}
