//! `rustkeras._core.Graph` (what layers build) and `rustkeras._core.Model` (weights,
//! compile, and the fit/evaluate/predict loops, run with the GIL released).

use std::time::{Duration, Instant};

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::Error;
use crate::graph::{Graph, NodeId, Shape, VarId};
use crate::initializers::InitParams;
use crate::model::{BatchEnd, CompileSpec, Dataset, Model};
use crate::ops::{Op, UnaryOp};

pub(crate) fn node_check(g: &Graph, n: NodeId) -> PyResult<()> {
    if n >= g.nodes.len() {
        return Err(PyValueError::new_err(format!(
            "node {n} does not exist in this graph"
        )));
    }
    Ok(())
}

#[pyclass(name = "Graph", module = "rustkeras._core")]
pub struct PyGraph {
    g: Option<Graph>,
}

impl PyGraph {
    pub(crate) fn graph(&mut self) -> PyResult<&mut Graph> {
        self.g
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("this graph was already turned into a model"))
    }
}

#[pymethods]
impl PyGraph {
    #[new]
    fn new() -> Self {
        PyGraph {
            g: Some(Graph::new()),
        }
    }

    /// A batched input with per-sample `dims`.
    fn input(&mut self, dims: Vec<usize>) -> PyResult<NodeId> {
        Ok(self.graph()?.input(Shape::batched(&dims)))
    }

    fn variable(&mut self, shape: Vec<usize>) -> PyResult<(VarId, NodeId)> {
        let g = self.graph()?;
        let v = g.declare_var(&shape);
        Ok((v, g.param(v)))
    }

    /// Per-sample dims of a node (the batch axis left out).
    fn dims(&mut self, node: NodeId) -> PyResult<Vec<usize>> {
        let g = self.graph()?;
        node_check(g, node)?;
        Ok(g.shape(node).dims.clone())
    }

    #[pyo3(signature = (a, b, ta=false, tb=false))]
    fn matmul(&mut self, a: NodeId, b: NodeId, ta: bool, tb: bool) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.matmul(a, b, ta, tb)?)
    }

    fn add(&mut self, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.add(a, b)?)
    }

    fn mul(&mut self, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.mul(a, b)?)
    }

    /// A named activation (`relu`, `softmax`, ...).
    fn activation(&mut self, x: NodeId, name: &str) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(crate::activations::apply(g, name, x)?)
    }

    /// A unary op by name, with its parameter where it has one: `leaky_relu` (slope), `elu`
    /// (alpha), `scale` (factor), `add_scalar`, `pow`-free arithmetic (`neg`, `square`, `sqrt`,
    /// `reciprocal`, `exp`, `log`, `abs`) and every activation's function.
    #[pyo3(signature = (x, kind, param=0.0, param2=0.0))]
    fn unary(&mut self, x: NodeId, kind: &str, param: f32, param2: f32) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        let u = match kind {
            "leaky_relu" => UnaryOp::LeakyRelu(param),
            "elu" => UnaryOp::Elu(param),
            "scale" => UnaryOp::Scale(param),
            "add_scalar" => UnaryOp::AddScalar(param),
            "clip" => UnaryOp::Clip(param, param2),
            "neg" => UnaryOp::Neg,
            "square" => UnaryOp::Square,
            "sqrt" => UnaryOp::Sqrt,
            "reciprocal" => UnaryOp::Reciprocal,
            "exp" => UnaryOp::Exp,
            "log" => UnaryOp::Log,
            "abs" => UnaryOp::Abs,
            other => match crate::activations::unary_of(other)? {
                Some(u) => u,
                None => return Err(PyValueError::new_err(format!("unknown unary op '{other}'"))),
            },
        };
        Ok(g.unary(u, x)?)
    }

    fn sub(&mut self, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.sub(a, b)?)
    }

    fn div(&mut self, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.div(a, b)?)
    }

    /// `kind` is "sum", "mean" or "max"; axes count the batch axis as 0.
    #[pyo3(signature = (x, kind, axes, keepdims=false))]
    fn reduce(
        &mut self,
        x: NodeId,
        kind: &str,
        axes: Vec<usize>,
        keepdims: bool,
    ) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        let k = match kind {
            "sum" => crate::ops::ReduceKind::Sum,
            "mean" => crate::ops::ReduceKind::Mean,
            "max" => crate::ops::ReduceKind::Max,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown reduction '{other}'"
                )))
            }
        };
        let mut axes = axes;
        axes.sort_unstable();
        axes.dedup();
        Ok(g.reduce(k, x, &axes, keepdims)?)
    }

    /// `a` while training, `b` at inference.
    fn train_select(&mut self, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.push(Op::TrainSelect, &[a, b])?)
    }

    /// After each training step, `var = momentum * var + (1 - momentum) * value`.
    fn add_update(&mut self, var: VarId, value: NodeId, momentum: f32) -> PyResult<()> {
        let g = self.graph()?;
        node_check(g, value)?;
        if var >= g.var_shapes.len() {
            return Err(PyValueError::new_err(format!(
                "variable {var} does not exist"
            )));
        }
        Ok(g.add_update(var, value, momentum)?)
    }

    /// After every batch (training, evaluation, prediction), `var = value`: a stateful
    /// layer's carried state.
    fn add_assign(&mut self, var: VarId, value: NodeId) -> PyResult<()> {
        let g = self.graph()?;
        node_check(g, value)?;
        Ok(g.add_assign(var, value)?)
    }

    /// A fixed `(B, ..)` node read as a batch of B samples (planning for another batch size
    /// raises ValueError).
    fn as_batch(&mut self, x: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::ToBatched, &[x])?)
    }

    /// A batched node stored as a fixed `(batch, ..)` tensor.
    fn as_fixed(&mut self, x: NodeId, batch: usize) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::FromBatched(batch), &[x])?)
    }

    /// Whether the node's per-sample shape has a batch axis.
    fn batched(&mut self, node: NodeId) -> PyResult<bool> {
        let g = self.graph()?;
        node_check(g, node)?;
        Ok(g.shape(node).batched)
    }

    /// A node filled with `value`: fixed `dims`, or per sample when `batched`.
    #[pyo3(signature = (dims, value, batched=false))]
    fn constant(&mut self, dims: Vec<usize>, value: f32, batched: bool) -> PyResult<NodeId> {
        let g = self.graph()?;
        let shape = if batched {
            Shape::batched(&dims)
        } else {
            Shape::fixed(&dims)
        };
        let z = g.zeros(shape);
        Ok(if value == 0.0 {
            z
        } else {
            g.unary(UnaryOp::AddScalar(value), z)?
        })
    }

    fn dropout(&mut self, x: NodeId, rate: f32, key: u64) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::Dropout { rate, key }, &[x])?)
    }

    /// Permutes the per-sample axes (`perm` excludes the batch axis).
    fn transpose(&mut self, x: NodeId, perm: Vec<usize>) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::Transpose(perm), &[x])?)
    }

    fn reshape(&mut self, x: NodeId, dims: Vec<usize>) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.reshape(x, &dims)?)
    }
}

/// Runs the per-batch hook: checks for Ctrl-C on every batch and calls the Python callable
/// (if any) at most every `every`, and always on the last batch. A Python exception is kept
/// in `err` and surfaces after the loop unwinds.
struct Hook {
    callable: Option<Py<PyAny>>,
    every: Duration,
    last: Instant,
    err: Option<PyErr>,
}

impl Hook {
    fn new(callable: Option<Py<PyAny>>, every_s: f64) -> Hook {
        Hook {
            callable,
            every: Duration::from_secs_f64(every_s.max(0.0)),
            last: Instant::now(),
            err: None,
        }
    }

    fn call(&mut self, b: &BatchEnd<'_>) -> crate::Result<()> {
        let due = b.batch + 1 == b.batches || self.last.elapsed() >= self.every;
        let r = Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if let (true, Some(f)) = (due, &self.callable) {
                f.call1(py, (b.batch, b.batches, b.logs.to_vec()))?;
            }
            Ok(())
        });
        if due {
            self.last = Instant::now();
        }
        r.map_err(|e| {
            self.err = Some(e);
            Error::Value("interrupted by Python".into())
        })
    }

    fn finish<T>(self, r: crate::Result<T>) -> PyResult<T> {
        match (self.err, r) {
            (Some(e), _) => Err(e),
            (None, r) => Ok(r?),
        }
    }
}

fn as_f32<'a>(a: &'a PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<&'a [f32]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{what} must be a C-contiguous float32 array")))
}

fn rows(a: &PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<usize> {
    a.shape().first().copied().ok_or_else(|| {
        PyValueError::new_err(format!("{what} must have a batch axis, received a scalar"))
    })
}

/// Borrows numpy arrays as a dataset, without copying.
fn dataset<'a>(
    x: &'a PyReadonlyArrayDyn<'_, f32>,
    y: &'a PyReadonlyArrayDyn<'_, f32>,
    sw: Option<&'a PyReadonlyArrayDyn<'_, f32>>,
) -> PyResult<Dataset<'a>> {
    Ok(Dataset {
        x: as_f32(x, "x")?,
        y: as_f32(y, "y")?,
        sw: sw.map(|w| as_f32(w, "sample_weight")).transpose()?,
        n: rows(x, "x")?,
    })
}

#[pyclass(name = "Model", module = "rustkeras._core")]
pub struct PyModel {
    m: Model,
}

#[pymethods]
impl PyModel {
    /// Takes the graph's nodes; the graph object cannot be extended afterwards.
    #[new]
    fn new(graph: &mut PyGraph, input: NodeId, output: NodeId, seed: u64) -> PyResult<Self> {
        let g = graph
            .g
            .take()
            .ok_or_else(|| PyValueError::new_err("this graph was already turned into a model"))?;
        node_check(&g, input)?;
        node_check(&g, output)?;
        Ok(PyModel {
            m: Model::new(g, input, output, seed)?,
        })
    }

    fn input_dims(&self) -> Vec<usize> {
        self.m.input_shape().dims.clone()
    }

    fn output_dims(&self) -> Vec<usize> {
        self.m.output_shape().dims.clone()
    }

    fn var_shape(&self, v: VarId) -> PyResult<Vec<usize>> {
        if v >= self.m.num_vars() {
            return Err(PyValueError::new_err(format!(
                "variable {v} does not exist"
            )));
        }
        Ok(self.m.var_shape(v).to_vec())
    }

    #[pyo3(signature = (v, name, seed, **params))]
    fn initialize(
        &mut self,
        v: VarId,
        name: &str,
        seed: u64,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        if v >= self.m.num_vars() {
            return Err(PyValueError::new_err(format!(
                "variable {v} does not exist"
            )));
        }
        let mut p = InitParams::default();
        if let Some(d) = params {
            for (k, val) in d.iter() {
                let key: String = k.extract()?;
                let val: f64 = val.extract().map_err(|_| {
                    PyTypeError::new_err(format!("initializer argument `{key}` must be a number"))
                })?;
                let slot = match key.as_str() {
                    "value" => &mut p.value,
                    "minval" => &mut p.minval,
                    "maxval" => &mut p.maxval,
                    "mean" => &mut p.mean,
                    "stddev" => &mut p.stddev,
                    "gain" => &mut p.gain,
                    "scale" => &mut p.scale,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "Unrecognized initializer argument: `{other}`"
                        )))
                    }
                };
                *slot = Some(val);
            }
        }
        Ok(self.m.initialize_var(v, name, &p, seed)?)
    }

    fn get_var<'py>(&self, py: Python<'py>, v: VarId) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        if v >= self.m.num_vars() {
            return Err(PyValueError::new_err(format!(
                "variable {v} does not exist"
            )));
        }
        let a = numpy::PyArray1::from_slice(py, self.m.var(v));
        Ok(a.reshape(self.m.var_shape(v).to_vec())?.to_dyn().clone())
    }

    fn set_var(&mut self, v: VarId, value: PyReadonlyArrayDyn<'_, f32>) -> PyResult<()> {
        if v >= self.m.num_vars() {
            return Err(PyValueError::new_err(format!(
                "variable {v} does not exist"
            )));
        }
        if value.shape() != self.m.var_shape(v) {
            return Err(PyValueError::new_err(format!(
                "weight shape mismatch: expected {:?}, received {:?}",
                self.m.var_shape(v),
                value.shape()
            )));
        }
        let data = value.as_array().iter().copied().collect::<Vec<f32>>();
        Ok(self.m.set_var(v, &data)?)
    }

    fn set_trainable(&mut self, v: VarId, trainable: bool) {
        self.m.set_trainable(v, trainable)
    }

    /// Selects the device by backend name ("cpu").
    fn set_device(&mut self, name: &str) -> PyResult<()> {
        self.m.set_device(crate::device::Device::from_name(name)?);
        Ok(())
    }

    fn device(&self) -> &'static str {
        self.m.device().name()
    }

    fn set_seed(&mut self, seed: u64) {
        self.m.set_seed(seed)
    }

    #[pyo3(signature = (loss, metrics, optimizer_kind, optimizer_params, regularizers))]
    fn compile(
        &mut self,
        loss: String,
        metrics: Vec<String>,
        optimizer_kind: String,
        optimizer_params: Vec<(String, f64)>,
        regularizers: Vec<(VarId, f32, f32)>,
    ) -> PyResult<()> {
        Ok(self.m.compile(CompileSpec {
            loss,
            metrics,
            optimizer_kind,
            optimizer_params,
            regularizers,
        })?)
    }

    fn label_dims(&self) -> PyResult<Vec<usize>> {
        Ok(self.m.label_dims()?)
    }

    fn log_names(&self) -> PyResult<Vec<String>> {
        Ok(self.m.log_names()?)
    }

    fn learning_rate(&mut self) -> PyResult<f32> {
        self.m
            .optimizer_mut()
            .map(|o| o.learning_rate())
            .ok_or_else(|| PyValueError::new_err("the model is not compiled"))
    }

    fn set_learning_rate(&mut self, lr: f32) -> PyResult<()> {
        let o = self
            .m
            .optimizer_mut()
            .ok_or_else(|| PyValueError::new_err("the model is not compiled"))?;
        o.set_learning_rate(lr);
        Ok(())
    }

    /// Copies the optimizer's EMA weights into the model (no-op without `use_ema`).
    fn finalize_weights(&mut self) -> PyResult<()> {
        Ok(self.m.finalize_weights()?)
    }

    fn iterations(&mut self) -> PyResult<u64> {
        self.m
            .optimizer_mut()
            .map(|o| o.iterations())
            .ok_or_else(|| PyValueError::new_err("the model is not compiled"))
    }

    /// One epoch; returns the epoch's mean loss and metrics. `hook(batch, batches, logs)` is
    /// called at most every `hook_every_s` seconds and on the last batch.
    #[pyo3(signature = (x, y, sample_weight, batch_size, shuffle, hook=None, hook_every_s=0.05))]
    #[allow(clippy::too_many_arguments)]
    fn fit_epoch(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        sample_weight: Option<PyReadonlyArrayDyn<'_, f32>>,
        batch_size: usize,
        shuffle: bool,
        hook: Option<Py<PyAny>>,
        hook_every_s: f64,
    ) -> PyResult<Vec<f64>> {
        let d = dataset(&x, &y, sample_weight.as_ref())?;
        let m = &mut self.m;
        let mut h = Hook::new(hook, hook_every_s);
        let r = py.detach(|| m.fit_epoch(&d, batch_size, shuffle, &mut |b| h.call(b)));
        h.finish(r)
    }

    #[pyo3(signature = (x, y, sample_weight, batch_size, hook=None, hook_every_s=0.05))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        sample_weight: Option<PyReadonlyArrayDyn<'_, f32>>,
        batch_size: usize,
        hook: Option<Py<PyAny>>,
        hook_every_s: f64,
    ) -> PyResult<Vec<f64>> {
        let d = dataset(&x, &y, sample_weight.as_ref())?;
        let m = &mut self.m;
        let mut h = Hook::new(hook, hook_every_s);
        let r = py.detach(|| m.evaluate(&d, batch_size, &mut |b| h.call(b)));
        h.finish(r)
    }

    #[pyo3(signature = (x, batch_size, hook=None, hook_every_s=0.05))]
    fn predict<'py>(
        &mut self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, f32>,
        batch_size: usize,
        hook: Option<Py<PyAny>>,
        hook_every_s: f64,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let n = rows(&x, "x")?;
        let xs = as_f32(&x, "x")?;
        let mut dims = vec![n];
        dims.extend(self.m.output_shape().dims.iter().copied());
        let mut out = vec![0.0f32; dims.iter().product()];
        let m = &mut self.m;
        let mut h = Hook::new(hook, hook_every_s);
        let r = py.detach(|| m.predict(xs, n, batch_size, &mut out, &mut |b| h.call(b)));
        h.finish(r)?;
        Ok(numpy::PyArray1::from_vec(py, out)
            .reshape(dims)?
            .to_dyn()
            .clone())
    }

    #[pyo3(signature = (x, y, sample_weight=None))]
    fn train_on_batch(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        sample_weight: Option<PyReadonlyArrayDyn<'_, f32>>,
    ) -> PyResult<Vec<f64>> {
        self.on_batch(py, x, y, sample_weight, true)
    }

    #[pyo3(signature = (x, y, sample_weight=None))]
    fn test_on_batch(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        sample_weight: Option<PyReadonlyArrayDyn<'_, f32>>,
    ) -> PyResult<Vec<f64>> {
        self.on_batch(py, x, y, sample_weight, false)
    }
}

impl PyModel {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        sample_weight: Option<PyReadonlyArrayDyn<'_, f32>>,
        train: bool,
    ) -> PyResult<Vec<f64>> {
        let d = dataset(&x, &y, sample_weight.as_ref())?;
        let n = d.n;
        let m = &mut self.m;
        let r = py.detach(|| {
            let mut logs = vec![0.0; m.log_names()?.len()];
            let ones = vec![1.0; n];
            let sw = d.sw.unwrap_or(&ones);
            if train {
                m.fit_check(&d)?;
                m.train_batch(d.x, d.y, sw, n, &mut logs)?;
            } else {
                m.fit_check(&d)?;
                m.test_batch(d.x, d.y, sw, n, &mut logs)?;
            }
            Ok::<_, Error>(logs)
        });
        Ok(r?)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGraph>()?;
    m.add_class::<PyModel>()?;
    Ok(())
}
