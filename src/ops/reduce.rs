//! Reductions (sum, mean, max, min, product) over any set of axes. Axes count on the full
//! rank: axis 0 is the batch axis of a batched tensor, and reducing it makes the result
//! unbatched. NaN propagates through every kind, max and min included (as in numpy), on
//! both devices.

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
    Min,
    Prod,
}

impl ReduceKind {
    /// The value of an empty reduction, where accumulation starts.
    fn identity(self) -> f32 {
        match self {
            ReduceKind::Sum | ReduceKind::Mean => 0.0,
            ReduceKind::Max => f32::NEG_INFINITY,
            ReduceKind::Min => f32::INFINITY,
            ReduceKind::Prod => 1.0,
        }
    }

    #[inline]
    fn combine(self, acc: f32, v: f32) -> f32 {
        match self {
            ReduceKind::Sum | ReduceKind::Mean => acc + v,
            // `f32::max` would skip a NaN; numpy's max returns it.
            ReduceKind::Max => {
                if v > acc || v.is_nan() {
                    v
                } else {
                    acc
                }
            }
            ReduceKind::Min => {
                if v < acc || v.is_nan() {
                    v
                } else {
                    acc
                }
            }
            ReduceKind::Prod => acc * v,
        }
    }
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
        // Every element equal to the extreme gets the whole gradient (ties share it fully);
        // so does every NaN, which made the extreme NaN (`x != x` marks it).
        ReduceKind::Max | ReduceKind::Min => {
            let yk = if keepdims {
                y
            } else {
                g.reshape(y, &kept.dims)?
            };
            let hit = g.binary(BinaryOp::Equal, x, yk)?;
            let nan = g.binary(BinaryOp::NotEqual, x, x)?;
            let mask = g.add(hit, nan)?;
            g.mul(mask, dyk)
        }
        ReduceKind::Prod => g.push(
            Op::ReduceProdGrad {
                axes: axes.iter().copied().collect(),
            },
            &[x, dyk],
        ),
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
        out.fill(kind.identity());
        for_each_broadcast(dims, [&ostrides], |i, [o]| {
            out[o] = kind.combine(out[o], x.data[i]);
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
            ReduceKind::Sum | ReduceKind::Mean => finish(r.iter().sum::<f32>()),
            _ => r.iter().fold(kind.identity(), |a, &v| kind.combine(a, v)),
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
                *o = kind.combine(*o, v);
            }
        }
        o_blk.iter_mut().for_each(|v| *v = finish(*v));
    }
}

/// The shape rule of [`Op::ReduceProdGrad`]: `dy` must have `x`'s shape with the reduced
/// axes kept as 1.
pub fn infer_prod_grad(x: &Shape, dy: &Shape, axes: &[usize]) -> Result<Shape> {
    let kept = infer(x, axes, true)?;
    if &kept != dy {
        return crate::value_error!(
            "internal: product gradient of {} over {axes:?} expects dy of shape {}, got {}",
            x.display(),
            kept.display(),
            dy.display()
        );
    }
    Ok(x.clone())
}

/// The index of the kept-dims output group that element `i` of `dims` belongs to.
fn group_of(i: usize, dims: &[usize], ostrides: &[usize]) -> usize {
    let (mut rest, mut o) = (i, 0);
    for (&d, &s) in dims.iter().zip(ostrides).rev() {
        o += (rest % d) * s;
        rest /= d;
    }
    o
}

/// `dx[i] = dy[group(i)] * (product of the other elements of i's group)`, computed as an
/// exclusive prefix product times an exclusive suffix product, without division, so that
/// zeros get the product of the others (and any other element of a group holding a zero,
/// 0). `scratch` holds one running product per group.
pub fn prod_grad(x: &In<'_>, dy: &[f32], axes: &[usize], out: &mut [f32], scratch: &mut [f32]) {
    let dims = x.dims;
    let mut ostrides: SmallVec<[usize; 6]> = SmallVec::from_elem(0, dims.len());
    let mut s = 1;
    for i in (0..dims.len()).rev() {
        if !axes.contains(&i) {
            ostrides[i] = s;
            s *= dims[i];
        }
    }
    let acc = &mut scratch[..dy.len()];
    acc.fill(1.0);
    for (i, o) in out.iter_mut().enumerate() {
        let grp = group_of(i, dims, &ostrides);
        *o = acc[grp];
        acc[grp] *= x.data[i];
    }
    acc.fill(1.0);
    for (i, o) in out.iter_mut().enumerate().rev() {
        let grp = group_of(i, dims, &ostrides);
        *o *= acc[grp] * dy[grp];
        acc[grp] *= x.data[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::tests::{b, case, check, f};
    use crate::ops::Ctx;
    use crate::program::Program;

    /// Naive reference: reduces `x (2, 3, 4)` over `axes` with `op`, by brute force.
    fn naive(x: &[f32], axes: &[usize], init: f32, op: impl Fn(f32, f32) -> f32) -> Vec<f32> {
        let dims = [2, 3, 4];
        let kept: Vec<usize> = (0..3)
            .map(|a| if axes.contains(&a) { 1 } else { dims[a] })
            .collect();
        let mut out = vec![init; kept.iter().product()];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    let c = [i, j, k];
                    let c: Vec<usize> = (0..3).map(|a| c[a].min(kept[a] - 1)).collect();
                    let o = (c[0] * kept[1] + c[1]) * kept[2] + c[2];
                    out[o] = op(out[o], x[(i * 3 + j) * 4 + k]);
                }
            }
        }
        out
    }

    #[test]
    fn min_and_prod_match_a_naive_reduction() {
        let x: Vec<f32> = (0..24)
            .map(|i| ((i * 7) % 11) as f32 * 0.25 - 1.0)
            .collect();
        for axes in [
            vec![0],
            vec![1],
            vec![2],
            vec![0, 2],
            vec![1, 2],
            vec![0, 1, 2],
        ] {
            for (kind, init, op) in [
                (
                    ReduceKind::Min,
                    f32::INFINITY,
                    f32::min as fn(f32, f32) -> f32,
                ),
                (ReduceKind::Prod, 1.0, |a, b| a * b),
                (ReduceKind::Max, f32::NEG_INFINITY, f32::max),
                (ReduceKind::Sum, 0.0, |a, b| a + b),
            ] {
                let want = naive(&x, &axes, init, op);
                let mut out = vec![0.0; want.len()];
                let inp = In {
                    data: &x,
                    dims: &[2, 3, 4],
                };
                forward(kind, &inp, &axes, &mut out);
                assert_eq!(out, want, "{kind:?} over {axes:?}");
            }
        }
    }

    #[test]
    fn max_and_min_propagate_nan_on_every_path() {
        let mut x = vec![1.0f32; 24];
        x[5] = f32::NAN;
        // Contiguous rows, blocks, and the strided walk.
        for axes in [vec![2], vec![1], vec![0, 2], vec![0, 1, 2]] {
            for kind in [ReduceKind::Max, ReduceKind::Min] {
                let n = 24 / axes.iter().map(|&a| [2, 3, 4][a]).product::<usize>();
                let mut out = vec![0.0; n];
                let inp = In {
                    data: &x,
                    dims: &[2, 3, 4],
                };
                forward(kind, &inp, &axes, &mut out);
                assert_eq!(out.iter().filter(|v| v.is_nan()).count(), 1);
            }
        }
    }

    #[test]
    fn min_and_prod_match_finite_differences() {
        for kind in [ReduceKind::Min, ReduceKind::Prod] {
            for (axes, keep) in [
                (vec![2], false),
                (vec![1], true),
                (vec![0, 2], false),
                (vec![0, 1, 2], false),
            ] {
                let mut c = case(&[b(&[3, 4])], move |g, x| {
                    g.reduce(kind, x[0], &axes, keep).unwrap()
                });
                c.distinct = true;
                check(c);
            }
        }
        check(case(&[f(&[2, 3])], |g, x| {
            g.reduce(ReduceKind::Prod, x[0], &[0], false).unwrap()
        }));
    }

    #[test]
    fn the_product_gradient_is_the_product_of_the_others_at_zeros() {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[4]));
        let y = g.reduce(ReduceKind::Prod, x, &[1], false).unwrap();
        let loss = g.reduce_all(ReduceKind::Sum, y).unwrap();
        let dx = crate::autodiff::gradients(&mut g, loss, &[x]).unwrap()[0];
        let mut p = Program::plan(&g, &[y, dx], 3).unwrap();
        // One zero, two zeros, none.
        let rows = [2.0, 0.0, 3.0, -1.0, 0.0, 5.0, 0.0, 2.0, 1.5, 2.0, -2.0, 4.0];
        p.run(&[], &[&rows], &Ctx::default()).unwrap();
        assert_eq!(p.value(y), &[0.0, 0.0, -24.0]);
        let want = [
            0.0, -6.0, 0.0, 0.0, //
            0.0, 0.0, 0.0, 0.0, //
            -16.0, -12.0, 12.0, -6.0,
        ];
        assert_eq!(p.value(dx), &want);
    }
}
