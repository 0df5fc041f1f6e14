//! Batch normalization on the GPU (`shaders/norm.wgsl`), the CPU's four ops (`ops::norm`):
//! per-channel sums a workgroup per channel, the elementwise passes a thread per value
//! reading per-channel coefficients that a first, one-thread-per-channel dispatch works out
//! into a scratch buffer (`m, s, t, k`, as on the CPU).

use super::{bits, workgroups, GpuBuffer, Recorder, Shader};
use crate::error::Result;
use crate::ops::norm::{NormSpec, Stats};

const NORM: Shader = Shader {
    name: "norm",
    source: include_str!("../shaders/norm.wgsl"),
};

/// The shader's words: `[n, c, inner, outer, eps, scale, center]`.
fn words(n: usize, dims: &[usize], axis: usize, spec: Option<&NormSpec>) -> Vec<u32> {
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    vec![
        n as u32,
        dims[axis] as u32,
        inner as u32,
        outer as u32,
        bits(spec.map_or(0.0, |s| s.eps)),
        u32::from(spec.is_some_and(|s| s.scale)),
        u32::from(spec.is_some_and(|s| s.center)),
    ]
}

/// A per-channel sum: `entry` over a workgroup per channel.
fn channel_sum(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    dims: &[usize],
    axis: usize,
    spec: Option<&NormSpec>,
    ins: &[&GpuBuffer],
    out: &GpuBuffer,
) {
    let c = dims[axis];
    let per_channel = dims.iter().product::<usize>() / c;
    let p = words(per_channel, dims, axis, spec);
    let groups = workgroups(rec, c);
    rec.launch_groups(NORM, entry, &p, out, ins, groups);
}

/// `Op::Variance`: inputs `(x, mean)`.
pub(crate) fn variance(
    rec: &mut Recorder<'_>,
    axis: usize,
    x: &GpuBuffer,
    dims: &[usize],
    mean: &GpuBuffer,
    out: &GpuBuffer,
) {
    channel_sum(rec, "variance", dims, axis, None, &[x, mean], out);
}

/// `Op::BatchNormSums`: inputs `(x, mean, var, dy)`.
pub(crate) fn sums(
    rec: &mut Recorder<'_>,
    spec: &NormSpec,
    ins: &[&GpuBuffer],
    dims: &[usize],
    out: &GpuBuffer,
) {
    channel_sum(rec, "norm_sums", dims, spec.axis, Some(spec), ins, out);
}

/// The coefficients `m, s, t, k` of the forward pass in a new scratch buffer.
fn coefficients(
    rec: &mut Recorder<'_>,
    spec: &NormSpec,
    dims: &[usize],
    mean: &GpuBuffer,
    var: &GpuBuffer,
    gamma: Option<&GpuBuffer>,
    beta: Option<&GpuBuffer>,
) -> Result<GpuBuffer> {
    let c = dims[spec.axis];
    let coef = rec.scratch(4 * c)?;
    let p = words(c, dims, spec.axis, Some(spec));
    let ins = [mean, var, gamma.unwrap_or(mean), beta.unwrap_or(mean)];
    rec.launch(NORM, "norm_coefficients", &p, &coef, &ins, c);
    Ok(coef)
}

/// `Op::BatchNorm`: inputs `(x, mean, var, [gamma], [beta])`.
pub(crate) fn forward(
    rec: &mut Recorder<'_>,
    spec: &NormSpec,
    ins: &[&GpuBuffer],
    dims: &[usize],
    out: &GpuBuffer,
) -> Result<()> {
    let gamma = spec.scale.then(|| ins[3]);
    let beta = spec.center.then(|| ins[3 + usize::from(spec.scale)]);
    let coef = coefficients(rec, spec, dims, ins[1], ins[2], gamma, beta)?;
    let n = dims.iter().product();
    let p = words(n, dims, spec.axis, Some(spec));
    rec.launch(NORM, "norm_apply", &p, out, &[ins[0], &coef], n);
    Ok(())
}

/// `Op::BatchNormGrad`: inputs `(x, mean, var, dy, [gamma], [sum_dy, sum_dy_xhat])`.
pub(crate) fn backward(
    rec: &mut Recorder<'_>,
    spec: &NormSpec,
    ins: &[&GpuBuffer],
    dims: &[usize],
    out: &GpuBuffer,
) -> Result<()> {
    let gamma = spec.scale.then(|| ins[4]);
    let given = NormSpec {
        center: false,
        ..*spec
    };
    let coef = coefficients(rec, &given, dims, ins[1], ins[2], gamma, None)?;
    let c = dims[spec.axis];
    if spec.stats == Stats::Batch {
        let at = 4 + usize::from(spec.scale);
        let p = words(c, dims, spec.axis, Some(spec));
        let sums = [ins[2], ins[at], ins[at + 1]];
        rec.launch(NORM, "norm_grad_coefficients", &p, &coef, &sums, c);
    }
    let n = dims.iter().product();
    let p = words(n, dims, spec.axis, Some(spec));
    rec.launch(
        NORM,
        "norm_grad_apply",
        &p,
        out,
        &[ins[0], ins[3], &coef],
        n,
    );
    Ok(())
}
