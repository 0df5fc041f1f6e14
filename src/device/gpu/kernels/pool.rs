//! Pooling on the GPU (`shaders/pool.wgsl`): one thread per output element forward, and one
//! thread per input element backward, which gathers dy from the windows that contain it.
//!
//! Max pooling's gradient recomputes, in each such window, the first maximum by the CPU's
//! rule (`ops::pool`) rather than scattering dy from the windows: a scatter would need float
//! atomics where windows overlap, and their order would make the sums vary from run to run.
//! The gather costs about `ceil(pool / stride)` windows an axis per element, each walked
//! once, and adds the contributions in the CPU's order.

use super::{GpuBuffer, Recorder, Shader};
use crate::error::Result;
use crate::ops::pool::{PoolKind, PoolSpec};

const POOL: Shader = Shader {
    name: "pool",
    source: include_str!("../shaders/pool.wgsl"),
};

/// The shader's parameter words for input dims `x_dims` (batch first), `n` threads, and
/// whether the gradient is masked by a ReLU's (`x > 0`).
fn words(spec: &PoolSpec, x_dims: &[usize], n: usize, relu: bool) -> Result<Vec<u32>> {
    let g = spec.geometry(&x_dims[1..])?;
    let mut p = vec![n as u32, u32::from(spec.layout.channels_first), g.c as u32];
    for a in [g.sp_in, g.sp_out, spec.pool, spec.strides, g.pad] {
        p.extend(a.iter().map(|&v| v as u32));
    }
    p.push(u32::from(spec.kind == PoolKind::Max));
    p.push(u32::from(relu));
    Ok(p)
}

/// `Op::Pool`: `out` (of `n` elements) from `x`.
pub(crate) fn forward(
    rec: &mut Recorder<'_>,
    spec: &PoolSpec,
    x: &GpuBuffer,
    x_dims: &[usize],
    out: &GpuBuffer,
    n: usize,
) -> Result<()> {
    let p = words(spec, x_dims, n, false)?;
    rec.launch(POOL, "pool_forward", &p, out, &[x], n);
    Ok(())
}

/// `Op::PoolGrad`: dx (`out`, shaped like `x`) from `x` and `dy`; with `relu`
/// (`Op::PoolReluGrad`), times `x > 0`.
pub(crate) fn backward(
    rec: &mut Recorder<'_>,
    spec: &PoolSpec,
    x: &GpuBuffer,
    x_dims: &[usize],
    dy: &GpuBuffer,
    out: &GpuBuffer,
    relu: bool,
) -> Result<()> {
    let n = x_dims.iter().product();
    let p = words(spec, x_dims, n, relu)?;
    rec.launch(POOL, "pool_backward", &p, out, &[x, dy], n);
    Ok(())
}
