//! Batch normalization on the GPU against the CPU: the batch's statistics and given ones,
//! with and without gamma and beta, channels last and first, and every gradient.

use super::{compare, data};
use crate::autodiff::gradients;
use crate::graph::{Graph, Shape};
use crate::ops::norm::{batch_norm, batch_norm_train, Stats};
use crate::ops::ReduceKind;

fn check(dims: &[usize], axis: usize, batch: usize, stats: Stats, scale: bool, center: bool) {
    let mut g = Graph::new();
    let x = g.input(Shape::batched(dims));
    let w = g.input(Shape::batched(dims));
    let c = dims[axis - 1];
    let mut vars = Vec::new();
    let mut var = |g: &mut Graph, lo: f32, hi: f32| {
        let v = g.declare_var(&[c]);
        vars.push(data(c, 50 + vars.len() as u64, lo, hi));
        g.param(v)
    };
    let gamma = scale.then(|| var(&mut g, 0.5, 1.5));
    let beta = center.then(|| var(&mut g, -0.5, 0.5));
    let (mean, variance) = (var(&mut g, -0.3, 0.3), var(&mut g, 0.5, 2.0));
    let mut outs = Vec::new();
    let y = match stats {
        Stats::Batch => {
            let (y, m, v) = batch_norm_train(&mut g, x, axis, 1e-3, gamma, beta).unwrap();
            outs.extend([m, v]);
            y
        }
        Stats::Given => {
            batch_norm(&mut g, x, mean, variance, axis, 1e-3, stats, gamma, beta).unwrap()
        }
    };
    let wy = g.mul(y, w).unwrap();
    let loss = g.reduce_all(ReduceKind::Sum, wy).unwrap();
    let mut wrt = vec![x];
    wrt.extend(gamma);
    wrt.extend(beta);
    if stats == Stats::Given {
        wrt.extend([mean, variance]);
    }
    let grads = gradients(&mut g, loss, &wrt).unwrap();
    outs.push(y);
    outs.extend(grads);
    let n = batch * dims.iter().product::<usize>();
    let feeds = vec![data(n, 40, -2.0, 3.0), data(n, 41, -1.0, 1.0)];
    compare(&g, &outs, batch, &feeds, &vars, true, 2e-4);
}

#[test]
fn batch_normalization_matches_the_cpu() {
    for stats in [Stats::Batch, Stats::Given] {
        for (scale, center) in [(true, true), (false, true), (true, false), (false, false)] {
            check(&[5, 7], 2, 3, stats, scale, center);
            check(&[4, 3, 6], 1, 2, stats, scale, center);
        }
    }
    // More values per channel than a workgroup has threads, channels in the middle.
    check(&[9, 5, 8], 2, 4, Stats::Batch, true, true);
}
