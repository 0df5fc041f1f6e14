"""Stateful recurrent layers: the last states of a batch are the next batch's initial states,
row by row, in fit, evaluate and predict alike; `reset_states` zeros them.

The reference is the numpy recurrence of test_recurrent run over the whole sequence: feeding a
stateful layer the sequence in chunks must give the same outputs and states.
"""

import numpy as np
import pytest

from rustkeras.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN
from rustkeras.layers.core import Input
from rustkeras.models import Sequential, model_from_json

from test_recurrent import random_weights, rnn_ref

ATOL = 2e-5
B, T, F, U = 3, 4, 2, 5

CELLS = [
    ("simple", lambda **k: SimpleRNN(U, **k), {}),
    ("lstm", lambda **k: LSTM(U, **k), {}),
    ("gru", lambda **k: GRU(U, **k), {"reset_after": True}),
    ("gru", lambda **k: GRU(U, reset_after=False, **k), {"reset_after": False}),
]


@pytest.mark.parametrize("kind,make,ref_kw", CELLS)
def test_chunks_continue_the_sequence(kind, make, ref_kw):
    rng = np.random.default_rng(1)
    layer = make(stateful=True, return_sequences=True, batch_input_shape=(B, T, F))
    model = Sequential([layer])
    w = random_weights(layer, rng)
    x = rng.normal(size=(B, 3 * T, F)).astype(np.float32)
    want, h, c = rnn_ref(kind, x, w, return_sequences=True, return_state=True, **ref_kw)
    got = np.concatenate([model.predict(x[:, k * T:(k + 1) * T], verbose=0) for k in range(3)], axis=1)
    np.testing.assert_allclose(got, want, atol=ATOL)
    states = layer.states
    assert len(states) == (2 if kind == "lstm" else 1) and states[0].shape == (B, U)
    np.testing.assert_allclose(states[0], h, atol=ATOL)
    if kind == "lstm":
        np.testing.assert_allclose(states[1], c, atol=ATOL)
    # reset_states: back to zeros, and the first chunk gives its first output again.
    model.reset_states()
    assert all(not s.any() for s in layer.states)
    np.testing.assert_allclose(model.predict(x[:, :T], verbose=0), want[:, :T], atol=ATOL)


def test_batches_are_consecutive_rows_and_set_states_are_used():
    # Two batches of 3 rows: row i of the second batch continues row i of the first.
    rng = np.random.default_rng(2)
    layer = LSTM(U, stateful=True, batch_input_shape=(B, T, F))
    model = Sequential([layer])
    w = random_weights(layer, rng)
    x = rng.normal(size=(2 * B, T, F)).astype(np.float32)
    got = model.predict(x, batch_size=B, verbose=0)
    first, h, c = rnn_ref("lstm", x[:B], w, return_state=True)
    second = rnn_ref("lstm", x[B:], w, initial_state=[h, c])
    np.testing.assert_allclose(got, np.concatenate([first, second]), atol=ATOL)
    # States set by hand start the next batch.
    h0, c0 = rng.normal(size=(2, B, U)).astype(np.float32)
    layer.reset_states([h0, c0])
    np.testing.assert_allclose(model.predict(x[:B], verbose=0), rnn_ref("lstm", x[:B], w, initial_state=[h0, c0]),
                               atol=ATOL)
    with pytest.raises(ValueError, match=r"expected shape \(3, 5\)"):
        layer.reset_states([h0[:2], c0[:2]])


def test_evaluate_and_fit_carry_states_too():
    rng = np.random.default_rng(3)
    layer = SimpleRNN(U, stateful=True, batch_input_shape=(B, T, F))
    model = Sequential([layer, Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    y = np.zeros((B, 1), np.float32)
    model.evaluate(x, y, verbose=0)
    after_eval = layer.states[0]
    want = rnn_ref("simple", x, layer.get_weights())
    np.testing.assert_allclose(after_eval, want, atol=ATOL)
    # A training step starts from the evaluated state and leaves the state the forward pass
    # computed with the weights before the step.
    w_before = layer.get_weights()
    model.train_on_batch(x, y)
    np.testing.assert_allclose(layer.states[0], rnn_ref("simple", x, w_before, initial_state=[after_eval]),
                               atol=ATOL)
    # The states are not trainable and not weights.
    assert len(layer.get_weights()) == 3 and len(model.get_weights()) == 5


def test_stateful_fit_learns_and_keeps_batch_size():
    # The target of each chunk is the sum of the whole sequence so far: learnable only
    # with the carried state.
    rng = np.random.default_rng(4)
    model = Sequential([LSTM(8, stateful=True, batch_input_shape=(4, 3, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    seqs = rng.uniform(-1, 1, size=(4, 12, 1)).astype(np.float32)
    chunks = [seqs[:, k * 3:(k + 1) * 3] for k in range(4)]
    targets = [seqs[:, :(k + 1) * 3].sum(axis=(1, 2))[:, None] / 3 for k in range(4)]
    first = None
    for epoch in range(60):
        model.reset_states()
        losses = [model.train_on_batch(cx, cy) for cx, cy in zip(chunks, targets)]
        first = first if first is not None else float(np.mean(losses))
    assert np.mean(losses) < 0.5 * first, (first, np.mean(losses))
    # fit defaults batch_size to the stateful batch size; other sizes are errors.
    x, y = np.concatenate(chunks), np.concatenate(targets)
    model.fit(x, y, epochs=1, shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="batch size 4.*batch_size=32"):
        model.fit(x, y, batch_size=32, verbose=0)
    with pytest.raises(ValueError, match="multiple"):
        model.predict(x[:6], verbose=0)
    with pytest.raises(ValueError, match="validation_batch_size"):
        model.fit(x, y, validation_data=(x, y), validation_batch_size=8, verbose=0)


def test_batch_size_from_input_layer_and_errors():
    model = Sequential([Input(batch_shape=(2, 3, 1)), GRU(4, stateful=True)])
    assert model.predict(np.ones((4, 3, 1), np.float32), verbose=0).shape == (4, 4)
    with pytest.raises(ValueError, match="batch size must be static"):
        Sequential([LSTM(4, stateful=True, input_shape=(3, 1))])
    # Two separate models keep separate states.
    a = Sequential([SimpleRNN(2, stateful=True, batch_input_shape=(1, 2, 1))])
    b = Sequential([SimpleRNN(2, stateful=True, batch_input_shape=(1, 2, 1))])
    a.predict(np.ones((1, 2, 1), np.float32), verbose=0)
    assert a.layers[0].states[0].any() and not b.layers[0].states[0].any()


def test_bidirectional_stateful_and_config():
    rng = np.random.default_rng(5)
    bi = Bidirectional(LSTM(3, stateful=True, return_sequences=True), batch_input_shape=(2, 4, 2))
    model = Sequential([bi])
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    w = model.get_weights()
    out = model.predict(x, verbose=0)
    fw, h, c = rnn_ref("lstm", x, w[:3], return_sequences=True, return_state=True)
    np.testing.assert_allclose(out[..., :3], fw, atol=ATOL)
    assert len(bi.states) == 4
    np.testing.assert_allclose(bi.states[0], h, atol=ATOL)
    # The second call continues: the forward half starts from (h, c).
    out2 = model.predict(x, verbose=0)
    np.testing.assert_allclose(out2[..., :3], rnn_ref("lstm", x, w[:3], return_sequences=True,
                                                      initial_state=[h, c]), atol=ATOL)
    clone = model_from_json(Sequential([LSTM(3, stateful=True, batch_input_shape=(2, 4, 2))]).to_json())
    assert clone.layers[0].stateful and clone.layers[0].get_config()["stateful"]
    assert clone.predict(x, verbose=0).shape == (2, 3)
