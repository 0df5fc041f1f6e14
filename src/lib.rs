//! rustkeras: the Keras API on a Rust engine.
//!
//! Layers build a symbolic [`graph::Graph`]; [`autodiff`] adds gradient nodes to it; a
//! [`program::Program`] plans buffers once per batch size and runs the graph on a device.
//! The Python package (`python/rustkeras`) is a thin Keras-shaped front over this crate.

pub mod activations;
pub mod autodiff;
pub mod device;
pub mod error;
pub mod graph;
pub mod initializers;
pub mod losses;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod optimizers;
pub mod pool;
pub mod profile;
pub mod program;
pub mod simd;
pub mod tensor;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
