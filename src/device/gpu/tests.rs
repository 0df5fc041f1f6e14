//! Every GPU kernel against the CPU kernel on Mesa's lavapipe (or a real adapter), on small
//! and awkward shapes. These tests fail, not skip, when no adapter is found: CI installs
//! lavapipe so that the GPU path is always tested.

use std::sync::Arc;

use crate::device::Device;
use crate::graph::{Graph, NodeId, Shape};
use crate::ops::random::uniform;
use crate::ops::{BinaryOp, Ctx, Op, ReduceKind, UnaryOp};
use crate::program::Program;
use crate::tensor::Tensor;

use super::GpuContext;

pub(super) fn gpu() -> Device {
    match GpuContext::shared() {
        Ok(ctx) => Device::Gpu(ctx),
        Err(e) => panic!("no GPU adapter for the GPU tests (install mesa-vulkan-drivers): {e}"),
    }
}

pub(super) fn data(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|i| lo + (hi - lo) * uniform(seed, i as u64))
        .collect()
}

/// Runs `outs` of `g` on both devices with the same feeds and variables and compares every
/// output within `tol` relative (NaN must match NaN).
pub(super) fn compare(
    g: &Graph,
    outs: &[NodeId],
    batch: usize,
    feeds: &[Vec<f32>],
    vars: &[Vec<f32>],
    training: bool,
    tol: f32,
) {
    let ctx = Ctx {
        training,
        seed: 11,
        step: 3,
    };
    let mut cpu = Program::plan(g, outs, batch).unwrap();
    let vs: Vec<&[f32]> = vars.iter().map(|v| v.as_slice()).collect();
    let fs: Vec<&[f32]> = feeds.iter().map(|v| v.as_slice()).collect();
    cpu.run(&vs, &fs, &ctx).unwrap();
    let dev = gpu();
    let tensors: Vec<Tensor> = vars
        .iter()
        .zip(&g.var_shapes)
        .map(|(v, s)| Tensor::from_vec(&dev, s, v.clone()).unwrap())
        .collect();
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let mut gp = Program::plan_on(g, outs, batch, None, &dev, &refs).unwrap();
    gp.run(&[], &fs, &ctx).unwrap();
    for &o in outs {
        let (a, b) = (cpu.read(o), gp.read(o));
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let ok = (x.is_nan() && y.is_nan())
                || x == y
                || (x - y).abs() <= tol * x.abs().max(y.abs()).max(1.0);
            assert!(
                ok,
                "node {o} ({:?}) element {i}: cpu {x}, gpu {y}",
                g.nodes[o].op
            );
        }
    }
}

const ROWS: [usize; 5] = [1, 3, 17, 65, 130];

#[test]
fn matmul_in_every_form_matches_the_cpu() {
    for &b in &ROWS {
        for (k, n) in [(1, 1), (3, 5), (17, 65), (70, 33), (130, 3)] {
            let mut g = Graph::new();
            let x = g.input(Shape::batched(&[k]));
            let w = g.declare_var(&[k, n]);
            let w = g.param(w);
            let wt = g.declare_var(&[n, k]);
            let wt = g.param(wt);
            let y = g.matmul(x, w, false, false).unwrap();
            let yt = g.matmul(x, wt, false, true).unwrap();
            let dw = g.matmul(x, y, true, false).unwrap();
            let feeds = vec![data(b * k, 1, -1.0, 1.0)];
            let vars = vec![data(k * n, 2, -1.0, 1.0), data(n * k, 3, -1.0, 1.0)];
            compare(&g, &[y, yt, dw], b, &feeds, &vars, false, 1e-4);
        }
    }
}

#[test]
fn unary_ops_and_their_gradients_match_the_cpu() {
    use UnaryOp::*;
    let ops = [
        Identity,
        Relu,
        Sigmoid,
        HardSigmoid,
        Tanh,
        Exp,
        Neg,
        Scale(1.5),
        AddScalar(-0.5),
        Square,
        Abs,
        Sign,
        Softplus,
        Softsign,
        Elu(0.7),
        Selu,
        LeakyRelu(0.2),
        Swish,
        Gelu,
        Arctan,
        BinaryStep,
        Clip(-0.3, 0.4),
        Round,
        LogCosh,
    ];
    let positive = [Log, Sqrt, Reciprocal];
    for &b in &[3usize, 65] {
        for (u, lo) in ops
            .iter()
            .map(|&u| (u, -3.0f32))
            .chain(positive.iter().map(|&u| (u, 0.1)))
        {
            let mut g = Graph::new();
            let x = g.input(Shape::batched(&[7]));
            let dy = g.input(Shape::batched(&[7]));
            let y = g.unary(u, x).unwrap();
            let mut outs = vec![y];
            if !u.is_piecewise_constant() {
                outs.push(g.push(Op::UnaryGrad(u), &[x, dy]).unwrap());
            }
            let feeds = vec![data(b * 7, 5, lo, 3.0), data(b * 7, 6, -1.0, 1.0)];
            compare(&g, &outs, b, &feeds, &[], false, 1e-4);
        }
    }
}

#[test]
fn binary_ops_broadcast_like_the_cpu() {
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::Equal,
        BinaryOp::Greater,
        BinaryOp::GreaterEqual,
    ];
    for op in ops {
        for (da, db) in [
            (Shape::batched(&[4, 3]), Shape::batched(&[4, 3])),
            (Shape::batched(&[4, 3]), Shape::fixed(&[3])),
            (Shape::batched(&[4, 1]), Shape::fixed(&[1, 3])),
            (Shape::batched(&[5, 1]), Shape::batched(&[5, 3])),
            (Shape::fixed(&[]), Shape::batched(&[2, 5])),
        ] {
            let mut g = Graph::new();
            let a = if da.batched {
                g.input(da.clone())
            } else {
                let v = g.declare_var(&da.dims);
                g.param(v)
            };
            let b = if db.batched {
                g.input(db.clone())
            } else {
                let v = g.declare_var(&db.dims);
                g.param(v)
            };
            let y = g.push(Op::Binary(op), &[a, b]).unwrap();
            let batch = 17;
            let mut feeds = Vec::new();
            let mut vars = Vec::new();
            for (s, seed) in [(&da, 7), (&db, 8)] {
                // Few distinct values, so Equal and the comparisons meet ties.
                let v: Vec<f32> = data(s.numel(batch), seed, -2.0, 2.0)
                    .iter()
                    .map(|x| (x * 2.0).round() / 2.0 + 0.25)
                    .collect();
                if s.batched {
                    feeds.push(v)
                } else {
                    vars.push(v)
                }
            }
            compare(&g, &[y], batch, &feeds, &vars, false, 1e-5);
        }
    }
}

#[test]
fn reductions_shapes_and_rows_match_the_cpu() {
    for &b in &ROWS {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[3, 5]));
        let idx = g.input(Shape::batched(&[3]));
        let mut outs = Vec::new();
        for kind in [ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max] {
            for axes in [vec![0], vec![1], vec![2], vec![1, 2], vec![0, 1, 2]] {
                outs.push(
                    g.push(
                        Op::Reduce {
                            kind,
                            axes: axes.into_iter().collect(),
                            keepdims: false,
                        },
                        &[x],
                    )
                    .unwrap(),
                );
            }
        }
        outs.push(g.push(Op::SumTo(Shape::fixed(&[5])), &[x]).unwrap());
        outs.push(g.push(Op::SumTo(Shape::fixed(&[3, 1])), &[x]).unwrap());
        let s = g
            .push(
                Op::Reduce {
                    kind: ReduceKind::Sum,
                    axes: [2].into_iter().collect(),
                    keepdims: true,
                },
                &[x],
            )
            .unwrap();
        outs.push(
            g.push(Op::BroadcastTo(Shape::batched(&[3, 5])), &[s])
                .unwrap(),
        );
        outs.push(
            g.push(Op::BroadcastMean(Shape::batched(&[3, 5])), &[s])
                .unwrap(),
        );
        outs.push(g.push(Op::Transpose(vec![1, 0]), &[x]).unwrap());
        outs.push(g.reshape(x, &[15]).unwrap());
        let sm = g.push(Op::Softmax, &[x]).unwrap();
        outs.push(sm);
        outs.push(g.push(Op::SoftmaxGrad, &[sm, x]).unwrap());
        outs.push(g.push(Op::ArgMax, &[x]).unwrap());
        let taken = g.push(Op::TakeLast, &[x, idx]).unwrap();
        outs.push(taken);
        outs.push(
            g.push(Op::ScatterLast(Shape::batched(&[3, 5])), &[taken, idx])
                .unwrap(),
        );
        outs.push(g.push(Op::InTopK(2), &[x, idx]).unwrap());
        let c = g.push(Op::Concat { axis: 2 }, &[x, sm]).unwrap();
        outs.push(c);
        outs.push(
            g.push(
                Op::SliceAxis {
                    axis: 2,
                    start: 3,
                    len: 4,
                },
                &[c],
            )
            .unwrap(),
        );
        outs.push(
            g.push(
                Op::UnsliceAxis {
                    axis: 1,
                    start: 1,
                    full: 6,
                },
                &[x],
            )
            .unwrap(),
        );
        outs.push(g.push(Op::TrainSelect, &[x, sm]).unwrap());
        let z = g.push(Op::Scalar(2.5), &[]).unwrap();
        outs.push(z);
        // Indices: valid ones and one out of range (NaN on both devices).
        let idx_v: Vec<f32> = (0..b * 3)
            .map(|i| if i == 4 { 9.0 } else { (i % 5) as f32 })
            .collect();
        let feeds = vec![data(b * 15, 9, -2.0, 2.0), idx_v];
        compare(&g, &outs, b, &feeds, &[], false, 1e-5);
        compare(&g, &outs, b, &feeds, &[], true, 1e-5);
    }
}

#[test]
fn dropout_masks_are_the_cpus() {
    for &n in &[1usize, 3, 130, 1000] {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[n]));
        let y = g.push(Op::Dropout { rate: 0.3, key: 77 }, &[x]).unwrap();
        let dx = g
            .push(Op::DropoutGrad { rate: 0.3, key: 77 }, &[x])
            .unwrap();
        let feeds = vec![data(5 * n, 4, 0.5, 1.5)];
        compare(&g, &[y, dx], 5, &feeds, &[], true, 1e-6);
        compare(&g, &[y, dx], 5, &feeds, &[], false, 1e-6);
    }
}

#[test]
fn buffers_return_to_the_pool() {
    let Device::Gpu(ctx) = gpu() else {
        unreachable!()
    };
    let a = ctx.alloc(1000).unwrap();
    ctx.write(&a, &[1.0; 1000]);
    drop(a);
    // A recycled buffer comes back zeroed.
    let b = ctx.alloc(1000).unwrap();
    assert!(ctx.read(&b, 1000).iter().all(|&v| v == 0.0));
    assert!(Arc::strong_count(&ctx) >= 1);
}

#[test]
fn a_bench_gemm_runs_and_checks_its_result() {
    let gflops = super::bench_gemm(96, 2).unwrap();
    assert!(gflops > 0.0);
}

/// numpy's matmul with broadcast leading axes.
mod batch_matmul;
/// The convolution family.
mod conv;
/// Rounding, math functions, powers, comparisons, modulo and `where`.
mod elementwise;
/// The embedding gather and its scatter-add gradient.
mod embedding;
/// Top-k indices, take and take_along, with their gradients.
mod index;
/// Whole models trained on both devices.
mod models;
/// Batch normalization's fused ops.
mod norm;
/// Pooling and global pooling.
mod pool;
/// SimpleRNN, LSTM and GRU with every option.
mod recurrent;
/// Min and product reductions, cumulative sums and products.
mod reduce;
/// Padding, cropping and upsampling, with their gradients.
mod spatial;
