"""rustkeras.losses and rustkeras.metrics against numpy transcriptions of Keras 3's formulas.

The references are written here in float64 from the documented Keras 3 definitions
(epsilon 1e-7); the engine computes in float32, hence the tolerances. The training-loss tests
compile a one-Dense-layer model with known weights and compare `evaluate` with the same
references: Keras 3 reports the batch-size-weighted mean of the per-batch losses, and with
`sample_weight` each batch's loss is sum(loss * w) / batch_size.
"""

import math

import numpy as np
import pytest

from rustkeras import layers, losses, metrics
from rustkeras.models import Sequential

EPS = 1e-7

# ---- numpy references (Keras 3 formulas) -------------------------------------------------


def _f(a):
    return np.asarray(a, dtype=np.float64)


def ref_mse(t, p):
    return np.mean((_f(t) - _f(p)) ** 2, axis=-1)


def ref_mae(t, p):
    return np.mean(np.abs(_f(t) - _f(p)), axis=-1)


def ref_mape(t, p):
    t, p = _f(t), _f(p)
    return 100.0 * np.mean(np.abs((t - p) / np.maximum(np.abs(t), EPS)), axis=-1)


def ref_msle(t, p):
    t, p = _f(t), _f(p)
    return np.mean((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2, axis=-1)


def ref_cce(t, p):
    t, p = _f(t), _f(p)
    p = p / p.sum(axis=-1, keepdims=True)
    p = np.clip(p, EPS, 1 - EPS)
    return -np.sum(t * np.log(p), axis=-1)


def ref_scce(labels, p):
    p = _f(p)
    p = p / p.sum(axis=-1, keepdims=True)
    p = np.clip(p, EPS, 1 - EPS)
    labels = np.asarray(labels).astype(np.int64).reshape(p.shape[:-1])
    return -np.log(np.take_along_axis(p, labels[..., None], axis=-1)[..., 0])


def ref_bce(t, p):
    t, p = _f(t), _f(p)
    p = np.clip(p, EPS, 1 - EPS)
    return np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)), axis=-1)


def ref_kld(t, p):
    t = np.clip(_f(t), EPS, 1)
    p = np.clip(_f(p), EPS, 1)
    return np.sum(t * np.log(t / p), axis=-1)


def _pm1(t):
    t = _f(t)
    if np.all((t == 0) | (t == 1)):
        return 2 * t - 1
    return t


def ref_hinge(t, p):
    return np.mean(np.maximum(1 - _pm1(t) * _f(p), 0), axis=-1)


def ref_squared_hinge(t, p):
    return np.mean(np.maximum(1 - _pm1(t) * _f(p), 0) ** 2, axis=-1)


def ref_categorical_hinge(t, p):
    t, p = _f(t), _f(p)
    pos = np.sum(t * p, axis=-1)
    neg = np.max((1 - t) * p, axis=-1)
    return np.maximum(neg - pos + 1, 0)


def ref_poisson(t, p):
    t, p = _f(t), _f(p)
    return np.mean(p - t * np.log(p + EPS), axis=-1)


def _l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), EPS)


def ref_cosine(t, p):
    return -np.sum(_l2n(_f(t)) * _l2n(_f(p)), axis=-1)


def ref_huber(t, p, delta=1.0):
    e = np.abs(_f(p) - _f(t))
    return np.mean(np.where(e <= delta, 0.5 * e ** 2, delta * e - 0.5 * delta ** 2), axis=-1)


def ref_logcosh(t, p):
    x = _f(p) - _f(t)
    return np.mean(np.log(np.cosh(x)), axis=-1)


REFS = {
    "mean_squared_error": ref_mse, "mse": ref_mse,
    "mean_absolute_error": ref_mae, "mae": ref_mae,
    "mean_absolute_percentage_error": ref_mape, "mape": ref_mape,
    "mean_squared_logarithmic_error": ref_msle, "msle": ref_msle,
    "categorical_crossentropy": ref_cce,
    "sparse_categorical_crossentropy": ref_scce,
    "binary_crossentropy": ref_bce,
    "kullback_leibler_divergence": ref_kld, "kl_divergence": ref_kld, "kld": ref_kld,
    "hinge": ref_hinge, "squared_hinge": ref_squared_hinge, "categorical_hinge": ref_categorical_hinge,
    "poisson": ref_poisson,
    "cosine_similarity": ref_cosine, "cosine_proximity": ref_cosine,
    "huber": ref_huber,
    "log_cosh": ref_logcosh, "logcosh": ref_logcosh,
}

# ---- data ---------------------------------------------------------------------------------

RNG = np.random.default_rng(1234)
N, C = 6, 4


def _probs(n=N, c=C, seed=0):
    r = np.random.default_rng(seed)
    z = r.normal(size=(n, c))
    e = np.exp(z)
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _data(name, seed=0):
    """(y_true, y_pred) suited to a loss: probabilities for the probabilistic ones."""
    r = np.random.default_rng(seed + 100)
    onehot = np.eye(C, dtype=np.float32)[r.integers(0, C, N)]
    if name in ("categorical_crossentropy", "categorical_hinge"):
        return onehot, _probs(seed=seed) if name == "categorical_crossentropy" else r.normal(size=(N, C)).astype(np.float32)
    if name == "sparse_categorical_crossentropy":
        return r.integers(0, C, N).astype(np.float32), _probs(seed=seed)
    if name == "binary_crossentropy":
        return r.integers(0, 2, (N, C)).astype(np.float32), r.uniform(0.02, 0.98, (N, C)).astype(np.float32)
    if name in ("kullback_leibler_divergence", "kl_divergence", "kld"):
        return _probs(seed=seed + 7), _probs(seed=seed)
    if name in ("hinge", "squared_hinge"):
        return r.integers(0, 2, (N, C)).astype(np.float32), r.normal(size=(N, C)).astype(np.float32)
    if name == "poisson":
        return r.poisson(2.0, (N, C)).astype(np.float32), r.uniform(0.1, 4.0, (N, C)).astype(np.float32)
    if name in ("mean_squared_logarithmic_error", "msle"):
        return r.uniform(0, 5, (N, C)).astype(np.float32), r.uniform(0, 5, (N, C)).astype(np.float32)
    if name in ("mean_absolute_percentage_error", "mape"):
        return r.uniform(0.5, 3, (N, C)).astype(np.float32), r.normal(size=(N, C)).astype(np.float32)
    if name in ("huber",):
        # errors on both sides of delta=1
        t = r.normal(size=(N, C)).astype(np.float32)
        return t, (t + r.uniform(-3, 3, (N, C))).astype(np.float32)
    return r.normal(size=(N, C)).astype(np.float32), r.normal(size=(N, C)).astype(np.float32)


# ---- the functions -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFS))
def test_loss_function_matches_keras_formula(name):
    t, p = _data(name)
    got = getattr(losses, name)(t, p)
    want = REFS[name](t, p)
    assert np.shape(got) == (N,)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "logcosh", "cosine_similarity", "binary_crossentropy"])
def test_loss_function_reduces_only_last_axis(name):
    t = RNG.uniform(0.05, 0.95, (2, 3, 4)).astype(np.float32)
    p = RNG.uniform(0.05, 0.95, (2, 3, 4)).astype(np.float32)
    got = getattr(losses, name)(t, p)
    assert np.shape(got) == (2, 3)
    np.testing.assert_allclose(got, REFS[name](t, p), rtol=1e-5, atol=1e-6)


def test_cce_normalises_unnormalised_predictions():
    t = np.array([[0, 1, 0], [0, 0, 1]], np.float32)
    p = np.array([[1.0, 2.0, 1.0], [3.0, 3.0, 0.0]], np.float32)  # sums 4 and 6; second has a 0
    got = losses.categorical_crossentropy(t, p)
    np.testing.assert_allclose(got, [-math.log(0.5), -math.log(EPS)], rtol=1e-5)


def test_bce_clips_saturated_predictions():
    t = np.array([[1.0, 0.0]], np.float32)
    p = np.array([[0.0, 1.0]], np.float32)
    got = losses.binary_crossentropy(t, p)
    # both terms are -log(eps) (float32 rounding of 1-eps makes it approximate)
    np.testing.assert_allclose(got, [-math.log(EPS)], rtol=2e-2)
    assert np.isfinite(got).all()


def test_hinge_converts_only_zero_one_labels():
    p = np.array([[0.3, -0.4]], np.float32)
    # {0,1} labels -> {-1,1}
    np.testing.assert_allclose(losses.hinge(np.array([[1.0, 0.0]], np.float32), p),
                               [np.mean([1 - 0.3, 1 - 0.4])], rtol=1e-6)
    # {-1,1} labels are used as is
    np.testing.assert_allclose(losses.hinge(np.array([[1.0, -1.0]], np.float32), p),
                               [np.mean([1 - 0.3, 1 - 0.4])], rtol=1e-6)
    np.testing.assert_allclose(losses.squared_hinge(np.array([[0.0, 1.0]], np.float32), p),
                               [np.mean([1.3 ** 2, 1.4 ** 2])], rtol=1e-6)


def test_cosine_similarity_of_zero_vector_is_zero_and_parallel_is_minus_one():
    t = np.array([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], np.float32)
    p = np.array([[2.0, 4.0, 4.0], [1.0, 1.0, 1.0]], np.float32)
    np.testing.assert_allclose(losses.cosine_similarity(t, p), [-1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(losses.cosine_proximity(t, p), [-1.0, 0.0], atol=1e-6)


def test_sparse_cce_accepts_int_labels():
    p = _probs()
    labels = np.array([0, 1, 2, 3, 0, 1], np.int64)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, p), ref_scce(labels, p), rtol=1e-5)


def test_sparse_cce_accepts_column_labels():
    p = _probs()
    labels = np.array([[0], [1], [2], [3], [0], [1]], np.int64)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, p), ref_scce(labels, p), rtol=1e-5)


def test_aliases_are_the_same_loss():
    t, p = _data("mse")
    tp, pp = _probs(seed=3), _probs(seed=4)
    for a, b in [("mse", "mean_squared_error"), ("mae", "mean_absolute_error"),
                 ("mape", "mean_absolute_percentage_error"), ("logcosh", "log_cosh"),
                 ("cosine_proximity", "cosine_similarity")]:
        np.testing.assert_array_equal(getattr(losses, a)(t, p), getattr(losses, b)(t, p))
    for a in ("kld", "kl_divergence", "kullback_leibler_divergence"):
        np.testing.assert_allclose(getattr(losses, a)(tp, pp), ref_kld(tp, pp), rtol=1e-5)
    np.testing.assert_array_equal(losses.msle(np.abs(t), np.abs(p)),
                                  losses.mean_squared_logarithmic_error(np.abs(t), np.abs(p)))
    assert losses.get("mse") is losses.get("mean_squared_error") or \
        np.array_equal(losses.get("mse")(t, p), losses.mean_squared_error(t, p))


# ---- Loss classes: sum_over_batch_size ----------------------------------------------------

CLASSES = [
    ("MeanSquaredError", "mse"), ("MeanAbsoluteError", "mae"), ("MeanAbsolutePercentageError", "mape"),
    ("MeanSquaredLogarithmicError", "msle"), ("CategoricalCrossentropy", "categorical_crossentropy"),
    ("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy"),
    ("BinaryCrossentropy", "binary_crossentropy"), ("KLDivergence", "kld"), ("Hinge", "hinge"),
    ("SquaredHinge", "squared_hinge"), ("CategoricalHinge", "categorical_hinge"), ("Poisson", "poisson"),
    ("CosineSimilarity", "cosine_similarity"), ("Huber", "huber"), ("LogCosh", "log_cosh"),
]


@pytest.mark.parametrize("cls,fn", CLASSES)
def test_loss_class_sum_over_batch_size(cls, fn):
    t, p = _data(fn, seed=5)
    per = REFS[fn](t, p)
    obj = getattr(losses, cls)()
    assert obj.reduction == "sum_over_batch_size"
    np.testing.assert_allclose(obj(t, p), per.mean(), rtol=1e-5, atol=1e-6)
    w = np.array([1.0, 0.0, 2.0, 0.5, 3.0, 1.0], np.float32)
    # Keras 3: sum(loss * w) / number of loss elements (not / sum(w))
    np.testing.assert_allclose(obj(t, p, sample_weight=w), (per * w).sum() / N, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(getattr(losses, cls)(reduction="sum")(t, p), per.sum(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(getattr(losses, cls)(reduction="none")(t, p), per, rtol=1e-5, atol=1e-5)


def test_loss_class_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="average")


# ---- the training loss: evaluate ----------------------------------------------------------

D_IN, UNITS, NS, BS = 3, 4, 10, 4
W0 = np.random.default_rng(7).normal(size=(D_IN, UNITS)).astype(np.float32) * 0.7
B0 = np.array([0.1, -0.2, 0.05, 0.3], np.float32)
X = np.random.default_rng(8).normal(size=(NS, D_IN)).astype(np.float32)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _model(loss, activation, metrics_=None, units=UNITS):
    m = Sequential([layers.Input((D_IN,)), layers.Dense(units, activation=activation)])
    m.set_weights([W0[:, :units], B0[:units]])
    m.compile(optimizer="sgd", loss=loss, metrics=metrics_)
    return m


def _out(activation, units=UNITS):
    z = X.astype(np.float64) @ W0[:, :units] + B0[:units]
    return {"softmax": _softmax, "sigmoid": _sigmoid, "linear": lambda a: a}[activation](z)


def _targets(loss):
    r = np.random.default_rng(9)
    if loss == "sparse_categorical_crossentropy":
        return r.integers(0, UNITS, NS).astype(np.float32)
    if loss in ("categorical_crossentropy", "categorical_hinge"):
        return np.eye(UNITS, dtype=np.float32)[r.integers(0, UNITS, NS)]
    if loss in ("binary_crossentropy", "hinge", "squared_hinge"):
        return r.integers(0, 2, (NS, UNITS)).astype(np.float32)
    if loss in ("kld", "kl_divergence", "kullback_leibler_divergence"):
        return _softmax(r.normal(size=(NS, UNITS))).astype(np.float32)
    if loss == "poisson":
        return r.poisson(1.0, (NS, UNITS)).astype(np.float32)
    if loss in ("mape", "mean_absolute_percentage_error", "msle", "mean_squared_logarithmic_error"):
        return r.uniform(0.5, 2.0, (NS, UNITS)).astype(np.float32)
    return r.normal(size=(NS, UNITS)).astype(np.float32)


LOSS_ACT = {
    "categorical_crossentropy": "softmax", "sparse_categorical_crossentropy": "softmax",
    "binary_crossentropy": "sigmoid", "kld": "softmax", "poisson": "softmax", "msle": "sigmoid",
}
TRAIN_LOSSES = [n for n in sorted(REFS)]


def _batches(n, bs):
    return [slice(i, min(i + bs, n)) for i in range(0, n, bs)]


def _epoch_mean(per, bs, w=None):
    """Keras 3: per batch, sum(loss * w) / batch_size; over the epoch, the batch-size-weighted mean."""
    n = len(per)
    w = np.ones(n) if w is None else w
    vals, sizes = [], []
    for s in _batches(n, bs):
        k = len(per[s])
        vals.append(np.sum(per[s] * w[s]) / k)
        sizes.append(k)
    return float(np.average(vals, weights=sizes))


@pytest.mark.parametrize("loss", TRAIN_LOSSES)
def test_evaluate_loss_matches_numpy(loss):
    act = LOSS_ACT.get(loss, "linear")
    m = _model(loss, act)
    y = _targets(loss)
    per = REFS[loss](y, _out(act))
    got = m.evaluate(X, y, batch_size=BS, verbose=0)
    np.testing.assert_allclose(got, per.mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss", ["mse", "categorical_crossentropy", "sparse_categorical_crossentropy",
                                  "binary_crossentropy", "huber"])
def test_evaluate_loss_with_sample_weight(loss):
    act = LOSS_ACT.get(loss, "linear")
    m = _model(loss, act)
    y = _targets(loss)
    per = REFS[loss](y, _out(act))
    w = np.array([0.0, 1.0, 2.0, 0.5, 1.0, 3.0, 0.0, 1.0, 0.25, 4.0], np.float32)
    got = m.evaluate(X, y, batch_size=BS, sample_weight=w, verbose=0)
    want = _epoch_mean(per, BS, w)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # and not the weighted average sum(l*w)/sum(w)
    assert abs(want - np.sum(per * w) / np.sum(w)) > 1e-3


def test_evaluate_loss_with_loss_object_and_function():
    y = _targets("mse")
    per = ref_mse(y, _out("linear"))
    for loss in (losses.MeanSquaredError(), losses.mean_squared_error):
        m = _model(loss, "linear")
        np.testing.assert_allclose(m.evaluate(X, y, batch_size=3, verbose=0), per.mean(), rtol=1e-5)


def test_test_on_batch_matches_numpy():
    y = _targets("categorical_crossentropy")
    m = _model("categorical_crossentropy", "softmax")
    per = ref_cce(y, _out("softmax"))
    np.testing.assert_allclose(m.test_on_batch(X, y), per.mean(), rtol=1e-5)
    w = np.linspace(0, 2, NS).astype(np.float32)
    np.testing.assert_allclose(m.test_on_batch(X, y, sample_weight=w), (per * w).sum() / NS, rtol=1e-5)


# ---- metrics -----------------------------------------------------------------------------


def ref_binary_accuracy(t, p, thr=0.5):
    return np.mean(_f(t) == (_f(p) > thr), axis=-1)


def ref_categorical_accuracy(t, p):
    return (np.argmax(t, -1) == np.argmax(p, -1)).astype(np.float64)


def ref_sparse_categorical_accuracy(labels, p):
    return (np.asarray(labels).reshape(-1).astype(np.int64) == np.argmax(p, -1)).astype(np.float64)


def ref_top_k(labels, p, k=5):
    order = np.argsort(-_f(p), axis=-1)[:, :k]
    return np.array([lab in row for lab, row in zip(np.asarray(labels).astype(np.int64), order)], np.float64)


def test_metric_functions_match_numpy():
    r = np.random.default_rng(11)
    p = _probs(n=8, c=7, seed=11)
    labels = r.integers(0, 7, 8)
    onehot = np.eye(7, dtype=np.float32)[labels]
    np.testing.assert_array_equal(metrics.categorical_accuracy(onehot, p), ref_categorical_accuracy(onehot, p))
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(labels, p),
                                  ref_sparse_categorical_accuracy(labels, p))
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(onehot, p), ref_top_k(labels, p))
    np.testing.assert_array_equal(metrics.sparse_top_k_categorical_accuracy(labels, p), ref_top_k(labels, p))
    for k in (1, 2, 3):
        np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(onehot, p, k=k), ref_top_k(labels, p, k))
        np.testing.assert_array_equal(metrics.sparse_top_k_categorical_accuracy(labels, p, k=k),
                                      ref_top_k(labels, p, k))
    with pytest.raises(ValueError, match="`k`"):
        metrics.top_k_categorical_accuracy(onehot, p, k=0)
    bt = r.integers(0, 2, (8, 3)).astype(np.float32)
    bp = r.uniform(0, 1, (8, 3)).astype(np.float32)
    # Keras' per-sample binary accuracy (its mean is the metric's value)
    np.testing.assert_allclose(np.mean(metrics.binary_accuracy(bt, bp)), np.mean(ref_binary_accuracy(bt, bp)))
    t, q = _data("mse")
    np.testing.assert_allclose(metrics.mse(t, q), ref_mse(t, q), rtol=1e-5)
    np.testing.assert_allclose(metrics.mae(t, q), ref_mae(t, q), rtol=1e-5)
    np.testing.assert_allclose(metrics.mean_squared_error(t, q), ref_mse(t, q), rtol=1e-5)
    np.testing.assert_allclose(metrics.mean_absolute_error(t, q), ref_mae(t, q), rtol=1e-5)


def test_metric_known_values():
    t = np.array([[0, 0, 1], [0, 1, 0]], np.float32)
    p = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]], np.float32)
    np.testing.assert_array_equal(metrics.categorical_accuracy(t, p), [1.0, 0.0])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(np.array([2, 1]), p), [1.0, 0.0])
    ba = metrics.binary_accuracy(np.array([[1.0], [0.0], [1.0], [0.0]]), np.array([[0.98], [0.0], [0.4], [0.6]]))
    np.testing.assert_allclose(np.ravel(ba), [1.0, 1.0, 0.0, 0.0])


def _eval_logs(m, x, y, bs=BS):
    return m.evaluate(x, y, batch_size=bs, verbose=0, return_dict=True)


def test_accuracy_resolves_to_binary_for_one_unit_output():
    y = (np.random.default_rng(12).uniform(size=NS) > 0.5).astype(np.float32).reshape(-1, 1)
    m = _model("binary_crossentropy", "sigmoid", ["accuracy"], units=1)
    p = _out("sigmoid", units=1)
    logs = _eval_logs(m, X, y)
    assert set(logs) == {"loss", "accuracy"}
    np.testing.assert_allclose(logs["accuracy"], np.mean(ref_binary_accuracy(y, p)), rtol=1e-6)
    np.testing.assert_allclose(logs["loss"], ref_bce(y, p).mean(), rtol=1e-5)
    # a threshold-based binary accuracy: argmax over a single unit would always be right
    assert logs["accuracy"] < 1.0


def test_accuracy_resolves_to_sparse_for_integer_labels():
    y = np.random.default_rng(13).integers(0, UNITS, NS)
    m = _model("sparse_categorical_crossentropy", "softmax", ["accuracy"])
    p = _out("softmax")
    logs = _eval_logs(m, X, y)
    np.testing.assert_allclose(logs["accuracy"], ref_sparse_categorical_accuracy(y, p).mean(), rtol=1e-6)
    assert 0 < logs["accuracy"] < 1


def test_accuracy_resolves_to_categorical_for_one_hot():
    labels = np.random.default_rng(14).integers(0, UNITS, NS)
    y = np.eye(UNITS, dtype=np.float32)[labels]
    m = _model("categorical_crossentropy", "softmax", ["accuracy", "acc"])
    p = _out("softmax")
    logs = _eval_logs(m, X, y)
    want = ref_categorical_accuracy(y, p).mean()
    assert 0 < want < 1
    np.testing.assert_allclose(logs["accuracy"], want, rtol=1e-6)
    np.testing.assert_allclose(logs["acc"], want, rtol=1e-6)
    assert m.metrics_names == ["loss", "accuracy", "acc"]


def test_named_metrics_in_evaluate():
    y = _targets("mse")
    p = _out("linear")
    m = _model("mse", "linear", ["mae", "mse", metrics.mean_absolute_error, "top_k_categorical_accuracy"])
    vals = m.evaluate(X, y, batch_size=3, verbose=0)
    assert isinstance(vals, list) and len(vals) == 5
    np.testing.assert_allclose(vals[0], ref_mse(y, p).mean(), rtol=1e-5)
    np.testing.assert_allclose(vals[1], ref_mae(y, p).mean(), rtol=1e-5)
    np.testing.assert_allclose(vals[2], ref_mse(y, p).mean(), rtol=1e-5)
    np.testing.assert_allclose(vals[3], ref_mae(y, p).mean(), rtol=1e-5)
    # 4 classes: the true class is always in the top 5
    assert vals[4] == pytest.approx(1.0)


def test_evaluate_zero_sample_weights_mask_samples():
    y = _targets("mse")
    p = _out("linear")
    w = np.zeros(NS, np.float32)
    w[0] = 1.0
    m = _model("mse", "linear")
    got = m.evaluate(X, y, batch_size=BS, sample_weight=w, verbose=0)
    per = ref_mse(y, p)
    np.testing.assert_allclose(got, _epoch_mean(per, BS, w), rtol=1e-5)


def test_binary_accuracy_with_flat_labels():
    y = (np.random.default_rng(15).uniform(size=NS) > 0.5).astype(np.float32)  # shape (N,)
    m = _model("binary_crossentropy", "sigmoid", ["accuracy"], units=1)
    p = _out("sigmoid", units=1)[:, 0]
    loss, acc = m.evaluate(X, y, batch_size=BS, verbose=0)
    np.testing.assert_allclose(acc, np.mean((p > 0.5) == y), rtol=1e-6)
    np.testing.assert_allclose(loss, ref_bce(y[:, None], p[:, None]).mean(), rtol=1e-5)
