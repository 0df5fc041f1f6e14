//! Picking elements by index tensors, as numpy's `take(x, idx, axis)` and
//! `take_along_axis(x, idx, -1)` do, and their VJPs, which scatter-add `dy` back into zeros of
//! `x`'s shape.
//!
//! Indices travel as f32 holding integers (exact below 2^24). A negative index counts from the
//! end, as in numpy (-1 is the last). An index that is not a whole number or lies outside
//! `[-len, len)` yields NaN where it is read, as [`super::Op::Gather`] does, rather than
//! reading out of bounds: `take` gives NaN output entries and its gradient is NaN throughout
//! (the embedding scatter's rule); `take_along` gives NaN entries and NaN gradient rows.
//!
//! `take` supports a fixed `x` with any indices (the output is batched when the indices are,
//! which needs `axis` 0: the embedding lookup, generalised to tables of any rank), and a
//! batched `x` with fixed indices along an axis >= 1 (the same columns of every sample).
//! `take_along` needs indices with `x`'s batchedness and leading axes.
//!
//! ```
//! use rustkeras::graph::{Graph, Shape};
//! use rustkeras::ops::Op;
//!
//! let mut g = Graph::new();
//! let x = g.input(Shape::batched(&[5, 4]));
//! let idx = g.iota(&[2], 0).unwrap();
//! let y = g.push(Op::Take { axis: 2 }, &[x, idx]).unwrap();
//! assert_eq!(g.shape(y), &Shape::batched(&[5, 2]));
//! ```

use smallvec::{smallvec, SmallVec};

use super::{In, Op};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

/// The element an index names on an axis of `len`: a whole number in `[-len, len)`, negative
/// ones counted from the end.
pub(crate) fn wrap(v: f32, len: usize) -> Option<usize> {
    let n = len as f32;
    if v.fract() != 0.0 || v < -n || v >= n {
        return None;
    }
    Some(if v < 0.0 {
        (v + n) as usize
    } else {
        v as usize
    })
}

pub fn infer_take(x: &Shape, idx: &Shape, axis: usize) -> Result<Shape> {
    let refuse = || {
        crate::value_error!(
            "take: supported are a fixed x with any indices (axis 0 when the indices are batched) and a batched x with fixed indices along an axis >= 1; received x {}, indices {}, axis {axis}",
            x.display(),
            idx.display()
        )
    };
    if axis >= x.rank() {
        return crate::value_error!(
            "take: axis {axis} is out of range for x of shape {}",
            x.display()
        );
    }
    match (x.batched, idx.batched) {
        (false, false) => {
            let mut dims = x.dims[..axis].to_vec();
            dims.extend(&idx.dims);
            dims.extend(&x.dims[axis + 1..]);
            Ok(Shape::fixed(&dims))
        }
        (false, true) if axis == 0 => {
            let mut dims = idx.dims.clone();
            dims.extend(&x.dims[1..]);
            Ok(Shape::batched(&dims))
        }
        (true, false) if axis >= 1 => {
            let mut dims = x.dims[..axis - 1].to_vec();
            dims.extend(&idx.dims);
            dims.extend(&x.dims[axis..]);
            Ok(Shape::batched(&dims))
        }
        _ => refuse(),
    }
}

pub fn take_vjp(
    g: &mut Graph,
    axis: usize,
    x: NodeId,
    idx: NodeId,
    dy: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let shape = g.shape(x).clone();
    let dx = g.push(Op::TakeGrad { axis, shape }, &[dy, idx])?;
    Ok(smallvec![Some(dx), None])
}

/// `x`'s concrete dims around `axis`: `(outer, len, inner)`.
pub(crate) fn around(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

pub fn take(x: &In<'_>, idx: &[f32], axis: usize, out: &mut [f32]) {
    let (outer, len, inner) = around(x.dims, axis);
    let m = idx.len();
    for o in 0..outer {
        for (j, &v) in idx.iter().enumerate() {
            let dst = &mut out[(o * m + j) * inner..(o * m + j + 1) * inner];
            match wrap(v, len) {
                Some(a) => dst.copy_from_slice(&x.data[(o * len + a) * inner..][..inner]),
                None => dst.fill(f32::NAN),
            }
        }
    }
}

/// The VJP of [`take`]: `out[.., idx[j], ..] += dy[.., j, ..]`, all NaN when any index is
/// invalid.
pub fn take_grad(dy: &[f32], idx: &[f32], axis: usize, out: &mut [f32], out_dims: &[usize]) {
    let (outer, len, inner) = around(out_dims, axis);
    let m = idx.len();
    if idx.iter().any(|&v| wrap(v, len).is_none()) {
        out.fill(f32::NAN);
        return;
    }
    out.fill(0.0);
    for o in 0..outer {
        for (j, &v) in idx.iter().enumerate() {
            let a = wrap(v, len).expect("checked above");
            let src = &dy[(o * m + j) * inner..][..inner];
            let dst = &mut out[(o * len + a) * inner..][..inner];
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
        }
    }
}

pub fn infer_take_along(x: &Shape, idx: &Shape) -> Result<Shape> {
    let (Some(_), Some(_)) = (x.dims.last(), idx.dims.last()) else {
        return crate::value_error!(
            "take_along: x and the indices need a last axis besides the batch axis, received {} and {}",
            x.display(),
            idx.display()
        );
    };
    let lead = |s: &Shape| (s.batched, s.dims[..s.dims.len() - 1].to_vec());
    if lead(x) != lead(idx) {
        return crate::value_error!(
            "take_along: the indices {} must have the leading axes of x {}",
            idx.display(),
            x.display()
        );
    }
    Ok(idx.clone())
}

pub fn take_along(x: &In<'_>, idx: &In<'_>, out: &mut [f32]) {
    let c = *x.dims.last().expect("rank checked at build");
    let m = *idx.dims.last().expect("rank checked at build");
    for ((o, r), i) in out
        .chunks_mut(m)
        .zip(x.data.chunks(c))
        .zip(idx.data.chunks(m))
    {
        for (o, &v) in o.iter_mut().zip(i) {
            *o = wrap(v, c).map_or(f32::NAN, |a| r[a]);
        }
    }
}

/// The VJP of [`take_along`]: `out[r, idx[r, j]] += dy[r, j]`, a NaN row where any of its
/// indices is invalid.
pub fn scatter_along(dy: &[f32], idx: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    let c = *out_dims.last().expect("rank checked at build");
    let m = *idx.dims.last().expect("rank checked at build");
    for ((r, d), i) in out.chunks_mut(c).zip(dy.chunks(m)).zip(idx.data.chunks(m)) {
        if i.iter().any(|&v| wrap(v, c).is_none()) {
            r.fill(f32::NAN);
            continue;
        }
        r.fill(0.0);
        for (&g, &v) in d.iter().zip(i) {
            r[wrap(v, c).expect("checked above")] += g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::tests::{b, case, check, f};
    use crate::ops::{BinaryOp, UnaryOp};

    #[test]
    fn take_follows_numpy_on_every_axis() {
        // x (2, 3, 2) = 0..12; numpy.take(x, [2, -1, 0], axis) for each axis.
        let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let idx = [1.0, -1.0, 0.0];
        let cases: [(usize, Vec<f32>); 3] = [
            (
                0,
                vec![
                    6., 7., 8., 9., 10., 11., 6., 7., 8., 9., 10., 11., 0., 1., 2., 3., 4., 5.,
                ],
            ),
            (1, vec![2., 3., 4., 5., 0., 1., 8., 9., 10., 11., 6., 7.]),
            (
                2,
                vec![
                    1., 1., 0., 3., 3., 2., 5., 5., 4., 7., 7., 6., 9., 9., 8., 11., 11., 10.,
                ],
            ),
        ];
        for (axis, want) in cases {
            let mut out = vec![0.0; want.len()];
            let inp = In {
                data: &x,
                dims: &[2, 3, 2],
            };
            take(&inp, &idx, axis, &mut out);
            assert_eq!(out, want, "axis {axis}");
        }
        // Bad indices: NaN where read.
        let mut out = vec![0.0; 4];
        let inp = In {
            data: &x[..6],
            dims: &[3, 2],
        };
        take(&inp, &[3.0, 0.5], 0, &mut out);
        assert!(out.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn take_shapes_cover_the_supported_forms_and_refuse_the_rest() {
        let s = |x: Shape, i: Shape, a| infer_take(&x, &i, a);
        assert_eq!(s(f(&[10, 4]), b(&[3]), 0).unwrap(), b(&[3, 4]));
        assert_eq!(s(f(&[10, 4]), f(&[2, 3]), 1).unwrap(), f(&[10, 2, 3]));
        assert_eq!(s(b(&[5, 4]), f(&[2]), 2).unwrap(), b(&[5, 2]));
        assert_eq!(s(b(&[5, 4]), f(&[]), 1).unwrap(), b(&[4]));
        assert!(s(f(&[10, 4]), b(&[3]), 1).is_err());
        assert!(s(b(&[5, 4]), f(&[2]), 0).is_err());
        assert!(s(b(&[5, 4]), b(&[2]), 1).is_err());
        assert!(s(f(&[5]), f(&[2]), 1).is_err());
    }

    #[test]
    fn take_along_picks_per_row_and_scatters_back() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let idx = [2.0, 0.0, 2.0, -1.0, 1.0, 7.0];
        let mut out = [0.0; 6];
        let (xi, ii) = (
            In {
                data: &x,
                dims: &[2, 3],
            },
            In {
                data: &idx,
                dims: &[2, 3],
            },
        );
        take_along(&xi, &ii, &mut out);
        assert_eq!(&out[..5], &[3.0, 1.0, 3.0, 6.0, 5.0]);
        assert!(out[5].is_nan());
        let mut dx = [0.0; 6];
        scatter_along(&[1.0, 2.0, 4.0, 1.0, 1.0, 1.0], &ii, &mut dx, &[2, 3]);
        assert_eq!(&dx[..3], &[2.0, 0.0, 5.0]);
        assert!(dx[3..].iter().all(|v| v.is_nan()));
    }

    /// Batched whole-number indices of per-sample `dims` in `[-len, len)`, with repeats:
    /// `(3 j) % (2 len) - len` for `j` counting along the last axis.
    fn indices(g: &mut Graph, dims: &[usize], len: usize) -> NodeId {
        let j = g.iota(dims, dims.len() - 1).unwrap();
        let t = g.unary(UnaryOp::Scale(3.0), j).unwrap();
        let m = g.scalar(2.0 * len as f32);
        let t = g.binary(BinaryOp::FloorMod, t, m).unwrap();
        let t = g.unary(UnaryOp::AddScalar(-(len as f32)), t).unwrap();
        g.push(Op::BroadcastTo(Shape::batched(dims)), &[t]).unwrap()
    }

    #[test]
    fn take_and_take_along_match_finite_differences() {
        // A fixed table picked by batched indices (repeats add up), a batched x by fixed
        // indices on a middle axis, and a fixed x by fixed indices.
        check(case(&[f(&[4, 3])], |g, x| {
            let idx = indices(g, &[5], 4);
            g.push(Op::Take { axis: 0 }, &[x[0], idx]).unwrap()
        }));
        check(case(&[b(&[4, 3])], |g, x| {
            let idx = g.iota(&[2, 3], 1).unwrap();
            let two = g.scalar(2.0);
            let idx = g.binary(BinaryOp::FloorMod, idx, two).unwrap();
            g.push(Op::Take { axis: 1 }, &[x[0], idx]).unwrap()
        }));
        check(case(&[f(&[2, 5])], |g, x| {
            let idx = g.iota(&[7], 0).unwrap();
            let idx = g.unary(UnaryOp::AddScalar(-3.0), idx).unwrap();
            g.push(Op::Take { axis: 1 }, &[x[0], idx]).unwrap()
        }));
        // Along the last axis: the top 3 of each row, and indices with repeats.
        // (Values apart, so that the finite differences do not reorder them.)
        let mut c = case(&[b(&[2, 5])], |g, x| {
            let idx = g.push(Op::TopKIndices(3), &[x[0]]).unwrap();
            g.push(Op::TakeAlong, &[x[0], idx]).unwrap()
        });
        c.distinct = true;
        check(c);
        check(case(&[b(&[2, 5])], |g, x| {
            let idx = indices(g, &[2, 7], 5);
            g.push(Op::TakeAlong, &[x[0], idx]).unwrap()
        }));
    }
}
