//! End-to-end checks of the model: one SGD step against the analytic gradient, and an MLP
//! that learns a separable problem.

use super::*;
use crate::ops::ReduceKind;

fn dense_model(inputs: usize, units: usize) -> (Model, VarId, VarId) {
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[inputs]));
    let w = g.declare_var(&[inputs, units]);
    let b = g.declare_var(&[units]);
    let wn = g.param(w);
    let bn = g.param(b);
    let y = g.matmul(x, wn, false, false).unwrap();
    let y = g.add(y, bn).unwrap();
    (Model::new(g, vec![x], vec![y], 1).unwrap(), w, b)
}

fn spec(loss: &str, opt: &str, lr: f64) -> CompileSpec {
    CompileSpec {
        outputs: vec![OutputSpec::loss(loss)],
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
    m.train_batch(&[&x], &[&y], &[&[1.0, 1.0]], 2, &mut logs)
        .unwrap();
    // Predictions 0.1 and -0.525; loss = mean(err^2); dL/dw = 2/N * X^T err.
    let err = [0.1 - 1.0, -0.525 - 0.0];
    assert!((logs[0] - (err[0] * err[0] + err[1] * err[1]) / 2.0).abs() < 1e-6);
    let gw = [(err[0] * 1.0 - err[1]), (err[0] * 2.0 + err[1] * 0.5)];
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
    m.train_batch(&[&[0.0]], &[&[0.0]], &[&[1.0]], 1, &mut logs)
        .unwrap();
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
    let mut m = Model::new(g, vec![x], vec![y], 3).unwrap();
    m.initialize_var(w, "glorot_uniform", &InitParams::default(), 5)
        .unwrap();
    let mut s = spec("categorical_crossentropy", "adam", 0.05);
    s.outputs[0].metrics = vec!["accuracy".into()];
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
    let d = Dataset::single(&xs, &ys, None, n);
    let mut logs = Vec::new();
    for _ in 0..20 {
        logs = m.fit_epoch(&d, 16, true, &mut NoHook).unwrap();
    }
    assert!(logs[1] > 0.95, "accuracy {}", logs[1]);
    let eval = m.evaluate(&d, 50, &mut NoHook).unwrap();
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
    let mut m = Model::new(g, vec![x], vec![y], 1).unwrap();
    m.set_var(w, &[1.0, 1.0]).unwrap();
    m.compile(spec("mse", "sgd", 0.0)).unwrap();
    let mut logs = [0.0];
    let (x, y, sw) = ([1.0, 2.0, 3.0, 4.0], [0.0; 4], [1.0; 2]);
    m.train_batch(&[&x], &[&y], &[&sw], 2, &mut logs).unwrap();
    // mean = [2, 3]; mm = 0.9 * 0 + 0.1 * mean.
    assert!((m.var(mm)[0] - 0.2).abs() < 1e-6 && (m.var(mm)[1] - 0.3).abs() < 1e-6);
    m.test_batch(&[&x], &[&y], &[&sw], 2, &mut logs).unwrap();
    assert!((m.var(mm)[0] - 0.2).abs() < 1e-6);
}

/// `o1 = x1 W1 + x2 W2` (1 unit) and `o2 = x2 W3` (2 units), with the weights set.
fn two_in_two_out() -> (Model, [VarId; 3]) {
    let mut g = Graph::new();
    let x1 = g.input(Shape::batched(&[2]));
    let x2 = g.input(Shape::batched(&[3]));
    let w: [VarId; 3] = [
        g.declare_var(&[2, 1]),
        g.declare_var(&[3, 1]),
        g.declare_var(&[3, 2]),
    ];
    let [p1, p2, p3] = w.map(|v| g.param(v));
    let a = g.matmul(x1, p1, false, false).unwrap();
    let b = g.matmul(x2, p2, false, false).unwrap();
    let o1 = g.add(a, b).unwrap();
    let o2 = g.matmul(x2, p3, false, false).unwrap();
    let mut m = Model::new(g, vec![x1, x2], vec![o1, o2], 1).unwrap();
    m.set_output_names(vec!["o1".into(), "o2".into()]).unwrap();
    m.set_var(w[0], &W1).unwrap();
    m.set_var(w[1], &W2).unwrap();
    m.set_var(w[2], &W3).unwrap();
    (m, w)
}

const W1: [f32; 2] = [0.3, -0.2];
const W2: [f32; 3] = [0.1, 0.4, -0.5];
const W3: [f32; 6] = [0.2, -0.1, 0.3, 0.5, -0.4, 0.1];
const X1: [f32; 4] = [1.0, 2.0, -1.0, 0.5];
const X2: [f32; 6] = [0.5, -1.0, 2.0, 1.0, 1.0, -1.0];
const Y1: [f32; 2] = [1.0, 0.0];
const Y2: [f32; 4] = [0.0, 1.0, 1.0, 0.0];
const SW1: [f32; 2] = [1.0, 3.0];

/// `x (rows, k) @ w (k, n)` in f64.
fn matmul(x: &[f32], w: &[f32], k: usize, n: usize) -> Vec<f64> {
    let rows = x.len() / k;
    let mut out = vec![0.0; rows * n];
    for r in 0..rows {
        for j in 0..n {
            out[r * n + j] = (0..k)
                .map(|i| x[r * k + i] as f64 * w[i * n + j] as f64)
                .sum();
        }
    }
    out
}

/// `x^T (rows, k) @ d (rows, n)`: a weight gradient.
fn outer(x: &[f32], d: &[f64], k: usize, n: usize) -> Vec<f64> {
    let rows = x.len() / k;
    let mut out = vec![0.0; k * n];
    for r in 0..rows {
        for i in 0..k {
            for j in 0..n {
                out[i * n + j] += x[r * k + i] as f64 * d[r * n + j];
            }
        }
    }
    out
}

/// Weighted MSE: `(mean over rows of sw * mean_j (p - y)^2, d/dp)`.
fn mse(p: &[f64], y: &[f32], sw: &[f32], units: usize) -> (f64, Vec<f64>) {
    let rows = p.len() / units;
    let mut loss = 0.0;
    let mut grad = vec![0.0; p.len()];
    for r in 0..rows {
        for j in 0..units {
            let e = p[r * units + j] - y[r * units + j] as f64;
            loss += sw[r] as f64 * e * e / (units * rows) as f64;
            grad[r * units + j] = 2.0 * sw[r] as f64 * e / (units * rows) as f64;
        }
    }
    (loss, grad)
}

fn multi_spec(w1: f32, w2: f32, lr: f64) -> CompileSpec {
    CompileSpec {
        outputs: vec![
            OutputSpec {
                loss: Some("mse".into()),
                loss_weight: w1,
                metrics: vec![],
                ..Default::default()
            },
            OutputSpec {
                loss: Some("mean_squared_error".into()),
                loss_weight: w2,
                metrics: vec!["mae".into()],
                ..Default::default()
            },
        ],
        optimizer_kind: "sgd".into(),
        optimizer_params: vec![("learning_rate".into(), lr)],
        regularizers: vec![],
    }
}

#[test]
fn two_outputs_train_on_the_weighted_sum_of_their_losses() {
    let (mut m, w) = two_in_two_out();
    m.compile(multi_spec(0.5, 2.0, 0.1)).unwrap();
    assert_eq!(
        m.log_names().unwrap(),
        ["loss", "o1_loss", "o2_loss", "o2_mae"]
    );
    let p1: Vec<f64> = matmul(&X1, &W1, 2, 1)
        .iter()
        .zip(matmul(&X2, &W2, 3, 1))
        .map(|(a, b)| a + b)
        .collect();
    let p2 = matmul(&X2, &W3, 3, 2);
    let (l1, d1) = mse(&p1, &Y1, &SW1, 1);
    let (l2, d2) = mse(&p2, &Y2, &[1.0, 1.0], 2);
    let mae: f64 = p2
        .iter()
        .zip(Y2)
        .map(|(p, y)| (p - y as f64).abs())
        .sum::<f64>()
        / 4.0;
    let mut logs = [0.0; 4];
    m.train_batch(&[&X1, &X2], &[&Y1, &Y2], &[&SW1, &[1.0, 1.0]], 2, &mut logs)
        .unwrap();
    let want = [0.5 * l1 + 2.0 * l2, l1, l2, mae];
    for (got, want) in logs.iter().zip(want) {
        assert!((got - want).abs() < 1e-5, "{logs:?} vs {want}");
    }
    // The gradient of each output's loss reaches the weights it depends on, scaled by its
    // weight: W2 feeds o1 only, W3 o2 only.
    let scaled = |d: &[f64], s: f64| d.iter().map(|v| v * s).collect::<Vec<_>>();
    let grads = [
        outer(&X1, &scaled(&d1, 0.5), 2, 1),
        outer(&X2, &scaled(&d1, 0.5), 3, 1),
        outer(&X2, &scaled(&d2, 2.0), 3, 2),
    ];
    for ((v, before), g) in w.iter().zip([&W1[..], &W2, &W3]).zip(grads) {
        for ((got, b), g) in m.var(*v).iter().zip(before).zip(g) {
            let want = *b as f64 - 0.1 * g;
            assert!((*got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        }
    }
}

#[test]
fn predict_returns_every_output() {
    let (mut m, _) = two_in_two_out();
    let (mut o1, mut o2) = (vec![0.0; 2], vec![0.0; 4]);
    // Batches of one row exercise the per-batch slicing of each array.
    m.predict(&[&X1, &X2], 2, 1, &mut [&mut o1, &mut o2], &mut NoHook)
        .unwrap();
    let p1: Vec<f64> = matmul(&X1, &W1, 2, 1)
        .iter()
        .zip(matmul(&X2, &W2, 3, 1))
        .map(|(a, b)| a + b)
        .collect();
    let p2 = matmul(&X2, &W3, 3, 2);
    for (got, want) in o1.iter().chain(&o2).zip(p1.iter().chain(&p2)) {
        assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
    }
    assert!(m
        .predict(&[&X1], 2, 1, &mut [&mut o1, &mut o2], &mut NoHook)
        .is_err());
}

#[test]
fn an_output_without_a_loss_takes_no_targets() {
    let (mut m, w) = two_in_two_out();
    let mut s = multi_spec(1.0, 1.0, 0.1);
    s.outputs[1] = OutputSpec {
        loss: None,
        loss_weight: 1.0,
        metrics: vec![],
        ..Default::default()
    };
    m.compile(s).unwrap();
    assert_eq!(m.log_names().unwrap(), ["loss"]);
    assert!(m.label_dims(1).unwrap().is_empty());
    let mut logs = [0.0];
    m.train_batch(&[&X1, &X2], &[&Y1, &[]], &[&SW1, &[]], 2, &mut logs)
        .unwrap();
    assert_eq!(m.var(w[2]), &W3, "o2's weights get no gradient");
    let mut s = multi_spec(1.0, 1.0, 0.1);
    s.outputs.iter_mut().for_each(|o| o.loss = None);
    assert!(m.compile(s).is_err(), "at least one output needs a loss");
}

#[test]
fn fit_gathers_rows_of_every_array_and_learns() {
    let (mut m, _) = two_in_two_out();
    m.compile(multi_spec(1.0, 0.5, 0.05)).unwrap();
    let n = 64;
    let mut rng = initializers::Rng::new(3);
    let mut x1 = Vec::new();
    let mut x2 = Vec::new();
    for _ in 0..n {
        x1.extend([rng.normal() as f32, rng.normal() as f32]);
        x2.extend([
            rng.normal() as f32,
            rng.normal() as f32,
            rng.normal() as f32,
        ]);
    }
    // Targets a linear model can fit exactly.
    let y1: Vec<f32> = (0..n).map(|r| x1[2 * r] - 0.5 * x2[3 * r + 2]).collect();
    let y2: Vec<f32> = (0..n)
        .flat_map(|r| [x2[3 * r], x2[3 * r + 1] + x2[3 * r + 2]])
        .collect();
    let d = Dataset {
        x: vec![&x1, &x2],
        y: vec![&y1, &y2],
        sw: vec![None, None],
        n,
    };
    let first = m.evaluate(&d, 10, &mut NoHook).unwrap();
    for _ in 0..30 {
        m.fit_epoch(&d, 8, true, &mut NoHook).unwrap();
    }
    let last = m.evaluate(&d, 10, &mut NoHook).unwrap();
    assert!(last[0] < 0.05 * first[0], "{first:?} -> {last:?}");
    // The epoch mean over batches equals one batch of everything.
    let mut whole = [0.0; 4];
    let ones = vec![1.0; n];
    m.test_batch(&[&x1, &x2], &[&y1, &y2], &[&ones, &ones], n, &mut whole)
        .unwrap();
    for (a, b) in whole.iter().zip(&last) {
        assert!(
            (a - b).abs() < 1e-5 * (1.0 + a.abs()),
            "{whole:?} vs {last:?}"
        );
    }
}

#[test]
fn model_inputs_must_be_the_graph_inputs_in_order() {
    let mut g = Graph::new();
    let a = g.input(Shape::batched(&[2]));
    let b = g.input(Shape::batched(&[2]));
    let s = g.add(a, b).unwrap();
    assert!(Model::new(g.clone(), vec![b, a], vec![s], 0).is_err());
    assert!(Model::new(g.clone(), vec![a], vec![s], 0).is_err());
    assert!(Model::new(g.clone(), vec![a, b], vec![], 0).is_err());
    // An input returned as an output gets a computed copy.
    let mut m = Model::new(g, vec![a, b], vec![s, a], 0).unwrap();
    let (mut o1, mut o2) = (vec![0.0; 2], vec![0.0; 2]);
    m.predict_batch(&[&[1.0, 2.0], &[3.0, 4.0]], 1, &mut [&mut o1, &mut o2])
        .unwrap();
    assert_eq!(
        (o1.as_slice(), o2.as_slice()),
        (&[4.0, 6.0][..], &[1.0, 2.0][..])
    );
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
    let mut m = Model::new(g, vec![x], vec![y], 1).unwrap();
    m.set_trainable(s, false);
    assert!(m.is_stateful());
    let mut out = [0.0; 2];
    m.predict_batch(&[&[1.0, 10.0]], 2, &mut [&mut out])
        .unwrap();
    m.predict_batch(&[&[1.0, 10.0]], 2, &mut [&mut out])
        .unwrap();
    assert_eq!(out, [2.0, 20.0]);
    m.compile(spec("mse", "sgd", 0.1)).unwrap();
    let mut logs = [0.0];
    let (ones, zeros) = ([1.0; 2], [0.0; 2]);
    m.test_batch(&[&ones], &[&zeros], &[&ones], 2, &mut logs)
        .unwrap();
    m.train_batch(&[&ones], &[&zeros], &[&ones], 2, &mut logs)
        .unwrap();
    assert_eq!(m.var(s), &[4.0, 22.0]);
    // Another batch size cannot read the state.
    let mut out3 = [0.0; 3];
    let e = m
        .predict_batch(&[&[1.0, 2.0, 3.0]], 3, &mut [&mut out3])
        .unwrap_err();
    assert!(format!("{e}").contains("batch size 2"), "{e}");
}

/// A model whose training draws random masks (dropout) and whose two variables the optimizer
/// holds in var order.
fn dropout_model(seed: u64) -> (Model, [VarId; 2]) {
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[3]));
    let w = g.declare_var(&[3, 2]);
    let b = g.declare_var(&[2]);
    let (wn, bn) = (g.param(w), g.param(b));
    let h = g
        .push(crate::ops::Op::Dropout { rate: 0.5, key: 7 }, &[x])
        .unwrap();
    let y = g.matmul(h, wn, false, false).unwrap();
    let y = g.add(y, bn).unwrap();
    let mut m = Model::new(g, vec![x], vec![y], seed).unwrap();
    m.set_var(w, &[0.1, -0.2, 0.3, 0.4, -0.5, 0.6]).unwrap();
    m.compile(spec("mse", "adam", 0.05)).unwrap();
    (m, [w, b])
}

#[test]
fn engine_and_optimizer_state_resume_a_fit_exactly() {
    let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
    let y: Vec<f32> = (0..16).map(|i| (i as f32 * 0.11).cos()).collect();
    let d = Dataset::single(&x, &y, None, 8);
    let (mut a, vars) = dropout_model(11);
    a.fit_epoch(&d, 3, true, &mut NoHook).unwrap();
    // Keras lists b before w: the saved slots follow that order.
    let order = [1, 0];
    let st = a.optimizer_state(&order).unwrap().unwrap();
    assert_eq!(st.iterations, 3);
    assert_eq!(
        st.slots.iter().map(|s| s.1).collect::<Vec<_>>(),
        [Some(1), Some(1), Some(0), Some(0)]
    );
    let (mut b, _) = dropout_model(99);
    for &v in &vars {
        b.set_var(v, &a.var(v)).unwrap();
    }
    let (seed, step, epoch) = a.engine_state();
    b.set_engine_state(seed, step, epoch);
    let slots: Vec<&[f32]> = st.slots.iter().map(|s| &s.2[..]).collect();
    b.load_optimizer_state(st.iterations, st.learning_rate, &order, &slots)
        .unwrap();
    for _ in 0..2 {
        let la = a.fit_epoch(&d, 3, true, &mut NoHook).unwrap();
        let lb = b.fit_epoch(&d, 3, true, &mut NoHook).unwrap();
        assert_eq!(la, lb);
    }
    for &v in &vars {
        assert_eq!(a.var(v), b.var(v));
    }
    assert_eq!(
        b.optimizer_mut().map(|o| o.iterations()),
        Some(9),
        "3 steps an epoch"
    );
}

/// Eight rows of a two-feature regression.
fn regression_rows() -> (Vec<f32>, Vec<f32>) {
    let xs: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
    let ys: Vec<f32> = xs.chunks(2).map(|r| r[0] - 2.0 * r[1] + 0.5).collect();
    (xs, ys)
}

fn regression_model() -> (Model, VarId, VarId) {
    let (mut m, w, b) = dense_model(2, 1);
    m.set_var(w, &[0.3, -0.1]).unwrap();
    m.set_var(b, &[0.0]).unwrap();
    m.compile(spec("mse", "sgd", 0.1)).unwrap();
    (m, w, b)
}

#[test]
fn a_pass_in_chunks_keeps_its_logs_across_a_nested_pass() {
    let (xs, ys) = regression_rows();
    let d = Dataset::single(&xs, &ys, None, 8);
    let (mut whole, w, b) = regression_model();
    let want = whole.fit_epoch(&d, 3, false, &mut NoHook).unwrap();
    let (mut m, _, _) = regression_model();
    let mut e = m.begin_pass(PassKind::Train, &d, 3, false).unwrap();
    let mut evals = Vec::new();
    while !e.is_done() {
        assert_eq!(m.run_pass(&mut e, &d, &mut [], 1, &mut NoHook).unwrap(), 1);
        // Between batches: an evaluation claims the log sums, then the epoch takes them back.
        evals.push(m.evaluate(&d, 5, &mut NoHook).unwrap()[0]);
    }
    assert_eq!((e.batch(), e.rows_done()), (3, 8));
    let got = m.end_pass(e).unwrap();
    assert!((got[0] - want[0]).abs() < 1e-9, "{got:?} vs {want:?}");
    assert_eq!(m.var(w), whole.var(w));
    assert_eq!(m.var(b), whole.var(b));
    assert!(evals[2] < evals[0], "{evals:?}");
    assert!(m.log_stash.is_empty());
}

#[test]
fn a_prediction_ended_between_batches_leaves_the_epochs_logs() {
    let (xs, ys) = regression_rows();
    let d = Dataset::single(&xs, &ys, None, 8);
    let (mut whole, _, _) = regression_model();
    let want = whole.fit_epoch(&d, 3, false, &mut NoHook).unwrap();
    let (mut m, _, _) = regression_model();
    let p = Dataset::single(&xs, &[], None, 8);
    let mut e = m.begin_pass(PassKind::Train, &d, 3, false).unwrap();
    while !e.is_done() {
        m.run_pass(&mut e, &d, &mut [], 1, &mut NoHook).unwrap();
        // Between batches (a callback's or another thread's prediction): a whole pass.
        let mut out = vec![0.0f32; 8];
        let mut q = m.begin_pass(PassKind::Predict, &p, 4, false).unwrap();
        m.run_pass(&mut q, &p, &mut [&mut out], usize::MAX, &mut NoHook)
            .unwrap();
        assert!(m.end_pass(q).unwrap().is_empty());
    }
    let got = m.end_pass(e).unwrap();
    assert!((got[0] - want[0]).abs() < 1e-9, "{got:?} vs {want:?}");
}

#[test]
fn a_dropped_pass_leaves_nothing_behind() {
    let (xs, ys) = regression_rows();
    let d = Dataset::single(&xs, &ys, None, 8);
    let (mut m, _, _) = regression_model();
    let mut e = m.begin_pass(PassKind::Train, &d, 2, false).unwrap();
    m.run_pass(&mut e, &d, &mut [], 1, &mut NoHook).unwrap();
    drop(e);
    let logs = m.evaluate(&d, 8, &mut NoHook).unwrap();
    let mut one = [0.0];
    m.test_batch(&[&xs], &[&ys], &[&[1.0; 8]], 8, &mut one)
        .unwrap();
    assert!((logs[0] - one[0]).abs() < 1e-9);
    assert!(m.log_stash.is_empty());
}

#[test]
fn a_hook_pauses_the_loop_and_the_pass_resumes_where_it_stopped() {
    struct PauseEvery(usize);
    impl Hook for PauseEvery {
        fn batch_end(&mut self, batch: usize, _: usize) -> Result<Control> {
            Ok(if (batch + 1).is_multiple_of(self.0) {
                Control::Pause
            } else {
                Control::Continue
            })
        }
    }
    let (xs, _) = regression_rows();
    let (mut m, _, _) = regression_model();
    let d = Dataset {
        x: vec![&xs],
        y: Vec::new(),
        sw: Vec::new(),
        n: 8,
    };
    let mut out = vec![0.0f32; 8];
    let mut e = m.begin_pass(PassKind::Predict, &d, 1, false).unwrap();
    let mut runs = Vec::new();
    while !e.is_done() {
        runs.push(
            m.run_pass(&mut e, &d, &mut [&mut out], usize::MAX, &mut PauseEvery(3))
                .unwrap(),
        );
    }
    assert_eq!(runs, [3, 3, 2]);
    let mut whole = vec![0.0f32; 8];
    m.predict(&[&xs], 8, 8, &mut [&mut whole], &mut NoHook)
        .unwrap();
    assert_eq!(out, whole);
}

#[test]
fn a_large_prediction_batch_runs_in_parts_with_the_same_values() {
    // 120,000 features a row: 16 MiB of activations hold 34 rows (32 as a multiple of 32),
    // so 130 rows run in five parts; each output row is the row's own product (checked in
    // float64 at the rows around a part's edge).
    let (n_in, units, batch) = (120_000, 3, 130);
    let (mut m, w, b) = dense_model(n_in, units);
    let wv: Vec<f32> = (0..n_in * units)
        .map(|i| ((i % 13) as f32 - 6.0) * 1e-3)
        .collect();
    m.set_var(w, &wv).unwrap();
    m.set_var(b, &[0.5, -0.5, 0.25]).unwrap();
    let part = m.predict_part_rows(batch);
    assert!(part < batch && part % 32 == 0, "{part}");
    let x: Vec<f32> = (0..batch * n_in)
        .map(|i| ((i % 7) as f32 - 3.0) * 0.1)
        .collect();
    let mut all = vec![0.0; batch * units];
    m.predict_batch(&[&x], batch, &mut [&mut all]).unwrap();
    for r in [0, part - 1, part, batch - 1] {
        for j in 0..units {
            let want = [0.5, -0.5, 0.25][j]
                + (0..n_in)
                    .map(|p| f64::from(x[r * n_in + p]) * f64::from(wv[p * units + j]))
                    .sum::<f64>();
            let got = f64::from(all[r * units + j]);
            assert!(
                (got - want).abs() < 1e-4,
                "row {r} unit {j}: {got} vs {want}"
            );
        }
    }
    // A model that mixes rows (a mean over the batch) keeps its batch whole.
    let mut g = Graph::new();
    let x_in = g.input(Shape::batched(&[n_in]));
    let mean = g.reduce(ReduceKind::Mean, x_in, &[0], false).unwrap();
    let y = g.sub(x_in, mean).unwrap();
    let m2 = Model::new(g, vec![x_in], vec![y], 1).unwrap();
    assert_eq!(m2.predict_part_rows(batch), batch);
}
