//! Reductions (sum, mean, max) over any set of axes. Axes count on the full rank: axis 0
//! is the batch axis of a batched tensor, and reducing it makes the result unbatched.

use rayon::prelude::*;
use smallvec::SmallVec;

use super::elementwise::{for_each_broadcast, BinaryOp};
use super::{In, Op};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
}

pub fn infer(x: &Shape, axes: &[usize], keepdims: bool) -> Result<Shape> {
    let r = x.rank();
    if let Some(&a) = axes.iter().find(|&&a| a >= r) {
        return crate::value_error!("reduce: axis {a} is out of range for shape {}", x.display());
    }
    if axes.windows(2).any(|w| w[0] >= w[1]) {
        return crate::value_error!("reduce: axes must be sorted and unique, got {axes:?}");
    }
    let full = x.concrete(1);
    let reduces_batch = x.batched && axes.contains(&0);
    let mut dims = Vec::new();
    for (i, &d) in full.iter().enumerate() {
        if x.batched && i == 0 && !reduces_batch {
            continue;
        }
        if axes.contains(&i) {
            if keepdims {
                dims.push(1);
            }
        } else {
            dims.push(d);
        }
    }
    Ok(Shape {
        batched: x.batched && !reduces_batch,
        dims,
    })
}

pub fn vjp(
    g: &mut Graph,
    kind: ReduceKind,
    axes: &[usize],
    keepdims: bool,
    x: NodeId,
    y: NodeId,
    dy: NodeId,
) -> Result<NodeId> {
    let xs = g.shape(x).clone();
    let kept = infer(&xs, axes, true)?;
    let dyk = if keepdims {
        dy
    } else {
        g.reshape(dy, &kept.dims)?
    };
    match kind {
        ReduceKind::Sum => g.push(Op::BroadcastTo(xs), &[dyk]),
        ReduceKind::Mean => g.push(Op::BroadcastMean(xs), &[dyk]),
        ReduceKind::Max => {
            let yk = if keepdims {
                y
            } else {
                g.reshape(y, &kept.dims)?
            };
            let mask = g.binary(BinaryOp::Equal, x, yk)?;
            g.mul(mask, dyk)
        }
    }
}

pub fn forward(kind: ReduceKind, x: &In<'_>, axes: &[usize], out: &mut [f32]) {
    let dims = x.dims;
    let contiguous = axes.windows(2).all(|w| w[1] == w[0] + 1);
    if axes.is_empty() {
        out.copy_from_slice(x.data);
        return;
    }
    let count: usize = axes.iter().map(|&a| dims[a]).product();
    if contiguous {
        let (lo, hi) = (axes[0], axes[axes.len() - 1]);
        let outer: usize = dims[..lo].iter().product();
        let inner: usize = dims[hi + 1..].iter().product();
        reduce_blocks(kind, x.data, outer, count, inner, out);
    } else {
        // General case: walk the input, accumulating into the output with zero strides on
        // the reduced axes.
        let mut ostrides: SmallVec<[usize; 6]> = SmallVec::from_elem(0, dims.len());
        let mut s = 1;
        for i in (0..dims.len()).rev() {
            if !axes.contains(&i) {
                ostrides[i] = s;
                s *= dims[i];
            }
        }
        let init = if kind == ReduceKind::Max {
            f32::NEG_INFINITY
        } else {
            0.0
        };
        out.fill(init);
        for_each_broadcast(dims, [&ostrides], |i, [o]| {
            out[o] = if kind == ReduceKind::Max {
                out[o].max(x.data[i])
            } else {
                out[o] + x.data[i]
            };
        });
        if kind == ReduceKind::Mean {
            out.iter_mut().for_each(|v| *v /= count as f32);
        }
    }
}

/// Reduces the middle axis of an `(outer, count, inner)` block layout.
fn reduce_blocks(
    kind: ReduceKind,
    x: &[f32],
    outer: usize,
    count: usize,
    inner: usize,
    out: &mut [f32],
) {
    let finish = |v: f32| {
        if kind == ReduceKind::Mean {
            v / count as f32
        } else {
            v
        }
    };
    if inner == 1 {
        let row = |r: &[f32]| match kind {
            ReduceKind::Max => r.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            _ => finish(r.iter().sum::<f32>()),
        };
        if x.len() >= super::PAR_THRESHOLD && outer > 1 {
            out.par_iter_mut()
                .zip(x.par_chunks(count))
                .for_each(|(o, r)| *o = row(r));
        } else {
            out.iter_mut()
                .zip(x.chunks(count))
                .for_each(|(o, r)| *o = row(r));
        }
        return;
    }
    for (o_blk, x_blk) in out.chunks_mut(inner).zip(x.chunks(count * inner)) {
        o_blk.copy_from_slice(&x_blk[..inner]);
        for r in x_blk.chunks(inner).skip(1) {
            for (o, &v) in o_blk.iter_mut().zip(r) {
                *o = if kind == ReduceKind::Max {
                    o.max(v)
                } else {
                    *o + v
                };
            }
        }
        o_blk.iter_mut().for_each(|v| *v = finish(*v));
    }
}
