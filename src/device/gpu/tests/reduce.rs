//! Min and product reductions (with the product's gradient at zeros) and cumulative sums and
//! products against the CPU, over every axis set of a small tensor, short and long.

use super::{compare, data};
use crate::graph::{Graph, Shape};
use crate::ops::{Op, ReduceKind};

/// `n` values in `[-2, 2)` with zeros and (when `nan`) NaN mixed in.
fn values(n: usize, seed: u64, nan: bool) -> Vec<f32> {
    let mut v = data(n, seed, -2.0, 2.0);
    for (i, x) in v.iter_mut().enumerate() {
        if i % 7 == 3 {
            *x = 0.0;
        }
        if nan && i % 23 == 5 {
            *x = f32::NAN;
        }
    }
    v
}

#[test]
fn min_max_and_prod_and_the_prod_gradient_match_the_cpu() {
    // Per-sample (3, 40): reductions of 3, 40 and 120 elements take both GPU paths.
    for &batch in &[1usize, 4] {
        for nan in [false, true] {
            let mut g = Graph::new();
            let x = g.input(Shape::batched(&[3, 40]));
            let mut outs = Vec::new();
            for kind in [ReduceKind::Min, ReduceKind::Max, ReduceKind::Prod] {
                for axes in [
                    vec![0],
                    vec![1],
                    vec![2],
                    vec![1, 2],
                    vec![0, 2],
                    vec![0, 1, 2],
                ] {
                    outs.push(g.reduce(kind, x, &axes, false).unwrap());
                }
            }
            for axes in [vec![2], vec![0, 2], vec![1]] {
                let y = g.reduce(ReduceKind::Prod, x, &axes, false).unwrap();
                let loss = g.reduce_all(ReduceKind::Sum, y).unwrap();
                outs.push(crate::autodiff::gradients(&mut g, loss, &[x]).unwrap()[0]);
            }
            // Products of 40 values in [-2, 2) stay finite; tolerance covers their rounding.
            let feeds = vec![values(batch * 120, 50, nan)];
            compare(&g, &outs, batch, &feeds, &[], false, 1e-4);
        }
    }
}

#[test]
fn the_prod_gradient_op_matches_the_cpu_on_fixed_tensors() {
    let mut g = Graph::new();
    let v = g.declare_var(&[5, 6]);
    let x = g.param(v);
    let w = g.declare_var(&[1, 6]);
    let dy = g.param(w);
    let d = g
        .push(
            Op::ReduceProdGrad {
                axes: [0].into_iter().collect(),
            },
            &[x, dy],
        )
        .unwrap();
    let vars = vec![values(30, 51, false), data(6, 52, -1.0, 1.0)];
    compare(&g, &[d], 1, &[], &vars, false, 1e-5);
}

#[test]
fn cumulative_sums_and_products_and_their_gradients_match_the_cpu() {
    use crate::ops::cumulative::Cumulative;
    for &batch in &[1usize, 5] {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[3, 70]));
        let w = g.declare_var(&[4, 2]);
        let w = g.param(w);
        let mut outs = Vec::new();
        for kind in [Cumulative::Sum, Cumulative::Prod] {
            for axis in 0..3 {
                for reverse in [false, true] {
                    let op = Op::Cumulative {
                        kind,
                        axis,
                        reverse,
                    };
                    let y = g.push(op.clone(), &[x]).unwrap();
                    outs.push(y);
                    let loss = g.reduce_all(ReduceKind::Sum, y).unwrap();
                    outs.push(crate::autodiff::gradients(&mut g, loss, &[x]).unwrap()[0]);
                    if axis < 2 {
                        outs.push(g.push(op, &[w]).unwrap());
                    }
                }
            }
        }
        // Products of up to 70 values near 1 stay finite; NaN among the inputs.
        let mut feed = data(batch * 210, 60, 0.8, 1.2);
        feed[7] = f32::NAN;
        let vars = vec![data(8, 61, -2.0, 2.0)];
        compare(&g, &outs, batch, &[feed], &vars, false, 1e-4);
    }
}
