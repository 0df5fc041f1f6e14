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

fn gpu() -> Device {
    match GpuContext::shared() {
        Ok(ctx) => Device::Gpu(ctx),
        Err(e) => panic!("no GPU adapter for the GPU tests (install mesa-vulkan-drivers): {e}"),
    }
}

fn data(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|i| lo + (hi - lo) * uniform(seed, i as u64))
        .collect()
}

/// Runs `outs` of `g` on both devices with the same feeds and variables and compares every
/// output within `tol` relative (NaN must match NaN).
fn compare(
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
    let mut gp = Program::plan_on(g, outs, batch, &dev, &refs).unwrap();
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

// -- whole models: the same training on both devices -------------------------------------

use crate::model::{CompileSpec, Dataset, Model, NoHook, OutputSpec};

/// An MLP 12 -> 16 (relu, dropout) -> 5 (softmax) with fixed initial weights.
fn mlp(dropout: f32) -> Model {
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[12]));
    let w1 = g.declare_var(&[12, 16]);
    let b1 = g.declare_var(&[16]);
    let w2 = g.declare_var(&[16, 5]);
    let b2 = g.declare_var(&[5]);
    let (w1n, b1n, w2n, b2n) = (g.param(w1), g.param(b1), g.param(w2), g.param(b2));
    let h = g.matmul(x, w1n, false, false).unwrap();
    let h = g.add(h, b1n).unwrap();
    let h = g.unary(UnaryOp::Relu, h).unwrap();
    let h = if dropout > 0.0 {
        g.push(
            Op::Dropout {
                rate: dropout,
                key: 5,
            },
            &[h],
        )
        .unwrap()
    } else {
        h
    };
    let y = g.matmul(h, w2n, false, false).unwrap();
    let y = g.add(y, b2n).unwrap();
    let y = g.push(Op::Softmax, &[y]).unwrap();
    let mut m = Model::new(g, vec![x], vec![y], 3).unwrap();
    for (v, n) in [(w1, 12 * 16), (b1, 16), (w2, 16 * 5), (b2, 5)] {
        m.set_var(v, &data(n, 20 + v as u64, -0.4, 0.4)).unwrap();
    }
    m
}

fn opt_spec(kind: &str, params: &[(&str, f64)], loss: &str, metrics: &[&str]) -> CompileSpec {
    CompileSpec {
        outputs: vec![OutputSpec {
            loss: Some(loss.into()),
            loss_weight: 1.0,
            metrics: metrics.iter().map(|m| m.to_string()).collect(),
        }],
        optimizer_kind: kind.into(),
        optimizer_params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        regularizers: vec![],
    }
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * x.abs().max(y.abs()).max(1e-2),
            "{what} element {i}: cpu {x}, gpu {y}"
        );
    }
}

/// Labels 0..5 for 40 rows of 12 features.
fn dataset() -> (Vec<f32>, Vec<f32>) {
    let x = data(40 * 12, 30, -1.0, 1.0);
    let y = (0..40).map(|i| ((i * 7) % 5) as f32).collect();
    (x, y)
}

#[test]
fn every_optimizer_takes_the_cpus_steps() {
    let cases: &[(&str, &[(&str, f64)])] = &[
        ("sgd", &[("learning_rate", 0.1)]),
        ("sgd", &[("learning_rate", 0.1), ("momentum", 0.9)]),
        (
            "sgd",
            &[("learning_rate", 0.1), ("momentum", 0.9), ("nesterov", 1.0)],
        ),
        ("rmsprop", &[]),
        ("rmsprop", &[("momentum", 0.5), ("centered", 1.0)]),
        ("adagrad", &[("learning_rate", 0.05)]),
        ("adadelta", &[("learning_rate", 1.0)]),
        ("adam", &[("learning_rate", 0.01)]),
        (
            "adam",
            &[
                ("learning_rate", 0.01),
                ("amsgrad", 1.0),
                ("clipnorm", 0.05),
            ],
        ),
        ("adamw", &[("learning_rate", 0.01), ("clipvalue", 0.01)]),
        (
            "adamax",
            &[("global_clipnorm", 0.1), ("loss_scale_factor", 4.0)],
        ),
        ("nadam", &[("learning_rate", 0.01), ("weight_decay", 0.1)]),
        (
            "adam",
            &[
                ("learning_rate", 0.01),
                ("gradient_accumulation_steps", 2.0),
            ],
        ),
        (
            "nadam",
            &[
                ("gradient_accumulation_steps", 2.0),
                ("clipnorm", 0.05),
                ("loss_scale_factor", 2.0),
            ],
        ),
        (
            "sgd",
            &[
                ("learning_rate", 0.1),
                ("momentum", 0.5),
                ("use_ema", 1.0),
                ("ema_overwrite_frequency", 2.0),
            ],
        ),
        (
            "rmsprop",
            &[
                ("use_ema", 1.0),
                ("ema_momentum", 0.5),
                ("gradient_accumulation_steps", 3.0),
            ],
        ),
    ];
    let (x, y) = dataset();
    let sw = vec![1.0f32; 40];
    for (kind, params) in cases {
        let mut models = [mlp(0.0), mlp(0.0)];
        models[1].set_device(gpu()).unwrap();
        let mut losses = Vec::new();
        for m in models.iter_mut() {
            m.compile(opt_spec(
                kind,
                params,
                "sparse_categorical_crossentropy",
                &[],
            ))
            .unwrap();
            let mut l = Vec::new();
            for _ in 0..3 {
                let mut logs = [0.0];
                m.train_batch(&[&x], &[&y], &[&sw], 40, &mut logs).unwrap();
                l.push(logs[0] as f32);
            }
            losses.push(l);
        }
        assert_close(
            &format!("{kind} {params:?} losses"),
            &losses[0],
            &losses[1],
            1e-4,
        );
        for v in 0..4 {
            assert_close(
                &format!("{kind} {params:?} variable {v}"),
                &models[0].var(v),
                &models[1].var(v),
                1e-4,
            );
        }
        let slots: Vec<Vec<Vec<f32>>> = models
            .iter_mut()
            .map(|m| {
                let o = m.optimizer_mut().unwrap();
                o.slot_variables().iter().map(|(_, v)| v.to_vec()).collect()
            })
            .collect();
        assert_eq!(
            slots[0].len(),
            slots[1].len(),
            "{kind} {params:?} slot count"
        );
        for (a, b) in slots[0].iter().zip(&slots[1]) {
            assert_close(&format!("{kind} {params:?} slots"), a, b, 1e-4);
        }
        assert_eq!(
            models[0].optimizer_mut().unwrap().iterations(),
            models[1].optimizer_mut().unwrap().iterations()
        );
    }
}

#[test]
fn an_mlp_follows_the_cpus_loss_curve_with_dropout() {
    let (x, y) = dataset();
    let mut curves = Vec::new();
    let mut preds = Vec::new();
    for on_gpu in [false, true] {
        let mut m = mlp(0.25);
        if on_gpu {
            m.set_device(gpu()).unwrap();
        }
        m.compile(opt_spec(
            "adam",
            &[("learning_rate", 0.01)],
            "sparse_categorical_crossentropy",
            &["accuracy"],
        ))
        .unwrap();
        let d = Dataset::single(&x, &y, None, 40);
        let mut curve = Vec::new();
        for _ in 0..2 {
            let logs = m.fit_epoch(&d, 16, true, &mut NoHook).unwrap();
            curve.extend(logs.iter().map(|&l| l as f32));
            let eval = m.evaluate(&d, 7, &mut NoHook).unwrap();
            curve.extend(eval.iter().map(|&l| l as f32));
        }
        let mut out = vec![0.0f32; 40 * 5];
        m.predict(&[&x], 40, 13, &mut [&mut out], &mut NoHook)
            .unwrap();
        curves.push(curve);
        preds.push(out);
    }
    assert_close("loss curve", &curves[0], &curves[1], 1e-3);
    assert_close("predictions", &preds[0], &preds[1], 1e-3);
}

#[test]
fn streamed_and_resident_batches_train_alike() {
    let (x, y) = dataset();
    let sw: Vec<f32> = (0..40).map(|i| 0.5 + (i % 3) as f32).collect();
    let mut curves = Vec::new();
    for (on_gpu, limit) in [(false, 0), (true, usize::MAX), (true, 0)] {
        let mut m = mlp(0.25);
        if on_gpu {
            m.set_device(gpu()).unwrap();
        }
        m.set_resident_limit(limit);
        m.compile(opt_spec(
            "rmsprop",
            &[],
            "sparse_categorical_crossentropy",
            &["accuracy"],
        ))
        .unwrap();
        let d = Dataset::single(&x, &y, Some(&sw), 40);
        let mut curve = Vec::new();
        for _ in 0..2 {
            curve.extend(
                m.fit_epoch(&d, 12, true, &mut NoHook)
                    .unwrap()
                    .iter()
                    .map(|&l| l as f32),
            );
            curve.extend(
                m.evaluate(&d, 9, &mut NoHook)
                    .unwrap()
                    .iter()
                    .map(|&l| l as f32),
            );
        }
        m.release_data();
        curves.push(curve);
    }
    assert_close("resident vs cpu", &curves[0], &curves[1], 1e-3);
    assert_close("streamed vs cpu", &curves[0], &curves[2], 1e-3);
}

#[test]
fn a_two_input_model_with_a_state_update_matches_the_cpu() {
    let build = || {
        let mut g = Graph::new();
        let a = g.input(Shape::batched(&[3]));
        let b = g.input(Shape::batched(&[2]));
        let c = g.push(Op::Concat { axis: 1 }, &[a, b]).unwrap();
        let w = g.declare_var(&[5, 1]);
        let wn = g.param(w);
        let y = g.matmul(c, wn, false, false).unwrap();
        let y = g.unary(UnaryOp::Sigmoid, y).unwrap();
        // A moving average of the batch mean of `c`, updated after training steps.
        let s = g.declare_var(&[5]);
        let mean = g
            .push(
                Op::Reduce {
                    kind: ReduceKind::Mean,
                    axes: [0].into_iter().collect(),
                    keepdims: false,
                },
                &[c],
            )
            .unwrap();
        g.add_update(s, mean, 0.9).unwrap();
        let mut m = Model::new(g, vec![a, b], vec![y], 1).unwrap();
        m.set_var(w, &[0.1, -0.2, 0.3, 0.05, -0.1]).unwrap();
        (m, s)
    };
    let xa = data(24 * 3, 40, -1.0, 1.0);
    let xb = data(24 * 2, 41, -1.0, 1.0);
    let y: Vec<f32> = (0..24).map(|i| (i % 2) as f32).collect();
    let mut results = Vec::new();
    for on_gpu in [false, true] {
        let (mut m, s) = build();
        if on_gpu {
            m.set_device(gpu()).unwrap();
        }
        m.compile(opt_spec(
            "sgd",
            &[("learning_rate", 0.5)],
            "binary_crossentropy",
            &["accuracy"],
        ))
        .unwrap();
        let d = Dataset {
            x: vec![&xa, &xb],
            y: vec![&y],
            sw: vec![None],
            n: 24,
        };
        let mut r: Vec<f32> = Vec::new();
        for _ in 0..3 {
            r.extend(
                m.fit_epoch(&d, 5, false, &mut NoHook)
                    .unwrap()
                    .iter()
                    .map(|&v| v as f32),
            );
        }
        r.extend(m.var(s));
        r.extend(m.var(0));
        results.push(r);
    }
    assert_close("two-input model", &results[0], &results[1], 1e-4);
}

#[test]
fn models_sharing_a_variable_train_one_copy() {
    for dev in [Device::Cpu, gpu()] {
        let mut a = mlp(0.0);
        let mut b = mlp(0.0);
        a.set_device(dev.clone()).unwrap();
        b.set_device(dev.clone()).unwrap();
        for v in 0..4 {
            b.share_var(v, &a, v).unwrap();
        }
        let before = a.var(0);
        b.compile(opt_spec(
            "sgd",
            &[("learning_rate", 0.5)],
            "sparse_categorical_crossentropy",
            &[],
        ))
        .unwrap();
        let (x, y) = dataset();
        let mut logs = [0.0];
        b.train_batch(&[&x], &[&y], &[&[1.0; 40]], 40, &mut logs)
            .unwrap();
        // Training b moved a's weights: they are one variable.
        assert_ne!(a.var(0), before);
        assert_eq!(a.var(0), b.var(0));
        let mut pa = vec![0.0f32; 40 * 5];
        let mut pb = vec![0.0f32; 40 * 5];
        a.predict(&[&x], 40, 40, &mut [&mut pa], &mut NoHook)
            .unwrap();
        b.predict(&[&x], 40, 40, &mut [&mut pb], &mut NoHook)
            .unwrap();
        assert_eq!(pa, pb);
    }
}

#[test]
fn an_op_without_a_gpu_kernel_is_refused_naming_the_layer() {
    let mut g = Graph::new();
    g.set_scope(Some("embedding_1"));
    let table = g.declare_var(&[10, 4]);
    let t = g.param(table);
    let idx = g.input(Shape::batched(&[3]));
    let y = g.push(Op::Gather, &[t, idx]).unwrap();
    let mut m = Model::new(g, vec![idx], vec![y], 1).unwrap();
    m.set_device(gpu()).unwrap();
    let err = m.compile(opt_spec("sgd", &[], "mse", &[])).unwrap_err();
    assert!(matches!(err, crate::Error::NotImplemented(_)), "{err:?}");
    assert!(err.to_string().contains("embedding_1"), "{err}");
    assert!(err.to_string().contains("embedding gather"), "{err}");
    // Without compiling, predict is refused when its program is planned.
    let mut out = vec![0.0; 12];
    let err = m
        .predict(&[&[1.0, 2.0, 3.0]], 1, 1, &mut [&mut out], &mut NoHook)
        .unwrap_err();
    assert!(err.to_string().contains("embedding_1"), "{err}");
}
