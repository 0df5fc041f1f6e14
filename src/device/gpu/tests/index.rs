//! Top-k indices, `take_along` and `take` with their gradients against the CPU: ties, NaN,
//! signed zeros, negative (wrapped) indices, repeated indices, and invalid ones (NaN where
//! read, as on the CPU).

use super::{compare, data};
use crate::graph::{Graph, NodeId, Shape};
use crate::ops::Op;

fn leaf(g: &mut Graph, s: &Shape) -> NodeId {
    if s.batched {
        g.input(s.clone())
    } else {
        let v = g.declare_var(&s.dims);
        g.param(v)
    }
}

/// Values on a coarse grid (many ties), with NaN and both zeros mixed in.
fn tied(n: usize, seed: u64) -> Vec<f32> {
    data(n, seed, -3.0, 3.0)
        .into_iter()
        .enumerate()
        .map(|(i, v)| match i % 9 {
            4 => f32::NAN,
            6 => -0.0,
            7 => 0.0,
            _ => v.round(),
        })
        .collect()
}

/// Indices in `[-len, len)` (negative ones wrap), with `bad` put at every 11th position.
fn indices(n: usize, len: usize, seed: u64, bad: Option<f32>) -> Vec<f32> {
    data(n, seed, -(len as f32), len as f32)
        .into_iter()
        .enumerate()
        .map(|(i, v)| match bad {
            Some(b) if i % 11 == 3 => b,
            _ => v.floor(),
        })
        .collect()
}

#[test]
fn top_k_indices_match_the_cpu_with_ties_and_nan() {
    for (dims, k) in [(vec![1], 1), (vec![5], 3), (vec![2, 5], 5), (vec![70], 9)] {
        for batched in [true, false] {
            let s = Shape {
                batched,
                dims: dims.clone(),
            };
            let mut g = Graph::new();
            let x = leaf(&mut g, &s);
            let y = g.push(Op::TopKIndices(k), &[x]).unwrap();
            let v = tied(s.numel(4), 80);
            let (feeds, vars) = if batched {
                (vec![v], vec![])
            } else {
                (vec![], vec![v])
            };
            compare(&g, &[y], 4, &feeds, &vars, false, 0.0);
        }
    }
}

#[test]
fn take_along_and_its_scatter_match_the_cpu() {
    for bad in [None, Some(5.0), Some(-6.0), Some(1.5), Some(f32::NAN)] {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[3, 5]));
        let idx = g.input(Shape::batched(&[3, 7]));
        let dy = g.input(Shape::batched(&[3, 7]));
        let y = g.push(Op::TakeAlong, &[x, idx]).unwrap();
        let dx = g
            .push(Op::ScatterAlong(Shape::batched(&[3, 5])), &[dy, idx])
            .unwrap();
        let batch = 4;
        let feeds = vec![
            data(batch * 15, 81, -2.0, 2.0),
            indices(batch * 21, 5, 82, bad),
            data(batch * 21, 83, -1.0, 1.0),
        ];
        compare(&g, &[y, dx], batch, &feeds, &[], false, 1e-6);
    }
}

#[test]
fn take_in_every_supported_form_and_its_gradient_match_the_cpu() {
    let b = Shape::batched;
    let f = Shape::fixed;
    // (x, indices, axis): an embedding-like lookup (the sorted scatter, with more indices
    // than a power of two), a fixed tensor on inner axes, a batched tensor's columns.
    let cases = [
        (f(&[7, 3]), b(&[2, 70]), 0),
        (f(&[7]), b(&[3]), 0),
        (f(&[4, 6, 2]), f(&[3, 2]), 1),
        (f(&[4, 6]), f(&[5]), 1),
        (b(&[4, 6]), f(&[9]), 2),
        (b(&[4, 6, 2]), f(&[2]), 1),
    ];
    for (sx, si, axis) in cases {
        for bad in [None, Some(100.0), Some(0.5)] {
            let mut g = Graph::new();
            let x = leaf(&mut g, &sx);
            let idx = leaf(&mut g, &si);
            let y = g.push(Op::Take { axis }, &[x, idx]).unwrap();
            let sy = g.shape(y).clone();
            let dy = leaf(&mut g, &sy);
            let dx = g
                .push(
                    Op::TakeGrad {
                        axis,
                        shape: sx.clone(),
                    },
                    &[dy, idx],
                )
                .unwrap();
            let batch = 3;
            let len = sx.concrete(batch)[axis];
            let (mut feeds, mut vars) = (Vec::new(), Vec::new());
            for (k, s) in [&sx, &si, &sy].into_iter().enumerate() {
                let v = if k == 1 {
                    indices(s.numel(batch), len, 84, bad)
                } else {
                    data(s.numel(batch), 85 + k as u64, -2.0, 2.0)
                };
                if s.batched {
                    feeds.push(v)
                } else {
                    vars.push(v)
                }
            }
            compare(&g, &[y, dx], batch, &feeds, &vars, false, 1e-5);
        }
    }
}
