"""SimpleRNN, LSTM, GRU and the sequence wrappers against numpy references.

The references are transcriptions of Keras 3's cell equations on Keras' weight layout
(kernel (in, G*u), recurrent_kernel (u, G*u), bias; LSTM gates i, f, c, o; GRU z, r, h), so a
match also checks that `set_weights`/`get_weights` use Keras' layout.
"""

import numpy as np
import pytest

from rustkeras.layers import (
    GRU,
    BatchNormalization,
    LSTM,
    Activation,
    Bidirectional,
    Dense,
    Dropout,
    Masking,
    RepeatVector,
    SimpleRNN,
    TimeDistributed,
)
from rustkeras.models import Sequential, model_from_json
from rustkeras.utils import set_random_seed

ATOL = 2e-5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def hard_sigmoid(x):
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


ACT = {"tanh": np.tanh, "sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid, "relu": lambda v: np.maximum(v, 0),
       "linear": lambda v: v}


def rnn_ref(kind, x, weights, return_sequences=False, go_backwards=False, mask=None, activation="tanh",
            recurrent_activation="sigmoid", reset_after=True, use_bias=True, initial_state=None,
            return_state=False):
    """Keras 3's recurrence in numpy (float64). Masked steps keep state and output. Starts from
    `initial_state` ([h] or [h, c]) when given; with `return_state` also returns the final h, c."""
    kernel, rec = weights[0].astype(np.float64), weights[1].astype(np.float64)
    bias = weights[2].astype(np.float64) if use_bias else np.zeros(kernel.shape[1])
    n, steps, _ = x.shape
    u = rec.shape[0]
    act, ra = ACT[activation], ACT[recurrent_activation]
    h, c = np.zeros((n, u)), np.zeros((n, u))
    if initial_state is not None:
        h = np.asarray(initial_state[0], np.float64)
        if kind == "lstm":
            c = np.asarray(initial_state[1], np.float64)
    outs = []
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    for t in order:
        xt = x[:, t].astype(np.float64)
        if kind == "simple":
            h_new, c_new = act(xt @ kernel + bias + h @ rec), c
        elif kind == "lstm":
            z = xt @ kernel + bias + h @ rec
            i, f, g, o = ra(z[:, :u]), ra(z[:, u:2 * u]), act(z[:, 2 * u:3 * u]), ra(z[:, 3 * u:])
            c_new = f * c + i * g
            h_new = o * act(c_new)
        else:
            b_in, b_rec = (bias[0], bias[1]) if reset_after and use_bias else (bias.reshape(-1), np.zeros(3 * u))
            xz = xt @ kernel + b_in
            if reset_after:
                rz = h @ rec + b_rec
                z, r = ra(xz[:, :u] + rz[:, :u]), ra(xz[:, u:2 * u] + rz[:, u:2 * u])
                hh = act(xz[:, 2 * u:] + r * rz[:, 2 * u:])
            else:
                z = ra(xz[:, :u] + h @ rec[:, :u])
                r = ra(xz[:, u:2 * u] + h @ rec[:, u:2 * u])
                hh = act(xz[:, 2 * u:] + (r * h) @ rec[:, 2 * u:])
            h_new, c_new = z * h + (1 - z) * hh, c
        if mask is not None:
            keep = mask[:, t:t + 1].astype(bool)
            h_new, c_new = np.where(keep, h_new, h), np.where(keep, c_new, c)
        h, c = h_new, c_new
        outs.append(h)
    out = np.stack(outs, 1) if return_sequences else h
    return (out, h, c) if return_state else out


def random_weights(layer, rng, scale=0.5):
    ws = [rng.uniform(-scale, scale, w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(ws)
    return ws


LAYERS = [
    ("simple", lambda **k: SimpleRNN(5, **k), {}),
    ("lstm", lambda **k: LSTM(5, **k), {}),
    ("gru", lambda **k: GRU(5, **k), {"reset_after": True}),
    ("gru", lambda **k: GRU(5, reset_after=False, **k), {"reset_after": False}),
]


@pytest.mark.parametrize("kind,make,ref_kw", LAYERS)
@pytest.mark.parametrize("return_sequences,go_backwards", [(False, False), (True, False), (False, True), (True, True)])
def test_forward_matches_numpy(kind, make, ref_kw, return_sequences, go_backwards):
    rng = np.random.default_rng(0)
    layer = make(return_sequences=return_sequences, go_backwards=go_backwards, input_shape=(6, 3))
    model = Sequential([layer])
    ws = random_weights(layer, rng)
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    want = rnn_ref(kind, x, ws, return_sequences, go_backwards, **ref_kw)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=ATOL)


@pytest.mark.parametrize("make,kind,kw", [
    (lambda: LSTM(4, activation="relu", recurrent_activation="hard_sigmoid", input_shape=(5, 2)), "lstm",
     {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    (lambda: GRU(4, use_bias=False, input_shape=(5, 2)), "gru", {"use_bias": False}),
    (lambda: SimpleRNN(4, activation="linear", input_shape=(5, 2)), "simple", {"activation": "linear"}),
])
def test_activations_and_bias_options(make, kind, kw):
    rng = np.random.default_rng(1)
    layer = make()
    model = Sequential([layer])
    ws = random_weights(layer, rng)
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), rnn_ref(kind, x, ws, **kw), atol=ATOL)


def test_weight_layouts_and_initializers():
    set_random_seed(3)
    lstm, gru, gru0, rnn = LSTM(6, input_shape=(4, 3)), GRU(6, input_shape=(4, 3)), \
        GRU(6, reset_after=False, input_shape=(4, 3)), SimpleRNN(6, input_shape=(4, 3))
    for layer in (lstm, gru, gru0, rnn):
        Sequential([layer])
    assert [w.shape for w in lstm.get_weights()] == [(3, 24), (6, 24), (24,)]
    assert [w.shape for w in gru.get_weights()] == [(3, 18), (6, 18), (2, 18)]
    assert [w.shape for w in gru0.get_weights()] == [(3, 18), (6, 18), (18,)]
    assert [w.shape for w in rnn.get_weights()] == [(3, 6), (6, 6), (6,)]
    bias = lstm.get_weights()[2]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(6), np.ones(6), np.zeros(12)])  # unit_forget_bias
    rec = lstm.get_weights()[1]
    np.testing.assert_allclose(rec @ rec.T, np.eye(6), atol=1e-5)  # orthogonal rows
    assert not LSTM(2, unit_forget_bias=False, input_shape=(2, 2)).unit_forget_bias
    # Keys of a Keras 3 LSTM config that only steer Keras' own implementation are accepted.
    assert LSTM(2, zero_output_for_mask=False, implementation=2, use_cudnn="auto").units == 2
    assert lstm.count_params() == 3 * 24 + 6 * 24 + 24


def test_stacked_lstm_shapes_and_masks():
    model = Sequential()
    model.add(Masking(0.0, input_shape=(5, 2)))
    model.add(LSTM(4, return_sequences=True))
    model.add(GRU(3))
    model.add(Dense(2))
    assert model.output_shape == (None, 2)
    assert model.layers[1].output_shape == (None, 5, 4)


@pytest.mark.parametrize("kind,make", [("lstm", LSTM), ("gru", GRU), ("simple", SimpleRNN)])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masking_skips_steps(kind, make, go_backwards):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    mask = rng.uniform(size=(4, 6)) > 0.4
    mask[:, 0] = False
    x[~mask] = 0.0
    model = Sequential([Masking(0.0, input_shape=(6, 3)), make(4, return_sequences=True, go_backwards=go_backwards)])
    ws = random_weights(model.layers[1], rng)
    want = rnn_ref(kind, x, ws, True, go_backwards, mask=mask)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=ATOL)


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional(mode, return_sequences):
    rng = np.random.default_rng(4)
    layer = Bidirectional(LSTM(3, return_sequences=return_sequences), merge_mode=mode, input_shape=(5, 2))
    model = Sequential([layer])
    ws = random_weights(layer, rng)
    assert len(ws) == 6
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    fwd = rnn_ref("lstm", x, ws[:3], return_sequences)
    bwd = rnn_ref("lstm", x, ws[3:], return_sequences, go_backwards=True)
    if return_sequences:
        bwd = bwd[:, ::-1]
    want = {"concat": lambda: np.concatenate([fwd, bwd], -1), "sum": lambda: fwd + bwd,
            "mul": lambda: fwd * bwd, "ave": lambda: (fwd + bwd) / 2}[mode]()
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=ATOL)


def test_time_distributed_and_repeat_vector():
    rng = np.random.default_rng(5)
    model = Sequential([RepeatVector(4, input_shape=(3,)), TimeDistributed(Dense(2)),
                        TimeDistributed(Activation("tanh"))])
    assert model.output_shape == (None, 4, 2)
    k, b = random_weights(model.layers[1], rng)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    want = np.tanh(np.repeat(x[:, None], 4, 1) @ k + b)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=ATOL)


def test_keras1_spellings():
    layer = LSTM(output_dim=4, inner_activation="hard_sigmoid", init="glorot_normal", inner_init="orthogonal",
                 dropout_W=0.0, dropout_U=0, input_dim=3, input_length=6, forget_bias_init="one")
    assert layer.units == 4 and layer.recurrent_activation == "hard_sigmoid"
    assert layer._input_shape_arg == (6, 3) and layer.unit_forget_bias
    assert type(layer.kernel_initializer).__name__ == "GlorotNormal"
    model = Sequential([layer])
    rng = np.random.default_rng(6)
    ws = random_weights(layer, rng)
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               rnn_ref("lstm", x, ws, recurrent_activation="hard_sigmoid"), atol=ATOL)
    rnn = SimpleRNN(8, activation="tanh", dropout_W=0, dropout_U=0, input_shape=(4, 2))
    assert rnn.dropout == 0.0 and rnn.recurrent_dropout == 0.0
    assert GRU(output_dim=3, input_shape=(2, 2)).units == 3


@pytest.mark.parametrize("kind,make", [("lstm", LSTM), ("simple", SimpleRNN), ("gru", GRU)])
def test_dropout_is_identity_at_inference_and_trains(kind, make):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 5, 3)).astype(np.float32)
    model = Sequential([make(4, dropout=0.5, recurrent_dropout=0.3, input_shape=(5, 3)), Dense(1)])
    ws = random_weights(model.layers[0], rng)
    out = model.predict(x, verbose=0)
    want = rnn_ref(kind, x, ws) @ model.layers[1].get_weights()[0] + model.layers[1].get_weights()[1]
    np.testing.assert_allclose(out, want, atol=ATOL)
    model.compile(loss="mse", optimizer="sgd")
    model.fit(x, np.zeros((8, 1)), epochs=1, verbose=0)
    # Recurrent dropout alone: the training loss (before the update) differs from inference.
    rec = Sequential([make(4, recurrent_dropout=0.5, input_shape=(5, 3)), Dense(1)])
    rec.compile(loss="mse", optimizer="sgd")
    y = np.ones((8, 1), np.float32)
    test_loss = rec.test_on_batch(x, y)
    train_loss = rec.train_on_batch(x, y)
    assert abs(train_loss - test_loss) > 1e-6, (train_loss, test_loss)
    assert LSTM(3, dropout_W=0.2, dropout_U=0.2).recurrent_dropout == 0.2


def test_training_learns_a_sequence_task():
    # The class is the sign of the sum of the first feature over time: needs the recurrence.
    set_random_seed(8)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(512, 6, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)
    for layer in (LSTM(8, input_shape=(6, 2)), GRU(8, input_shape=(6, 2))):
        model = Sequential([layer, Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
        hist = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
        assert hist.history["accuracy"][-1] > 0.9, (type(layer).__name__, hist.history["accuracy"][-1])


def test_config_round_trip():
    model = Sequential([Masking(input_shape=(4, 2)), Bidirectional(GRU(3, reset_after=False, return_sequences=True)),
                        TimeDistributed(Dense(2)), LSTM(3, go_backwards=True), Dense(1)])
    clone = model_from_json(model.to_json())
    assert [type(l).__name__ for l in clone.layers] == ["Masking", "Bidirectional", "TimeDistributed", "LSTM", "Dense"]
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    assert clone.layers[3].go_backwards and not clone.layers[1].forward_layer.reset_after


@pytest.mark.parametrize("make,exc,needles", [
    (lambda: LSTM(4, recurrent_dropout=1.0), ValueError, ["recurrent_dropout", "1.0"]),
    (lambda: LSTM(4, dropout_U=-0.1), ValueError, ["recurrent_dropout", "-0.1"]),
    (lambda: LSTM(0), ValueError, ["units", "0"]),
    (lambda: LSTM(4, dropout=1.5), ValueError, ["dropout", "1.5"]),
    (lambda: LSTM(4, activation="gelu"), NotImplementedError, ["activation", "gelu"]),
    (lambda: SimpleRNN(4, recurrent_activation="sigmoid"), ValueError, ["recurrent_activation"]),
    (lambda: LSTM(4, foo=1), ValueError, ["foo"]),
    (lambda: GRU(4, zero_output_for_mask=True), NotImplementedError, ["zero_output_for_mask"]),
    (lambda: LSTM(4, input_dim=3), ValueError, ["input_dim", "input_length"]),
    (lambda: Bidirectional(Dense(3)), ValueError, ["Bidirectional"]),
    (lambda: Bidirectional(LSTM(3), merge_mode="max"), ValueError, ["merge_mode", "max"]),
    (lambda: TimeDistributed(BatchNormalization()), NotImplementedError, ["TimeDistributed", "BatchNormalization"]),
    (lambda: TimeDistributed(LSTM(3, stateful=True)), NotImplementedError, ["TimeDistributed", "LSTM"]),
    (lambda: RepeatVector(0), ValueError, ["n", "0"]),
])
def test_argument_errors(make, exc, needles):
    with pytest.raises(exc) as e:
        make()
    for n in needles:
        assert n in str(e.value)


def test_input_rank_errors():
    with pytest.raises(ValueError, match=r"ndim=3.*\(None, 4\)"):
        Sequential([LSTM(3, input_shape=(4,))])
    with pytest.raises(ValueError, match="RepeatVector|ndim=2"):
        Sequential([RepeatVector(2, input_shape=(3, 4))])
    model = Sequential([GRU(3, input_shape=(4, 2))])
    with pytest.raises(ValueError, match=r"expected shape=\(None, 4, 2\)"):
        model.predict(np.zeros((2, 5, 2), np.float32), verbose=0)
