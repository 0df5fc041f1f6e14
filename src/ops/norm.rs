//! Batch normalization as four fused ops, so that a normalization costs a few passes over
//! its activations instead of one per elementwise step of the formula:
//!
//! - [`Op::Variance`]: the biased variance of `x` per channel, around a given mean (one
//!   read of `x`; the mean is an ordinary [`Op::Reduce`]).
//! - [`Op::BatchNorm`]: `(x - mean) / sqrt(var + eps) * gamma + beta` (one read, one write).
//! - [`Op::BatchNormSums`]: `Σ dy · x̂` per channel, `x̂` the normalized input (the gradient
//!   of `gamma`, and a term of the input gradient).
//! - [`Op::BatchNormGrad`]: the input gradient (one pass over `x` and `dy`).
//!
//! A channel is one index of `axis` (counted with the batch axis as 0); every other axis is
//! reduced. Kernels see `x` as `[outer, channels, inner]`: channels last is `inner == 1`.
//!
//! With batch statistics ([`Stats::Batch`], built by [`batch_norm_train`]) the mean and
//! variance are the moments of `x` itself, and the VJP of `x` is the whole derivative,
//! through the statistics (`dx = a (dy - mean(dy) - x̂ mean(dy x̂))`, `a = gamma / sqrt(var +
//! eps)`); the statistics get no gradient of their own from this op. With given statistics
//! (the moving mean and variance) they are independent inputs with their own gradients.

use rayon::prelude::*;
use smallvec::SmallVec;

use super::{In, Op, ReduceKind, UnaryOp, PAR_THRESHOLD};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

/// Where the statistics of a [`Op::BatchNorm`] come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stats {
    /// The batch's own moments of `x`, as [`batch_norm_train`] builds them.
    Batch,
    /// Independent statistics (the moving mean and variance at inference).
    Given,
}

/// A batch normalization: its channel axis (counted with the batch axis as 0), epsilon,
/// where its statistics come from, and whether it has `gamma` (scale) and `beta` (center)
/// inputs after `(x, mean, var)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormSpec {
    pub axis: usize,
    pub eps: f32,
    pub stats: Stats,
    pub scale: bool,
    pub center: bool,
}

/// `x`'s dims as `(outer, channels, inner)` around `axis`.
fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

/// The channel count of `x` normalized over `axis`, or an error naming what is wrong.
fn channels(what: &str, x: &Shape, axis: usize) -> Result<usize> {
    if !x.batched || axis == 0 || axis >= x.rank() {
        return crate::value_error!(
            "{what}: axis {axis} is not a per-sample axis of a batch of shape {} (axis 0 is the batch axis)",
            x.display()
        );
    }
    Ok(x.dims[axis - 1])
}

/// Checks that each of `vectors` is a fixed `(c,)` tensor.
fn check_vectors(what: &str, c: usize, vectors: &[&Shape]) -> Result<()> {
    for v in vectors {
        if v.batched || v.dims != [c] {
            return crate::value_error!(
                "{what}: expected per-channel vectors of shape ({c},), received {}",
                v.display()
            );
        }
    }
    Ok(())
}

pub fn infer_variance(axis: usize, x: &Shape, mean: &Shape) -> Result<Shape> {
    let c = channels("variance", x, axis)?;
    check_vectors("variance", c, &[mean])?;
    Ok(Shape::fixed(&[c]))
}

/// Inputs of [`Op::BatchNorm`]: `(x, mean, var, [gamma], [beta])`.
pub fn infer_norm(spec: &NormSpec, ins: &[&Shape]) -> Result<Shape> {
    let want = 3 + usize::from(spec.scale) + usize::from(spec.center);
    if ins.len() != want {
        return crate::value_error!("batch_norm: expected {want} inputs, received {}", ins.len());
    }
    let c = channels("batch_norm", ins[0], spec.axis)?;
    check_vectors("batch_norm", c, &ins[1..])?;
    Ok(ins[0].clone())
}

/// Inputs of [`Op::BatchNormSums`]: `(x, mean, var, dy)`.
pub fn infer_sums(spec: &NormSpec, ins: &[&Shape]) -> Result<Shape> {
    let c = channels("batch_norm_sums", ins[0], spec.axis)?;
    check_vectors("batch_norm_sums", c, &ins[1..3])?;
    if ins[3] != ins[0] {
        return crate::value_error!("batch_norm_sums: dy must be shaped like x");
    }
    Ok(Shape::fixed(&[c]))
}

/// Inputs of [`Op::BatchNormGrad`]: `(x, mean, var, dy, [gamma], [sum_dy, sum_dy_xhat])`,
/// the two sums with batch statistics only.
pub fn infer_grad(spec: &NormSpec, ins: &[&Shape]) -> Result<Shape> {
    let want = 4 + usize::from(spec.scale) + 2 * usize::from(spec.stats == Stats::Batch);
    if ins.len() != want {
        return crate::value_error!(
            "batch_norm_grad: expected {want} inputs, received {}",
            ins.len()
        );
    }
    let c = channels("batch_norm_grad", ins[0], spec.axis)?;
    check_vectors("batch_norm_grad", c, &ins[1..3])?;
    check_vectors("batch_norm_grad", c, &ins[4..])?;
    if ins[3] != ins[0] {
        return crate::value_error!("batch_norm_grad: dy must be shaped like x");
    }
    Ok(ins[0].clone())
}

/// A `(c,)` vector reshaped to broadcast along `axis` of a batch of rank `rank`.
fn along(g: &mut Graph, v: NodeId, c: usize, axis: usize, rank: usize) -> Result<NodeId> {
    let mut dims = vec![c];
    dims.resize(rank - axis, 1);
    if dims.len() > 1 {
        g.reshape(v, &dims)
    } else {
        Ok(v)
    }
}

/// `t` summed over every axis but `axis` (counted with the batch axis as 0), as a `(c,)`
/// vector: a per-channel bias's or scale's gradient.
pub(crate) fn channel_sum(g: &mut Graph, t: NodeId, c: usize, axis: usize) -> Result<NodeId> {
    let rank = g.shape(t).rank();
    let mut dims = vec![c];
    dims.resize(rank - axis, 1);
    let s = g.push(Op::SumTo(Shape::fixed(&dims)), &[t])?;
    if dims.len() > 1 {
        g.reshape(s, &[c])
    } else {
        Ok(s)
    }
}

/// `x` normalized with its own batch moments over every axis but `axis`: `(y, mean, var)`,
/// the biased variance (what Keras normalizes with and averages into its moving variance).
pub fn batch_norm_train(
    g: &mut Graph,
    x: NodeId,
    axis: usize,
    eps: f32,
    gamma: Option<NodeId>,
    beta: Option<NodeId>,
) -> Result<(NodeId, NodeId, NodeId)> {
    let rank = g.shape(x).rank();
    channels("batch_norm", g.shape(x), axis)?;
    let axes: Vec<usize> = (0..rank).filter(|&a| a != axis).collect();
    let mean = g.reduce(ReduceKind::Mean, x, &axes, false)?;
    let var = g.push(Op::Variance { axis }, &[x, mean])?;
    let y = batch_norm(g, x, mean, var, axis, eps, Stats::Batch, gamma, beta)?;
    Ok((y, mean, var))
}

/// `x` normalized with `mean` and `var` over `axis`, then scaled and shifted.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    g: &mut Graph,
    x: NodeId,
    mean: NodeId,
    var: NodeId,
    axis: usize,
    eps: f32,
    stats: Stats,
    gamma: Option<NodeId>,
    beta: Option<NodeId>,
) -> Result<NodeId> {
    let spec = NormSpec {
        axis,
        eps,
        stats,
        scale: gamma.is_some(),
        center: beta.is_some(),
    };
    let mut ins: SmallVec<[NodeId; 5]> = smallvec::smallvec![x, mean, var];
    ins.extend(gamma);
    ins.extend(beta);
    g.push(Op::BatchNorm(spec), &ins)
}

/// The gradients of `Variance`'s inputs `(x, mean)` given `dv`: `dx = 2 (x - mean) dv / n`
/// and `dmean = -Σ dx` (`n` the values per channel, counted at run time by `BroadcastMean`).
pub fn variance_vjp(
    g: &mut Graph,
    axis: usize,
    x: NodeId,
    mean: NodeId,
    dv: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let xs = g.shape(x).clone();
    let (rank, c) = (xs.rank(), xs.dims[axis - 1]);
    let m = along(g, mean, c, axis, rank)?;
    let centered = g.sub(x, m)?;
    let dv = g.unary(UnaryOp::Scale(2.0), dv)?;
    let dv = along(g, dv, c, axis, rank)?;
    let spread = g.push(Op::BroadcastMean(xs), &[dv])?;
    let dx = g.mul(centered, spread)?;
    let dmean = channel_sum(g, dx, c, axis)?;
    let dmean = g.unary(UnaryOp::Neg, dmean)?;
    Ok(smallvec::smallvec![Some(dx), Some(dmean)])
}

/// The gradients of a `BatchNorm`'s inputs `(x, mean, var, [gamma], [beta])` given `dy`.
pub fn norm_vjp(
    g: &mut Graph,
    spec: &NormSpec,
    ins: &[NodeId],
    dy: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let (x, mean, var) = (ins[0], ins[1], ins[2]);
    let gamma = spec.scale.then(|| ins[3]);
    let c = g.shape(mean).dims[0];
    let sum_dy = channel_sum(g, dy, c, spec.axis)?;
    let sum_dy_xhat = g.push(Op::BatchNormSums(*spec), &[x, mean, var, dy])?;
    let mut grad_ins: SmallVec<[NodeId; 7]> = smallvec::smallvec![x, mean, var, dy];
    grad_ins.extend(gamma);
    let (dmean, dvar) = match spec.stats {
        Stats::Batch => {
            grad_ins.extend([sum_dy, sum_dy_xhat]);
            (None, None)
        }
        Stats::Given => {
            // y = (x - mean) a + beta with a = gamma / sqrt(var + eps):
            // dmean = -a Σdy, dvar = -a / (2 sqrt(var + eps)) Σ dy x̂.
            let s = g.unary(UnaryOp::AddScalar(spec.eps), var)?;
            let s = g.unary(UnaryOp::Sqrt, s)?;
            let inv = g.unary(UnaryOp::Reciprocal, s)?;
            let a = match gamma {
                Some(gm) => g.mul(gm, inv)?,
                None => inv,
            };
            let dmean = g.mul(a, sum_dy)?;
            let dmean = g.unary(UnaryOp::Neg, dmean)?;
            let dvar = g.mul(a, inv)?;
            let dvar = g.mul(dvar, sum_dy_xhat)?;
            let dvar = g.unary(UnaryOp::Scale(-0.5), dvar)?;
            (Some(dmean), Some(dvar))
        }
    };
    let dx = g.push(Op::BatchNormGrad(*spec), &grad_ins)?;
    let mut out: SmallVec<[Option<NodeId>; 3]> = smallvec::smallvec![Some(dx), dmean, dvar];
    if spec.scale {
        out.push(Some(sum_dy_xhat));
    }
    if spec.center {
        out.push(Some(sum_dy));
    }
    Ok(out)
}

/// Most blocks a per-channel sum splits its rows into (each its own partial sums).
const MAX_BLOCKS: usize = 64;

/// The blocks of `outer` rows of `row_len` values a per-channel sum adds separately: one
/// per `PAR_THRESHOLD` values, at most [`MAX_BLOCKS`]. Fixed by the shape, so the order of
/// additions (and the result) does not depend on the threads.
fn blocks(outer: usize, row_len: usize) -> usize {
    (outer * row_len / PAR_THRESHOLD).clamp(1, MAX_BLOCKS.min(outer))
}

/// Scratch floats of `Variance` and `BatchNormSums`: the blocks' partial sums.
pub fn sums_scratch_len(x_dims: &[usize], axis: usize) -> usize {
    let (outer, c, inner) = split(x_dims, axis);
    let b = blocks(outer, c * inner);
    if b > 1 {
        b * c
    } else {
        0
    }
}

/// Scratch floats of `BatchNorm` and `BatchNormGrad`: four per-channel coefficients.
pub fn coef_scratch_len(x_dims: &[usize], axis: usize) -> usize {
    4 * x_dims[axis]
}

/// `out[ch] = Σ term(x - mean[ch], dy)` over every value of channel `ch`: `x` and `dy` (the same
/// shape; `dy` unused by a term that ignores it) split into blocks of rows, each block's sums
/// in its own part of `scratch`, then the blocks added in order.
#[allow(clippy::too_many_arguments)]
fn channel_sums(
    dims: &[usize],
    axis: usize,
    x: &[f32],
    dy: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    mean: &[f32],
    term: impl Fn(f32, f32) -> f32 + Sync,
) {
    let (outer, c, inner) = split(dims, axis);
    let row = c * inner;
    let block = |rows: std::ops::Range<usize>, acc: &mut [f32]| {
        acc.fill(0.0);
        crate::simd::dispatch(
            #[inline(always)]
            || {
                for r in rows {
                    let (xr, dr) = (&x[r * row..(r + 1) * row], &dy[r * row..(r + 1) * row]);
                    if inner == 1 {
                        for (((a, &xv), &dv), &m) in acc.iter_mut().zip(xr).zip(dr).zip(mean) {
                            *a += term(xv - m, dv);
                        }
                    } else {
                        for (ch, a) in acc.iter_mut().enumerate() {
                            let (xs, ds) = (
                                &xr[ch * inner..(ch + 1) * inner],
                                &dr[ch * inner..(ch + 1) * inner],
                            );
                            let m = mean[ch];
                            *a += xs
                                .iter()
                                .zip(ds)
                                .map(|(&xv, &dv)| term(xv - m, dv))
                                .sum::<f32>();
                        }
                    }
                }
            },
        )
    };
    let nb = blocks(outer, row);
    if nb == 1 {
        block(0..outer, out);
        return;
    }
    let per = outer.div_ceil(nb);
    let parts = &mut scratch[..nb * c];
    parts
        .par_chunks_mut(c)
        .enumerate()
        .for_each(|(b, acc)| block(b * per..((b + 1) * per).min(outer), acc));
    out.fill(0.0);
    for p in parts.chunks(c) {
        for (o, &v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
}

/// `Variance`: the mean of `(x - mean)²` per channel.
pub fn variance(axis: usize, x: &In<'_>, mean: &[f32], out: &mut [f32], scratch: &mut [f32]) {
    let (outer, _, inner) = split(x.dims, axis);
    channel_sums(x.dims, axis, x.data, x.data, out, scratch, mean, |d, _| {
        d * d
    });
    let n = (outer * inner) as f32;
    out.iter_mut().for_each(|v| *v /= n);
}

/// `BatchNormSums`: `Σ dy (x - mean) / sqrt(var + eps)` per channel.
pub fn sums(spec: &NormSpec, ins: &[In<'_>], out: &mut [f32], scratch: &mut [f32]) {
    let (x, mean, var, dy) = (&ins[0], ins[1].data, ins[2].data, ins[3].data);
    channel_sums(
        x.dims,
        spec.axis,
        x.data,
        dy,
        out,
        scratch,
        mean,
        |d, dv| d * dv,
    );
    for (o, &v) in out.iter_mut().zip(var) {
        *o /= (v + spec.eps).sqrt();
    }
}

/// `out = (x - m) * s + t` per channel, or with `dy`: `out = s * dy - t - (x - m) * k`, in
/// parallel over blocks of rows. `coef` holds `m, s, t, k` one after the other.
fn apply(
    dims: &[usize],
    axis: usize,
    x: &[f32],
    dy: Option<&[f32]>,
    coef: &[f32],
    out: &mut [f32],
) {
    let (outer, c, inner) = split(dims, axis);
    let row = c * inner;
    let (m, rest) = coef.split_at(c);
    let (s, rest) = rest.split_at(c);
    let (t, k) = (&rest[..c], &rest[c..2 * c]);
    let rows_per = (PAR_THRESHOLD / row).max(1);
    let run = |r0: usize, o: &mut [f32]| {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                let xs = &x[r0 * row..r0 * row + o.len()];
                for (j, (orow, xrow)) in o.chunks_mut(row).zip(xs.chunks(row)).enumerate() {
                    let at = (r0 + j) * row;
                    if inner == 1 {
                        // Channels last: the coefficients line up with the row.
                        let it = orow.iter_mut().zip(xrow).zip(m).zip(s);
                        match dy {
                            None => it
                                .zip(t)
                                .for_each(|((((o, &v), &mc), &sc), &tc)| *o = (v - mc) * sc + tc),
                            Some(dy) => it.zip(t).zip(k).zip(&dy[at..at + row]).for_each(
                                |((((((o, &v), &mc), &sc), &tc), &kc), &dv)| {
                                    *o = sc * dv - tc - (v - mc) * kc
                                },
                            ),
                        }
                        continue;
                    }
                    for ch in 0..c {
                        let span = ch * inner..(ch + 1) * inner;
                        let (mc, sc, tc, kc) = (m[ch], s[ch], t[ch], k[ch]);
                        let (os, xv) = (&mut orow[span.clone()], &xrow[span.clone()]);
                        match dy {
                            None => os
                                .iter_mut()
                                .zip(xv)
                                .for_each(|(o, &v)| *o = (v - mc) * sc + tc),
                            Some(dy) => {
                                let d = &dy[at + span.start..at + span.end];
                                for ((o, &v), &dv) in os.iter_mut().zip(xv).zip(d) {
                                    *o = sc * dv - tc - (v - mc) * kc;
                                }
                            }
                        }
                    }
                }
            },
        )
    };
    if outer * row < PAR_THRESHOLD {
        run(0, out);
    } else {
        out.par_chunks_mut(rows_per * row)
            .enumerate()
            .for_each(|(b, o)| run(b * rows_per, o));
    }
}

/// Fills `coef` with the per-channel `m, s, t, k` of `apply` from the inputs' vectors.
#[allow(clippy::too_many_arguments)]
fn coefficients(
    eps: f32,
    mean: &[f32],
    var: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    sums: Option<(&[f32], &[f32], f32)>,
    coef: &mut [f32],
) {
    let c = mean.len();
    let (m, rest) = coef.split_at_mut(c);
    let (s, rest) = rest.split_at_mut(c);
    let (t, k) = rest.split_at_mut(c);
    for ch in 0..c {
        let inv = 1.0 / (var[ch] + eps).sqrt();
        let a = gamma.map_or(inv, |gm| gm[ch] * inv);
        m[ch] = mean[ch];
        s[ch] = a;
        match sums {
            // The input gradient: `a dy - a mean(dy) - (x - m) a inv mean(dy x̂)`.
            Some((sum_dy, sum_dy_xhat, n)) => {
                t[ch] = a * sum_dy[ch] / n;
                k[ch] = a * inv * sum_dy_xhat[ch] / n;
            }
            None => {
                t[ch] = beta.map_or(0.0, |b| b[ch]);
                k[ch] = 0.0;
            }
        }
    }
}

/// `BatchNorm`: `(x - mean) / sqrt(var + eps) * gamma + beta`.
pub fn forward(spec: &NormSpec, ins: &[In<'_>], out: &mut [f32], scratch: &mut [f32]) {
    let x = &ins[0];
    let gamma = spec.scale.then(|| ins[3].data);
    let beta = spec.center.then(|| ins[3 + usize::from(spec.scale)].data);
    let c = ins[1].data.len();
    let coef = &mut scratch[..4 * c];
    coefficients(spec.eps, ins[1].data, ins[2].data, gamma, beta, None, coef);
    apply(x.dims, spec.axis, x.data, None, coef, out);
}

/// `BatchNormGrad`: the input gradient (see the module docs).
pub fn backward(spec: &NormSpec, ins: &[In<'_>], out: &mut [f32], scratch: &mut [f32]) {
    let x = &ins[0];
    let gamma = spec.scale.then(|| ins[4].data);
    let at = 4 + usize::from(spec.scale);
    let (outer, _, inner) = split(x.dims, spec.axis);
    let sums = (spec.stats == Stats::Batch)
        .then(|| (ins[at].data, ins[at + 1].data, (outer * inner) as f32));
    let c = ins[1].data.len();
    let coef = &mut scratch[..4 * c];
    coefficients(spec.eps, ins[1].data, ins[2].data, gamma, None, sums, coef);
    apply(x.dims, spec.axis, x.data, Some(ins[3].data), coef, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Ctx;
    use crate::program::Program;

    /// A float64 reference of batch normalization over `[outer, c, inner]`.
    fn reference(
        x: &[f32],
        (outer, c, inner): (usize, usize, usize),
        gamma: &[f32],
        beta: &[f32],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let idx = |o: usize, ch: usize, i: usize| (o * c + ch) * inner + i;
        let n = (outer * inner) as f64;
        let mut mean = vec![0.0; c];
        let mut var = vec![0.0; c];
        for ch in 0..c {
            for o in 0..outer {
                for i in 0..inner {
                    mean[ch] += f64::from(x[idx(o, ch, i)]) / n;
                }
            }
            for o in 0..outer {
                for i in 0..inner {
                    var[ch] += (f64::from(x[idx(o, ch, i)]) - mean[ch]).powi(2) / n;
                }
            }
        }
        let mut y = vec![0.0; x.len()];
        for o in 0..outer {
            for ch in 0..c {
                for i in 0..inner {
                    let k = idx(o, ch, i);
                    y[k] = (f64::from(x[k]) - mean[ch]) / (var[ch] + eps).sqrt()
                        * f64::from(gamma[ch])
                        + f64::from(beta[ch]);
                }
            }
        }
        (y, mean, var)
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2654435761).rotate_left(13);
                (h % 2001) as f32 / 400.0 - 1.5
            })
            .collect()
    }

    /// Builds `loss = Σ y · w` over a batch normalization of an input of per-sample `dims`
    /// (channel `axis`), with `gamma` and `beta` variables, and returns the graph, its
    /// nodes and the gradients of `x`, `gamma` and `beta`.
    fn model(dims: &[usize], axis: usize, stats: Stats) -> (Graph, [NodeId; 6]) {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(dims));
        let w = g.input(Shape::batched(dims));
        let c = dims[axis - 1];
        let gv = g.declare_var(&[c]);
        let gamma = g.param(gv);
        let bv = g.declare_var(&[c]);
        let beta = g.param(bv);
        let mv = g.declare_var(&[c]);
        let vv = g.declare_var(&[c]);
        let y = match stats {
            Stats::Batch => {
                batch_norm_train(&mut g, x, axis, 1e-3, Some(gamma), Some(beta))
                    .unwrap()
                    .0
            }
            Stats::Given => {
                let (m, v) = (g.param(mv), g.param(vv));
                batch_norm(
                    &mut g,
                    x,
                    m,
                    v,
                    axis,
                    1e-3,
                    Stats::Given,
                    Some(gamma),
                    Some(beta),
                )
                .unwrap()
            }
        };
        let p = g.mul(y, w).unwrap();
        let loss = g.reduce_all(ReduceKind::Sum, p).unwrap();
        let gr = crate::autodiff::gradients(&mut g, loss, &[x, gamma, beta]).unwrap();
        (g, [y, loss, gr[0], gr[1], gr[2], x])
    }

    #[test]
    fn batch_statistics_match_a_float64_reference_and_finite_differences() {
        for (dims, axis) in [
            (vec![5, 6], 2),
            (vec![3, 4, 5], 1),
            (vec![2, 3, 4], 2),
            (vec![70, 40], 2),
        ] {
            let batch = if dims[0] == 70 { 64 } else { 3 };
            let (g, [y, loss, dx, dgamma, dbeta, _]) = model(&dims, axis, Stats::Batch);
            let full: Vec<usize> = std::iter::once(batch).chain(dims.iter().copied()).collect();
            let n: usize = full.iter().product();
            let shape = split(&full, axis);
            let c = shape.1;
            let x = data(n, 7);
            let w = data(n, 99);
            let gamma: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.1).collect();
            let beta: Vec<f32> = (0..c).map(|i| i as f32 * 0.2 - 0.3).collect();
            let ones = vec![1.0; c];
            let zeros = vec![0.0; c];
            let vars: [&[f32]; 4] = [&gamma, &beta, &zeros, &ones];
            let mut p = Program::plan(&g, &[y, loss, dx, dgamma, dbeta], batch).unwrap();
            let ctx = Ctx {
                training: true,
                ..Ctx::default()
            };
            p.run(&vars, &[&x, &w], &ctx).unwrap();
            let (want, _, _) = reference(&x, shape, &gamma, &beta, 1e-3);
            for (a, b) in p.value(y).iter().zip(&want) {
                assert!(
                    (f64::from(*a) - b).abs() < 1e-4,
                    "{dims:?} {axis}: {a} vs {b}"
                );
            }
            let lossf = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
                let (y, _, _) = reference(x, shape, gamma, beta, 1e-3);
                y.iter().zip(&w).map(|(a, &b)| a * f64::from(b)).sum()
            };
            let h = 1e-2f32;
            let check = |got: &[f32], base: &[f32], f: &dyn Fn(&[f32]) -> f64, what: &str| {
                for i in (0..base.len()).step_by((base.len() / 23).max(1)) {
                    let (mut up, mut dn) = (base.to_vec(), base.to_vec());
                    up[i] += h;
                    dn[i] -= h;
                    let fd = (f(&up) - f(&dn)) / (2.0 * f64::from(h));
                    assert!(
                        (f64::from(got[i]) - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                        "{dims:?} axis {axis} d{what}[{i}]: {} vs {fd}",
                        got[i]
                    );
                }
            };
            check(p.value(dx), &x, &|v| lossf(v, &gamma, &beta), "x");
            check(p.value(dgamma), &gamma, &|v| lossf(&x, v, &beta), "gamma");
            check(p.value(dbeta), &beta, &|v| lossf(&x, &gamma, v), "beta");
        }
    }

    #[test]
    fn given_statistics_pass_gradients_to_every_input() {
        let dims = [4, 3];
        let (mut g, [y, loss, dx, dgamma, _, _]) = model(&dims, 2, Stats::Given);
        // Gradients of the moving statistics too, as independent inputs.
        let stats: Vec<NodeId> = g
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, nd)| matches!(nd.op, Op::Param(v) if v >= 2))
            .map(|(i, _)| i)
            .collect();
        let gs = crate::autodiff::gradients(&mut g, loss, &stats).unwrap();
        let batch = 2;
        let n = batch * 12;
        let x = data(n, 3);
        let w = data(n, 5);
        let gamma = [0.7f32, 1.2, -0.4];
        let beta = [0.1f32, 0.0, -0.2];
        let mean = [0.2f32, -0.1, 0.3];
        let var = [0.5f32, 1.5, 0.8];
        let mut p = Program::plan(&g, &[y, loss, dx, dgamma, gs[0], gs[1]], batch).unwrap();
        p.run(&[&gamma, &beta, &mean, &var], &[&x, &w], &Ctx::default())
            .unwrap();
        let f = |x: &[f32], mean: &[f32], var: &[f32], gamma: &[f32]| -> f64 {
            let mut s = 0.0;
            for (i, (&xv, &wv)) in x.iter().zip(&w).enumerate() {
                let ch = i % 3;
                let yv = (f64::from(xv) - f64::from(mean[ch])) / (f64::from(var[ch]) + 1e-3).sqrt()
                    * f64::from(gamma[ch])
                    + f64::from(beta[ch]);
                s += yv * f64::from(wv);
            }
            s
        };
        let h = 1e-2f32;
        let fd = |v: &[f32], i: usize, call: &dyn Fn(&[f32]) -> f64| {
            let (mut up, mut dn) = (v.to_vec(), v.to_vec());
            up[i] += h;
            dn[i] -= h;
            (call(&up) - call(&dn)) / (2.0 * f64::from(h))
        };
        let close = |a: f32, b: f64| (f64::from(a) - b).abs() < 2e-3 * (1.0 + b.abs());
        for i in 0..n {
            assert!(close(
                p.value(dx)[i],
                fd(&x, i, &|v| f(v, &mean, &var, &gamma))
            ));
        }
        for ch in 0..3 {
            assert!(close(
                p.value(dgamma)[ch],
                fd(&gamma, ch, &|v| f(&x, &mean, &var, v))
            ));
            assert!(close(
                p.value(gs[0])[ch],
                fd(&mean, ch, &|v| f(&x, v, &var, &gamma))
            ));
            assert!(close(
                p.value(gs[1])[ch],
                fd(&var, ch, &|v| f(&x, &mean, v, &gamma))
            ));
        }
    }

    #[test]
    fn the_variance_has_its_own_gradient() {
        // loss = Σ var · w over a (batch, 3, 2) input normalized over axis 2 (channels 2).
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[3, 2]));
        let mean = g.reduce(ReduceKind::Mean, x, &[0, 1], false).unwrap();
        let var = g.push(Op::Variance { axis: 2 }, &[x, mean]).unwrap();
        let w = g.declare_var(&[2]);
        let w = g.param(w);
        let p = g.mul(var, w).unwrap();
        let loss = g.reduce_all(ReduceKind::Sum, p).unwrap();
        let dx = crate::autodiff::gradients(&mut g, loss, &[x]).unwrap()[0];
        let batch = 4;
        let x0 = data(batch * 6, 11);
        let wv = [0.3f32, -1.1];
        let mut prog = Program::plan(&g, &[var, dx], batch).unwrap();
        prog.run(&[&wv], &[&x0], &Ctx::default()).unwrap();
        let f = |x: &[f32]| -> f64 {
            (0..2)
                .map(|ch| {
                    let v: Vec<f64> = x
                        .iter()
                        .skip(ch)
                        .step_by(2)
                        .map(|&a| f64::from(a))
                        .collect();
                    let m = v.iter().sum::<f64>() / v.len() as f64;
                    f64::from(wv[ch]) * v.iter().map(|a| (a - m).powi(2)).sum::<f64>()
                        / v.len() as f64
                })
                .sum()
        };
        for i in 0..x0.len() {
            let (mut up, mut dn) = (x0.clone(), x0.clone());
            up[i] += 1e-2;
            dn[i] -= 1e-2;
            let fd = (f(&up) - f(&dn)) / 2e-2;
            let got = f64::from(prog.value(dx)[i]);
            assert!(
                (got - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                "dx[{i}]: {got} vs {fd}"
            );
        }
    }
}
