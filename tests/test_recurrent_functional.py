"""Recurrent layers in functional models: `return_state`, `initial_state` (the encoder-decoder
pattern), Bidirectional's states and `merge_mode=None`, stateful layers behind
`Input(batch_shape=...)`. References: the numpy recurrence of test_recurrent."""

import numpy as np
import pytest

from rustkeras import Model
from rustkeras.layers import GRU, LSTM, Bidirectional, Dense, Embedding, Input, SimpleRNN
from rustkeras.models import Sequential
from rustkeras.utils import set_random_seed

from test_recurrent import random_weights, rnn_ref

ATOL = 2e-5
T, F, U = 5, 3, 4

CELLS = [
    ("simple", lambda **k: SimpleRNN(U, **k), {}),
    ("lstm", lambda **k: LSTM(U, **k), {}),
    ("gru", lambda **k: GRU(U, **k), {"reset_after": True}),
    ("gru", lambda **k: GRU(U, reset_after=False, **k), {"reset_after": False}),
]


@pytest.mark.parametrize("kind,make,ref_kw", CELLS)
@pytest.mark.parametrize("return_sequences,go_backwards", [(False, False), (True, False), (True, True)])
def test_return_state_gives_the_last_states(kind, make, ref_kw, return_sequences, go_backwards):
    rng = np.random.default_rng(0)
    layer = make(return_sequences=return_sequences, go_backwards=go_backwards, return_state=True)
    x_in = Input(shape=(T, F))
    outs = layer(x_in)
    assert len(outs) == (3 if kind == "lstm" else 2)
    assert outs[1].shape == (None, U)
    model = Model(x_in, outs)
    w = random_weights(layer, rng)
    x = rng.normal(size=(6, T, F)).astype(np.float32)
    got = model.predict(x, verbose=0)
    want, h, c = rnn_ref(kind, x, w, return_sequences=return_sequences, go_backwards=go_backwards,
                         return_state=True, **ref_kw)
    np.testing.assert_allclose(got[0], want, atol=ATOL)
    np.testing.assert_allclose(got[1], h, atol=ATOL)
    if kind == "lstm":
        np.testing.assert_allclose(got[2], c, atol=ATOL)


@pytest.mark.parametrize("kind,make,ref_kw", CELLS)
@pytest.mark.parametrize("as_inputs", [False, True])
def test_initial_state_starts_the_recurrence(kind, make, ref_kw, as_inputs):
    rng = np.random.default_rng(1)
    layer = make(return_sequences=True)
    x_in = Input(shape=(T, F))
    states = [Input(shape=(U,)) for _ in range(2 if kind == "lstm" else 1)]
    y = layer([x_in] + states) if as_inputs else layer(x_in, initial_state=states)
    model = Model([x_in] + states, y)
    w = random_weights(layer, rng)
    x = rng.normal(size=(6, T, F)).astype(np.float32)
    s0 = [rng.normal(size=(6, U)).astype(np.float32) for _ in states]
    np.testing.assert_allclose(model.predict([x] + s0, verbose=0),
                               rnn_ref(kind, x, w, return_sequences=True, initial_state=s0, **ref_kw), atol=ATOL)


def test_masked_steps_keep_the_initial_state():
    rng = np.random.default_rng(2)
    tokens = Input(shape=(T,))
    h0 = Input(shape=(U,))
    emb = Embedding(10, F, mask_zero=True)
    layer = GRU(U, return_sequences=True)
    model = Model([tokens, h0], layer(emb(tokens), initial_state=[h0]))
    w = random_weights(layer, rng)
    x = rng.integers(1, 10, size=(4, T)).astype(np.float32)
    x[:, :2] = 0  # leading padding: the state stays h0 there
    s0 = rng.normal(size=(4, U)).astype(np.float32)
    seq = emb.get_weights()[0][x.astype(int)]
    want = rnn_ref("gru", seq, w, return_sequences=True, initial_state=[s0], mask=(x != 0))
    got = model.predict([x, s0], verbose=0)
    np.testing.assert_allclose(got, want, atol=ATOL)
    np.testing.assert_allclose(got[:, 1], s0, atol=ATOL)


def _seq2seq(units=16, steps=4, vocab=6):
    enc_in, dec_in = Input(shape=(steps, vocab), name="encoder_in"), Input(shape=(steps, vocab), name="decoder_in")
    _, h, c = LSTM(units, return_state=True, name="encoder")(enc_in)
    dec = LSTM(units, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    out = Dense(vocab, activation="softmax", name="probs")(dec)
    return Model([enc_in, dec_in], out)


def _reverse_task(n, rng, steps=4, vocab=6):
    seq = rng.integers(1, vocab, size=(n, steps))
    onehot = np.eye(vocab, dtype=np.float32)
    target = seq[:, ::-1]
    dec_input = np.concatenate([np.zeros((n, 1), int), target[:, :-1]], axis=1)  # teacher forcing, 0 = start
    return onehot[seq], onehot[dec_input], onehot[target]


def test_encoder_gradient_flows_through_the_states():
    # The SGD step on one encoder kernel entry equals -lr times the central difference of the loss.
    set_random_seed(3)
    rng = np.random.default_rng(3)
    model = _seq2seq(units=5)
    enc, dec, y = _reverse_task(16, rng)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    encoder = model.get_layer("encoder")
    w = encoder.get_weights()
    eps, lr = 1e-2, 0.5

    def loss_with(delta):
        k = w[0].copy()
        k[1, 2] += delta
        encoder.set_weights([k, w[1], w[2]])
        return float(np.float64(model.evaluate([enc, dec], y, batch_size=16, verbose=0)))

    numeric = (loss_with(eps) - loss_with(-eps)) / (2 * eps)
    encoder.set_weights(w)
    model.optimizer.learning_rate = lr
    model.train_on_batch([enc, dec], y)
    step = encoder.get_weights()[0][1, 2] - w[0][1, 2]
    assert abs(numeric) > 1e-4
    np.testing.assert_allclose(step, -lr * numeric, rtol=0.05, atol=1e-6)


def test_seq2seq_learns_to_reverse():
    set_random_seed(4)
    rng = np.random.default_rng(4)
    model = _seq2seq()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    enc, dec, y = _reverse_task(2048, rng)
    hist = model.fit([enc, dec], y, epochs=25, batch_size=64, verbose=0)
    # Without the encoder's states the decoder could only guess: chance is 1 in 5.
    assert hist.history["accuracy"][-1] > 0.9, hist.history["accuracy"][-1]


def test_bidirectional_states_and_separate_outputs():
    rng = np.random.default_rng(5)
    x_in = Input(shape=(T, F))
    bi = Bidirectional(LSTM(U, return_state=True, return_sequences=True), merge_mode=None)
    outs = bi(x_in)
    assert len(outs) == 6
    model = Model(x_in, outs)
    w = model.get_weights()
    x = rng.normal(size=(3, T, F)).astype(np.float32)
    fw, bw, fh, fc, bh, bc = model.predict(x, verbose=0)
    want_fw, h, c = rnn_ref("lstm", x, w[:3], return_sequences=True, return_state=True)
    want_bw, h2, c2 = rnn_ref("lstm", x, w[3:], return_sequences=True, go_backwards=True, return_state=True)
    np.testing.assert_allclose(fw, want_fw, atol=ATOL)
    np.testing.assert_allclose(bw, want_bw[:, ::-1], atol=ATOL)  # the backward output in input order
    for got, want in ((fh, h), (fc, c), (bh, h2), (bc, c2)):
        np.testing.assert_allclose(got, want, atol=ATOL)
    # Initial states for both directions: the forward layer's, then the backward layer's.
    states = [Input(shape=(U,)) for _ in range(4)]
    bi2 = Bidirectional(GRU(U), merge_mode="sum")
    s_in = states[:2]
    m2 = Model([x_in] + s_in, bi2(x_in, initial_state=s_in))
    w2 = m2.get_weights()
    s0 = [rng.normal(size=(3, U)).astype(np.float32) for _ in s_in]
    want = rnn_ref("gru", x, w2[:3], initial_state=[s0[0]]) + rnn_ref("gru", x, w2[3:], go_backwards=True,
                                                                       initial_state=[s0[1]])
    np.testing.assert_allclose(m2.predict([x] + s0, verbose=0), want, atol=ATOL)


def test_stateful_layer_in_a_functional_model():
    rng = np.random.default_rng(6)
    x_in = Input(batch_shape=(2, T, F))
    layer = SimpleRNN(U, stateful=True, return_state=True)
    out, h = layer(x_in)
    assert out.shape == (2, U)
    model = Model(x_in, [out, h])
    w = random_weights(layer, rng)
    x = rng.normal(size=(4, T, F)).astype(np.float32)
    got, _ = model.predict(x, verbose=0)  # two batches of 2: the second continues the first
    first, h1, _ = rnn_ref("simple", x[:2], w, return_state=True)
    np.testing.assert_allclose(got, np.concatenate([first, rnn_ref("simple", x[2:], w, initial_state=[h1])]),
                               atol=ATOL)
    model.reset_states()
    assert not layer.states[0].any()


def test_errors_name_the_layer_and_what_was_expected():
    with pytest.raises(ValueError, match="single output tensor"):
        Sequential([LSTM(3, return_state=True, input_shape=(4, 2))])
    with pytest.raises(ValueError, match="single output tensor"):
        Sequential([Bidirectional(LSTM(3), merge_mode=None, input_shape=(4, 2))])
    x_in = Input(shape=(4, 2))
    with pytest.raises(ValueError, match=r"expects 2 initial state.*received 1"):
        LSTM(3, name="dec")(x_in, initial_state=[Input(shape=(3,))])
    with pytest.raises(ValueError, match=r"initial state 0 must have shape \(batch, 3\)"):
        GRU(3)(x_in, initial_state=[Input(shape=(5,))])
    with pytest.raises(ValueError, match="both as extra inputs and as `initial_state`"):
        GRU(3)([x_in, Input(shape=(3,))], initial_state=[Input(shape=(3,))])
    with pytest.raises(TypeError, match="unexpected keyword argument 'initial_states'"):
        GRU(3)(x_in, initial_states=[Input(shape=(3,))])
