//! Where programs run. Kernels differ per device, semantics do not: every device runs the
//! same planned [`crate::program::Program`]. The CPU kernels live beside their ops in
//! `ops/`; a GPU device adds a variant here and its kernels, not a second engine.

use crate::error::Result;
use crate::ops::{self, Ctx, In, Op};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// ndarray-free CPU kernels: the `gemm` crate for products, rayon for large elementwise ops.
    #[default]
    Cpu,
}

impl Device {
    /// The device a backend name selects (`"cpu"`; `"gpu"` is not built yet).
    pub fn from_name(name: &str) -> Result<Device> {
        match name {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Err(crate::Error::NotImplemented(
                "the 'gpu' backend (wgpu) is not available in this build of rustkeras yet".into(),
            )),
            other => crate::value_error!("Unknown backend '{other}'. Expected 'cpu' or 'gpu'"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
        }
    }

    /// Runs one op into `out`, with the program's planned `scratch` for its temporaries.
    pub fn run_op(
        self,
        op: &Op,
        ins: &[In<'_>],
        out: &mut [f32],
        out_dims: &[usize],
        scratch: &mut [f32],
        ctx: &Ctx,
    ) {
        match self {
            Device::Cpu => ops::forward(op, ins, out, out_dims, scratch, ctx),
        }
    }
}
