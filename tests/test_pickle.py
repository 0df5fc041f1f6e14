"""Models pickle as their `.keras` bytes, as in Keras 3 (rustkeras/models/_pickle.py): what joblib,
Dask and Ray do to send a model (or an estimator holding one) to another process, and what
`copy.deepcopy` does."""

import copy
import pickle

import numpy as np

from rustkeras import Input, Model, Sequential, ops
from rustkeras.layers import Dense, Dropout, Layer
from rustkeras.utils import set_random_seed


class TimesTwo(Layer):
    """A user layer, not registered: it travels by reference beside the bytes."""

    def call(self, x):
        return x * 2.0


def halved_mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1) / 2.0


def data(n=64, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(n, k)).astype(np.float32)


def test_a_trained_model_unpickles_with_its_weights_optimizer_state_and_compile():
    x, y = data()
    set_random_seed(0)
    model = Sequential([Dense(8, activation="relu", input_shape=(6,)), Dropout(0.2), Dense(3)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    blob = pickle.dumps(model)
    assert b"rustkeras._core" not in blob
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert int(back.optimizer.iterations) == int(model.optimizer.iterations) == 8
    assert back.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
    # Training goes on as it would have in the original.
    set_random_seed(1)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    set_random_seed(1)
    back.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_user_layers_and_losses_travel_without_registration():
    x, y = data()
    inputs = Input(shape=(6,))
    model = Model(inputs, Dense(3)(TimesTwo()(inputs)))
    model.compile(optimizer="sgd", loss=halved_mse)
    model.fit(x, y, epochs=1, verbose=0)
    back = pickle.loads(pickle.dumps(model))
    assert any(isinstance(layer, TimesTwo) for layer in back.layers)
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert back.loss is halved_mse
    np.testing.assert_allclose(back.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)


def test_deepcopy_is_independent_and_an_unbuilt_model_copies_its_config_and_compile():
    x, y = data()
    model = Sequential([Dense(3, input_shape=(6,))])
    model.compile(optimizer="sgd", loss="mse")
    twin = copy.deepcopy(model)
    twin.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(twin.get_weights()[0], model.get_weights()[0])
    unbuilt = Sequential([Dense(4, activation="tanh"), Dense(2)])
    unbuilt.compile(optimizer="rmsprop", loss="mae")
    back = copy.deepcopy(unbuilt)
    assert not back.built and back.loss == "mae" and type(back.optimizer).__name__ == "RMSprop"
    assert [layer.get_config()["units"] for layer in back.layers] == [4, 2]
    back.fit(x, y[:, :2], epochs=1, verbose=0)
