//! What every rule shares: arguments, clipping, weight decay, Keras 1 decay, accumulation,
//! EMA and the fixed set of variables.

use super::testing::{assert_close, run_steps};
use super::Optimizer;
use crate::error::Error;

fn spec(p: &[(&str, f64)]) -> Vec<(String, f64)> {
    p.iter().map(|(n, x)| (n.to_string(), *x)).collect()
}

#[test]
fn defaults_are_keras_3() {
    for (kind, lr) in [
        ("sgd", 0.01),
        ("rmsprop", 0.001),
        ("adagrad", 0.001),
        ("adadelta", 0.001),
        ("adam", 0.001),
        ("adamax", 0.001),
        ("nadam", 0.001),
        ("AdamW", 0.001),
    ] {
        let opt = Optimizer::from_spec(kind, &[]).unwrap();
        assert_eq!(opt.learning_rate(), lr);
        assert_eq!(opt.iterations(), 0);
    }
    let opt = Optimizer::from_spec("adamw", &[]).unwrap();
    assert_eq!(opt.weight_decay, Some(0.004));
}

#[test]
fn bad_arguments_are_value_errors_naming_the_argument() {
    let err = |kind: &str, p: &[(&str, f64)]| Optimizer::from_spec(kind, &spec(p)).unwrap_err();
    let Error::Value(m) = err("sgd", &[("learning_rate", -1.0)]) else {
        panic!("not a ValueError")
    };
    assert_eq!(
        m,
        "Invalid value received for argument `learning_rate`. Expected a float >= 0. \
         Received: learning_rate=-1"
    );
    for (kind, name, x) in [
        ("rmsprop", "rho", 1.5),
        ("sgd", "momentum", -0.1),
        ("sgd", "nesterov", 2.0),
        ("adam", "beta_1", 1.1),
        ("adam", "epsilon", f64::NAN),
        ("adagrad", "initial_accumulator_value", -1.0),
        ("adam", "gradient_accumulation_steps", 1.0),
        ("adam", "clipnorm", -1.0),
    ] {
        let e = err(kind, &[(name, x)]);
        assert!(
            matches!(&e, Error::Value(m) if m.contains(&format!("`{name}`"))),
            "{e}"
        );
    }
    let e = err("adam", &[("rho", 0.9)]);
    assert_eq!(e.to_string(), "Argument(s) not recognized: {'rho': 0.9}");
    let e = err("adam", &[("clipnorm", 1.0), ("clipvalue", 1.0)]);
    assert!(e.to_string().starts_with("Only one of `clipnorm`"), "{e}");
    let e = err("ftrl", &[]);
    assert_eq!(
        e.to_string(),
        "Could not interpret optimizer identifier: ftrl"
    );
}

#[test]
fn variables_are_fixed_after_the_first_step() {
    let mut opt = Optimizer::from_spec("adam", &[]).unwrap();
    let (mut w, mut g) = (vec![1.0f32; 3], vec![0.1f32; 3]);
    opt.apply(&mut [&mut w[..]], &mut [&mut g[..]]).unwrap();
    let (mut w2, mut g2) = (vec![1.0f32; 4], vec![0.1f32; 4]);
    let e = opt
        .apply(&mut [&mut w2[..]], &mut [&mut g2[..]])
        .unwrap_err();
    assert!(matches!(e, Error::Value(_)));
    let e = opt
        .apply(
            &mut [&mut w[..], &mut w2[..]],
            &mut [&mut g[..], &mut g2[..]],
        )
        .unwrap_err();
    assert!(matches!(e, Error::Value(_)));
    let e = opt
        .apply(&mut [&mut w[..]], &mut [&mut g2[..]])
        .unwrap_err();
    assert!(matches!(e, Error::Value(_)));
    assert_eq!(opt.iterations(), 1);
}

#[test]
fn clipvalue_clamps_each_element() {
    let w = run_steps(
        "sgd",
        &[("learning_rate", 1.0), ("clipvalue", 0.5)],
        &[0.0, 0.0, 0.0],
        &[&[2.0, -3.0, 0.25]],
    );
    assert_close(&w, &[-0.5, 0.5, -0.25]);
}

#[test]
fn clipnorm_is_per_variable() {
    let mut opt =
        Optimizer::from_spec("sgd", &spec(&[("learning_rate", 1.0), ("clipnorm", 1.0)])).unwrap();
    let (mut a, mut b) = (vec![0.0f32; 2], vec![0.0f32; 1]);
    let (mut ga, mut gb) = (vec![3.0f32, 4.0], vec![0.5f32]);
    opt.apply(
        &mut [&mut a[..], &mut b[..]],
        &mut [&mut ga[..], &mut gb[..]],
    )
    .unwrap();
    assert_close(&a, &[-0.6, -0.8]);
    assert_close(&b, &[-0.5]);
}

#[test]
fn global_clipnorm_spans_all_variables() {
    let mut opt = Optimizer::from_spec(
        "sgd",
        &spec(&[("learning_rate", 1.0), ("global_clipnorm", 2.5)]),
    )
    .unwrap();
    let (mut a, mut b) = (vec![0.0f32; 1], vec![0.0f32; 1]);
    let (mut ga, mut gb) = (vec![3.0f32], vec![4.0f32]);
    opt.apply(
        &mut [&mut a[..], &mut b[..]],
        &mut [&mut ga[..], &mut gb[..]],
    )
    .unwrap();
    assert_close(&a, &[-1.5]);
    assert_close(&b, &[-2.0]);
}

#[test]
fn weight_decay_is_decoupled_and_scaled_by_lr() {
    // w = 2 - 2 * 0.5 * 0.1 = 1.9, then SGD: 1.9 - 0.1 * 1 = 1.8
    let w = run_steps(
        "sgd",
        &[("learning_rate", 0.1), ("weight_decay", 0.5)],
        &[2.0],
        &[&[1.0]],
    );
    assert_close(&w, &[1.8]);
}

#[test]
fn keras_1_decay_uses_iterations_before_the_step() {
    // lr_1 = 0.1, lr_2 = 0.1 / 1.5, lr_3 = 0.1 / 2
    let w = run_steps(
        "sgd",
        &[("learning_rate", 0.1), ("decay", 0.5)],
        &[0.0],
        &[&[1.0], &[1.0], &[1.0]],
    );
    assert_close(&w, &[-(0.1 + 0.1 / 1.5 + 0.05)]);
    let mut opt = Optimizer::from_spec("sgd", &spec(&[("decay", 1.0)])).unwrap();
    let (mut w, mut g) = (vec![0.0f32], vec![1.0f32]);
    opt.apply(&mut [&mut w[..]], &mut [&mut g[..]]).unwrap();
    assert_eq!(opt.learning_rate(), 0.01);
    assert!((opt.current_learning_rate() - 0.005).abs() < 1e-9);
}

#[test]
fn gradient_accumulation_averages_then_steps() {
    let mut opt = Optimizer::from_spec(
        "sgd",
        &spec(&[("learning_rate", 1.0), ("gradient_accumulation_steps", 2.0)]),
    )
    .unwrap();
    let mut w = [0.0f32];
    for (g, want, it) in [(1.0f32, 0.0f32, 0), (3.0, -2.0, 1), (5.0, -2.0, 1)] {
        let mut g = [g];
        opt.apply(&mut [&mut w[..]], &mut [&mut g[..]]).unwrap();
        assert_eq!((w[0], opt.iterations()), (want, it));
    }
}

#[test]
fn ema_tracks_and_finalizes() {
    let mut opt = Optimizer::from_spec(
        "sgd",
        &spec(&[
            ("learning_rate", 1.0),
            ("use_ema", 1.0),
            ("ema_momentum", 0.5),
        ]),
    )
    .unwrap();
    let mut w = [0.0f32];
    // step 1: w = -1, avg = w (momentum 0 on the first step); step 2: w = -2, avg = -1.5
    for _ in 0..2 {
        let mut g = [1.0f32];
        opt.apply(&mut [&mut w[..]], &mut [&mut g[..]]).unwrap();
    }
    assert_eq!(w, [-2.0]);
    opt.finalize_variable_values(&mut [&mut w[..]]).unwrap();
    assert_eq!(w, [-1.5]);
}

#[test]
fn loss_scale_factor_divides_gradients() {
    let w = run_steps(
        "sgd",
        &[("learning_rate", 1.0), ("loss_scale_factor", 4.0)],
        &[0.0],
        &[&[2.0]],
    );
    assert_close(&w, &[-0.5]);
}

#[test]
fn large_variables_match_small_ones() {
    // A variable big enough to be split across threads gets the same update per element.
    let n = 200_000;
    let g: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 10.0).collect();
    let mut big = Optimizer::from_spec("nadam", &[]).unwrap();
    let mut w = vec![0.5f32; n];
    for _ in 0..3 {
        let mut gg = g.clone();
        big.apply(&mut [&mut w[..]], &mut [&mut gg[..]]).unwrap();
    }
    for i in [0, 1, 96, 65_537, n - 1] {
        let one = run_steps("nadam", &[], &[0.5], &[&[g[i]], &[g[i]], &[g[i]]]);
        assert_eq!(w[i], one[0], "element {i}");
    }
}

#[test]
fn empty_step_is_a_no_op() {
    let mut opt = Optimizer::from_spec("adam", &[]).unwrap();
    opt.apply(&mut [], &mut []).unwrap();
    assert_eq!(opt.iterations(), 0);
}

fn two_variable_steps(opt: &mut Optimizer, steps: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut a, mut b) = (vec![1.0f32, -1.0], vec![0.5f32]);
    for s in 0..steps {
        let (mut ga, mut gb) = (vec![0.3f32, -0.2 * s as f32], vec![1.0f32]);
        opt.apply(
            &mut [&mut a[..], &mut b[..]],
            &mut [&mut ga[..], &mut gb[..]],
        )
        .unwrap();
    }
    (a, b)
}

#[test]
fn slot_variables_follow_keras_order() {
    let names = |kind: &str, p: &[(&str, f64)]| {
        let mut opt = Optimizer::from_spec(kind, &spec(p)).unwrap();
        assert!(opt.slot_variables().is_empty());
        two_variable_steps(&mut opt, 1);
        opt.slot_variables()
            .iter()
            .map(|(n, v)| format!("{n}:{}", v.len()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        names("adam", &[("amsgrad", 1.0)]),
        "momentum:2 velocity:2 momentum:1 velocity:1 velocity_hat:2 velocity_hat:1"
    );
    assert_eq!(
        names("rmsprop", &[("momentum", 0.5), ("centered", 1.0)]),
        "velocity:2 velocity:1 momentum:2 momentum:1 average_gradient:2 average_gradient:1"
    );
    assert_eq!(names("sgd", &[]), "");
    assert_eq!(
        names("nadam", &[("use_ema", 1.0)]),
        "average:2 average:1 momentum:2 velocity:2 momentum:1 velocity:1 u_product:1"
    );
}

#[test]
fn loaded_state_continues_like_the_original() {
    for kind in ["nadam", "adagrad", "rmsprop"] {
        let p = spec(&[("learning_rate", 0.1), ("momentum", 0.5)]);
        let p = if kind == "rmsprop" {
            p
        } else {
            spec(&[("learning_rate", 0.1)])
        };
        let mut original = Optimizer::from_spec(kind, &p).unwrap();
        two_variable_steps(&mut original, 2);
        let saved: Vec<Vec<f32>> = original
            .slot_variables()
            .iter()
            .map(|(_, v)| v.to_vec())
            .collect();
        let views: Vec<&[f32]> = saved.iter().map(|v| &v[..]).collect();
        let mut restored = Optimizer::from_spec(kind, &p).unwrap();
        restored.load_variables(2, &[2, 1], &views).unwrap();
        assert_eq!(restored.iterations(), 2);
        assert_eq!(
            two_variable_steps(&mut original, 3),
            two_variable_steps(&mut restored, 3)
        );
        let e = restored
            .load_variables(2, &[2, 1], &views[1..])
            .unwrap_err();
        assert!(matches!(e, Error::Value(_)));
    }
}

#[test]
fn slots_in_another_variable_order_round_trip() {
    let p = spec(&[("learning_rate", 0.1)]);
    let mut original = Optimizer::from_spec("adam", &p).unwrap();
    two_variable_steps(&mut original, 2);
    // Keras lists the second variable first: its slots come first in each group.
    let order = [1, 0];
    let saved: Vec<Vec<f32>> = original
        .slot_variables_in_order(&order)
        .unwrap()
        .iter()
        .map(|(_, v)| v.to_vec())
        .collect();
    let plain = original.slot_variables();
    assert_eq!(saved[0], plain[2].1);
    assert_eq!(saved[2], plain[0].1);
    assert_eq!(
        original.slot_owners(&order),
        [Some(1), Some(1), Some(0), Some(0)]
    );
    let views: Vec<&[f32]> = saved.iter().map(|v| &v[..]).collect();
    let mut restored = Optimizer::from_spec("adam", &p).unwrap();
    restored
        .load_variables_in_order(original.raw_iterations(), &[2, 1], &order, &views)
        .unwrap();
    assert_eq!(
        two_variable_steps(&mut original, 2),
        two_variable_steps(&mut restored, 2)
    );
    for bad in [&[0, 0][..], &[0][..], &[0, 2][..]] {
        assert!(restored.slot_variables_in_order(bad).is_err());
    }
}

#[test]
fn reset_starts_the_slots_afresh() {
    let p = spec(&[("learning_rate", 0.1)]);
    let mut a = Optimizer::from_spec("nadam", &p).unwrap();
    two_variable_steps(&mut a, 3);
    a.reset(0);
    let mut fresh = Optimizer::from_spec("nadam", &p).unwrap();
    assert_eq!(a.iterations(), 0);
    assert_eq!(
        two_variable_steps(&mut a, 2),
        two_variable_steps(&mut fresh, 2)
    );
}
