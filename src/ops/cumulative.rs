//! Cumulative sums and products along one axis (numpy's `cumsum` and `cumprod`, and their
//! reverse, which accumulates from the end). The axis counts the batch axis as 0 and may be
//! it: a running sum over the samples of a batch.
//!
//! The VJP of a cumulative sum is the cumulative sum of `dy` in the other direction. That of a
//! cumulative product is `reverse_cumsum(dy * y) / x`, which divides by `x`: it is exact for
//! inputs without zeros and gives NaN or infinity where an input is zero.
//!
//! ```
//! use rustkeras::graph::{Graph, Shape};
//! use rustkeras::ops::cumulative::Cumulative;
//! use rustkeras::ops::Op;
//!
//! let mut g = Graph::new();
//! let x = g.input(Shape::batched(&[4]));
//! let op = Op::Cumulative { kind: Cumulative::Sum, axis: 1, reverse: false };
//! let y = g.push(op, &[x]).unwrap();
//! assert_eq!(g.shape(y), &Shape::batched(&[4]));
//! ```

use super::{In, Op};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

/// What a cumulative op accumulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cumulative {
    Sum,
    Prod,
}

pub fn infer(x: &Shape, axis: usize) -> Result<Shape> {
    if axis >= x.rank() {
        return crate::value_error!(
            "cumulative op: axis {axis} is out of range for shape {}",
            x.display()
        );
    }
    Ok(x.clone())
}

pub fn vjp(
    g: &mut Graph,
    kind: Cumulative,
    axis: usize,
    reverse: bool,
    x: NodeId,
    y: NodeId,
    dy: NodeId,
) -> Result<NodeId> {
    let back = |g: &mut Graph, v: NodeId| {
        let op = Op::Cumulative {
            kind: Cumulative::Sum,
            axis,
            reverse: !reverse,
        };
        g.push(op, &[v])
    };
    match kind {
        Cumulative::Sum => back(g, dy),
        Cumulative::Prod => {
            let t = g.mul(dy, y)?;
            let s = back(g, t)?;
            g.div(s, x)
        }
    }
}

/// Runs the accumulation along `axis` of `x`'s concrete dims, a whole row of the trailing
/// axes at a time.
pub fn forward(kind: Cumulative, axis: usize, reverse: bool, x: &In<'_>, out: &mut [f32]) {
    let dims = x.dims;
    let len = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let block = len * inner;
    for (o, xb) in out.chunks_mut(block).zip(x.data.chunks(block)) {
        let mut prev: Option<usize> = None;
        for step in 0..len {
            let a = if reverse { len - 1 - step } else { step };
            let row = a * inner;
            match prev {
                None => o[row..row + inner].copy_from_slice(&xb[row..row + inner]),
                Some(p) => {
                    for i in 0..inner {
                        let v = xb[row + i];
                        o[row + i] = match kind {
                            Cumulative::Sum => o[p + i] + v,
                            Cumulative::Prod => o[p + i] * v,
                        };
                    }
                }
            }
            prev = Some(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::tests::{b, case, check, f};

    /// Brute force: element (i, j, k) of a (2, 3, 4) tensor accumulates every element of its
    /// line at or before it (after it, when reversed).
    fn naive(kind: Cumulative, axis: usize, reverse: bool, x: &[f32]) -> Vec<f32> {
        let dims = [2, 3, 4];
        let at = |c: [usize; 3]| x[(c[0] * 3 + c[1]) * 4 + c[2]];
        let mut out = Vec::new();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    let c = [i, j, k];
                    let mut acc = if kind == Cumulative::Sum { 0.0 } else { 1.0 };
                    for t in 0..dims[axis] {
                        let inside = if reverse { t >= c[axis] } else { t <= c[axis] };
                        if inside {
                            let mut ct = c;
                            ct[axis] = t;
                            acc = if kind == Cumulative::Sum {
                                acc + at(ct)
                            } else {
                                acc * at(ct)
                            };
                        }
                    }
                    out.push(acc);
                }
            }
        }
        out
    }

    #[test]
    fn cumulative_ops_match_a_naive_reference_on_every_axis() {
        let x: Vec<f32> = (0..24).map(|i| ((i * 5) % 7) as f32 * 0.5 - 1.0).collect();
        for kind in [Cumulative::Sum, Cumulative::Prod] {
            for axis in 0..3 {
                for reverse in [false, true] {
                    let mut out = vec![0.0; 24];
                    let inp = In {
                        data: &x,
                        dims: &[2, 3, 4],
                    };
                    forward(kind, axis, reverse, &inp, &mut out);
                    let want = naive(kind, axis, reverse, &x);
                    for (a, b) in out.iter().zip(&want) {
                        assert!((a - b).abs() < 1e-5, "{kind:?} {axis} {reverse}: {out:?}");
                    }
                }
            }
        }
        assert!(infer(&Shape::batched(&[3]), 2).is_err());
    }

    #[test]
    fn cumulative_ops_match_finite_differences() {
        for kind in [Cumulative::Sum, Cumulative::Prod] {
            for axis in 0..3 {
                for reverse in [false, true] {
                    let op = Op::Cumulative {
                        kind,
                        axis,
                        reverse,
                    };
                    let mut c = case(&[b(&[3, 4])], move |g, x| {
                        g.push(op.clone(), &[x[0]]).unwrap()
                    });
                    // Products of inputs away from zero (the VJP divides by them).
                    if kind == Cumulative::Prod {
                        c.range = (0.5, 1.5);
                    }
                    check(c);
                }
            }
        }
        check(case(&[f(&[2, 3])], |g, x| {
            let op = Op::Cumulative {
                kind: Cumulative::Sum,
                axis: 0,
                reverse: true,
            };
            g.push(op, &[x[0]]).unwrap()
        }));
    }
}
