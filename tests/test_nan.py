"""NaN and Inf are never hidden: every activation, clip, maximum/minimum, pooling, max/min
reduction and softmax carries NaN (and +-Inf) as numpy does, eagerly and inside models, in the
forward pass and the gradients, on the CPU and the GPU backend; a NaN loss is reported as nan
and TerminateOnNaN stops at its batch."""

import math

import numpy as np
import pytest

import rustkeras
from rustkeras import activations, config, ops
from rustkeras.callbacks import LambdaCallback, TerminateOnNaN
from rustkeras.layers import (
    Activation, Dense, GlobalMaxPooling1D, Input, Lambda, MaxPooling1D, SimpleRNN,
)
from rustkeras.models import Sequential
from rustkeras.optimizers import SGD
from rustkeras.utils import set_random_seed

NAN, INF = np.float32(np.nan), np.float32(np.inf)
# NaN, +Inf and -Inf among ordinary values, both signs and zero.
X = np.array([NAN, INF, -INF, -2.5, -0.5, 0.0, 0.5, 3.0, 7.0, NAN], dtype="float32")

_erf = np.vectorize(math.erf, otypes=[np.float64])
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# numpy references, computed in float64 from the float32 inputs (Keras 3's formulas).
REFS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.minimum(np.maximum(x, 0.0), 6.0),
    "sigmoid": _sigmoid,
    "hard_sigmoid": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "tanh": np.tanh,
    "softplus": lambda x: np.logaddexp(0.0, x),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    "exponential": np.exp,
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0))),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "arctan": np.arctan,
}


def ref(name, x):
    with np.errstate(all="ignore"):
        return np.asarray(REFS[name](x.astype("float64")), dtype="float32")


def softmax_ref(x):
    with np.errstate(all="ignore"):
        e = np.exp(x.astype("float64") - np.max(x, axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype("float32")


def assert_same(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, what
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN at {np.isnan(got)}, numpy {np.isnan(want)}"
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=what)


@pytest.fixture(autouse=True)
def cpu_afterwards():
    yield
    config.set_backend("cpu")


@pytest.mark.parametrize("name", sorted(REFS))
def test_activation_carries_nan_and_inf_eagerly(name):
    assert_same(getattr(activations, name)(X), ref(name, X), f"activations.{name}")
    if hasattr(ops, name):
        assert_same(ops.convert_to_numpy(getattr(ops, name)(X)), ref(name, X), f"ops.{name}")


def test_elementwise_ops_carry_nan_and_inf_eagerly():
    y = X[::-1].copy()
    with np.errstate(all="ignore"):
        cases = {
            "maximum": (ops.maximum(X, y), np.maximum(X, y)),
            "minimum": (ops.minimum(X, y), np.minimum(X, y)),
            "maximum scalar": (ops.maximum(X, 1.0), np.maximum(X, np.float32(1.0))),
            "clip": (ops.clip(X, -1.0, 2.0), np.clip(X, -1.0, 2.0)),
            "clip lo > hi": (ops.clip(X, 2.0, -1.0), np.minimum(np.maximum(X, 2.0), -1.0)),
            "abs": (ops.abs(X), np.abs(X)),
            "sign": (ops.sign(X), np.sign(X)),
            "elu alpha": (ops.elu(X, alpha=0.5), np.where(X > 0, X, 0.5 * np.expm1(X))),
            "leaky_relu slope": (ops.leaky_relu(X, negative_slope=0.1), np.where(X >= 0, X, np.float32(0.1) * X)),
        }
    for what, (got, want) in cases.items():
        assert_same(ops.convert_to_numpy(got), want.astype("float32"), what)


def test_reductions_and_softmax_carry_nan_and_inf_eagerly():
    x = np.array([[1.0, NAN, 3.0], [1.0, 2.0, 3.0], [INF, 1.0, 0.0], [-INF, -1.0, 2.0]], dtype="float32")
    assert_same(ops.max(x, axis=1), np.max(x, axis=1), "max")
    assert_same(ops.min(x, axis=1), np.min(x, axis=1), "min")
    assert_same(ops.max(x), np.max(x), "max over all")
    assert_same(ops.softmax(x), softmax_ref(x), "softmax")
    assert_same(activations.softmax(x), softmax_ref(x), "activations.softmax")


def _windows_max(x, pool):
    """numpy max pooling (valid, stride = pool) over axis 1 of (batch, steps, channels)."""
    b, s, c = x.shape
    n = s // pool
    return np.max(x[:, : n * pool].reshape(b, n, pool, c), axis=2)


def _pool_input():
    x = np.arange(2 * 6 * 3, dtype="float32").reshape(2, 6, 3) - 10.0
    x[0, 1, 0] = NAN
    x[0, 4, 1] = INF
    x[1, 2, 2] = -INF
    x[1, 3, 2] = NAN
    x[1, :, 1] = -INF
    return x


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_activation_layers_carry_nan_and_inf_in_models(backend):
    config.set_backend(backend)
    x = np.tile(X, (3, 1))
    for name in sorted(REFS):
        model = Sequential([Input((X.size,)), Activation(name)])
        assert_same(model.predict(x, verbose=0), np.tile(ref(name, X), (3, 1)), f"{backend} Activation({name})")
    xs = np.array([[1.0, NAN, 3.0], [1.0, 2.0, 3.0], [INF, 1.0, 0.0], [-INF, -1.0, 2.0]], dtype="float32")
    model = Sequential([Input((3,)), Activation("softmax")])
    assert_same(model.predict(xs, verbose=0), softmax_ref(xs), f"{backend} softmax")


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_elementwise_ops_carry_nan_in_models(backend):
    config.set_backend(backend)
    x = np.tile(X, (2, 1))
    other = X[::-1].copy()  # a constant the Lambda closes over
    model = Sequential([Input((X.size,)), Lambda(lambda t: ops.concatenate([
        ops.maximum(t, other), ops.minimum(t, other), ops.clip(t, -1.0, 2.0), ops.sign(t),
    ], axis=1))])
    with np.errstate(all="ignore"):
        want = np.concatenate([np.maximum(x, other), np.minimum(x, other), np.clip(x, -1.0, 2.0), np.sign(x)], axis=1)
    assert_same(model.predict(x, verbose=0), want, f"{backend} maximum/minimum/clip/sign")


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_max_pooling_carries_nan_and_inf(backend):
    config.set_backend(backend)
    x = _pool_input()
    pooled = Sequential([Input((6, 3)), MaxPooling1D(2)])
    assert_same(pooled.predict(x, verbose=0), _windows_max(x, 2), f"{backend} MaxPooling1D")
    pooled3 = Sequential([Input((6, 3)), MaxPooling1D(3, strides=3)])
    assert_same(pooled3.predict(x, verbose=0), _windows_max(x, 3), f"{backend} MaxPooling1D(3)")
    glob = Sequential([Input((6, 3)), GlobalMaxPooling1D()])
    assert_same(glob.predict(x, verbose=0), np.max(x, axis=1), f"{backend} GlobalMaxPooling1D")


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_simple_rnn_relu_carries_nan(backend):
    config.set_backend(backend)
    set_random_seed(3)
    model = Sequential([Input((4, 2)), SimpleRNN(3, activation="relu")])
    x = np.random.default_rng(0).normal(size=(3, 4, 2)).astype("float32")
    x[1, 2, 0] = NAN
    w, u, b = model.get_weights()
    h = np.zeros((3, 3), dtype="float64")
    for t in range(4):
        h = np.maximum(x[:, t].astype("float64") @ w + h @ u + b, 0.0)
    assert_same(model.predict(x, verbose=0), h.astype("float32"), f"{backend} SimpleRNN(relu)")
    assert np.isnan(h[1]).all() and np.isfinite(h[[0, 2]]).all()


def _nan_batch(n=8, d=4):
    x = np.random.default_rng(1).normal(size=(n, d)).astype("float32")
    y = np.random.default_rng(2).normal(size=(n, 1)).astype("float32")
    x[0, 0] = NAN
    return x, y


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
@pytest.mark.parametrize("name", ["relu", "relu6", "hard_sigmoid", "leaky_relu", "elu", "selu", "sigmoid", "tanh"])
def test_a_nan_input_gives_nan_gradients(backend, name):
    """One step on a batch holding a NaN: the loss is nan and the first layer's kernel
    becomes NaN (its gradient is NaN), rather than the activation hiding the NaN."""
    config.set_backend(backend)
    set_random_seed(0)
    model = Sequential([Input((4,)), Dense(5, activation=name), Dense(1)])
    model.compile(optimizer=SGD(0.1), loss="mse")
    x, y = _nan_batch()
    loss = model.train_on_batch(x, y)
    loss = loss[0] if isinstance(loss, (list, tuple)) else loss
    assert np.isnan(loss), f"{backend} {name}: loss {loss}"
    assert np.isnan(model.get_weights()[0]).any(), f"{backend} {name}: kernel stayed finite"


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_a_nan_input_gives_nan_gradients_through_pooling(backend):
    config.set_backend(backend)
    set_random_seed(0)
    model = Sequential([Input((6, 3)), Dense(3), MaxPooling1D(2), GlobalMaxPooling1D(), Dense(1)])
    model.compile(optimizer=SGD(0.1), loss="mse")
    x = np.random.default_rng(1).normal(size=(4, 6, 3)).astype("float32")
    x[2, 3, 1] = NAN
    loss = model.train_on_batch(x, np.zeros((4, 1), dtype="float32"))
    loss = loss[0] if isinstance(loss, (list, tuple)) else loss
    assert np.isnan(loss)
    assert np.isnan(model.get_weights()[0]).any()


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_nan_loss_is_reported_and_terminate_on_nan_stops_at_its_batch(backend):
    config.set_backend(backend)
    set_random_seed(0)
    model = Sequential([Input((4,)), Dense(4, activation="relu"), Dense(1)])
    model.compile(optimizer=SGD(0.01), loss="mse", metrics=["mae"])
    x = np.random.default_rng(1).normal(size=(32, 4)).astype("float32")
    y = np.zeros((32, 1), dtype="float32")
    x[9, 1] = NAN  # in batch 2 of 4-row batches
    seen = []
    history = model.fit(
        x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
        callbacks=[LambdaCallback(on_train_batch_end=lambda b, logs: seen.append((b, logs["loss"]))),
                   TerminateOnNaN()],
    )
    assert [b for b, _ in seen] == [0, 1, 2]
    assert np.isfinite(seen[0][1]) and np.isfinite(seen[1][1]) and np.isnan(seen[2][1])
    assert len(history.history["loss"]) == 1 and np.isnan(history.history["loss"][0])
    # evaluate reports the NaN too.
    loss = model.evaluate(x, y, batch_size=4, verbose=0)
    loss = loss[0] if isinstance(loss, (list, tuple)) else loss
    assert np.isnan(loss)


def test_crossentropy_of_a_nan_prediction_is_nan():
    y_true = np.array([[0.0, 1.0], [1.0, 0.0]], dtype="float32")
    y_pred = np.array([[0.3, NAN], [0.6, 0.4]], dtype="float32")
    bce = rustkeras.losses.BinaryCrossentropy()(y_true, y_pred)
    cce = rustkeras.losses.CategoricalCrossentropy()(y_true, y_pred)
    assert np.isnan(bce) and np.isnan(cce)
