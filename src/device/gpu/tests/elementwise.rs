//! The newer elementwise primitives against the CPU: rounding and math functions, powers of
//! every sign, comparisons, numpy's floor division and modulo, and `where`, with NaN,
//! infinities and signed zeros among the inputs.

use super::{compare, data};
use crate::graph::{Graph, Shape};
use crate::ops::{Op, UnaryOp};

/// Random values in `[lo, hi)` with NaN, infinities, zeros and whole numbers mixed in.
fn awkward(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let special = [
        f32::NAN,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        2.0,
        -3.0,
        1.0,
    ];
    let mut v = data(n, seed, lo, hi);
    for (i, x) in v.iter_mut().enumerate() {
        if i % 5 == 2 {
            *x = special[(i / 5) % special.len()];
        }
    }
    v
}

#[test]
fn new_unary_ops_and_their_gradients_match_the_cpu() {
    use UnaryOp::*;
    let ops = [
        Floor,
        Ceil,
        Trunc,
        Log1p,
        Expm1,
        Sin,
        Cos,
        PowScalar(2.0),
        PowScalar(3.0),
        PowScalar(-1.0),
        PowScalar(0.5),
        PowScalar(1.5),
        PowScalar(-2.0),
        PowScalar(0.0),
        LogicalNot,
    ];
    for u in ops {
        for (batch, feed) in [
            (3, data(3 * 7, 5, -3.0, 3.0)),
            (9, awkward(9 * 7, 6, -3.0, 3.0)),
        ] {
            let mut g = Graph::new();
            let x = g.input(Shape::batched(&[7]));
            let dy = g.input(Shape::batched(&[7]));
            let y = g.unary(u, x).unwrap();
            let mut outs = vec![y];
            if !u.is_piecewise_constant() {
                outs.push(g.push(Op::UnaryGrad(u), &[x, dy]).unwrap());
            }
            let feeds = vec![feed, data(batch * 7, 7, -1.0, 1.0)];
            compare(&g, &outs, batch, &feeds, &[], false, 1e-4);
        }
    }
}
