"""Part 2 of the GPU path: convolution, pooling, padding, embedding and recurrent layers
trained on the 'gpu' backend (Mesa's lavapipe in CI) follow the CPU: the same weights, seeds
and data give the same losses, metrics and predictions within float tolerance. Shapes are
small because lavapipe runs at about a GFLOP/s.
"""

import numpy as np
import pytest

from rustkeras import config
from rustkeras import layers as L
from rustkeras.models import Sequential
from rustkeras.utils import set_random_seed


@pytest.fixture(autouse=True)
def cpu_afterwards():
    yield
    config.set_backend("cpu")


def train_on_both(build, x, y, epochs=2, batch_size=8, loss="categorical_crossentropy"):
    out = {}
    for backend in ("cpu", "gpu"):
        config.set_backend(backend)
        set_random_seed(5)
        model = build()
        assert model._core.device() == backend
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        h = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
        out[backend] = (h.history, model.predict(x, batch_size=16, verbose=0), model.get_weights())
    (hc, pc, wc), (hg, pg, wg) = out["cpu"], out["gpu"]
    for k in hc:
        np.testing.assert_allclose(hg[k], hc[k], rtol=1e-3, atol=1e-5, err_msg=k)
    np.testing.assert_allclose(pg, pc, rtol=1e-3, atol=1e-5)
    for a, b in zip(wc, wg):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)


def images(n=24, size=8, channels=1, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, size, size, channels)).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, n)]
    return x, y


def sequences(n=24, steps=6, features=3, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, features)).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, n)]
    return x, y


CNN_MODELS = {
    "mnist_cnn": lambda: Sequential([
        L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), L.Conv2D(6, 3, activation="relu"),
        L.MaxPooling2D(2), L.Dropout(0.25), L.Flatten(), L.Dense(8, activation="relu"), L.Dropout(0.5),
        L.Dense(3, activation="softmax"),
    ]),
    "strided_same_avgpool": lambda: Sequential([
        L.Conv2D(3, 3, strides=2, padding="same", input_shape=(8, 8, 1)), L.AveragePooling2D(2, padding="same"),
        L.Flatten(), L.Dense(3, activation="softmax"),
    ]),
    "padding_cropping_upsampling": lambda: Sequential([
        L.ZeroPadding2D(1, input_shape=(8, 8, 1)), L.Conv2D(2, 3, dilation_rate=2), L.UpSampling2D(2),
        L.Cropping2D(((1, 0), (0, 1))), L.GlobalMaxPooling2D(), L.Dense(3, activation="softmax"),
    ]),
    "channels_first_transposed": lambda: Sequential([
        L.Conv2DTranspose(2, 3, strides=2, data_format="channels_first", input_shape=(1, 8, 8)),
        L.MaxPooling2D(3, data_format="channels_first"), L.Flatten(), L.Dense(3, activation="softmax"),
    ]),
}


@pytest.mark.parametrize("name", sorted(CNN_MODELS))
def test_convolutional_models_match(name):
    x, y = images()
    if name == "channels_first_transposed":
        x = np.transpose(x, (0, 3, 1, 2)).copy()
    train_on_both(CNN_MODELS[name], x, y)


def test_conv1d_and_global_average_pooling_match():
    x, y = sequences()
    train_on_both(lambda: Sequential([
        L.Conv1D(4, 3, padding="same", activation="tanh", input_shape=(6, 3)),
        L.MaxPooling1D(2), L.GlobalAveragePooling1D(), L.Dense(3, activation="softmax"),
    ]), x, y)


RNN_MODELS = {
    "simple_rnn": lambda: Sequential([L.SimpleRNN(5, input_shape=(6, 3)), L.Dense(3, activation="softmax")]),
    "stacked_lstm": lambda: Sequential([
        L.LSTM(5, return_sequences=True, input_shape=(6, 3)), L.LSTM(4, go_backwards=True),
        L.Dense(3, activation="softmax"),
    ]),
    "gru_both_modes": lambda: Sequential([
        L.GRU(5, return_sequences=True, input_shape=(6, 3)), L.GRU(4, reset_after=False),
        L.Dense(3, activation="softmax"),
    ]),
    "bidirectional_time_distributed": lambda: Sequential([
        L.Bidirectional(L.LSTM(4, return_sequences=True), input_shape=(6, 3)),
        L.TimeDistributed(L.Dense(2)), L.Flatten(), L.Dense(3, activation="softmax"),
    ]),
}


@pytest.mark.parametrize("name", sorted(RNN_MODELS))
def test_recurrent_models_match(name):
    x, y = sequences()
    train_on_both(RNN_MODELS[name], x, y)


def test_embedding_with_a_mask_and_an_lstm_matches():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 12, (24, 7)).astype("float32")
    x[:, 5:] = 0
    y = (x.sum(1) > 30).astype("float32")[:, None]
    train_on_both(lambda: Sequential([
        L.Embedding(12, 4, mask_zero=True, input_length=7), L.LSTM(5), L.Dense(1, activation="sigmoid"),
    ]), x, y, loss="binary_crossentropy")


def test_a_stateful_lstm_carries_its_states_alike():
    x, y = sequences(n=16)
    out = {}
    for backend in ("cpu", "gpu"):
        config.set_backend(backend)
        set_random_seed(2)
        model = Sequential([L.LSTM(4, stateful=True, batch_input_shape=(4, 6, 3)), L.Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        losses = []
        for _ in range(2):
            losses += model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0).history["loss"]
            model.reset_states()
        p = model.predict(x, batch_size=4, verbose=0)
        out[backend] = (losses, p)
    np.testing.assert_allclose(out["gpu"][0], out["cpu"][0], rtol=1e-4)
    np.testing.assert_allclose(out["gpu"][1], out["cpu"][1], rtol=1e-4, atol=1e-6)
