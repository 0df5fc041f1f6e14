//! End-to-end checks of the model: one SGD step against the analytic gradient, and an MLP
//! that learns a separable problem.

use super::*;

fn dense_model(inputs: usize, units: usize) -> (Model, VarId, VarId) {
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[inputs]));
    let w = g.declare_var(&[inputs, units]);
    let b = g.declare_var(&[units]);
    let wn = g.param(w);
    let bn = g.param(b);
    let y = g.matmul(x, wn, false, false).unwrap();
    let y = g.add(y, bn).unwrap();
    (Model::new(g, x, y, 1).unwrap(), w, b)
}

fn spec(loss: &str, opt: &str, lr: f64) -> CompileSpec {
    CompileSpec {
        loss: loss.into(),
        metrics: vec![],
        optimizer_kind: opt.into(),
        optimizer_params: vec![("learning_rate".into(), lr)],
        regularizers: vec![],
    }
}

#[test]
fn one_sgd_step_follows_the_analytic_mse_gradient() {
    let (mut m, w, b) = dense_model(2, 1);
    m.set_var(w, &[0.5, -0.25]).unwrap();
    m.set_var(b, &[0.1]).unwrap();
    m.compile(spec("mse", "sgd", 0.1)).unwrap();
    let x = [1.0, 2.0, -1.0, 0.5];
    let y = [1.0, 0.0];
    let mut logs = [0.0];
    m.train_batch(&x, &y, &[1.0, 1.0], 2, &mut logs).unwrap();
    // Predictions 0.1 and -0.525; loss = mean(err^2); dL/dw = 2/N * X^T err.
    let err = [0.1 - 1.0, -0.525 - 0.0];
    assert!((logs[0] - (err[0] * err[0] + err[1] * err[1]) / 2.0).abs() < 1e-6);
    let gw = [
        (err[0] * 1.0 + err[1] * -1.0),
        (err[0] * 2.0 + err[1] * 0.5),
    ];
    let gb = err[0] + err[1];
    let want_w = [0.5 - 0.1 * gw[0], -0.25 - 0.1 * gw[1]];
    for (got, want) in m.var(w).iter().zip(want_w) {
        assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
    }
    assert!((m.var(b)[0] as f64 - (0.1 - 0.1 * gb)).abs() < 1e-6);
}

#[test]
fn a_regularizer_adds_to_the_loss_and_the_gradient() {
    let (mut m, w, b) = dense_model(1, 1);
    m.set_var(w, &[2.0]).unwrap();
    m.set_var(b, &[0.0]).unwrap();
    let mut s = spec("mse", "sgd", 0.1);
    s.regularizers = vec![(w, 0.0, 0.5)];
    m.compile(s).unwrap();
    let mut logs = [0.0];
    m.train_batch(&[0.0], &[0.0], &[1.0], 1, &mut logs).unwrap();
    assert!((logs[0] - 0.5 * 4.0).abs() < 1e-6);
    // d(0.5 w^2)/dw = w = 2: w <- 2 - 0.1 * 2.
    assert!((m.var(w)[0] - 1.8).abs() < 1e-6);
}

#[test]
fn softmax_regression_learns_a_separable_problem() {
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[2]));
    let w = g.declare_var(&[2, 2]);
    let wn = g.param(w);
    let y = g.matmul(x, wn, false, false).unwrap();
    let y = crate::activations::apply(&mut g, "softmax", y).unwrap();
    let mut m = Model::new(g, x, y, 3).unwrap();
    m.initialize_var(w, "glorot_uniform", &InitParams::default(), 5)
        .unwrap();
    let mut s = spec("categorical_crossentropy", "adam", 0.05);
    s.metrics = vec!["accuracy".into()];
    m.compile(s).unwrap();
    let n = 200;
    let mut rng = initializers::Rng::new(11);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for _ in 0..n {
        let (a, b) = (rng.normal() as f32, rng.normal() as f32);
        xs.extend([a, b]);
        ys.extend(if a + b > 0.0 { [1.0, 0.0] } else { [0.0, 1.0] });
    }
    let d = Dataset {
        x: &xs,
        y: &ys,
        sw: None,
        n,
    };
    let mut logs = Vec::new();
    for _ in 0..20 {
        logs = m.fit_epoch(&d, 16, true, &mut |_| Ok(())).unwrap();
    }
    assert!(logs[1] > 0.95, "accuracy {}", logs[1]);
    let eval = m.evaluate(&d, 50, &mut |_| Ok(())).unwrap();
    assert!(eval[0] < 0.3 && eval[1] > 0.95, "{eval:?}");
}

#[test]
fn state_updates_follow_the_batch_in_training_only() {
    // y = train_select(x, x) * w, and a moving mean of x's batch mean.
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[2]));
    let w = g.declare_var(&[2]);
    let mm = g.declare_var(&[2]);
    let wn = g.param(w);
    let y = g.mul(x, wn).unwrap();
    let batch_mean = g.reduce(ReduceKind::Mean, x, &[0], false).unwrap();
    g.add_update(mm, batch_mean, 0.9).unwrap();
    let mut m = Model::new(g, x, y, 1).unwrap();
    m.set_var(w, &[1.0, 1.0]).unwrap();
    m.compile(spec("mse", "sgd", 0.0)).unwrap();
    let mut logs = [0.0];
    m.train_batch(&[1.0, 2.0, 3.0, 4.0], &[0.0; 4], &[1.0; 2], 2, &mut logs)
        .unwrap();
    // mean = [2, 3]; mm = 0.9 * 0 + 0.1 * mean.
    assert!((m.var(mm)[0] - 0.2).abs() < 1e-6 && (m.var(mm)[1] - 0.3).abs() < 1e-6);
    m.test_batch(&[1.0, 2.0, 3.0, 4.0], &[0.0; 4], &[1.0; 2], 2, &mut logs)
        .unwrap();
    assert!((m.var(mm)[0] - 0.2).abs() < 1e-6);
}

#[test]
fn carried_state_is_written_after_every_batch() {
    // A running sum per row: s' = s + x, with s a fixed (2, 1) variable read as a batch of 2.
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[1]));
    let s = g.declare_var(&[2, 1]);
    let sn = g.param(s);
    let sb = g.push(crate::ops::Op::ToBatched, &[sn]).unwrap();
    let y = g.add(x, sb).unwrap();
    let back = g.push(crate::ops::Op::FromBatched(2), &[y]).unwrap();
    g.add_assign(s, back).unwrap();
    let mut m = Model::new(g, x, y, 1).unwrap();
    m.set_trainable(s, false);
    assert!(m.is_stateful());
    let mut out = [0.0; 2];
    m.predict_batch(&[1.0, 10.0], 2, &mut out).unwrap();
    m.predict_batch(&[1.0, 10.0], 2, &mut out).unwrap();
    assert_eq!(out, [2.0, 20.0]);
    m.compile(spec("mse", "sgd", 0.1)).unwrap();
    let mut logs = [0.0];
    m.test_batch(&[1.0, 1.0], &[0.0; 2], &[1.0; 2], 2, &mut logs)
        .unwrap();
    m.train_batch(&[1.0, 1.0], &[0.0; 2], &[1.0; 2], 2, &mut logs)
        .unwrap();
    assert_eq!(m.var(s), &[4.0, 22.0]);
    // Another batch size cannot read the state.
    let e = m
        .predict_batch(&[1.0, 2.0, 3.0], 3, &mut [0.0; 3])
        .unwrap_err();
    assert!(format!("{e}").contains("batch size 2"), "{e}");
}
