//! `rustkeras._core.Model`: weights, compile, and the fit/evaluate/predict loops, run with the
//! GIL released, for models with one or more inputs and outputs.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::arrays::{dataset, labelled, node_list, x_arrays};
pub(crate) use super::graph::{node_check, PyGraph};
use crate::error::Error;
use crate::graph::{NodeId, VarId};
use crate::initializers::InitParams;
use crate::model::{CompileSpec, Control, Dataset, Epoch, Hook, Model, OutputSpec, PassKind};

/// How often the waiting thread checks for Ctrl-C while a loop runs (it needs the GIL).
const SIGNAL_EVERY: Duration = Duration::from_millis(100);

/// The hook of every loop binding: stops the loop at the next batch end once the waiting
/// thread has seen Ctrl-C (see [`on_pool`]), and pauses it once `pause_after` has passed
/// since the call began. It never calls Python: callbacks run between two calls, with the
/// model free.
struct ChunkHook<'a> {
    started: Instant,
    pause_after: Option<Duration>,
    interrupted: &'a AtomicBool,
}

impl<'a> ChunkHook<'a> {
    fn new(pause_after_s: Option<f64>, interrupted: &'a AtomicBool) -> ChunkHook<'a> {
        ChunkHook {
            started: Instant::now(),
            pause_after: pause_after_s.map(|s| Duration::from_secs_f64(s.max(0.0))),
            interrupted,
        }
    }
}

impl Hook for ChunkHook<'_> {
    fn batch_end(&mut self, _batch: usize, _batches: usize) -> crate::Result<Control> {
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(Error::Value("interrupted by Python".into()));
        }
        Ok(match self.pause_after {
            Some(d) if self.started.elapsed() >= d => Control::Pause,
            _ => Control::Continue,
        })
    }
}

/// Runs `f` (a loop or a step) on a worker of rayon's pool with the GIL released, while the
/// calling thread waits and checks for Ctrl-C every `SIGNAL_EVERY`; a Python exception it
/// raises sets the flag `f`'s hook reads, and is returned once `f` has unwound.
///
/// Why a worker: every parallel kernel the loop starts from a thread outside the pool is
/// injected into it and waited for across threads (a futex round trip each); from a worker,
/// `rayon::join` pushes onto its own deque and the other worker steals. On the batch-32 MLP
/// that round trip was 15% of a step. A panic in `f` is re-raised on the calling thread,
/// where PyO3 turns it into an exception.
fn on_pool<T: Send>(
    py: Python<'_>,
    f: impl FnOnce(&AtomicBool) -> crate::Result<T> + Send,
) -> PyResult<T> {
    let interrupted = AtomicBool::new(false);
    if rayon::current_thread_index().is_some() {
        // Already on a worker (a call from inside a parallel job): waiting here could hold
        // the only worker, so run in place.
        return Ok(py.detach(|| f(&interrupted))?);
    }
    type Outcome<T> = std::thread::Result<crate::Result<T>>;
    let done: Mutex<Option<Outcome<T>>> = Mutex::new(None);
    let wake = Condvar::new();
    let mut signal: Option<PyErr> = None;
    let outcome = py.detach(|| {
        rayon::in_place_scope(|scope| {
            scope.spawn(|_| {
                let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    crate::pool::busy(|| f(&interrupted))
                }));
                *done.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                wake.notify_one();
            });
            let mut guard = done.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(r) = guard.take() {
                    return r;
                }
                let (g, timeout) = wake
                    .wait_timeout(guard, SIGNAL_EVERY)
                    .unwrap_or_else(|e| e.into_inner());
                guard = g;
                if timeout.timed_out() && guard.is_none() && signal.is_none() {
                    drop(guard);
                    if let Err(e) = Python::attach(|py| py.check_signals()) {
                        signal = Some(e);
                        interrupted.store(true, Ordering::Relaxed);
                    }
                    guard = done.lock().unwrap_or_else(|e| e.into_inner());
                }
            }
        })
    });
    let r = outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    match (signal, r) {
        (Some(e), _) => Err(e),
        (None, r) => Ok(r?),
    }
}

type Arrays = Vec<Option<Py<PyArrayDyn<f32>>>>;

/// Numpy arrays handed to Python.
type NumpyArrays<'py> = Vec<Bound<'py, PyArrayDyn<f32>>>;

/// Values with their shapes (gradients handed out of a step).
type Shaped = (Vec<Vec<f32>>, Vec<Vec<usize>>);

/// Each vector as a numpy array of its shape (moved, not copied).
fn arrays_of(
    py: Python<'_>,
    values: Vec<Vec<f32>>,
    shapes: Vec<Vec<usize>>,
) -> PyResult<NumpyArrays<'_>> {
    values
        .into_iter()
        .zip(shapes)
        .map(|(v, s)| {
            Ok(numpy::PyArray1::from_vec(py, v)
                .reshape(s)?
                .to_dyn()
                .clone())
        })
        .collect()
}

fn owned(named: &[super::arrays::Named<'_>]) -> Arrays {
    named
        .iter()
        .map(|(_, a)| a.as_ref().map(|a| (**a).clone().unbind()))
        .collect()
}

/// `rustkeras._core.Pass`: an epoch of `fit`, an `evaluate` or a `predict` in progress (see
/// `Model::begin_pass`). `run` runs some batches with the GIL released and returns, so that
/// Python can call callbacks between batches with the model free; the pass keeps its arrays
/// (and, for `predict`, the output arrays it fills).
///
/// Threads: a pass belongs to the Python call that began it; its own state (`state`, the
/// arrays) is guarded by PyO3's borrow flag (a second thread using the same pass at once
/// gets a RuntimeError from PyO3), and each of its methods reaches the model only through
/// the model's lock (see `PyModel`), so other calls on the model may run between them.
#[pyclass(name = "Pass", module = "rustkeras._core")]
pub struct PyPass {
    model: Py<PyModel>,
    x: Arrays,
    y: Arrays,
    sw: Arrays,
    outs: Vec<Py<PyArrayDyn<f32>>>,
    state: Option<Epoch>,
}

impl PyPass {
    fn state(&self) -> PyResult<&Epoch> {
        self.state
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("this pass has finished"))
    }

    fn model(&self) -> &PyModel {
        self.model.get()
    }
}

/// Borrows a pass's arrays (None where absent) for one call.
fn borrow_all<'py>(
    py: Python<'py>,
    arrays: &Arrays,
    what: &str,
) -> PyResult<Vec<super::arrays::Named<'py>>> {
    arrays
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let name = format!("{what}[{i}]");
            let a = a
                .as_ref()
                .map(|a| a.bind(py).try_readonly())
                .transpose()
                .map_err(|_| {
                    PyRuntimeError::new_err(format!("`{name}` is being written by another call"))
                })?;
            Ok((name, a))
        })
        .collect()
}

#[pymethods]
impl PyPass {
    /// Runs the next batches: at most `max_batches` (all that are left when None), and
    /// returns early once `max_seconds` have passed. Returns the number of batches run.
    #[pyo3(signature = (max_batches=None, max_seconds=None))]
    fn run(
        &mut self,
        py: Python<'_>,
        max_batches: Option<usize>,
        max_seconds: Option<f64>,
    ) -> PyResult<usize> {
        let model = self.model.get();
        let x = borrow_all(py, &self.x, "x")?;
        let y = borrow_all(py, &self.y, "y")?;
        let sw = borrow_all(py, &self.sw, "sample_weight")?;
        let d = dataset(&x, &y, &sw)?;
        let mut outs = self
            .outs
            .iter()
            .map(|o| {
                o.bind(py).try_readwrite().map_err(|_| {
                    PyRuntimeError::new_err("predict: the output arrays are in use by another call")
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let mut views = outs
            .iter_mut()
            .map(|o| {
                o.as_slice_mut()
                    .map_err(|_| PyValueError::new_err("predict: output arrays must be contiguous"))
            })
            .collect::<PyResult<Vec<&mut [f32]>>>()?;
        let state = self
            .state
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("this pass has finished"))?;
        let max = max_batches.unwrap_or(usize::MAX);
        on_pool(py, |interrupted| {
            let mut hook = ChunkHook::new(max_seconds, interrupted);
            model.lock().run_pass(state, &d, &mut views, max, &mut hook)
        })
    }

    /// The running logs (batch-size-weighted means over the batches run so far).
    fn logs(&self, py: Python<'_>) -> PyResult<Vec<f64>> {
        let state = self.state()?;
        Ok(self.model().with(py, |m| m.pass_logs(state))?)
    }

    /// Ends the pass and returns its logs (empty for a prediction: see `outputs`).
    fn finish(&mut self, py: Python<'_>) -> PyResult<Vec<f64>> {
        let state = self
            .state
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this pass has finished"))?;
        Ok(self.model().with(py, |m| m.end_pass(state))?)
    }

    /// The index of the next batch (the number of batches run so far).
    #[getter]
    fn batch(&self) -> PyResult<usize> {
        Ok(self.state()?.batch())
    }

    #[getter]
    fn batches(&self) -> PyResult<usize> {
        Ok(self.state()?.batches())
    }

    #[getter]
    fn done(&self) -> PyResult<bool> {
        Ok(self.state()?.is_done())
    }

    /// The number of rows the batches run so far covered.
    #[getter]
    fn rows_done(&self) -> PyResult<usize> {
        Ok(self.state()?.rows_done())
    }

    /// `(start, stop)` of batch `b`'s rows (for a prediction, the rows of the outputs).
    fn batch_rows(&self, b: usize) -> PyResult<(usize, usize)> {
        let r = self.state()?.batch_rows(b);
        Ok((r.start, r.end))
    }

    /// A prediction's output arrays, one per model output (rows not run yet are zeros).
    #[getter]
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.outs.iter().map(|o| o.bind(py).clone()))
    }
}

/// `rustkeras._core.Model`, shared between Python threads.
///
/// Thread safety: the class is `frozen` (PyO3 keeps no borrow flag, so a second thread never
/// meets "Already mutably borrowed"), and the engine model sits behind a mutex. Invariants:
/// - Every access to the engine model holds `m`'s lock, so calls from several threads run
///   one after another, each seeing the model as the previous call left it (its cached
///   programs, buffers and optimizer state are never touched by two threads at once).
/// - The lock is only ever waited for with the GIL released (`with` takes it inside
///   `py.detach`, the loops on a pool worker while the caller waits detached), and no
///   thread holding the lock takes the GIL (a running loop's caller checks for Ctrl-C
///   without the lock). So a thread holding the GIL never waits for the lock, and two
///   threads cannot deadlock on the pair.
/// - No Python code runs with the lock held: callbacks run between `Pass.run` calls, each
///   of which takes and releases the lock, so a callback may call the model again.
/// - Calls that need two models' locks (`share_var`) take them in address order.
///
/// A whole `fit` spans many calls (its passes and callbacks); whether another thread may
/// train or evaluate the model meanwhile is decided in Python (`_one_thread` in
/// rustkeras/models/training.py).
#[pyclass(name = "Model", module = "rustkeras._core", frozen)]
pub struct PyModel {
    m: Mutex<Model>,
}

impl PyModel {
    /// The engine model, waiting for the call of another thread to end. Only called with
    /// the GIL released (see the invariants above). The engine reports failures as errors;
    /// should a panic poison the lock anyway (PyO3 raises it as an exception), the model is
    /// still handed out, so that later calls raise the engine's errors rather than panic.
    fn lock(&self) -> MutexGuard<'_, Model> {
        self.m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the engine model with the GIL released and the model's lock held.
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Model) -> T + Send) -> T {
        py.detach(|| f(&mut self.lock()))
    }

    fn input_index(&self, py: Python<'_>, i: usize) -> PyResult<usize> {
        let n = self.with(py, |m| m.num_inputs());
        if i >= n {
            return Err(PyValueError::new_err(format!(
                "input {i} does not exist: the model has {n} inputs"
            )));
        }
        Ok(i)
    }

    fn output_index(&self, py: Python<'_>, i: usize) -> PyResult<usize> {
        let n = self.with(py, |m| m.num_outputs());
        if i >= n {
            return Err(PyValueError::new_err(format!(
                "output {i} does not exist: the model has {n} outputs"
            )));
        }
        Ok(i)
    }

    fn var_index(&self, py: Python<'_>, v: VarId) -> PyResult<VarId> {
        if v >= self.with(py, |m| m.num_vars()) {
            return Err(PyValueError::new_err(format!(
                "variable {v} does not exist"
            )));
        }
        Ok(v)
    }
}

#[pymethods]
impl PyModel {
    /// Takes the graph's nodes; the graph object cannot be extended afterwards. `inputs` are
    /// every input node of the graph in order, `outputs` the nodes `predict` returns (a node
    /// id or a list of them each).
    #[new]
    fn new(
        graph: &mut PyGraph,
        inputs: &Bound<'_, PyAny>,
        outputs: &Bound<'_, PyAny>,
        seed: u64,
    ) -> PyResult<Self> {
        let inputs = node_list(inputs, "inputs")?;
        let outputs = node_list(outputs, "outputs")?;
        let g = graph.graph()?;
        for &n in inputs.iter().chain(&outputs) {
            node_check(g, n)?;
        }
        // Checked before the graph is taken, so that a failed call leaves it usable.
        Model::check_io(g, &inputs, &outputs)?;
        let g = graph.take()?;
        Ok(PyModel {
            m: Mutex::new(Model::new(g, inputs, outputs, seed)?),
        })
    }

    fn num_inputs(&self, py: Python<'_>) -> usize {
        self.with(py, |m| m.num_inputs())
    }

    fn num_outputs(&self, py: Python<'_>) -> usize {
        self.with(py, |m| m.num_outputs())
    }

    #[pyo3(signature = (i=0))]
    fn input_dims(&self, py: Python<'_>, i: usize) -> PyResult<Vec<usize>> {
        let i = self.input_index(py, i)?;
        Ok(self.with(py, |m| m.input_shape(i).dims.clone()))
    }

    #[pyo3(signature = (i=0))]
    fn output_dims(&self, py: Python<'_>, i: usize) -> PyResult<Vec<usize>> {
        let i = self.output_index(py, i)?;
        Ok(self.with(py, |m| m.output_shape(i).dims.clone()))
    }

    /// Names the per-output logs (`<name>_loss`, `<name>_<metric>`).
    fn set_output_names(&self, py: Python<'_>, names: Vec<String>) -> PyResult<()> {
        Ok(self.with(py, |m| m.set_output_names(names))?)
    }

    fn output_names(&self, py: Python<'_>) -> Vec<String> {
        self.with(py, |m| m.output_names().to_vec())
    }

    fn var_shape(&self, py: Python<'_>, v: VarId) -> PyResult<Vec<usize>> {
        let v = self.var_index(py, v)?;
        Ok(self.with(py, |m| m.var_shape(v).to_vec()))
    }

    #[pyo3(signature = (v, name, seed, **params))]
    fn initialize(
        &self,
        py: Python<'_>,
        v: VarId,
        name: &str,
        seed: u64,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let v = self.var_index(py, v)?;
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
        Ok(self.with(py, |m| m.initialize_var(v, name, &p, seed))?)
    }

    fn get_var<'py>(&self, py: Python<'py>, v: VarId) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let v = self.var_index(py, v)?;
        let (data, shape) = self.with(py, |m| (m.var(v), m.var_shape(v).to_vec()));
        let a = numpy::PyArray1::from_vec(py, data);
        Ok(a.reshape(shape)?.to_dyn().clone())
    }

    fn set_var(
        &self,
        py: Python<'_>,
        v: VarId,
        value: PyReadonlyArrayDyn<'_, f32>,
    ) -> PyResult<()> {
        let v = self.var_index(py, v)?;
        let expected = self.with(py, |m| m.var_shape(v).to_vec());
        if value.shape() != expected {
            return Err(PyValueError::new_err(format!(
                "weight shape mismatch: expected {:?}, received {:?}",
                expected,
                value.shape()
            )));
        }
        let data = value.as_array().iter().copied().collect::<Vec<f32>>();
        Ok(self.with(py, |m| m.set_var(v, &data))?)
    }

    /// Makes variable `v` the very variable `ov` of `other` (a layer shared by two models
    /// keeps one set of weights).
    fn share_var(
        &self,
        py: Python<'_>,
        v: VarId,
        other: &Bound<'_, PyModel>,
        ov: VarId,
    ) -> PyResult<()> {
        let other = other.get();
        if std::ptr::eq(self, other) {
            return Err(PyValueError::new_err(
                "share_var: a model cannot share a variable with itself",
            ));
        }
        // Two locks: taken in address order, so that two threads sharing in opposite
        // directions cannot each hold one and wait for the other.
        Ok(py.detach(|| {
            let (mut a, b) = if (self as *const PyModel) < (other as *const PyModel) {
                let a = self.lock();
                (a, other.lock())
            } else {
                let b = other.lock();
                (self.lock(), b)
            };
            a.share_var(v, &b, ov)
        })?)
    }

    /// Forgets the datasets kept on the GPU during a fit (called when `fit` returns).
    fn release_data(&self, py: Python<'_>) {
        self.with(py, |m| m.release_data())
    }

    fn set_trainable(&self, py: Python<'_>, v: VarId, trainable: bool) {
        self.with(py, |m| m.set_trainable(v, trainable))
    }

    /// Selects the device by backend name ("cpu" or "gpu"); the variables move there.
    fn set_device(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let d = crate::device::Device::from_name(name)?;
        Ok(self.with(py, |m| m.set_device(d))?)
    }

    fn device(&self, py: Python<'_>) -> &'static str {
        self.with(py, |m| m.device().name())
    }

    fn set_seed(&self, py: Python<'_>, seed: u64) {
        self.with(py, |m| m.set_seed(seed))
    }

    /// Per output: its loss (None for no loss; a name; or `(name, graph, node, constants)`
    /// for a traced function), loss weight, metrics and weighted metrics (names, such
    /// tuples, or `(name, kind, config)` for a metric object, see `metric_spec`).
    #[pyo3(signature = (losses, loss_weights, metrics, optimizer_kind, optimizer_params, regularizers, weighted_metrics=None))]
    #[allow(clippy::too_many_arguments)]
    fn compile(
        &self,
        py: Python<'_>,
        losses: Vec<Option<Bound<'_, PyAny>>>,
        loss_weights: Vec<f32>,
        metrics: Vec<Vec<Bound<'_, PyAny>>>,
        optimizer_kind: String,
        optimizer_params: Vec<(String, f64)>,
        regularizers: Vec<(VarId, f32, f32)>,
        weighted_metrics: Option<Vec<Vec<Bound<'_, PyAny>>>>,
    ) -> PyResult<()> {
        let n = self.num_outputs(py);
        let weighted_metrics =
            weighted_metrics.unwrap_or_else(|| (0..n).map(|_| Vec::new()).collect());
        for (what, len) in [
            ("losses", losses.len()),
            ("loss_weights", loss_weights.len()),
            ("metrics", metrics.len()),
            ("weighted_metrics", weighted_metrics.len()),
        ] {
            if len != n {
                return Err(PyValueError::new_err(format!(
                    "compile: `{what}` needs one entry per model output ({n}), received {len}"
                )));
            }
        }
        let mut outputs = Vec::with_capacity(n);
        for (((loss, loss_weight), ms), wms) in losses
            .into_iter()
            .zip(loss_weights)
            .zip(metrics)
            .zip(weighted_metrics)
        {
            let mut spec = OutputSpec {
                loss_weight,
                ..Default::default()
            };
            if let Some(l) = loss {
                let (name, frag) = loss_entry(&l)?;
                if frag.is_some() {
                    spec.loss = Some(crate::model::CUSTOM.to_string());
                    spec.custom_loss = frag;
                } else {
                    spec.loss = Some(name);
                }
            }
            spec.metrics = ms.iter().map(metric_entry).collect::<PyResult<_>>()?;
            spec.weighted_metrics = wms.iter().map(metric_entry).collect::<PyResult<_>>()?;
            outputs.push(spec);
        }
        let spec = CompileSpec {
            outputs,
            optimizer_kind,
            optimizer_params,
            regularizers,
        };
        Ok(self.with(py, |m| m.compile(spec))?)
    }

    /// Scalar nodes of the model's graph (layers' `add_loss`) added to the training loss.
    fn set_extra_losses(&self, py: Python<'_>, nodes: Vec<NodeId>) -> PyResult<()> {
        Ok(self.with(py, |m| m.set_extra_losses(nodes))?)
    }

    /// Per-sample dims of output `i`'s targets (empty when it takes none).
    #[pyo3(signature = (i=0))]
    fn label_dims(&self, py: Python<'_>, i: usize) -> PyResult<Vec<usize>> {
        let i = self.output_index(py, i)?;
        Ok(self.with(py, |m| m.label_dims(i))?)
    }

    /// Whether output `i` is fed targets (it has a loss or a metric).
    fn has_labels(&self, py: Python<'_>, i: usize) -> PyResult<bool> {
        let i = self.output_index(py, i)?;
        Ok(self.with(py, |m| m.has_labels(i))?)
    }

    fn log_names(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        Ok(self.with(py, |m| m.log_names())?)
    }

    /// The dims of each log's value (`[]` for a scalar); the logs' values come flat.
    fn log_dims(&self, py: Python<'_>) -> PyResult<Vec<Vec<usize>>> {
        Ok(self.with(py, |m| m.log_dims())?)
    }

    fn learning_rate(&self, py: Python<'_>) -> PyResult<f32> {
        self.optimizer(py, |o| o.learning_rate())
    }

    fn set_learning_rate(&self, py: Python<'_>, lr: f32) -> PyResult<()> {
        self.optimizer(py, |o| o.set_learning_rate(lr))
    }

    /// Every optimizer step taken, accumulation-only ones included (a schedule's step).
    fn raw_iterations(&self, py: Python<'_>) -> PyResult<u64> {
        self.optimizer(py, |o| o.raw_iterations())
    }

    /// The rate the next step uses (the schedule's, when one is set).
    fn current_learning_rate(&self, py: Python<'_>) -> PyResult<f32> {
        self.optimizer(py, |o| o.current_learning_rate())
    }

    /// Makes the learning rate follow a schedule (kind and Keras arguments, each a list of
    /// numbers); None removes it.
    #[pyo3(signature = (kind, params=Vec::new()))]
    fn set_learning_rate_schedule(
        &self,
        py: Python<'_>,
        kind: Option<&str>,
        params: Vec<(String, Vec<f64>)>,
    ) -> PyResult<()> {
        let s = super::optimizers::schedule(kind, &params)?;
        self.optimizer(py, |o| o.set_schedule(s))
    }

    /// Copies the optimizer's EMA weights into the model (no-op without `use_ema`).
    fn finalize_weights(&self, py: Python<'_>) -> PyResult<()> {
        Ok(self.with(py, |m| m.finalize_weights())?)
    }

    fn iterations(&self, py: Python<'_>) -> PyResult<u64> {
        self.optimizer(py, |o| o.iterations())
    }

    /// The variables the optimizer updates, in the order it holds their slots.
    fn trainable_vars(&self, py: Python<'_>) -> Vec<VarId> {
        self.with(py, |m| m.trainable_vars())
    }

    /// `(seed, step, epoch)`: what a resumed `fit` needs to draw the same dropout masks and
    /// shuffles as an uninterrupted one.
    fn engine_state(&self, py: Python<'_>) -> (u64, u64, u64) {
        self.with(py, |m| m.engine_state())
    }

    fn set_engine_state(&self, py: Python<'_>, seed: u64, step: u64, epoch: u64) {
        self.with(py, |m| m.set_engine_state(seed, step, epoch))
    }

    /// The optimizer's state as Keras saves it: `(raw iterations, learning rate, [(slot name,
    /// owner, float32 array), ...])` with the slots in Keras' order for the variable order
    /// `order` (Keras' trainable variable `j` is `trainable_vars()[order[j]]`; a slot's owner is
    /// its variable's index in `trainable_vars()`, None for a scalar of the optimizer's own);
    /// None when not compiled.
    #[allow(clippy::type_complexity)]
    fn optimizer_state<'py>(
        &self,
        py: Python<'py>,
        order: Vec<usize>,
    ) -> PyResult<
        Option<(
            u64,
            f32,
            Vec<(
                &'static str,
                Option<usize>,
                Bound<'py, numpy::PyArray1<f32>>,
            )>,
        )>,
    > {
        let Some(st) = self.with(py, |m| m.optimizer_state(&order))? else {
            return Ok(None);
        };
        let slots = st
            .slots
            .into_iter()
            .map(|(name, owner, v)| (name, owner, numpy::PyArray1::from_vec(py, v)))
            .collect();
        Ok(Some((st.iterations, st.learning_rate, slots)))
    }

    /// Restores what `optimizer_state` returned (slots as float32 arrays, in the same order).
    fn load_optimizer_state(
        &self,
        py: Python<'_>,
        iterations: u64,
        learning_rate: f32,
        order: Vec<usize>,
        slots: Vec<numpy::PyReadonlyArrayDyn<'_, f32>>,
    ) -> PyResult<()> {
        let values = slots
            .iter()
            .map(|a| Ok(super::arrays::as_f32(a, "slots")?.to_vec()))
            .collect::<PyResult<Vec<_>>>()?;
        let views: Vec<&[f32]> = values.iter().map(|v| &v[..]).collect();
        Ok(self.with(py, |m| {
            m.load_optimizer_state(iterations, learning_rate, &order, &views)
        })?)
    }

    /// Begins an epoch of training (`kind` "train"), an evaluation ("test") or a prediction
    /// ("predict") over `x` (an array or a list, one per input), `y` and `sample_weight` (an
    /// array or a list with one entry per output, None for an output without targets;
    /// ignored for a prediction). Returns a `Pass` whose `run` runs the batches.
    #[pyo3(signature = (kind, x, y=None, sample_weight=None, batch_size=32, shuffle=false))]
    #[allow(clippy::too_many_arguments)]
    fn begin_pass(
        slf: &Bound<'_, Self>,
        kind: &str,
        x: &Bound<'_, PyAny>,
        y: Option<&Bound<'_, PyAny>>,
        sample_weight: Option<&Bound<'_, PyAny>>,
        batch_size: usize,
        shuffle: bool,
    ) -> PyResult<PyPass> {
        let py = slf.py();
        let kind = match kind {
            "train" => PassKind::Train,
            "test" => PassKind::Test,
            "predict" => PassKind::Predict,
            other => {
                return Err(PyValueError::new_err(format!(
                "begin_pass: `kind` must be 'train', 'test' or 'predict'. Received: kind={other:?}"
            )))
            }
        };
        let this = slf.get();
        let n_out = this.num_outputs(py);
        let (x, y, sw) = if kind == PassKind::Predict {
            (x_arrays(x)?, Vec::new(), Vec::new())
        } else {
            let y = y.ok_or_else(|| {
                PyValueError::new_err("begin_pass: `y` is required for training and evaluation")
            })?;
            labelled(x, y, sample_weight, n_out)?
        };
        let d = dataset(&x, &y, &sw)?;
        let outs = if kind == PassKind::Predict {
            let n = d.n;
            let dims = this.with(py, |m| {
                (0..n_out)
                    .map(|i| {
                        let mut dims = vec![n];
                        dims.extend(m.output_shape(i).dims.iter().copied());
                        dims
                    })
                    .collect::<Vec<_>>()
            });
            dims.into_iter()
                .enumerate()
                .map(|(i, dims)| {
                    crate::memory::elements(&dims, &|| {
                        format!("predict's output {i} for {n} samples (shape {dims:?})")
                    })?;
                    Ok(PyArrayDyn::<f32>::zeros(py, dims, false).unbind())
                })
                .collect::<PyResult<_>>()?
        } else {
            Vec::new()
        };
        let state = this.with(py, |m| m.begin_pass(kind, &d, batch_size, shuffle))?;
        Ok(PyPass {
            model: slf.clone().unbind(),
            x: owned(&x),
            y: owned(&y),
            sw: owned(&sw),
            outs,
            state: Some(state),
        })
    }

    /// The logs of a whole evaluation (no callbacks; Ctrl-C interrupts it).
    #[pyo3(signature = (x, y, sample_weight=None, batch_size=32))]
    fn evaluate(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
        batch_size: usize,
    ) -> PyResult<Vec<f64>> {
        self.run_labelled(py, x, y, sample_weight, |m, d, h| {
            m.evaluate(d, batch_size, h)
        })
    }

    /// Every output for `x` (an array or a list, one per input), as a list of arrays (no
    /// callbacks; Ctrl-C interrupts it).
    #[pyo3(signature = (x, batch_size=32))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let x = x_arrays(x)?;
        let d = dataset(&x, &[], &[])?;
        let n = d.n;
        let shapes: Vec<Vec<usize>> = self.with(py, |m| {
            (0..m.num_outputs())
                .map(|i| {
                    let mut dims = vec![n];
                    dims.extend(m.output_shape(i).dims.iter().copied());
                    dims
                })
                .collect()
        });
        let mut outs: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let what = || format!("predict's output {i} for {n} samples (shape {s:?})");
                crate::memory::zeros(crate::memory::elements(s, &what)?, &what)
            })
            .collect::<crate::error::Result<_>>()?;
        self.run(py, &d, |m, d, h| {
            let mut views: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
            m.predict(&d.x, n, batch_size, &mut views, h)
        })?;
        PyList::new(py, arrays_of(py, outs, shapes)?)
    }

    #[pyo3(signature = (x, y, sample_weight=None))]
    fn train_on_batch(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<f64>> {
        self.on_batch(py, x, y, sample_weight, true)
    }

    /// One batch of a pass fed from the host (a generator's): its sums join those of the
    /// pass's earlier batches, and the logs over the pass so far are returned.
    #[pyo3(signature = (stream, x, y, sample_weight=None, train=true))]
    fn stream_batch(
        &self,
        py: Python<'_>,
        stream: &Bound<'_, PyStream>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
        train: bool,
    ) -> PyResult<Vec<f64>> {
        Ok(self
            .stream_step(py, stream, x, y, sample_weight, train, false)?
            .0)
    }

    /// A training batch of a streamed pass whose gradients are returned (one float32 array
    /// per trainable variable, in `trainable_weights` order) instead of applied, with the
    /// logs over the pass so far: one replica's step of data-parallel training.
    #[pyo3(signature = (stream, x, y, sample_weight=None))]
    fn gradient_batch<'py>(
        &self,
        py: Python<'py>,
        stream: &Bound<'py, PyStream>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Vec<f64>, NumpyArrays<'py>)> {
        let (logs, (grads, shapes)) =
            self.stream_step(py, stream, x, y, sample_weight, true, true)?;
        Ok((logs, arrays_of(py, grads, shapes)?))
    }

    /// One optimizer step with `grads` (float32 arrays, one per trainable variable in
    /// `trainable_weights` order), as if a training step had computed them.
    fn apply_gradients(
        &self,
        py: Python<'_>,
        grads: Vec<numpy::PyReadonlyArrayDyn<'_, f32>>,
    ) -> PyResult<()> {
        let mut owned: Vec<Vec<f32>> = grads
            .iter()
            .map(|g| g.as_array().iter().copied().collect())
            .collect();
        self.with(py, |m| {
            let mut views: Vec<&mut [f32]> = owned.iter_mut().map(|g| g.as_mut_slice()).collect();
            m.apply_gradients(&mut views)
        })?;
        Ok(())
    }

    #[pyo3(signature = (x, y, sample_weight=None))]
    fn test_on_batch(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<f64>> {
        self.on_batch(py, x, y, sample_weight, false)
    }
}

impl PyModel {
    fn on_batch(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
        train: bool,
    ) -> PyResult<Vec<f64>> {
        self.run_labelled(py, x, y, sample_weight, |m, d, _| {
            m.fit_check(d)?;
            let n = d.n;
            let mut logs = vec![0.0; m.log_width()?];
            let ones = vec![1.0; n];
            let sws: Vec<&[f32]> = d.sw.iter().map(|w| w.unwrap_or(&ones)).collect();
            if train {
                m.train_batch(&d.x, &d.y, &sws, n, &mut logs)?;
            } else {
                m.test_batch(&d.x, &d.y, &sws, n, &mut logs)?;
            }
            Ok(logs)
        })
    }

    /// One batch of a streamed pass (`Model::stream_batch`): the logs over the pass so far
    /// and, with `export`, the batch's gradients and their variables' shapes (not applied).
    #[allow(clippy::too_many_arguments)]
    fn stream_step(
        &self,
        py: Python<'_>,
        stream: &Bound<'_, PyStream>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
        train: bool,
        export: bool,
    ) -> PyResult<(Vec<f64>, Shaped)> {
        let (owner, fresh, before) = {
            let s = stream.borrow();
            (Arc::downgrade(&s.token), s.seen == 0, s.seen)
        };
        let (logs, n, grads, shapes) = self.run_labelled(py, x, y, sample_weight, |m, d, _| {
            m.fit_check(d)?;
            let n = d.n;
            let mut logs = vec![0.0; m.log_width()?];
            let ones = vec![1.0; n];
            let sws: Vec<&[f32]> = d.sw.iter().map(|w| w.unwrap_or(&ones)).collect();
            let mut grads = Vec::new();
            m.stream_batch(
                train,
                &d.x,
                &d.y,
                &sws,
                n,
                &owner,
                fresh,
                before + n,
                &mut logs,
                export.then_some(&mut grads),
            )?;
            let shapes: Vec<Vec<usize>> = if export {
                m.trainable_vars()
                    .into_iter()
                    .map(|v| m.var_shape(v).to_vec())
                    .collect()
            } else {
                Vec::new()
            };
            Ok((logs, n, grads, shapes))
        })?;
        stream.borrow_mut().seen = before + n;
        Ok((logs, (grads, shapes)))
    }

    /// `run` on data with targets: `x`, `y` and `sample_weight` parsed into a dataset.
    #[allow(clippy::too_many_arguments)]
    fn run_labelled<T: Send>(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
        f: impl FnOnce(&mut Model, &Dataset<'_>, &mut ChunkHook<'_>) -> crate::Result<T> + Send,
    ) -> PyResult<T> {
        let (x, y, sw) = labelled(x, y, sample_weight, self.num_outputs(py))?;
        let d = dataset(&x, &y, &sw)?;
        self.run(py, &d, f)
    }

    /// A whole loop in one call: `f` runs on the model on a pool worker ([`on_pool`]); Ctrl-C
    /// (seen by the waiting thread) is raised first, then the engine's error.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        d: &Dataset<'_>,
        f: impl FnOnce(&mut Model, &Dataset<'_>, &mut ChunkHook<'_>) -> crate::Result<T> + Send,
    ) -> PyResult<T> {
        on_pool(py, |interrupted| {
            let mut hook = ChunkHook::new(None, interrupted);
            f(&mut self.lock(), d, &mut hook)
        })
    }

    /// Runs `f` on the compiled model's optimizer (with the model's lock, GIL released).
    fn optimizer<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut crate::optimizers::Optimizer) -> T + Send,
    ) -> PyResult<T> {
        self.with(py, |m| m.optimizer_mut().map(f))
            .ok_or_else(|| PyValueError::new_err("the model is not compiled"))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGraph>()?;
    m.add_class::<PyStream>()?;
    m.add_class::<PyModel>()?;
    m.add_class::<PyPass>()?;
    Ok(())
}

/// A metric entry of `compile`: a name, a traced function (see `loss_entry`), or
/// `(name, kind, config)` for a metric object.
fn metric_entry(obj: &Bound<'_, PyAny>) -> PyResult<crate::model::MetricEntry> {
    if let Ok((name, kind, config)) =
        obj.extract::<(String, String, Bound<'_, pyo3::types::PyDict>)>()
    {
        let spec = super::metrics::spec(&kind, &config)?;
        return Ok(crate::model::MetricEntry::spec(&name, spec));
    }
    let (name, frag) = loss_entry(obj)?;
    Ok(match frag {
        Some(f) => crate::model::MetricEntry {
            name,
            kind: crate::model::MetricKind::Traced(f),
            consts: Vec::new(),
        },
        None => crate::model::MetricEntry::named(&name),
    })
}

/// A loss or metric entry of `compile`: a name, or `(name, graph, node, constants)` for a
/// function traced in Python (the graph's input 0 is y_true, input 1 y_pred).
fn loss_entry(obj: &Bound<'_, PyAny>) -> PyResult<(String, Option<crate::model::Fragment>)> {
    if let Ok(name) = obj.extract::<String>() {
        return Ok((name, None));
    }
    let (name, graph, output, constants): (
        String,
        Bound<'_, PyGraph>,
        NodeId,
        Vec<numpy::PyReadonlyArrayDyn<'_, f32>>,
    ) = obj.extract().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(
            "compile: a loss or metric must be a name or a traced function",
        )
    })?;
    let mut g = graph.borrow_mut();
    let graph = g.graph()?.clone();
    node_check(&graph, output)?;
    let constants = constants
        .iter()
        .map(|a| Ok(super::arrays::as_f32(a, "constants")?.to_vec()))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((
        name,
        Some(crate::model::Fragment {
            graph,
            output,
            constants,
            vars: Vec::new(),
        }),
    ))
}

/// `rustkeras._core.Stream`: the identity of a pass fed batch by batch from the host (see
/// `Model.stream_batch`); its running sums live in the model while it is alive.
#[pyclass(name = "Stream", module = "rustkeras._core")]
pub struct PyStream {
    token: Arc<()>,
    seen: usize,
}

#[pymethods]
impl PyStream {
    #[new]
    fn new() -> Self {
        PyStream {
            token: Arc::new(()),
            seen: 0,
        }
    }

    /// Rows run so far.
    #[getter]
    fn seen(&self) -> usize {
        self.seen
    }
}
