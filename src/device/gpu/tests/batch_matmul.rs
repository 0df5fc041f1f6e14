//! numpy's matmul (`Op::BatchMatMul`) against the CPU: both operands batched, a weight of
//! rank 2 or 3 on either side, broadcast leading axes, every transpose form, products past
//! one 64 x 64 tile, and the gradients through autodiff.

use super::{compare, data};
use crate::graph::{Graph, NodeId, Shape};
use crate::ops::{Op, ReduceKind};

fn leaf(g: &mut Graph, s: &Shape) -> NodeId {
    if s.batched {
        g.input(s.clone())
    } else {
        let v = g.declare_var(&s.dims);
        g.param(v)
    }
}

/// `s` with its last two axes swapped when `t` (the stored shape of a transposed operand).
fn stored(s: &Shape, t: bool) -> Shape {
    let mut s = s.clone();
    let r = s.dims.len();
    if t && r >= 2 {
        s.dims.swap(r - 2, r - 1);
    }
    s
}

#[test]
fn batched_products_and_their_gradients_match_the_cpu() {
    let b = Shape::batched;
    let f = Shape::fixed;
    let cases = [
        (b(&[3, 4]), b(&[4, 5])),
        (b(&[3, 4]), f(&[4, 5])),
        (b(&[4]), f(&[4, 5])),
        (f(&[3, 4]), b(&[4, 5])),
        (b(&[2, 3, 4]), f(&[2, 4, 5])),
        (b(&[1, 3, 4]), b(&[2, 4, 5])),
        (f(&[2, 1, 3, 4]), f(&[3, 4, 2])),
        (b(&[70, 9]), f(&[9, 66])),
        (b(&[70, 9]), b(&[9, 66])),
    ];
    for (sa, sb) in &cases {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            if ta && sa.batched && sa.dims.len() == 1 {
                continue;
            }
            let (sa, sb) = (stored(sa, ta), stored(sb, tb));
            let mut g = Graph::new();
            let a = leaf(&mut g, &sa);
            let bn = leaf(&mut g, &sb);
            let y = g.push(Op::BatchMatMul { ta, tb }, &[a, bn]).unwrap();
            let loss = g.reduce_all(ReduceKind::Sum, y).unwrap();
            let grads = crate::autodiff::gradients(&mut g, loss, &[a, bn]).unwrap();
            let batch = 3;
            let (mut feeds, mut vars) = (Vec::new(), Vec::new());
            for (s, seed) in [(&sa, 70), (&sb, 71)] {
                let v = data(s.numel(batch), seed, -1.0, 1.0);
                if s.batched {
                    feeds.push(v)
                } else {
                    vars.push(v)
                }
            }
            if let Some(v) = feeds.first_mut() {
                v[1] = f32::NAN;
            }
            compare(
                &g,
                &[y, grads[0], grads[1]],
                batch,
                &feeds,
                &vars,
                false,
                1e-4,
            );
        }
    }
}
