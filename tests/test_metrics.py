"""Metric classes against real Keras 3: standalone (`update_state` over several batches, with and
without sample weights), in `evaluate` and in `fit` logs (the engine's epoch sums over several
batches, `metrics=` unweighted and `weighted_metrics=` weighted), on the CPU and the GPU.

The reference values are in metrics_keras_fixtures.json, computed once with Keras 3.15
(KERAS_BACKEND=numpy) by make_metrics_fixtures.py, which also holds the data (see its docstring).
"""

import json
import os

import numpy as np
import pytest

from rustkeras import backend as K
from rustkeras import config, metrics
from rustkeras._progbar import Progbar
from rustkeras.callbacks import LambdaCallback
from rustkeras.layers import Dense, Input
from rustkeras.models import Sequential
from rustkeras.optimizers import SGD

with open(os.path.join(os.path.dirname(__file__), "metrics_keras_fixtures.json")) as _f:
    FIX = json.load(_f)
BATCH = FIX["batch_size"]
SW = np.asarray(FIX["sample_weight"], dtype=np.float32)
DATA = {k: (np.asarray(v["y"], dtype=np.float32), np.asarray(v["p"], dtype=np.float32))
        for k, v in FIX["datasets"].items()}
CASES = FIX["cases"]


def case_id(c):
    args = ",".join(f"{k}={v}" for k, v in c["kwargs"].items())
    return f"{c['dataset']}-{c['class']}({args})"


def make(c, name=None):
    kwargs = dict(c["kwargs"])
    if name is not None:
        kwargs["name"] = name
    return getattr(metrics, c["class"])(**kwargs)


def check(got, want, case):
    # float32 sums and results against Keras' float32; a logit's sigmoid may differ by an ulp
    # between the engines, which can move a prediction to the next AUC bucket.
    atol = 2e-4 if case["kwargs"].get("from_logits") else 2e-6
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=2e-5, atol=atol, err_msg=case_id(case))


def identity_model(d, loss):
    """A model whose predictions are its inputs (a Dense identity that lr=0 keeps)."""
    m = Sequential([Input((d,)), Dense(d, use_bias=False)])
    m.set_weights([np.eye(d, dtype=np.float32)])
    m.compile(optimizer=SGD(learning_rate=0.0), loss=loss, metrics=[], weighted_metrics=[])
    return m


def compiled(c, loss=None):
    y, p = DATA[c["dataset"]]
    loss = loss or ("sparse_categorical_crossentropy" if c["dataset"] == "sparse" else "mse")
    model = identity_model(p.shape[1], loss)
    model.compile(optimizer=SGD(learning_rate=0.0), loss=loss, metrics=[make(c, "m")],
                  weighted_metrics=[make(c, "wm")])
    return model, y, p


@pytest.fixture(autouse=True)
def cpu_afterwards():
    yield
    config.set_backend("cpu")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_standalone_values_equal_keras(case):
    y, p = DATA[case["dataset"]]
    for key, weights in (("plain", None), ("weighted", SW)):
        m = make(case)
        for lo in range(0, len(y), BATCH):
            m.update_state(y[lo:lo + BATCH], p[lo:lo + BATCH],
                           sample_weight=None if weights is None else weights[lo:lo + BATCH])
        check(m.result(), case[key], case)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_evaluate_and_fit_logs_equal_keras(case):
    model, y, p = compiled(case)
    logs = model.evaluate(p, y, sample_weight=SW, batch_size=BATCH, verbose=0, return_dict=True)
    check(logs["m"], case["plain"], case)
    check(logs["wm"], case["weighted"], case)
    h = model.fit(p, y, sample_weight=SW, batch_size=BATCH, epochs=1, verbose=0)
    check(h.history["m"][0], case["plain"], case)
    check(h.history["wm"][0], case["weighted"], case)


GPU_CASES = [c for c in CASES if (c["class"], c["dataset"]) in {
    ("AUC", "binary"), ("AUC", "multiclass"), ("AUC", "multilabel"), ("Precision", "multiclass"),
    ("Recall", "binary"), ("FalseNegatives", "binary"), ("F1Score", "multiclass"), ("RootMeanSquaredError", "regression"),
    ("SparseCategoricalAccuracy", "sparse"), ("FBetaScore", "multiclass"),
}]


@pytest.mark.parametrize("case", GPU_CASES, ids=case_id)
def test_gpu_logs_equal_keras(case):
    config.set_backend("gpu")
    assert K.backend() == "gpu"
    model, y, p = compiled(case)
    assert model._core.device() == "gpu"
    logs = model.evaluate(p, y, sample_weight=SW, batch_size=BATCH, verbose=0, return_dict=True)
    check(logs["m"], case["plain"], case)
    check(logs["wm"], case["weighted"], case)
    h = model.fit(p, y, sample_weight=SW, batch_size=BATCH, epochs=1, verbose=0)
    check(h.history["m"][0], case["plain"], case)
    check(h.history["wm"][0], case["weighted"], case)


def test_log_names_follow_keras_for_repeated_and_weighted_metrics():
    ev = FIX["evaluate"]
    y, p = DATA[ev["dataset"]]
    mk = lambda entries: [getattr(metrics, c)(**kw) for c, kw in entries]  # noqa: E731
    for backend in ("cpu", "gpu"):
        config.set_backend(backend)
        model = identity_model(p.shape[1], "mse")
        model.compile(optimizer=SGD(learning_rate=0.0), loss="mse", metrics=mk(ev["metrics"]),
                      weighted_metrics=mk(ev["weighted_metrics"]))
        logs = model.evaluate(p, y, sample_weight=SW, batch_size=BATCH, verbose=0, return_dict=True)
        want = dict(ev["logs"])
        assert sorted(logs) == sorted(want)
        for k, v in want.items():
            np.testing.assert_allclose(np.asarray(logs[k], dtype=np.float64), v, rtol=2e-5, atol=2e-6, err_msg=k)


def test_multi_output_log_names_follow_keras():
    """Keras 3.15 logs these names for this compile (checked once with real Keras)."""
    from rustkeras.models import Model

    i = Input((2,))
    model = Model(i, [Dense(1, activation="sigmoid", name="o1")(i), Dense(1, activation="sigmoid", name="o2")(i)])
    model.compile("sgd", ["mse", "mse"],
                  metrics={"o1": ["auc", metrics.Precision(name="p")], "o2": [metrics.AUC(name="auc")]},
                  weighted_metrics={"o1": ["auc"], "o2": ["auc", metrics.Precision(name="p")]})
    x = np.linspace(0, 1, 16, dtype=np.float32).reshape(8, 2)
    y = np.array([[0], [1], [0], [1], [1], [0], [1], [0]], dtype=np.float32)
    logs = model.evaluate(x, [y, y], verbose=0, return_dict=True)
    assert sorted(logs) == ["loss", "o1_auc", "o1_loss", "o1_p", "o1_weighted_auc", "o2_auc", "o2_loss", "o2_p",
                            "o2_weighted_auc"]
    # Without sample weights, the weighted metrics read as the plain ones.
    assert logs["o1_weighted_auc"] == pytest.approx(logs["o1_auc"])
    assert logs["o2_weighted_auc"] == pytest.approx(logs["o2_auc"])


def test_batch_logs_read_the_running_sums():
    """A batch callback sees each metric over the epoch's batches so far."""
    y, p = DATA["binary"]
    seen = []
    for backend in ("cpu", "gpu"):
        config.set_backend(backend)
        model = identity_model(1, "mse")
        model.compile(optimizer=SGD(learning_rate=0.0), loss="mse", metrics=["auc", metrics.Precision(name="p")])
        seen.clear()
        cb = LambdaCallback(on_train_batch_end=lambda b, logs: seen.append((logs["auc"], logs["p"])))
        model.fit(p, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
        assert len(seen) == 4
        for b, (auc, prec) in enumerate(seen):
            end = (b + 1) * BATCH
            a, q = metrics.AUC(), metrics.Precision()
            a.update_state(y[:end], p[:end])
            q.update_state(y[:end], p[:end])
            assert auc == pytest.approx(float(a.result()), rel=1e-5, abs=1e-6)
            assert prec == pytest.approx(float(q.result()), rel=1e-5, abs=1e-6)


def test_compile_takes_names_classes_and_instances():
    K.clear_session()
    y, p = DATA["binary"]
    model = identity_model(1, "mse")
    model.compile(optimizer=SGD(learning_rate=0.0), loss="mse",
                  metrics=["auc", "AUC", "precision", metrics.Recall, metrics.TruePositives(name="tp"),
                           "f1_score", "root_mean_squared_error", "accuracy", "mae"])
    assert model.metrics_names == ["loss", "auc", "AUC", "precision", "recall", "tp", "f1_score",
                                   "root_mean_squared_error", "accuracy", "mae"]
    logs = model.evaluate(p, y, batch_size=BATCH, verbose=0, return_dict=True)
    ref = {"auc": metrics.AUC(), "precision": metrics.Precision(), "recall": metrics.Recall(),
           "tp": metrics.TruePositives(), "f1_score": metrics.F1Score(),
           "root_mean_squared_error": metrics.RootMeanSquaredError(), "accuracy": metrics.BinaryAccuracy(),
           "mae": metrics.MeanAbsoluteError()}
    for name, m in ref.items():
        m.update_state(y, p)
        np.testing.assert_allclose(logs[name], m.result(), rtol=1e-6, err_msg=name)
    assert logs["AUC"] == logs["auc"]
    # F1Score's default (no averaging) is one score per class: an array in the logs.
    assert isinstance(logs["f1_score"], np.ndarray) and logs["f1_score"].shape == (1,)


def test_default_names_are_numbered_as_in_keras():
    K.clear_session()
    assert [metrics.AUC().name, metrics.AUC().name, metrics.Precision().name] == ["auc", "auc_1", "precision"]
    assert metrics.F1Score().name == "f1_score"
    assert metrics.RootMeanSquaredError().name == "root_mean_squared_error"


def test_standalone_call_reset_and_config():
    m = metrics.AUC(num_thresholds=3, name="a")
    assert float(m([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])) == pytest.approx(0.75)
    m.reset_state()
    assert float(m.result()) == 0.0
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    assert float(m.result()) == pytest.approx(1.0)
    cfg = m.get_config()
    assert cfg["name"] == "a" and cfg["num_thresholds"] == 3 and cfg["curve"] == "ROC"
    again = metrics.AUC.from_config(cfg)
    again.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert float(again.result()) == pytest.approx(0.75)
    p = metrics.Precision(thresholds=[0.3, 0.6], top_k=None, class_id=None)
    assert p.get_config()["thresholds"] == [0.3, 0.6]
    assert p.result().shape == (2,)
    f = metrics.F1Score(average="macro", threshold=0.4)
    assert metrics.F1Score.from_config(f.get_config()).get_config() == f.get_config()
    # A sample weight per sample, as a number, or as a column.
    r = metrics.Recall()
    r.update_state([[1], [1], [0]], [[0.9], [0.2], [0.7]], sample_weight=np.array([[2.0], [1.0], [1.0]]))
    assert float(r.result()) == pytest.approx(2 / 3)


def test_invalid_arguments_raise_keras_errors():
    with pytest.raises(ValueError, match="Threshold values must be in"):
        metrics.Precision(thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="Invalid AUC curve value"):
        metrics.AUC(curve="XY")
    with pytest.raises(ValueError, match="summation method"):
        metrics.AUC(summation_method="trapezoid")
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="num_labels"):
        metrics.AUC(num_labels=3)
    with pytest.raises(ValueError, match="average"):
        metrics.F1Score(average="mean")
    with pytest.raises(ValueError, match="beta"):
        metrics.FBetaScore(beta=2)
    with pytest.raises(ValueError, match="threshold"):
        metrics.F1Score(threshold=1.5)
    with pytest.raises(ValueError, match="top_k"):
        metrics.Recall(top_k=0)
    with pytest.raises(ValueError, match="FBetaScore expects 2D inputs"):
        metrics.F1Score().update_state([1, 0], [0.3, 0.6])
    with pytest.raises(ValueError, match="class_id"):
        metrics.Precision(class_id=5).update_state(np.eye(3), np.eye(3))
    with pytest.raises(NotImplementedError, match="per-element"):
        metrics.AUC().update_state(np.eye(3), np.eye(3), sample_weight=np.ones((3, 3)))
    with pytest.raises(NotImplementedError, match="from_sorted_ids"):
        metrics.SparseTopKCategoricalAccuracy(from_sorted_ids=True)
    with pytest.raises(ValueError, match="Could not interpret metric identifier"):
        identity_model(2, "mse").compile(loss="mse", metrics=["no_such_metric"])


def test_metric_needing_one_hot_targets_rejects_a_sparse_loss():
    model = identity_model(3, "sparse_categorical_crossentropy")
    model.compile(loss="sparse_categorical_crossentropy", metrics=[metrics.AUC()])
    with pytest.raises(ValueError, match="integer labels"):
        model.evaluate(np.eye(3, dtype=np.float32), np.arange(3), verbose=0)


def test_a_user_metric_with_its_own_state_is_refused_by_compile():
    class Counter(metrics.Metric):
        def update_state(self, y_true, y_pred, sample_weight=None):
            pass

    with pytest.raises(NotImplementedError, match="update_state"):
        identity_model(2, "mse").compile(loss="mse", metrics=[Counter()])


def test_progress_shows_the_mean_of_a_vector_metric(capsys):
    bar = Progbar(1, verbose=2)
    bar.update(1, [("loss", 0.5), ("f1_score", np.array([0.2, 0.4], dtype=np.float32))], finalize=True)
    assert "loss: 0.5000 - f1_score: 0.3000" in capsys.readouterr().out
