"""Merge layers against numpy: forward values, Keras' broadcasting, and one SGD step against
the gradient of a numpy transcription (central finite differences in float64)."""

import numpy as np
import pytest

from rustkeras.layers import (
    Add, Average, Concatenate, Dense, Input, Maximum, Minimum, Multiply, Subtract, add, average, concatenate,
    maximum, minimum, multiply, subtract,
)
from rustkeras.models import Model, Sequential
from rustkeras.optimizers import SGD

MERGES = {
    "add": (Add, add, lambda xs: sum(xs)),
    "subtract": (Subtract, subtract, lambda xs: xs[0] - xs[1]),
    "multiply": (Multiply, multiply, lambda xs: np.prod(np.stack(xs), 0)),
    "average": (Average, average, lambda xs: sum(xs) / len(xs)),
    "maximum": (Maximum, maximum, lambda xs: np.max(np.stack(xs), 0)),
    "minimum": (Minimum, minimum, lambda xs: np.min(np.stack(xs), 0)),
    "concatenate": (Concatenate, concatenate, lambda xs: np.concatenate(xs, -1)),
}


def _inputs(r, shapes, n=5):
    return [r.normal(size=(n,) + s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("name", sorted(MERGES))
def test_forward_matches_numpy(name):
    cls, fn, ref = MERGES[name]
    r = np.random.default_rng(0)
    count = 2 if name == "subtract" else 3
    tensors = [Input(shape=(2, 4)) for _ in range(count)]
    xs = _inputs(r, [(2, 4)] * count)
    for merged in (cls()(tensors), fn(tensors)):
        got = Model(tensors, merged).predict(xs, verbose=0)
        np.testing.assert_allclose(got, ref(xs), rtol=1e-6, atol=1e-6)
        assert merged.shape == (None,) + ref(xs).shape[1:]


def test_concatenate_along_a_middle_axis():
    r = np.random.default_rng(1)
    a, b = Input(shape=(2, 3)), Input(shape=(4, 3))
    xs = _inputs(r, [(2, 3), (4, 3)])
    for axis in (1, -2):
        c = Concatenate(axis=axis)([a, b])
        assert c.shape == (None, 6, 3)
        np.testing.assert_array_equal(Model([a, b], c).predict(xs, verbose=0), np.concatenate(xs, 1))
    assert Concatenate(axis=1).get_config()["axis"] == 1
    assert Concatenate(axis=1).compute_output_shape([(None, 2, 3), (None, 4, 3)]) == (None, 6, 3)


def test_elementwise_merges_broadcast_as_keras():
    r = np.random.default_rng(2)
    a, b, c = Input(shape=(2, 3)), Input(shape=(3,)), Input(shape=(2, 1))
    xs = _inputs(r, [(2, 3), (3,), (2, 1)])
    m = Model([a, b, c], Add()([a, b, c]))
    want = xs[0] + xs[1][:, None, :] + xs[2]
    np.testing.assert_allclose(m.predict(xs, verbose=0), want, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(MERGES))
def test_one_sgd_step_follows_the_numpy_gradient(name):
    """out = merge(Dense_1(x1), Dense_2(x2)); mse against y; the SGD update equals
    lr * d(loss)/d(weights) of the same computation in numpy."""
    cls, _, ref = MERGES[name]
    r = np.random.default_rng(3)
    x = _inputs(r, [(3,), (3,)], n=6)
    ins = [Input(shape=(3,)), Input(shape=(3,))]
    m = Model(ins, cls()([Dense(2)(ins[0]), Dense(2)(ins[1])]))
    w = [r.normal(size=s.shape).astype(np.float32) for s in m.get_weights()]
    m.set_weights(w)
    y = r.normal(size=(6, 4 if name == "concatenate" else 2)).astype(np.float32)
    lr = 0.05
    m.compile(optimizer=SGD(learning_rate=lr), loss="mse")
    loss = m.train_on_batch(x, y)

    def numpy_loss(ws):
        outs = [x[0].astype(np.float64) @ ws[0] + ws[1], x[1].astype(np.float64) @ ws[2] + ws[3]]
        return ((ref(outs) - y) ** 2).mean()

    w64 = [v.astype(np.float64) for v in w]
    np.testing.assert_allclose(loss, numpy_loss(w64), rtol=1e-5)
    h = 1e-6
    for k, (before, after) in enumerate(zip(w64, m.get_weights())):
        grad = np.zeros_like(before)
        for i in np.ndindex(before.shape):
            plus = [v.copy() for v in w64]
            minus = [v.copy() for v in w64]
            plus[k][i] += h
            minus[k][i] -= h
            grad[i] = (numpy_loss(plus) - numpy_loss(minus)) / (2 * h)
        np.testing.assert_allclose(after, before - lr * grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make,needles", [
    (lambda a, b: Add(name="m")([a]), ['"m"', "at least 2"]),
    (lambda a, b: Add(name="m")([a, Input(shape=(4,))]), ['"m"', "incompatible", "(3,)", "(4,)"]),
    (lambda a, b: Subtract(name="m")([a, b, a]), ['"m"', "exactly 2"]),
    (lambda a, b: Concatenate(name="m")([a]), ['"m"', "at least 2"]),
    (lambda a, b: Concatenate(name="m")([a, Input(shape=(2, 3))]), ['"m"', "matching shapes"]),
    (lambda a, b: Concatenate(axis=0, name="m")([a, b]), ['"m"', "axis=0"]),
    (lambda a, b: Maximum(name="m")(a), ['"m"', "at least 2"]),
])
def test_wrong_inputs_are_value_errors_naming_the_layer(make, needles):
    a, b = Input(shape=(3,)), Input(shape=(3,))
    with pytest.raises(ValueError) as e:
        make(a, b)
    for needle in needles:
        assert needle in str(e.value), (needle, str(e.value))


def test_a_merge_layer_in_a_sequential_model_is_an_error():
    with pytest.raises(ValueError, match="list of inputs"):
        Sequential([Input((3,)), Add()])
