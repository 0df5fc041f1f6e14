//! The index ops on the GPU (`shaders/index.wgsl`): the indices of the top k (each element
//! finds its own rank in its row), numpy's `take` and `take_along_axis`, and their gradients.
//!
//! The gradients gather rather than scatter, so that sums come out in the CPU's order without
//! float atomics: each element of `x` walks the indices of its row (take_along) or all the
//! indices (take along an inner axis). `take` along the first axis of a fixed tensor (an
//! embedding-like lookup, where the index count can be large) reuses the embedding's sorted
//! scatter instead, after a pass that wraps negative indices.

use super::{numel, scatter_add_rows, GpuBuffer, Recorder, Shader};
use crate::error::Result;
use crate::ops::take::around;

const INDEX: Shader = Shader {
    name: "index",
    source: include_str!("../shaders/index.wgsl"),
};

fn w(v: usize) -> u32 {
    v as u32
}

/// `Op::TopKIndices`: `x` of `x_dims`, rows of `c`, `k` indices a row.
pub(crate) fn top_k(
    rec: &mut Recorder<'_>,
    x: &GpuBuffer,
    x_dims: &[usize],
    k: usize,
    out: &GpuBuffer,
) {
    let n = numel(x_dims);
    let c = *x_dims.last().expect("rank checked at build");
    rec.launch(INDEX, "top_k", &[w(n), w(c), w(k)], out, &[x], n);
}

/// `Op::TakeAlong`: rows of `c` in `x`, index rows of `m`, `n` outputs.
pub(crate) fn take_along(
    rec: &mut Recorder<'_>,
    x: &GpuBuffer,
    c: usize,
    idx: &GpuBuffer,
    m: usize,
    out: &GpuBuffer,
    n: usize,
) {
    rec.launch(INDEX, "take_along", &[w(n), w(c), w(m)], out, &[x, idx], n);
}

/// `Op::ScatterAlong`: `dy` (index rows of `m`) into `out` of `out_dims`.
pub(crate) fn scatter_along(
    rec: &mut Recorder<'_>,
    dy: &GpuBuffer,
    idx: &GpuBuffer,
    m: usize,
    out: &GpuBuffer,
    out_dims: &[usize],
) {
    let n = numel(out_dims);
    let c = *out_dims.last().expect("rank checked at build");
    rec.launch(
        INDEX,
        "scatter_along",
        &[w(n), w(c), w(m)],
        out,
        &[dy, idx],
        n,
    );
}

/// `Op::Take` of `x` (concrete `x_dims`) by `m` indices, `n` outputs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn take(
    rec: &mut Recorder<'_>,
    x: &GpuBuffer,
    x_dims: &[usize],
    axis: usize,
    idx: &GpuBuffer,
    m: usize,
    out: &GpuBuffer,
    n: usize,
) {
    let (_, len, inner) = around(x_dims, axis);
    let p = [w(n), w(len), w(inner), w(m)];
    rec.launch(INDEX, "take", &p, out, &[x, idx], n);
}

/// `Op::TakeGrad`: `dy` scatter-added into `out` of `out_dims` (x's) by `m` indices.
pub(crate) fn take_grad(
    rec: &mut Recorder<'_>,
    dy: &GpuBuffer,
    idx: &GpuBuffer,
    m: usize,
    axis: usize,
    out: &GpuBuffer,
    out_dims: &[usize],
) -> Result<()> {
    let (outer, len, inner) = around(out_dims, axis);
    if outer == 1 {
        let wrapped = rec.scratch(m)?;
        rec.launch(INDEX, "wrap_indices", &[w(m), w(len)], &wrapped, &[idx], m);
        return scatter_add_rows(rec, dy, &wrapped, &[m], out, &[len, inner]);
    }
    let n = numel(out_dims);
    let p = [w(n), w(len), w(inner), w(m)];
    rec.launch(INDEX, "take_grad", &p, out, &[dy, idx], n);
    Ok(())
}
