//! Metric sums and values on small cases worked by hand from Keras' formulas (the examples
//! of Keras' docstrings among them).

use super::*;

fn state(kind: &str, params: &[(&str, Param)]) -> MetricState {
    let p = Params(
        params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    );
    MetricState::new(MetricSpec::from_params(kind, &p).unwrap())
}

fn value(
    m: &mut MetricState,
    y: &[f32],
    p: &[f32],
    dims: &[usize],
    sw: Option<&[f32]>,
) -> Vec<f64> {
    m.update(y, dims, p, dims, sw).unwrap();
    m.result().unwrap()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

#[test]
fn counts_follow_keras_examples() {
    let cases = [
        (
            "false_positives",
            [0., 1., 0., 0.],
            [0., 0., 1., 1.],
            2.0,
            1.0,
        ),
        (
            "false_negatives",
            [0., 1., 1., 1.],
            [0., 1., 0., 0.],
            2.0,
            1.0,
        ),
        (
            "true_negatives",
            [0., 1., 0., 0.],
            [1., 1., 0., 0.],
            2.0,
            1.0,
        ),
        (
            "true_positives",
            [0., 1., 1., 1.],
            [1., 0., 1., 1.],
            2.0,
            1.0,
        ),
    ];
    for (kind, y, p, plain, weighted) in cases {
        let mut m = state(kind, &[]);
        close(&value(&mut m, &y, &p, &[4], None), &[plain]);
        m.reset();
        let sw = [0., 0., 1., 0.];
        close(&value(&mut m, &y, &p, &[4], Some(&sw)), &[weighted]);
    }
}

#[test]
fn precision_recall_with_top_k_and_thresholds() {
    let mut m = state("precision", &[("top_k", Param::Int(2))]);
    // Ties go to the lower index: the top 2 of [1, 1, 1, 1] are the first two.
    close(
        &value(&mut m, &[0., 0., 1., 1.], &[1., 1., 1., 1.], &[1, 4], None),
        &[0.0],
    );
    let mut m = state("precision", &[("top_k", Param::Int(4))]);
    close(
        &value(&mut m, &[0., 0., 1., 1.], &[1., 1., 1., 1.], &[1, 4], None),
        &[0.5],
    );
    let mut m = state("recall", &[]);
    close(
        &value(&mut m, &[0., 1., 1., 1.], &[1., 0., 1., 1.], &[4], None),
        &[2.0 / 3.0],
    );
    // Evenly spread thresholds take the bucket path; 0 is not above the threshold 0.
    let mut m = state(
        "recall",
        &[("thresholds", Param::Floats(vec![0.0, 0.5, 1.0]))],
    );
    close(
        &value(&mut m, &[1., 1., 1., 0.], &[0.0, 0.5, 0.9, 0.7], &[4], None),
        &[2.0 / 3.0, 1.0 / 3.0, 0.0],
    );
    // The same thresholds unevenly spread take the comparison path.
    let mut m = state(
        "recall",
        &[("thresholds", Param::Floats(vec![0.0, 0.5, 0.95]))],
    );
    close(
        &value(&mut m, &[1., 1., 1., 0.], &[0.0, 0.5, 0.9, 0.7], &[4], None),
        &[2.0 / 3.0, 1.0 / 3.0, 0.0],
    );
    let mut m = state("precision", &[("class_id", Param::Int(1))]);
    // Class 1 predicted positive in rows 0 and 2; labelled in rows 0 and 1.
    close(
        &value(
            &mut m,
            &[0., 1., 0., 1., 1., 0.],
            &[0.2, 0.7, 0.9, 0.1, 0.3, 0.8],
            &[3, 2],
            None,
        ),
        &[0.5],
    );
}

#[test]
fn auc_follows_keras_example() {
    let mut m = state("auc", &[("num_thresholds", Param::Int(3))]);
    let (y, p) = ([0., 0., 1., 1.], [0., 0.5, 0.3, 0.9]);
    close(&value(&mut m, &y, &p, &[4], None), &[0.75]);
    m.reset();
    close(
        &value(&mut m, &y, &p, &[4], Some(&[1., 0., 0., 1.])),
        &[1.0],
    );
    // Thresholds given explicitly and unevenly spread are compared one by one: the area
    // is the same with an extra threshold where nothing changes, and 0.5 with 0.4 alone.
    let mut m = state("auc", &[("thresholds", Param::Floats(vec![0.75, 0.5]))]);
    close(&value(&mut m, &y, &p, &[4], None), &[0.75]);
    let mut m = state("auc", &[("thresholds", Param::Floats(vec![0.4]))]);
    close(&value(&mut m, &y, &p, &[4], None), &[0.5]);
}

#[test]
fn auc_accumulates_over_batches() {
    let y = [0., 1., 1., 0., 1., 0., 0., 1.];
    let p = [0.1, 0.8, 0.35, 0.4, 0.7, 0.2, 0.65, 0.9];
    for curve in ["ROC", "PR"] {
        let params = [("curve", Param::Str(curve.into()))];
        let mut whole = state("auc", &params);
        let all = value(&mut whole, &y, &p, &[8], None);
        let mut parts = state("auc", &params);
        parts.update(&y[..3], &[3], &p[..3], &[3], None).unwrap();
        parts.update(&y[3..], &[5], &p[3..], &[5], None).unwrap();
        close(&parts.result().unwrap(), &all);
    }
    // 14 of the 16 (positive, negative) pairs are ordered right, and no two predictions
    // share one of the 199 buckets: the ROC area is 14/16.
    let mut roc = state("auc", &[]);
    close(&value(&mut roc, &y, &p, &[8], None), &[14.0 / 16.0]);
}

#[test]
fn f1_scores_follow_keras_example() {
    let y = [1., 1., 1., 1., 0., 0., 1., 1., 0.];
    let p = [0.2, 0.6, 0.7, 0.2, 0.6, 0.6, 0.6, 0.8, 0.0];
    let mut m = state("f1_score", &[("threshold", Param::Float(0.5))]);
    close(
        &value(&mut m, &y, &p, &[3, 3], None),
        &[0.5, 0.8, 2.0 / 3.0],
    );
    let mut m = state(
        "f1_score",
        &[
            ("threshold", Param::Float(0.5)),
            ("average", Param::Str("macro".into())),
        ],
    );
    close(
        &value(&mut m, &y, &p, &[3, 3], None),
        &[(0.5 + 0.8 + 2.0 / 3.0) / 3.0],
    );
}

#[test]
fn means_and_root_mean_squared_error_weigh_samples() {
    let mut m = MetricState::new(MetricSpec::RootMeanSquaredError);
    let v = value(
        &mut m,
        &[0., 1., 2., 3.],
        &[1., 1., 2., 1.],
        &[4, 1],
        Some(&[1., 0., 1., 1.]),
    );
    close(&v, &[(5.0f64 / 3.0).sqrt()]);
    let mut m = MetricState::new(MetricSpec::Mean(Metric::Loss("mean_absolute_error")));
    close(
        &value(&mut m, &[0., 1., 2., 3.], &[1., 1., 2., 1.], &[2, 2], None),
        &[0.75],
    );
    // Nothing seen yet reads as 0, as Keras' zero variables do.
    m.reset();
    close(&m.result().unwrap(), &[0.0]);
}

#[test]
fn unknown_arguments_and_bad_values_are_errors() {
    let p = |k: &str, v: Param| Params(vec![(k.to_string(), v)]);
    assert!(MetricSpec::from_params("auc", &p("curve", Param::Str("XY".into()))).is_err());
    assert!(MetricSpec::from_params("auc", &p("num_thresholds", Param::Int(1))).is_err());
    assert!(
        MetricSpec::from_params("precision", &p("thresholds", Param::Floats(vec![1.5]))).is_err()
    );
    assert!(MetricSpec::from_params("recall", &p("bogus", Param::Int(1))).is_err());
    assert!(MetricSpec::from_params("f1_score", &p("average", Param::Str("mean".into()))).is_err());
    assert!(MetricSpec::from_params("f1_score", &p("beta", Param::Float(2.0))).is_err());
    assert!(MetricSpec::from_params("no_such_metric", &Params::default()).is_err());
    assert_eq!(MetricSpec::from_name("accuracy").unwrap(), None);
}
