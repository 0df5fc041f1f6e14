//! `where(cond, a, b)`: `a` where `cond` is not zero, else `b`, with numpy broadcasting of all
//! three. A select, not arithmetic, so a NaN or infinity in the branch not taken never
//! reaches the result (nor, in the VJP, the gradient). A NaN `cond` counts as true, as in
//! numpy (NaN is not zero).
//!
//! ```
//! use rustkeras::graph::{Graph, Shape};
//! use rustkeras::ops::Op;
//!
//! let mut g = Graph::new();
//! let cond = g.input(Shape::batched(&[3]));
//! let a = g.input(Shape::batched(&[1]));
//! let b = g.scalar(0.0);
//! let y = g.push(Op::Where, &[cond, a, b]).unwrap();
//! assert_eq!(g.shape(y), &Shape::batched(&[3]));
//! ```

use smallvec::{smallvec, SmallVec};

use super::elementwise::{broadcast_shape, broadcast_strides, for_each_broadcast, unbroadcast};
use super::{In, Op};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

/// The broadcast shape of `(cond, a, b)` (batched when any of them is).
pub fn infer(cond: &Shape, a: &Shape, b: &Shape) -> Result<Shape> {
    broadcast_shape(&broadcast_shape(cond, a)?, b)
}

/// `da = where(cond, dy, 0)` and `db = where(cond, 0, dy)`, each summed back to its input's
/// shape; `cond` gets no gradient.
pub fn vjp(
    g: &mut Graph,
    cond: NodeId,
    a: NodeId,
    b: NodeId,
    dy: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let (sa, sb) = (g.shape(a).clone(), g.shape(b).clone());
    let zero = g.scalar(0.0);
    let da = g.push(Op::Where, &[cond, dy, zero])?;
    let db = g.push(Op::Where, &[cond, zero, dy])?;
    Ok(smallvec![
        None,
        Some(unbroadcast(g, da, &sa)?),
        Some(unbroadcast(g, db, &sb)?)
    ])
}

pub fn forward(cond: &In<'_>, a: &In<'_>, b: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    let n = out.len();
    let pick = |c: f32, a: f32, b: f32| if c != 0.0 { a } else { b };
    if cond.data.len() == n && a.data.len() == n && b.data.len() == n {
        for (((o, &c), &a), &b) in out.iter_mut().zip(cond.data).zip(a.data).zip(b.data) {
            *o = pick(c, a, b);
        }
        return;
    }
    let sc = broadcast_strides(cond.dims, out_dims);
    let sa = broadcast_strides(a.dims, out_dims);
    let sb = broadcast_strides(b.dims, out_dims);
    for_each_broadcast(out_dims, [&sc, &sa, &sb], |o, [ic, ia, ib]| {
        out[o] = pick(cond.data[ic], a.data[ia], b.data[ib]);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::tests::{b, case, check, f};
    use crate::ops::BinaryOp;

    #[test]
    fn where_broadcasts_and_keeps_nan_out_of_the_branch_not_taken() {
        // cond (2, 1), a (3,), b scalar -> (2, 3)
        let mut out = [0.0; 6];
        forward(
            &In {
                data: &[1.0, 0.0],
                dims: &[2, 1],
            },
            &In {
                data: &[1.0, 2.0, 3.0],
                dims: &[3],
            },
            &In {
                data: &[f32::NAN],
                dims: &[],
            },
            &mut out,
            &[2, 3],
        );
        assert_eq!(&out[..3], &[1.0, 2.0, 3.0]);
        assert!(out[3..].iter().all(|v| v.is_nan()));
        let mut out = [0.0; 3];
        forward(
            &In {
                data: &[f32::NAN, -0.0, 2.0],
                dims: &[3],
            },
            &In {
                data: &[1.0; 3],
                dims: &[3],
            },
            &In {
                data: &[f32::INFINITY; 3],
                dims: &[3],
            },
            &mut out,
            &[3],
        );
        assert_eq!(out, [1.0, f32::INFINITY, 1.0]);
        assert_eq!(
            infer(
                &Shape::fixed(&[2, 1]),
                &Shape::batched(&[1, 3]),
                &Shape::scalar()
            )
            .unwrap(),
            Shape::batched(&[2, 3])
        );
        assert!(infer(&Shape::fixed(&[2]), &Shape::fixed(&[3]), &Shape::scalar()).is_err());
    }

    #[test]
    fn where_matches_finite_differences() {
        // The condition compares the first input with a constant away from its values' grid.
        for shapes in [
            [b(&[2, 3]), b(&[2, 3]), b(&[2, 3])],
            [b(&[2, 3]), f(&[3]), f(&[])],
            [f(&[2, 1]), b(&[1, 3]), f(&[2, 3])],
        ] {
            check(case(&shapes, |g, x| {
                let t = g.scalar(0.013);
                let cond = g.binary(BinaryOp::Greater, x[0], t).unwrap();
                g.push(Op::Where, &[cond, x[1], x[2]]).unwrap()
            }));
        }
    }
}
