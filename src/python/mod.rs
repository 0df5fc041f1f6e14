//! PyO3 bindings: the `rustkeras._core` extension module. Built only with the `python`
//! feature so that `cargo test` links no Python. Every `Error` becomes the matching Python
//! exception here; nothing in this module may panic on user input.

use pyo3::exceptions::{PyMemoryError, PyNotImplementedError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::error::Error;

mod arrays;
mod conv;
mod eval;
mod functional;
mod graph;
mod metrics;
mod model;
mod optimizers;
mod recurrent;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Value(m) => PyValueError::new_err(m),
            Error::Type(m) => PyTypeError::new_err(m),
            Error::NotImplemented(m) => PyNotImplementedError::new_err(m),
            Error::Memory(m) => PyMemoryError::new_err(m),
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

/// Raises MemoryError naming `what` when `floats` f32 values need more memory than the system
/// has available (a layer checks its weights with it when it declares them).
#[pyfunction]
fn check_memory(floats: u128, what: String) -> PyResult<()> {
    Ok(crate::memory::check(floats, &|| what.clone())?)
}

/// Every Vulkan adapter wgpu finds, best first, as `{"name", "type", "api"}` dicts.
#[pyfunction]
fn gpu_adapters(py: Python<'_>) -> PyResult<Vec<Bound<'_, pyo3::types::PyDict>>> {
    py.detach(crate::device::gpu::adapters)
        .into_iter()
        .map(|a| {
            let d = pyo3::types::PyDict::new(py);
            d.set_item("name", a.name)?;
            d.set_item("type", a.kind)?;
            d.set_item("api", a.api)?;
            Ok(d)
        })
        .collect()
}

/// `(True, adapter name)` when the GPU context exists or could be created, else
/// `(False, what was looked for)`.
#[pyfunction]
fn gpu_status(py: Python<'_>) -> (bool, String) {
    match py.detach(crate::device::gpu::GpuContext::shared) {
        Ok(ctx) => (true, ctx.adapter().name),
        Err(e) => (false, e.to_string()),
    }
}

/// GFLOP/s of the GPU's matmul kernel on an `n x n x n` product resident on the device,
/// timed over `iters` runs after a warm-up.
#[pyfunction]
fn bench_gpu_gemm(py: Python<'_>, n: usize, iters: usize) -> PyResult<f64> {
    Ok(py.detach(|| crate::device::gpu::bench_gemm(n, iters))?)
}

/// Bytes of GPU memory held by live models (buffers taken from the pool and not given back;
/// 0 when the GPU was never used). Dropping a model gives its buffers back.
#[pyfunction]
fn gpu_bytes_in_use() -> u64 {
    crate::device::gpu::buffer::bytes_in_use()
}

/// The CPU engine's time by op since the last call, slowest first, as `(op, calls,
/// seconds)`; recorded only when `RUSTKERAS_PROFILE_OPS=1` was set before the first step
/// (see `src/profile.rs`).
#[pyfunction]
fn op_profile() -> Vec<(String, u64, f64)> {
    crate::profile::take()
}

/// Best GFLOP/s of the CPU engine's matrix product on one form (`"a·b"`, `"a·bᵀ"`, `"aᵀ·b"`),
/// `m x n` summed over `k`, timed for at least `min_seconds` (see `bench/bench_gemm.py`).
#[pyfunction]
fn cpu_gemm_gflops(
    py: Python<'_>,
    form: &str,
    m: usize,
    k: usize,
    n: usize,
    min_seconds: f64,
) -> PyResult<f64> {
    let form = form.to_owned();
    Ok(py.detach(move || crate::ops::matmul::gflops(&form, m, k, n, min_seconds))?)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    optimizers::register(m)?;
    model::register(m)?;
    functional::register(m)?;
    recurrent::register(m)?;
    conv::register(m)?;
    eval::register(m)?;
    metrics::register(m)?;
    m.add_function(wrap_pyfunction!(set_seed, m)?)?;
    m.add_function(wrap_pyfunction!(check_memory, m)?)?;
    m.add_function(wrap_pyfunction!(default_seed, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_adapters, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_status, m)?)?;
    m.add_function(wrap_pyfunction!(bench_gpu_gemm, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_bytes_in_use, m)?)?;
    m.add_function(wrap_pyfunction!(op_profile, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_gemm_gflops, m)?)?;
    Ok(())
}
