"""Keras 1's `Merge` of Sequential models and `merge` of tensors, against numpy."""

import numpy as np
import pytest

from rustkeras.layers import Dense, Input, Merge, merge
from rustkeras.models import Model, Sequential, model_from_json

ATOL = 2e-5


def _branches():
    left = Sequential([Dense(4, input_dim=5, activation="tanh")])
    right = Sequential([Dense(3, input_dim=2)])
    return left, right


def _dense(x, w):
    return x @ w[0] + w[1]


def test_the_tutorial_merge_of_two_branches():
    rng = np.random.default_rng(0)
    left, right = _branches()
    model = Sequential()
    model.add(Merge([left, right], mode="concat"))
    model.add(Dense(2, activation="softmax"))
    assert model.input_shape == [(None, 5), (None, 2)] and model.output_shape == (None, 2)
    w = model.get_weights()
    # Keras 1 order: the left branch, the right branch, then the layers above the merge.
    assert [a.shape for a in w] == [(5, 4), (4,), (2, 3), (3,), (7, 2), (2,)]
    xl, xr = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    h = np.concatenate([np.tanh(_dense(xl, w[0:2])), _dense(xr, w[2:4])], axis=1)
    z = _dense(h, w[4:6])
    want = np.exp(z - z.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(model.predict([xl, xr], verbose=0), want, atol=ATOL)
    # Training the merged model trains the branches' layers: they are shared, as in Keras 1.
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 6)]
    model.fit([xl, xr], y, epochs=2, batch_size=3, verbose=0)
    np.testing.assert_allclose(left.get_weights()[0], model.get_weights()[0])
    assert not np.allclose(left.get_weights()[0], w[0])
    np.testing.assert_allclose(left.predict(xl, verbose=0), np.tanh(_dense(xl, model.get_weights()[0:2])),
                               atol=ATOL)


@pytest.mark.parametrize("mode,fn", [("sum", np.add), ("mul", np.multiply), ("max", np.maximum),
                                     ("ave", lambda a, b: (a + b) / 2)])
def test_elementwise_modes(mode, fn):
    rng = np.random.default_rng(1)
    a = Sequential([Dense(3, input_dim=4)])
    b = Sequential([Dense(3, input_dim=2)])
    model = Sequential([Merge([a, b], mode=mode)])
    xa, xb = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32)
    w = model.get_weights()
    np.testing.assert_allclose(model.predict([xa, xb], verbose=0), fn(_dense(xa, w[:2]), _dense(xb, w[2:])),
                               atol=ATOL)


def test_config_round_trip_and_nested_merges():
    rng = np.random.default_rng(2)
    left, right = _branches()
    inner = Sequential([Merge([left, right], mode="concat"), Dense(3)])
    third = Sequential([Dense(3, input_dim=1)])
    model = Sequential([Merge([inner, third], mode="sum"), Dense(1)])
    xs = [rng.normal(size=(4, d)).astype(np.float32) for d in (5, 2, 1)]
    assert model.input_shape == [(None, 5), (None, 2), (None, 1)]
    clone = model_from_json(model.to_json())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(xs, verbose=0), model.predict(xs, verbose=0), atol=ATOL)
    assert type(clone.layers[0]).__name__ == "Merge" and clone.layers[0].mode == "sum"


def test_functional_merge_of_tensors():
    a, b = Input(shape=(3,)), Input(shape=(2,))
    model = Model([a, b], merge([a, b], mode="concat"))
    xa, xb = np.ones((2, 3), np.float32), np.zeros((2, 2), np.float32)
    np.testing.assert_allclose(model.predict([xa, xb], verbose=0), np.concatenate([xa, xb], 1))


def test_errors():
    left, right = _branches()
    with pytest.raises(NotImplementedError, match="cos"):
        Merge([left, right], mode="cos")
    with pytest.raises(NotImplementedError, match="dot"):
        merge([Input(shape=(3,)), Input(shape=(3,))], mode="dot")
    with pytest.raises(ValueError, match="at least 2"):
        Merge([left])
    with pytest.raises(ValueError, match="merge\\(\\[a, b\\]"):
        Merge([Input(shape=(3,)), Input(shape=(3,))])
    with pytest.raises(ValueError, match="first layer"):
        Sequential([Dense(3, input_dim=2), Merge(list(_branches()))])
    with pytest.raises(ValueError, match=r"2 inputs.*pass a list of 2 arrays"):
        Sequential([Merge(list(_branches()), mode="concat")]).predict(np.ones((2, 5)), verbose=0)
