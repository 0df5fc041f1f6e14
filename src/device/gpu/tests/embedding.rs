//! The embedding gather and its table gradient (the sorted scatter-add) against the CPU:
//! repeated indices, tables of awkward sizes, index counts on both sides of a power of two,
//! and out-of-range indices (NaN rows, NaN table gradient, as on the CPU).

use super::{compare, data};
use crate::graph::{Graph, Shape};
use crate::ops::{Op, ReduceKind, UnaryOp};

/// `batch * per_sample` indices in `[0, rows)`, many repeated.
fn indices(n: usize, rows: usize, seed: u64) -> Vec<f32> {
    data(n, seed, 0.0, rows as f32)
        .into_iter()
        .map(|v| v.floor().min(rows as f32 - 1.0))
        .collect()
}

/// Gathers `(rows, d)` by indices of `idx_dims` per sample, and scatters a fed `dy` back.
fn gather_and_scatter(rows: usize, d: usize, idx_dims: &[usize], batch: usize, idx: Vec<f32>) {
    let mut g = Graph::new();
    let ids = g.input(Shape::batched(idx_dims));
    let mut dy_dims = idx_dims.to_vec();
    dy_dims.push(d);
    let dy = g.input(Shape::batched(&dy_dims));
    let v = g.declare_var(&[rows, d]);
    let t = g.param(v);
    let y = g.push(Op::Gather, &[t, ids]).unwrap();
    let s = g.shape(t).clone();
    let dt = g.push(Op::ScatterAddRows(s), &[dy, ids]).unwrap();
    let n = batch * idx_dims.iter().product::<usize>();
    assert_eq!(idx.len(), n);
    let feeds = vec![idx, data(n * d, 7, -1.0, 1.0)];
    let vars = vec![data(rows * d, 8, -2.0, 2.0)];
    compare(&g, &[y, dt], batch, &feeds, &vars, false, 1e-5);
}

#[test]
fn gather_and_scatter_match_the_cpu_on_awkward_shapes() {
    // (rows, d, per-sample index dims, batch): one row, one column, a prime vocabulary,
    // index counts of 1, just past a power of two (513) and far from one (305).
    let cases: [(usize, usize, &[usize], usize); 6] = [
        (1, 1, &[1], 1),
        (7, 5, &[4], 3),
        (37, 3, &[2, 3], 2),
        (13, 6, &[61], 5),
        (3, 2, &[513], 1),
        (101, 1, &[9], 7),
    ];
    for (i, &(rows, d, dims, batch)) in cases.iter().enumerate() {
        let n = batch * dims.iter().product::<usize>();
        gather_and_scatter(rows, d, dims, batch, indices(n, rows, 30 + i as u64));
    }
    // Every index the same row, and the rows in reverse order.
    gather_and_scatter(5, 3, &[4], 2, vec![2.0; 8]);
    gather_and_scatter(8, 2, &[8], 1, (0..8).rev().map(|v| v as f32).collect());
}

#[test]
fn out_of_range_indices_give_nan_like_the_cpu() {
    // Past the end, negative, fractional and NaN indices, each alone among valid ones.
    for bad in [7.0, -1.0, 2.5, f32::NAN, 1e9] {
        let mut idx = indices(12, 7, 3);
        idx[5] = bad;
        gather_and_scatter(7, 5, &[4], 3, idx);
    }
}

#[test]
fn the_embedding_gradient_through_autodiff_matches_the_cpu() {
    let (rows, d, len, batch) = (11, 4, 6, 3);
    let mut g = Graph::new();
    let ids = g.input(Shape::batched(&[len]));
    let v = g.declare_var(&[rows, d]);
    let t = g.param(v);
    let y = g.push(Op::Gather, &[t, ids]).unwrap();
    let y = g.unary(UnaryOp::Tanh, y).unwrap();
    let loss = g.reduce_all(ReduceKind::Sum, y).unwrap();
    let grads = crate::autodiff::gradients(&mut g, loss, &[t]).unwrap();
    let feeds = vec![indices(batch * len, rows, 9)];
    let vars = vec![data(rows * d, 10, -2.0, 2.0)];
    compare(&g, &[y, grads[0]], batch, &feeds, &vars, false, 1e-4);
}
