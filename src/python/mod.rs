//! PyO3 bindings: the `rustkeras._core` extension module. Built only with the `python`
//! feature so that `cargo test` links no Python. Every `Error` becomes the matching Python
//! exception here; nothing in this module may panic on user input.

use pyo3::exceptions::{PyNotImplementedError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::error::Error;

mod arrays;
mod conv;
mod functional;
mod graph;
mod model;
mod optimizers;
mod recurrent;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Value(m) => PyValueError::new_err(m),
            Error::Type(m) => PyTypeError::new_err(m),
            Error::NotImplemented(m) => PyNotImplementedError::new_err(m),
        }
    }
}

/// Seeds the engine's default seed for new models (weights, shuffling, dropout).
#[pyfunction]
fn set_seed(seed: u64) {
    crate::model::set_default_seed(seed);
}

/// `(seed, generation)` after `set_seed`, or None.
#[pyfunction]
fn default_seed() -> Option<(u64, u64)> {
    crate::model::default_seed()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    optimizers::register(m)?;
    model::register(m)?;
    functional::register(m)?;
    recurrent::register(m)?;
    conv::register(m)?;
    m.add_function(wrap_pyfunction!(set_seed, m)?)?;
    m.add_function(wrap_pyfunction!(default_seed, m)?)?;
    Ok(())
}
