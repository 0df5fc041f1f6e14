//! `rustkeras._core.Optimizer`: a Rust [`Optimizer`] that updates float32 numpy arrays in
//! place, behind `rustkeras.optimizers.Optimizer.apply_gradients`.

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::optimizers::{Optimizer, Schedule};

#[pyclass(name = "Optimizer", module = "rustkeras._core")]
struct PyOptimizer {
    inner: Optimizer,
    /// Copies of the gradients: the step clips them in place, and the caller's arrays must
    /// stay untouched (and may even be the variables themselves).
    scratch: Vec<Vec<f32>>,
}

fn float32_array<'a, 'py>(
    obj: &'a Bound<'py, PyAny>,
    what: &str,
    i: usize,
) -> PyResult<&'a Bound<'py, PyArrayDyn<f32>>> {
    obj.cast::<PyArrayDyn<f32>>().map_err(|_| {
        let received = match obj.getattr("dtype") {
            Ok(dtype) => format!("an array of dtype {dtype}"),
            Err(_) => format!(
                "an object of type {}",
                obj.get_type()
                    .name()
                    .map_or_else(|_| "?".to_string(), |n| n.to_string())
            ),
        };
        PyTypeError::new_err(format!(
            "{what} {i} must be a float32 numpy array. Received: {received}"
        ))
    })
}

#[pymethods]
impl PyOptimizer {
    /// `Optimizer(kind, params)`: params are `(Keras argument name, float)` pairs.
    #[new]
    fn new(kind: &str, params: Vec<(String, f64)>) -> PyResult<Self> {
        Ok(PyOptimizer {
            inner: Optimizer::from_spec(kind, &params)?,
            scratch: Vec::new(),
        })
    }

    /// One step: `variables[i] -= update(grads[i])`, in place. Each variable must be a
    /// writeable, contiguous float32 numpy array; each gradient a float32 array of its shape.
    fn apply(
        &mut self,
        py: Python<'_>,
        grads: Vec<Bound<'_, PyAny>>,
        variables: Vec<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if grads.len() != variables.len() {
            return Err(PyValueError::new_err(format!(
                "Expected one gradient per variable. Received {} gradients for {} variables.",
                grads.len(),
                variables.len()
            )));
        }
        self.scratch.resize_with(grads.len(), Vec::new);
        for (i, ((g, v), buf)) in grads
            .iter()
            .zip(&variables)
            .zip(&mut self.scratch)
            .enumerate()
        {
            let g = float32_array(g, "Gradient", i)?;
            let v = float32_array(v, "Variable", i)?;
            if g.shape() != v.shape() {
                return Err(PyValueError::new_err(format!(
                    "Gradient {i} has shape {:?} but its variable has shape {:?}.",
                    g.shape(),
                    v.shape()
                )));
            }
            let g = g
                .try_readonly()
                .map_err(|e| PyValueError::new_err(format!("Gradient {i} cannot be read: {e}")))?;
            buf.clear();
            match g.as_slice() {
                Ok(s) => buf.extend_from_slice(s),
                Err(_) => buf.extend(g.as_array().iter()),
            }
        }
        let mut guards = Vec::with_capacity(variables.len());
        for (i, v) in variables.iter().enumerate() {
            let v = float32_array(v, "Variable", i)?;
            guards.push(v.try_readwrite().map_err(|e| {
                PyValueError::new_err(format!(
                    "Variable {i} cannot be updated in place ({e}): pass writeable arrays, \
                     each once, none a view of another."
                ))
            })?);
        }
        let mut params = Vec::with_capacity(guards.len());
        for (i, guard) in guards.iter_mut().enumerate() {
            params.push(guard.as_slice_mut().map_err(|_| {
                PyValueError::new_err(format!(
                    "Variable {i} must be a contiguous array to be updated in place."
                ))
            })?);
        }
        let mut grads: Vec<&mut [f32]> = self.scratch.iter_mut().map(|g| &mut g[..]).collect();
        let inner = &mut self.inner;
        py.detach(|| inner.apply(&mut params, &mut grads))?;
        Ok(())
    }

    /// With `use_ema`, overwrites the variables with their moving averages.
    fn finalize_variable_values(&self, variables: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let mut guards = Vec::with_capacity(variables.len());
        for (i, v) in variables.iter().enumerate() {
            let v = float32_array(v, "Variable", i)?;
            guards.push(v.try_readwrite().map_err(|e| {
                PyValueError::new_err(format!("Variable {i} cannot be updated in place ({e})."))
            })?);
        }
        let mut params = Vec::with_capacity(guards.len());
        for (i, guard) in guards.iter_mut().enumerate() {
            params.push(guard.as_slice_mut().map_err(|_| {
                PyValueError::new_err(format!("Variable {i} must be a contiguous array."))
            })?);
        }
        Ok(self.inner.finalize_variable_values(&mut params)?)
    }

    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    #[getter]
    fn iterations(&self) -> u64 {
        self.inner.iterations()
    }

    /// Every step taken, accumulation-only ones included (a schedule's step).
    #[getter]
    fn raw_iterations(&self) -> u64 {
        self.inner.raw_iterations()
    }

    #[getter]
    fn learning_rate(&self) -> f32 {
        self.inner.learning_rate()
    }

    #[setter]
    fn set_learning_rate(&mut self, lr: f32) {
        self.inner.set_learning_rate(lr);
    }

    /// The rate the next step uses (the schedule's, or after Keras 1 `decay`).
    #[getter]
    fn current_learning_rate(&self) -> f32 {
        self.inner.current_learning_rate()
    }

    /// Makes the learning rate follow a schedule (see `schedule_value`); None removes it.
    #[pyo3(signature = (kind, params=Vec::new()))]
    fn set_schedule(
        &mut self,
        kind: Option<&str>,
        params: Vec<(String, Vec<f64>)>,
    ) -> PyResult<()> {
        self.inner.set_schedule(schedule(kind, &params)?);
        Ok(())
    }
}

/// A schedule from its kind and Keras arguments (each a list of numbers), or None.
pub(crate) fn schedule(
    kind: Option<&str>,
    params: &[(String, Vec<f64>)],
) -> PyResult<Option<Schedule>> {
    kind.map(|k| Schedule::from_spec(k, params))
        .transpose()
        .map_err(PyErr::from)
}

/// The learning rate of schedule `kind` with Keras arguments `params` at `step`.
#[pyfunction]
fn schedule_value(kind: &str, params: Vec<(String, Vec<f64>)>, step: u64) -> PyResult<f32> {
    Ok(Schedule::from_spec(kind, &params)?.at(step))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyOptimizer>()?;
    m.add_function(wrap_pyfunction!(schedule_value, m)?)
}
