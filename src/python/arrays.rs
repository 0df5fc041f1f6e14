//! numpy arrays in and out of the model bindings: one array or a list of them, borrowed as
//! float32 slices without copying; errors name the argument (`x`, `y[1]`, `sample_weight`).

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::graph::NodeId;
use crate::model::Dataset;

pub(super) fn as_f32<'a>(a: &'a PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<&'a [f32]> {
    a.as_slice().map_err(|_| {
        PyValueError::new_err(format!("`{what}` must be a C-contiguous float32 array"))
    })
}

pub(super) fn rows(a: &PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<usize> {
    a.shape().first().copied().ok_or_else(|| {
        PyValueError::new_err(format!(
            "`{what}` must have a batch axis, received a scalar"
        ))
    })
}

/// A float32 array (or None, where allowed) and the name errors call it by.
pub(super) type Named<'py> = (String, Option<PyReadonlyArrayDyn<'py, f32>>);

/// One float32 array, or a list or tuple of them: `x`, or `x[0]`, `x[1]`, ...
fn array_list<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    allow_none: bool,
) -> PyResult<Vec<Named<'py>>> {
    let listed = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
    let items: Vec<Bound<'py, PyAny>> = if listed {
        obj.try_iter()?.collect::<PyResult<_>>()?
    } else {
        vec![obj.clone()]
    };
    items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let name = if listed {
                format!("{what}[{i}]")
            } else {
                what.to_string()
            };
            if it.is_none() && allow_none {
                return Ok((name, None));
            }
            match it.extract::<PyReadonlyArrayDyn<'py, f32>>() {
                Ok(a) => Ok((name, Some(a))),
                Err(_) => Err(PyTypeError::new_err(format!(
                    "`{name}` must be a float32 numpy array, received {}",
                    it.get_type().name()?
                ))),
            }
        })
        .collect()
}

/// The x arrays: every entry present.
pub(super) fn x_arrays<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Vec<Named<'py>>> {
    array_list(obj, "x", false)
}

/// Per-output entries of `y` or `sample_weight`; a single array is every output's where
/// `broadcast` (sample weights), and None is no array for any output.
pub(super) fn per_output<'py>(
    obj: Option<&Bound<'py, PyAny>>,
    what: &str,
    n_out: usize,
    broadcast: bool,
) -> PyResult<Vec<Named<'py>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok((0..n_out).map(|i| (format!("{what}[{i}]"), None)).collect());
    };
    let listed = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
    let mut v = array_list(obj, what, true)?;
    if !listed && broadcast && n_out > 1 {
        v = (0..n_out)
            .map(|_| (what.to_string(), v[0].1.clone()))
            .collect();
    }
    if v.len() != n_out {
        return Err(PyValueError::new_err(format!(
            "`{what}`: the model has {n_out} outputs, received {} arrays",
            v.len()
        )));
    }
    Ok(v)
}

/// The arrays of a labelled call (`fit_epoch`, `evaluate`, `*_on_batch`): x, then y and
/// sample weights per output.
pub(super) type Labelled<'py> = (Vec<Named<'py>>, Vec<Named<'py>>, Vec<Named<'py>>);

pub(super) fn labelled<'py>(
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    sample_weight: Option<&Bound<'py, PyAny>>,
    n_out: usize,
) -> PyResult<Labelled<'py>> {
    Ok((
        x_arrays(x)?,
        per_output(Some(y), "y", n_out, false)?,
        per_output(sample_weight, "sample_weight", n_out, true)?,
    ))
}

/// Borrows numpy arrays as a dataset, without copying; every array must have `n` rows.
pub(super) fn dataset<'a>(
    x: &'a [Named<'_>],
    y: &'a [Named<'_>],
    sw: &'a [Named<'_>],
) -> PyResult<Dataset<'a>> {
    let Some((_, Some(x0))) = x.first() else {
        return Err(PyValueError::new_err("`x` must hold at least one array"));
    };
    let n = rows(x0, "x")?;
    let slice = |(name, a): &'a Named<'_>| -> PyResult<Option<&'a [f32]>> {
        let Some(a) = a else { return Ok(None) };
        let r = rows(a, name)?;
        if r != n {
            return Err(PyValueError::new_err(format!(
                "Data cardinality is ambiguous: `{name}` has {r} samples, but `x` has {n}"
            )));
        }
        as_f32(a, name).map(Some)
    };
    Ok(Dataset {
        x: x.iter()
            .map(|e| slice(e).map(|s| s.unwrap_or_default()))
            .collect::<PyResult<_>>()?,
        y: y.iter()
            .map(|e| slice(e).map(|s| s.unwrap_or_default()))
            .collect::<PyResult<_>>()?,
        sw: sw.iter().map(slice).collect::<PyResult<_>>()?,
        n,
    })
}

/// A node id or a list of node ids.
pub(super) fn node_list(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<NodeId>> {
    if let Ok(id) = obj.extract::<NodeId>() {
        return Ok(vec![id]);
    }
    obj.extract::<Vec<NodeId>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "`{what}` must be a node id or a list of node ids, received {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}
