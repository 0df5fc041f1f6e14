//! Shape ops: reshape, and broadcasting to or summing down to a shape (each other's VJP).

use super::elementwise::{broadcast_shape, broadcast_strides, for_each_broadcast, is_suffix};
use super::{In, Op};
use crate::error::Result;
use crate::graph::Shape;

pub fn infer_to(op: &Op, x: &Shape, target: &Shape) -> Result<Shape> {
    // Either direction must be a valid broadcast from the smaller to the larger shape.
    let (small, big) = if matches!(op, Op::SumTo(_)) {
        (target, x)
    } else {
        (x, target)
    };
    let b = broadcast_shape(small, big)?;
    if &b != big {
        return crate::value_error!("cannot broadcast {} to {}", small.display(), big.display());
    }
    Ok(target.clone())
}

pub fn infer_reshape(x: &Shape, dims: &[usize]) -> Result<Shape> {
    let (a, b): (usize, usize) = (x.dims.iter().product(), dims.iter().product());
    if a != b {
        return crate::value_error!(
            "Reshape: total size of the new shape {dims:?} ({b}) must equal the size of the input {} ({a} per sample)",
            x.display()
        );
    }
    Ok(Shape {
        batched: x.batched,
        dims: dims.to_vec(),
    })
}

pub fn infer_to_batched(x: &Shape) -> Result<Shape> {
    if x.batched || x.dims.is_empty() {
        return crate::value_error!(
            "ToBatched: expected a fixed tensor (batch, ..), received {}",
            x.display()
        );
    }
    Ok(Shape::batched(&x.dims[1..]))
}

pub fn infer_from_batched(x: &Shape, batch: usize) -> Result<Shape> {
    if !x.batched || batch == 0 {
        return crate::value_error!(
            "FromBatched({batch}): expected a batched tensor, received {}",
            x.display()
        );
    }
    let mut dims = vec![batch];
    dims.extend_from_slice(&x.dims);
    Ok(Shape::fixed(&dims))
}

/// The batch size a node fixes, if any: planning for another one is an error.
pub fn fixed_batch(op: &super::Op, in0: Option<&Shape>) -> Option<usize> {
    match op {
        super::Op::ToBatched => in0.map(|s| s.dims[0]),
        super::Op::FromBatched(b) => Some(*b),
        _ => None,
    }
}

pub fn infer_transpose(x: &Shape, perm: &[usize]) -> Result<Shape> {
    let mut seen = vec![false; x.dims.len()];
    if perm.len() != x.dims.len()
        || perm
            .iter()
            .any(|&p| p >= seen.len() || std::mem::replace(&mut seen[p], true))
    {
        return crate::value_error!(
            "transpose: {perm:?} is not a permutation of the {} per-sample axes of {}",
            x.dims.len(),
            x.display()
        );
    }
    Ok(Shape {
        batched: x.batched,
        dims: perm.iter().map(|&p| x.dims[p]).collect(),
    })
}

/// The permutation that undoes `perm`.
pub fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// `out[.., j, ..] = x[.., perm[j], ..]` over the per-sample axes.
pub fn transpose(x: &In<'_>, perm: &[usize], out: &mut [f32], out_dims: &[usize]) {
    let lead = x.dims.len() - perm.len();
    let mut in_strides = vec![0; x.dims.len()];
    let mut s = 1;
    for i in (0..x.dims.len()).rev() {
        in_strides[i] = s;
        s *= x.dims[i];
    }
    let mut strides: Vec<usize> = in_strides[..lead].to_vec();
    strides.extend(perm.iter().map(|&p| in_strides[lead + p]));
    for_each_broadcast(out_dims, [&strides], |o, [i]| out[o] = x.data[i]);
}

/// Pads `dims` with leading 1s to `rank`.
fn aligned(dims: &[usize], rank: usize) -> smallvec::SmallVec<[usize; 6]> {
    let mut v: smallvec::SmallVec<[usize; 6]> = smallvec::smallvec![1; rank - dims.len()];
    v.extend_from_slice(dims);
    v
}

pub fn broadcast_to(x: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    broadcast_scaled(x, out, out_dims, 1.0)
}

/// `broadcast_to` times `scale`. A per-channel vector repeated over every position (the
/// statistics of a BatchNormalization, a bias) is a row copy; the general case walks the
/// broadcast indices one element at a time (3 ns an element).
fn broadcast_scaled(x: &In<'_>, out: &mut [f32], out_dims: &[usize], scale: f32) {
    use rayon::prelude::*;
    let copy = |o: &mut [f32], v: &[f32]| {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                if scale == 1.0 {
                    o.copy_from_slice(v)
                } else {
                    o.iter_mut().zip(v).for_each(|(o, &v)| *o = v * scale)
                }
            },
        )
    };
    let n = x.data.len();
    if n == out.len() {
        copy(out, x.data);
    } else if n == 1 {
        out.fill(x.data[0] * scale);
    } else if is_suffix(x.dims, out_dims) {
        if out.len() >= super::PAR_THRESHOLD {
            let rows = (super::PAR_THRESHOLD / 4).div_ceil(n);
            out.par_chunks_mut(rows * n)
                .for_each(|o| o.chunks_mut(n).for_each(|o| copy(o, x.data)));
        } else {
            out.chunks_mut(n).for_each(|o| copy(o, x.data));
        }
    } else {
        let s = broadcast_strides(&aligned(x.dims, out_dims.len()), out_dims);
        for_each_broadcast(out_dims, [&s], |o, [i]| out[o] = x.data[i] * scale);
    }
}

/// `broadcast_to`, divided by how many times each element was repeated (the VJP of a mean).
pub fn broadcast_mean(x: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    let f = x.data.len() as f32 / out.len() as f32;
    broadcast_scaled(x, out, out_dims, f);
}

/// Rows per block of a large row sum (see [`sum_to`]).
const SUM_BLOCK_ROWS: usize = 2048;

/// Whether a sum of `x_dims` down to `out_dims` adds rows in blocks, and how many.
fn sum_blocks(x_len: usize, n: usize) -> usize {
    let rows = x_len / n.max(1);
    if x_len >= super::PAR_THRESHOLD && n > 0 && n <= 1024 {
        rows.div_ceil(SUM_BLOCK_ROWS)
    } else {
        1
    }
}

/// Scratch floats of `sum_to`: one partial sum per block of rows.
pub fn sum_to_scratch(x_dims: &[usize], out_dims: &[usize]) -> usize {
    let (x_len, n) = (
        x_dims.iter().product::<usize>(),
        out_dims.iter().product::<usize>(),
    );
    let blocks = sum_blocks(x_len, n);
    if blocks > 1 && is_suffix(out_dims, x_dims) {
        blocks * n
    } else {
        0
    }
}

pub fn sum_to(x: &In<'_>, out: &mut [f32], out_dims: &[usize], scratch: &mut [f32]) {
    let n = out.len();
    if x.data.len() == n {
        out.copy_from_slice(x.data);
    } else if n == 1 {
        out[0] = x.data.iter().sum();
    } else if is_suffix(out_dims, x.dims) {
        // Summing leading axes away (a bias gradient, a per-channel statistic): add rows,
        // 64 columns at a time in registers (adding into `out` row after row waited on
        // each store). Large sums add blocks of `SUM_BLOCK_ROWS` rows in parallel, then the
        // blocks' sums in order: the order is fixed by the shape, whatever the threads.
        const W: usize = 64;
        let rows_sum = |rows: &[f32], o: &mut [f32]| {
            crate::simd::dispatch(
                #[inline(always)]
                || {
                    for (j0, o) in (0..n).step_by(W).zip(o.chunks_mut(W)) {
                        let w = o.len();
                        let mut acc = [0.0f32; W];
                        acc[..w].copy_from_slice(&rows[j0..j0 + w]);
                        for r in rows.chunks(n).skip(1) {
                            for (a, &v) in acc[..w].iter_mut().zip(&r[j0..j0 + w]) {
                                *a += v;
                            }
                        }
                        o.copy_from_slice(&acc[..w]);
                    }
                },
            )
        };
        let blocks = sum_blocks(x.data.len(), n);
        if blocks > 1 {
            use rayon::prelude::*;
            let partial = &mut scratch[..blocks * n];
            partial
                .par_chunks_mut(n)
                .zip(x.data.par_chunks(SUM_BLOCK_ROWS * n))
                .for_each(|(p, rows)| rows_sum(rows, p));
            rows_sum(partial, out);
        } else {
            rows_sum(x.data, out);
        }
    } else {
        let s = broadcast_strides(&aligned(out_dims, x.dims.len()), x.dims);
        out.fill(0.0);
        for_each_broadcast(x.dims, [&s], |i, [o]| out[o] += x.data[i]);
    }
}
