//! The convolution family's dispatches: `Conv`, `ConvGradInput` (also the transposed
//! convolution's forward pass) and `ConvGradKernel`, each one implicit GEMM of
//! `shaders/conv.wgsl`, which gathers its tiles from the tensors instead of an im2col copy.

use super::{GpuBuffer, Recorder, Shader};
use crate::error::Result;
use crate::ops::conv::ConvSpec;

const CONV: Shader = Shader {
    name: "conv",
    source: include_str!("../shaders/conv.wgsl"),
};

/// Which product of the convolution a dispatch computes (the shader's `mode` word).
#[derive(Clone, Copy)]
pub(super) enum ConvProduct {
    /// `y = conv(x, k) [+ bias]`; inputs `(x, k[, bias])`.
    Forward,
    /// `dx` of shape `x_dims` from `(dy, k)`.
    GradInput,
    /// `dk` from `(x, dy)`.
    GradKernel,
}

/// Records one convolution product. `x_dims` are the convolution input's dims (with the
/// batch); `cout` is the kernel's output channels.
pub(super) fn record(
    rec: &mut Recorder<'_>,
    spec: &ConvSpec,
    product: ConvProduct,
    x_dims: &[usize],
    cout: usize,
    ins: &[&GpuBuffer],
    out: &GpuBuffer,
) -> Result<()> {
    let g = spec.geometry(&x_dims[1..])?;
    let batch = x_dims[0];
    let taps: usize = spec.kernel.iter().product();
    let (p, s, cin) = (g.p(), g.s_in(), g.cin);
    let (mode, [m, n, k]) = match product {
        ConvProduct::Forward => (0, [batch * p, cout, taps * cin]),
        ConvProduct::GradInput => (1, [batch * s, cin, taps * cout]),
        ConvProduct::GradKernel => (2, [taps * cin, cout, batch * p]),
    };
    let has_bias = ins.len() > 2;
    let mut words: Vec<usize> = vec![
        m,
        n,
        k,
        mode,
        cin,
        cout,
        usize::from(spec.layout.channels_first),
        usize::from(has_bias),
        p,
        s,
    ];
    for v in [
        g.sp_in,
        g.sp_out,
        spec.kernel,
        spec.strides,
        spec.dilation,
        g.pad,
    ] {
        words.extend(v);
    }
    if words.iter().any(|&w| w > u32::MAX as usize)
        || batch * (p + s) * (cin + cout) > u32::MAX as usize
    {
        return crate::value_error!(
            "a convolution of input {x_dims:?} is larger than the GPU kernel's 32-bit indices allow; use a smaller batch size"
        );
    }
    let words: Vec<u32> = words.into_iter().map(|w| w as u32).collect();
    // The shader reads `in2` (the bias) only when there is one, but every binding it names
    // must be bound: without a bias the kernel stands in.
    let bound = [ins[0], ins[1], ins.get(2).copied().unwrap_or(ins[1])];
    let max = rec.ctx.limits.max_compute_workgroups_per_dimension as usize;
    let rows = m.div_ceil(64).max(1);
    let cols = n.div_ceil(64).max(1);
    let (gy, gz) = if rows <= max {
        (rows, 1)
    } else {
        (max, rows.div_ceil(max))
    };
    if cols > max || gz > max {
        return crate::value_error!(
            "a convolution of input {x_dims:?} is larger than the GPU's dispatch grid allows; use a smaller batch size"
        );
    }
    rec.launch_groups(
        CONV,
        "conv",
        &words,
        out,
        &bound,
        [cols as u32, gy as u32, gz as u32],
    );
    Ok(())
}
