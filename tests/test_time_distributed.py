"""TimeDistributed around layers other than Dense/Activation/Dropout: the result equals the
layer applied to the (batch * timesteps) samples folded into one batch, with the same weights;
so do one SGD step's updated weights, since both losses are means over the same elements."""

import numpy as np
import pytest

from rustkeras.layers import LSTM, Conv2D, Dense, Flatten, MaxPooling2D, TimeDistributed
from rustkeras.models import Sequential

B, T = 3, 4


def _pair(make_inner, frame):
    """The TimeDistributed model and the same layers on folded frames, with equal weights."""
    td = Sequential([TimeDistributed(make_inner(), input_shape=(T,) + frame)])
    folded = Sequential([make_inner()])
    folded.build((None,) + frame)
    folded.set_weights(td.get_weights())
    return td, folded


@pytest.mark.parametrize("make_inner,frame", [
    (lambda: Conv2D(2, (3, 3), padding="same", activation="relu"), (5, 5, 1)),
    (lambda: MaxPooling2D((2, 2)), (4, 4, 2)),
    (lambda: Flatten(), (2, 3)),
    (lambda: LSTM(3, return_sequences=True), (5, 2)),
])
def test_matches_the_layer_on_folded_timesteps(make_inner, frame):
    rng = np.random.default_rng(0)
    td, folded = _pair(make_inner, frame)
    x = rng.normal(size=(B, T) + frame).astype(np.float32)
    want = folded.predict(x.reshape((B * T,) + frame), verbose=0)
    got = td.predict(x, verbose=0)
    assert got.shape == (B, T) + want.shape[1:]
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=2e-5)
    assert td.output_shape == (None, T) + want.shape[1:]


def test_one_weight_set_and_the_same_training_step():
    rng = np.random.default_rng(1)
    frame = (5, 5, 1)
    td, folded = _pair(lambda: Conv2D(2, (3, 3), activation="tanh"), frame)
    assert len(td.get_weights()) == 2
    x = rng.normal(size=(B, T) + frame).astype(np.float32)
    y = rng.normal(size=(B, T, 3, 3, 2)).astype(np.float32)
    for m in (td, folded):
        m.compile(optimizer="sgd", loss="mse")
    td.train_on_batch(x, y)
    folded.train_on_batch(x.reshape((B * T,) + frame), y.reshape((B * T, 3, 3, 2)))
    for a, b in zip(td.get_weights(), folded.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_video_classifier_shapes():
    # A per-frame CNN, then an LSTM over the frames: the classic TimeDistributed use.
    model = Sequential([
        TimeDistributed(Conv2D(4, (3, 3), activation="relu"), input_shape=(T, 6, 6, 1)),
        TimeDistributed(Flatten()),
        LSTM(5),
        Dense(2, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(2).normal(size=(8, T, 6, 6, 1)).astype(np.float32)
    model.fit(x, np.arange(8) % 2, epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (8, 2)
