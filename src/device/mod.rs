//! Where programs run. Kernels differ per device, semantics do not: every device runs the
//! same planned [`crate::program::Program`]. The CPU kernels live beside their ops in
//! `ops/`; the GPU's are WGSL compute shaders under `device/gpu/`, recorded into each
//! program when it is planned.

use std::sync::Arc;

pub mod gpu;

use crate::error::Result;
use gpu::GpuContext;

#[derive(Clone, Debug, Default)]
pub enum Device {
    /// CPU kernels: the `gemm` crate for products, rayon for large elementwise ops.
    #[default]
    Cpu,
    /// A wgpu adapter (a GPU through Vulkan, or Mesa's lavapipe).
    Gpu(Arc<GpuContext>),
}

impl PartialEq for Device {
    fn eq(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Gpu(a), Device::Gpu(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Device {
    /// The device a backend name selects: `"cpu"`, or `"gpu"` (the process's wgpu context,
    /// an error naming what was looked for when no adapter is usable).
    pub fn from_name(name: &str) -> Result<Device> {
        match name {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu(GpuContext::shared()?)),
            other => crate::value_error!("Unknown backend '{other}'. Expected 'cpu' or 'gpu'"),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu(_) => "gpu",
        }
    }

    pub fn is_gpu(&self) -> bool {
        matches!(self, Device::Gpu(_))
    }
}
