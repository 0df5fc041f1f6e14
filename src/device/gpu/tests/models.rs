//! Whole models on the GPU against the CPU: every optimizer's steps and slots, an MLP's loss
//! curve with dropout, resident and streamed data, shared variables, a two-input model with a
//! moving average, a small CNN and a stacked LSTM with recurrent dropout.

use super::{data, gpu};
use crate::device::Device;
use crate::graph::{Graph, Shape};
use crate::ops::{Op, ReduceKind, UnaryOp};

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
            metrics: metrics.iter().map(|&m| m.into()).collect(),
            ..Default::default()
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
                let o = m.optimizer_with_slots().unwrap();
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

/// LSTM(8, return_sequences) -> LSTM(6, recurrent dropout 0.25) -> Dense(3, softmax) on 6
/// timesteps of 5 features, with fixed initial weights.
fn stacked_lstm() -> Model {
    use crate::ops::recurrent::{build, Cell, RnnSpec};
    let (steps, feat) = (6, 5);
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[steps, feat]));
    let mut h = x;
    let mut sizes = vec![];
    for (layer, (inp, units)) in [(feat, 8), (8, 6)].into_iter().enumerate() {
        let spec = RnnSpec {
            cell: Cell::Lstm,
            units,
            act: UnaryOp::Tanh,
            rec_act: UnaryOp::Sigmoid,
            go_backwards: false,
            has_bias: false,
            has_mask: false,
            has_rec_mask: false,
            has_init: false,
        };
        let (w, r, b) = (
            g.declare_var(&[inp, 4 * units]),
            g.declare_var(&[units, 4 * units]),
            g.declare_var(&[4 * units]),
        );
        sizes.extend([inp * 4 * units, units * 4 * units, 4 * units]);
        let (w, r, b) = (g.param(w), g.param(r), g.param(b));
        let xproj = g.matmul(h, w, false, false).unwrap();
        let rec_mask = (layer == 1).then(|| {
            let zeros = g.zeros(Shape::batched(&[units]));
            let ones = g.unary(UnaryOp::AddScalar(1.0), zeros).unwrap();
            g.push(Op::Dropout { rate: 0.25, key: 9 }, &[ones]).unwrap()
        });
        let built = build(
            &mut g,
            spec,
            xproj,
            r,
            Some(b),
            &[],
            None,
            rec_mask,
            layer == 0,
            false,
        )
        .unwrap();
        h = built.output;
    }
    let w = g.declare_var(&[6, 3]);
    let b = g.declare_var(&[3]);
    sizes.extend([18, 3]);
    let (wn, bn) = (g.param(w), g.param(b));
    let y = g.matmul(h, wn, false, false).unwrap();
    let y = g.add(y, bn).unwrap();
    let y = g.push(Op::Softmax, &[y]).unwrap();
    let mut m = Model::new(g, vec![x], vec![y], 3).unwrap();
    for (v, n) in sizes.into_iter().enumerate() {
        m.set_var(v, &data(n, 60 + v as u64, -0.5, 0.5)).unwrap();
    }
    m
}

#[test]
fn a_stacked_lstm_follows_the_cpus_loss_curve() {
    let x = data(30 * 6 * 5, 70, -1.0, 1.0);
    let y: Vec<f32> = (0..30).map(|i| ((i * 5) % 3) as f32).collect();
    let mut curves = Vec::new();
    let mut weights = Vec::new();
    for on_gpu in [false, true] {
        let mut m = stacked_lstm();
        if on_gpu {
            m.set_device(gpu()).unwrap();
        }
        m.compile(opt_spec(
            "adam",
            &[("learning_rate", 0.02)],
            "sparse_categorical_crossentropy",
            &["accuracy"],
        ))
        .unwrap();
        let d = Dataset::single(&x, &y, None, 30);
        let mut curve = Vec::new();
        for _ in 0..2 {
            let logs = m.fit_epoch(&d, 8, false, &mut NoHook).unwrap();
            curve.extend(logs.iter().map(|&l| l as f32));
            let eval = m.evaluate(&d, 11, &mut NoHook).unwrap();
            curve.extend(eval.iter().map(|&l| l as f32));
        }
        curves.push(curve);
        weights.push((0..8).map(|v| m.var(v)).collect::<Vec<_>>());
    }
    assert_close("stacked LSTM loss curve", &curves[0], &curves[1], 1e-3);
    // Training moved the weights.
    assert_ne!(weights[0][1], stacked_lstm().var(1));
    for (v, (a, b)) in weights[0].iter().zip(&weights[1]).enumerate() {
        assert_close(&format!("stacked LSTM variable {v}"), a, b, 1e-3);
    }
}
