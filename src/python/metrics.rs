//! `rustkeras._core.MetricState` (a metric used on its own: `update_state`, `result`,
//! `reset_state`, computed by the engine) and the translation of a metric object's
//! configuration (`(kind, config dict)`) into a [`MetricSpec`].

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use crate::metrics::{MetricSpec, MetricState, Param, Params};

/// One configuration value: None, a bool, an int, a float, a string or a sequence of numbers.
fn param(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Param> {
    Ok(if v.is_none() {
        Param::None
    } else if v.is_instance_of::<PyBool>() {
        Param::Bool(v.extract()?)
    } else if v.is_instance_of::<PyInt>() {
        Param::Int(v.extract()?)
    } else if v.is_instance_of::<PyFloat>() {
        Param::Float(v.extract()?)
    } else if v.is_instance_of::<PyString>() {
        Param::Str(v.extract()?)
    } else if let Ok(list) = v.extract::<Vec<f64>>() {
        Param::Floats(list)
    } else {
        return Err(PyTypeError::new_err(format!(
            "metric argument `{key}`: expected None, a number, a string or a list of numbers, received {}",
            v.repr()?
        )));
    })
}

/// The metric of kind `kind` with the arguments in `config` (see
/// [`MetricSpec::from_params`]).
pub(super) fn spec(kind: &str, config: &Bound<'_, PyDict>) -> PyResult<MetricSpec> {
    let mut p = Params::default();
    for (k, v) in config.iter() {
        let k: String = k.extract()?;
        let v = param(&k, &v)?;
        p.0.push((k, v));
    }
    Ok(MetricSpec::from_params(kind, &p)?)
}

/// Whether `name` is a metric `compile(metrics=[...])` knows: a metric class's name, a
/// per-sample metric function or a loss.
#[pyfunction]
fn is_metric_name(name: &str) -> PyResult<bool> {
    if MetricSpec::from_name(name)?.is_some() {
        return Ok(true);
    }
    Ok(crate::metrics::resolve(name, "", 2, 2, 2, 2).is_ok())
}

fn f32_data<'a>(a: &'a PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<&'a [f32]> {
    super::arrays::as_f32(a, what)
}

/// A metric's running state, updated batch by batch on the CPU.
#[pyclass(name = "MetricState", module = "rustkeras._core")]
pub struct PyMetricState {
    state: MetricState,
}

#[pymethods]
impl PyMetricState {
    #[new]
    fn new(kind: &str, config: &Bound<'_, PyDict>) -> PyResult<Self> {
        Ok(PyMetricState {
            state: MetricState::new(spec(kind, config)?),
        })
    }

    /// Adds a batch: float32 arrays with the batch axis first; `sample_weight` one weight per
    /// sample or None.
    #[pyo3(signature = (y_true, y_pred, sample_weight=None))]
    fn update_state(
        &mut self,
        py: Python<'_>,
        y_true: PyReadonlyArrayDyn<'_, f32>,
        y_pred: PyReadonlyArrayDyn<'_, f32>,
        sample_weight: Option<PyReadonlyArrayDyn<'_, f32>>,
    ) -> PyResult<()> {
        let (td, pd) = (y_true.shape().to_vec(), y_pred.shape().to_vec());
        let t = f32_data(&y_true, "y_true")?;
        let p = f32_data(&y_pred, "y_pred")?;
        let w = sample_weight
            .as_ref()
            .map(|w| f32_data(w, "sample_weight"))
            .transpose()?;
        let state = &mut self.state;
        Ok(py.detach(|| state.update(t, &td, p, &pd, w))?)
    }

    /// The value: a float64 array, 0-d for a scalar metric.
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let v = self.state.result()?;
        let dims = self.state.result_dims();
        Ok(numpy::PyArray1::from_vec(py, v)
            .reshape(dims)?
            .to_dyn()
            .clone())
    }

    fn reset_state(&mut self) {
        self.state.reset()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMetricState>()?;
    m.add_function(wrap_pyfunction!(is_metric_name, m)?)?;
    Ok(())
}
