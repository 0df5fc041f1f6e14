//! Pooling and global pooling on the GPU against the CPU, forward and gradients, on awkward
//! shapes: odd sizes, strides unlike the pool, 'same' padding, both data formats, 1-D to 3-D.

use super::{compare, data};
use crate::autodiff::gradients;
use crate::graph::{Graph, Shape};
use crate::ops::conv::Padding;
use crate::ops::pool::{PoolKind, PoolSpec};
use crate::ops::{Op, ReduceKind};

/// The CPU tests' spec helper, with the rank taken from the pool sizes.
fn spec(kind: PoolKind, cf: bool, pool: &[usize], strides: &[usize], padding: Padding) -> PoolSpec {
    crate::ops::pool::tests::spec(kind, pool.len(), cf, pool, strides, padding)
}

/// `x` with values on a coarse grid when `ties`, so that windows hold several maxima.
fn input(n: usize, seed: u64, ties: bool) -> Vec<f32> {
    let v = data(n, seed, -2.0, 2.0);
    if ties {
        v.iter().map(|x| (x * 2.0).round() / 2.0).collect()
    } else {
        v
    }
}

/// Pools `x` of per-sample `dims` and differentiates a weighted sum of the result, so that dy
/// differs between outputs; compares y, dx and the `PoolGrad` of a given dy on both devices.
fn check(sp: PoolSpec, dims: &[usize], batch: usize, ties: bool) {
    let mut g = Graph::new();
    let x = g.input(Shape::batched(dims));
    let y = g.push(Op::Pool(sp.clone()), &[x]).unwrap();
    let y_dims = g.shape(y).dims.clone();
    let w = g.input(Shape::batched(&y_dims));
    let dy = g.input(Shape::batched(&y_dims));
    let direct = g.push(Op::PoolGrad(sp.clone()), &[x, dy]).unwrap();
    let masked = g.push(Op::PoolReluGrad(sp.clone()), &[x, dy]).unwrap();
    let wy = g.mul(y, w).unwrap();
    let loss = g.reduce_all(ReduceKind::Sum, wy).unwrap();
    let dx = gradients(&mut g, loss, &[x]).unwrap()[0];
    let (nx, ny) = (
        batch * dims.iter().product::<usize>(),
        batch * y_dims.iter().product::<usize>(),
    );
    let feeds = vec![
        input(nx, 40, ties),
        data(ny, 41, -1.0, 1.0),
        data(ny, 42, -1.0, 1.0),
    ];
    compare(&g, &[y, dx, direct, masked], batch, &feeds, &[], true, 1e-4);
}

#[test]
fn pooling_1d_matches_the_cpu() {
    for kind in [PoolKind::Max, PoolKind::Avg] {
        for cf in [false, true] {
            for padding in [Padding::Valid, Padding::Same] {
                for (pool, strides) in [(3, 2), (2, 3), (4, 1), (1, 1)] {
                    let dims: &[usize] = if cf { &[3, 11] } else { &[11, 3] };
                    check(spec(kind, cf, &[pool], &[strides], padding), dims, 2, false);
                }
            }
        }
    }
}

#[test]
fn pooling_2d_matches_the_cpu() {
    for kind in [PoolKind::Max, PoolKind::Avg] {
        for cf in [false, true] {
            for padding in [Padding::Valid, Padding::Same] {
                for (pool, strides) in [([2, 2], [2, 2]), ([3, 2], [2, 1]), ([2, 3], [3, 3])] {
                    let dims: &[usize] = if cf { &[2, 7, 5] } else { &[7, 5, 2] };
                    for ties in [false, true] {
                        check(spec(kind, cf, &pool, &strides, padding), dims, 3, ties);
                    }
                }
            }
        }
    }
}

#[test]
fn pooling_3d_matches_the_cpu() {
    for kind in [PoolKind::Max, PoolKind::Avg] {
        for cf in [false, true] {
            for padding in [Padding::Valid, Padding::Same] {
                let dims: &[usize] = if cf { &[2, 5, 4, 3] } else { &[5, 4, 3, 2] };
                let sp = spec(kind, cf, &[2, 3, 2], &[1, 2, 2], padding);
                check(sp, dims, 2, true);
            }
        }
    }
}

/// Windows larger than half the input with stride 1 overlap heavily: every element sits in
/// many windows, and NaN never wins a max.
#[test]
fn overlapping_windows_and_nan_match_the_cpu() {
    let sp = spec(PoolKind::Max, false, &[4, 4], &[1, 1], Padding::Same);
    check(sp, &[6, 6, 1], 1, true);
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[5, 1]));
    let y = g
        .push(
            Op::Pool(spec(PoolKind::Max, false, &[2], &[1], Padding::Valid)),
            &[x],
        )
        .unwrap();
    let nan = f32::NAN;
    compare(
        &g,
        &[y],
        1,
        &[vec![nan, 1.0, nan, nan, 2.0]],
        &[],
        false,
        0.0,
    );
}

/// GlobalMax/AveragePooling1D-3D build a `Reduce` over the spatial axes (see
/// `python/rustkeras/layers/pooling.py`); their forward and gradient graphs, on the GPU.
#[test]
fn global_pooling_graphs_match_the_cpu() {
    for kind in [ReduceKind::Max, ReduceKind::Mean] {
        for (dims, axes) in [
            (&[7, 3][..], &[1][..]),
            (&[3, 7][..], &[2][..]),
            (&[5, 3, 2][..], &[1, 2][..]),
            (&[2, 5, 3][..], &[2, 3][..]),
            (&[3, 4, 2, 2][..], &[1, 2, 3][..]),
            (&[2, 3, 4, 2][..], &[2, 3, 4][..]),
        ] {
            for keepdims in [false, true] {
                let mut g = Graph::new();
                let x = g.input(Shape::batched(dims));
                let y = g.reduce(kind, x, axes, keepdims).unwrap();
                let y_dims = g.shape(y).dims.clone();
                let w = g.input(Shape::batched(&y_dims));
                let wy = g.mul(y, w).unwrap();
                let loss = g.reduce_all(ReduceKind::Sum, wy).unwrap();
                let dx = gradients(&mut g, loss, &[x]).unwrap()[0];
                let batch = 3;
                let feeds = vec![
                    input(batch * dims.iter().product::<usize>(), 43, true),
                    data(batch * y_dims.iter().product::<usize>(), 44, -1.0, 1.0),
                ];
                compare(&g, &[y, dx], batch, &feeds, &[], true, 1e-4);
            }
        }
    }
}
