//! Concatenation along one axis, and the two ops its gradient needs: `SliceAxis` takes one
//! input's part back out of the concatenation (the VJP of `Concat`), and `UnsliceAxis` puts a
//! slice's gradient back in place among zeros (the VJP of `SliceAxis`, and the other way
//! round). Axes count the batch axis as 0, as reductions do; a batched tensor is never
//! concatenated or sliced along its batch axis.
//!
//! ```
//! use rustkeras::graph::{Graph, Shape};
//! use rustkeras::ops::Op;
//! let mut g = Graph::new();
//! let a = g.input(Shape::batched(&[2, 3]));
//! let b = g.input(Shape::batched(&[4, 3]));
//! let c = g.push(Op::Concat { axis: 1 }, &[a, b]).unwrap();
//! assert_eq!(g.shape(c), &Shape::batched(&[6, 3]));
//! ```

use smallvec::SmallVec;

use super::{In, Op};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

/// The index into `dims` of a full-rank `axis`, if the axis is one that may be cut.
fn dim_index(s: &Shape, axis: usize) -> Option<usize> {
    let b = usize::from(s.batched);
    (axis >= b && axis < s.rank()).then(|| axis - b)
}

fn bad_axis<T>(what: &str, s: &Shape, axis: usize) -> Result<T> {
    crate::value_error!(
        "{what}: axis {axis} is not a per-sample axis of a tensor of shape {} (axis 0 is the batch axis)",
        s.display()
    )
}

pub fn infer_concat(axis: usize, ins: &[&Shape]) -> Result<Shape> {
    let Some(first) = ins.first() else {
        return crate::value_error!("concatenate: needs at least one input");
    };
    let Some(k) = dim_index(first, axis) else {
        return bad_axis("concatenate", first, axis);
    };
    let mut dims = first.dims.clone();
    dims[k] = 0;
    for s in ins {
        let same_elsewhere = s.batched == first.batched
            && s.dims.len() == first.dims.len()
            && s.dims
                .iter()
                .zip(&first.dims)
                .enumerate()
                .all(|(i, (a, b))| i == k || a == b);
        if !same_elsewhere {
            return crate::value_error!(
                "concatenate: inputs must have matching shapes except for the concatenation axis {axis}. \
                 Received shapes {} and {}",
                first.display(),
                s.display()
            );
        }
        dims[k] += s.dims[k];
    }
    Ok(Shape {
        batched: first.batched,
        dims,
    })
}

pub fn infer_slice(axis: usize, start: usize, len: usize, x: &Shape) -> Result<Shape> {
    let Some(k) = dim_index(x, axis) else {
        return bad_axis("slice", x, axis);
    };
    if len == 0 || start + len > x.dims[k] {
        return crate::value_error!(
            "slice: [{start}, {}) is not a non-empty range of axis {axis} of {}",
            start + len,
            x.display()
        );
    }
    let mut s = x.clone();
    s.dims[k] = len;
    Ok(s)
}

pub fn infer_unslice(axis: usize, start: usize, full: usize, x: &Shape) -> Result<Shape> {
    let Some(k) = dim_index(x, axis) else {
        return bad_axis("unslice", x, axis);
    };
    if start + x.dims[k] > full {
        return crate::value_error!(
            "unslice: {} values from {start} do not fit an axis of {full}",
            x.dims[k]
        );
    }
    let mut s = x.clone();
    s.dims[k] = full;
    Ok(s)
}

/// `(outer, len, inner)`: the element counts before, along and after `axis` of concrete dims.
fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

pub fn concat_forward(axis: usize, ins: &[In<'_>], out: &mut [f32], out_dims: &[usize]) {
    let (outer, total, inner) = split(out_dims, axis);
    let row = total * inner;
    let mut offset = 0;
    for x in ins {
        let w = x.dims[axis] * inner;
        for o in 0..outer {
            out[o * row + offset..][..w].copy_from_slice(&x.data[o * w..][..w]);
        }
        offset += w;
    }
}

pub fn slice_forward(axis: usize, start: usize, x: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    let (outer, full, inner) = split(x.dims, axis);
    let w = out_dims[axis] * inner;
    for o in 0..outer {
        out[o * w..][..w].copy_from_slice(&x.data[o * full * inner + start * inner..][..w]);
    }
}

pub fn unslice_forward(
    axis: usize,
    start: usize,
    dy: &In<'_>,
    out: &mut [f32],
    out_dims: &[usize],
) {
    let (outer, full, inner) = split(out_dims, axis);
    let w = dy.dims[axis] * inner;
    out.fill(0.0);
    for o in 0..outer {
        out[o * full * inner + start * inner..][..w].copy_from_slice(&dy.data[o * w..][..w]);
    }
}

/// Each input's gradient is its own part of `dy`.
pub fn vjp_concat(
    g: &mut Graph,
    axis: usize,
    inputs: &[NodeId],
    dy: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let mut start = 0;
    let mut out = SmallVec::new();
    for &x in inputs {
        let s = g.shape(x);
        let len = s.dims[axis - usize::from(s.batched)];
        out.push(Some(g.push(Op::SliceAxis { axis, start, len }, &[dy])?));
        start += len;
    }
    Ok(out)
}

pub fn vjp_slice(
    g: &mut Graph,
    axis: usize,
    start: usize,
    x: NodeId,
    dy: NodeId,
) -> Result<NodeId> {
    let s = g.shape(x);
    let full = s.dims[axis - usize::from(s.batched)];
    g.push(Op::UnsliceAxis { axis, start, full }, &[dy])
}

pub fn vjp_unslice(
    g: &mut Graph,
    axis: usize,
    start: usize,
    dy_in: NodeId,
    dy: NodeId,
) -> Result<NodeId> {
    let s = g.shape(dy_in);
    let len = s.dims[axis - usize::from(s.batched)];
    g.push(Op::SliceAxis { axis, start, len }, &[dy])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Ctx;
    use crate::program::Program;

    #[test]
    fn concat_then_slice_round_trips_along_a_middle_axis() {
        let mut g = Graph::new();
        let a = g.input(Shape::batched(&[1, 2]));
        let b = g.input(Shape::batched(&[2, 2]));
        let c = g.push(Op::Concat { axis: 1 }, &[a, b]).unwrap();
        let back = g
            .push(
                Op::SliceAxis {
                    axis: 1,
                    start: 1,
                    len: 2,
                },
                &[c],
            )
            .unwrap();
        let mut p = Program::plan(&g, &[c, back], 2).unwrap();
        let ctx = Ctx {
            training: false,
            seed: 0,
            step: 0,
        };
        let xa = [1.0, 2.0, 3.0, 4.0];
        let xb = [10.0, 11.0, 12.0, 13.0, 20.0, 21.0, 22.0, 23.0];
        p.run(&[], &[&xa, &xb], &ctx).unwrap();
        assert_eq!(
            p.value(c),
            &[1.0, 2.0, 10.0, 11.0, 12.0, 13.0, 3.0, 4.0, 20.0, 21.0, 22.0, 23.0]
        );
        assert_eq!(p.value(back), &xb);
    }

    #[test]
    fn mismatched_shapes_and_the_batch_axis_are_errors() {
        let mut g = Graph::new();
        let a = g.input(Shape::batched(&[2, 3]));
        let b = g.input(Shape::batched(&[2, 4]));
        assert!(g.push(Op::Concat { axis: 1 }, &[a, b]).is_err());
        assert!(g.push(Op::Concat { axis: 2 }, &[a, b]).is_ok());
        assert!(g.push(Op::Concat { axis: 0 }, &[a, a]).is_err());
        assert!(g.push(Op::Concat { axis: 3 }, &[a, a]).is_err());
    }
}
