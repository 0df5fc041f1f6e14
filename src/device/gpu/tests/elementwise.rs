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

/// A node of `shape`: fed when batched, a variable when fixed.
fn leaf(g: &mut Graph, shape: &Shape) -> crate::graph::NodeId {
    if shape.batched {
        g.input(shape.clone())
    } else {
        let v = g.declare_var(&shape.dims);
        g.param(v)
    }
}

#[test]
fn where_broadcasts_like_the_cpu_and_its_gradient_too() {
    for [sc, sa, sb] in [
        [
            Shape::batched(&[4, 3]),
            Shape::batched(&[4, 3]),
            Shape::batched(&[4, 3]),
        ],
        [
            Shape::batched(&[4, 1]),
            Shape::fixed(&[3]),
            Shape::fixed(&[]),
        ],
        [
            Shape::fixed(&[4, 3]),
            Shape::batched(&[1, 3]),
            Shape::fixed(&[4, 1]),
        ],
        [
            Shape::fixed(&[2, 1, 3]),
            Shape::fixed(&[5, 1]),
            Shape::fixed(&[1]),
        ],
    ] {
        let mut g = Graph::new();
        let c = leaf(&mut g, &sc);
        let a = leaf(&mut g, &sa);
        let b = leaf(&mut g, &sb);
        let y = g.push(Op::Where, &[c, a, b]).unwrap();
        let ys = g.shape(y).clone();
        let dy = leaf(&mut g, &ys);
        let loss = g.mul(y, dy).unwrap();
        let loss = g.reduce_all(crate::ops::ReduceKind::Sum, loss).unwrap();
        let grads = crate::autodiff::gradients(&mut g, loss, &[a, b]).unwrap();
        let batch = 5;
        let (mut feeds, mut vars) = (Vec::new(), Vec::new());
        for (k, s) in [&sc, &sa, &sb, &ys].into_iter().enumerate() {
            let v = if k == 0 {
                // Zeros (of both signs) and non-zeros, NaN among them.
                awkward(s.numel(batch), 20, -1.0, 1.0)
                    .iter()
                    .map(|&x| if x.abs() < 0.4 { x * 0.0 } else { x })
                    .collect()
            } else {
                awkward(s.numel(batch), 21 + k as u64, -2.0, 2.0)
            };
            if s.batched {
                feeds.push(v)
            } else {
                vars.push(v)
            }
        }
        let mut outs = vec![y];
        outs.extend(grads);
        compare(&g, &outs, batch, &feeds, &vars, false, 1e-5);
    }
}

#[test]
fn new_binary_ops_broadcast_like_the_cpu() {
    use crate::ops::BinaryOp::*;
    for op in [NotEqual, Less, LessEqual, Pow, FloorMod, FloorDiv] {
        for (sa, sb) in [
            (Shape::batched(&[4, 3]), Shape::batched(&[4, 3])),
            (Shape::batched(&[4, 3]), Shape::fixed(&[3])),
            (Shape::batched(&[4, 1]), Shape::fixed(&[1, 3])),
            (Shape::fixed(&[]), Shape::batched(&[2, 5])),
        ] {
            let mut g = Graph::new();
            let a = leaf(&mut g, &sa);
            let b = leaf(&mut g, &sb);
            let y = g.binary(op, a, b).unwrap();
            let batch = 7;
            let (mut feeds, mut vars) = (Vec::new(), Vec::new());
            for (s, seed) in [(&sa, 30), (&sb, 31)] {
                // Halves, so that comparisons meet ties and powers meet whole exponents.
                let v: Vec<f32> = awkward(s.numel(batch), seed, -4.0, 4.0)
                    .iter()
                    .map(|x| (x * 2.0).round() / 2.0)
                    .collect();
                if s.batched {
                    feeds.push(v)
                } else {
                    vars.push(v)
                }
            }
            compare(&g, &[y], batch, &feeds, &vars, false, 1e-4);
        }
    }
}

#[test]
fn pow_and_floor_mod_gradients_match_the_cpu() {
    use crate::ops::BinaryOp::*;
    for op in [Pow, FloorMod] {
        let mut g = Graph::new();
        let a = g.input(Shape::batched(&[5]));
        let b = g.input(Shape::batched(&[5]));
        let y = g.binary(op, a, b).unwrap();
        let loss = g.reduce_all(crate::ops::ReduceKind::Sum, y).unwrap();
        let grads = crate::autodiff::gradients(&mut g, loss, &[a, b]).unwrap();
        let batch = 6;
        let feeds = vec![
            awkward(batch * 5, 40, -3.0, 3.0),
            awkward(batch * 5, 41, -3.0, 3.0),
        ];
        compare(
            &g,
            &[y, grads[0], grads[1]],
            batch,
            &feeds,
            &[],
            false,
            1e-4,
        );
    }
}

#[test]
fn iota_matches_the_cpu_on_every_axis() {
    let mut g = Graph::new();
    let mut outs = Vec::new();
    for axis in 0..3 {
        outs.push(g.iota(&[3, 5, 70], axis).unwrap());
    }
    outs.push(g.iota(&[1], 0).unwrap());
    compare(&g, &outs, 1, &[], &[], false, 0.0);
}
