"""Embedding against numpy: lookup, mask_zero carried into recurrent layers, index checks."""

import numpy as np
import pytest

from rustkeras.layers import GRU, LSTM, Bidirectional, Dense, Embedding
from rustkeras.models import Sequential, model_from_json
from rustkeras.utils import set_random_seed

from test_recurrent import ATOL, random_weights, rnn_ref


def test_lookup_layout_and_initializer():
    set_random_seed(1)
    layer = Embedding(10, 4, input_length=3)
    model = Sequential([layer])
    (table,) = layer.get_weights()
    assert table.shape == (10, 4) and model.output_shape == (None, 3, 4)
    assert np.abs(table).max() <= 0.05 and table.std() > 0.01
    idx = np.array([[0, 9, 3], [3, 3, 1]])
    np.testing.assert_array_equal(model.predict(idx, verbose=0), table[idx])


def test_keras1_spellings_and_initial_weights():
    w = np.arange(12, dtype=np.float32).reshape(6, 2)
    layer = Embedding(input_dim=6, output_dim=2, init="uniform", input_length=2, weights=[w])
    model = Sequential([layer])
    np.testing.assert_array_equal(model.predict(np.array([[5, 0]]), verbose=0), w[[[5, 0]]])
    assert Embedding(3, 2, input_shape=(7,))._input_shape_arg == (7,)


@pytest.mark.parametrize("rnn,kind", [(LSTM, "lstm"), (GRU, "gru")])
def test_mask_zero_skips_padding_in_recurrent_layers(rnn, kind):
    rng = np.random.default_rng(2)
    emb = Embedding(8, 3, mask_zero=True, input_length=6)
    model = Sequential([emb, rnn(4, return_sequences=True)])
    ws = random_weights(model.layers[1], rng)
    idx = rng.integers(1, 8, size=(5, 6))
    idx[:, :2] = 0  # left padding, as pad_sequences makes
    idx[1, 4] = 0
    vecs = emb.get_weights()[0][idx]
    want = rnn_ref(kind, vecs, ws, True, mask=idx != 0)
    np.testing.assert_allclose(model.predict(idx, verbose=0), want, atol=ATOL)


def test_mask_flows_through_bidirectional():
    rng = np.random.default_rng(3)
    model = Sequential([Embedding(5, 2, mask_zero=True, input_length=4), Bidirectional(LSTM(3), merge_mode="sum")])
    ws = random_weights(model.layers[1], rng)
    idx = np.array([[0, 0, 1, 2], [3, 0, 4, 1]])
    vecs = model.layers[0].get_weights()[0][idx]
    mask = idx != 0
    want = rnn_ref("lstm", vecs, ws[:3], mask=mask) + rnn_ref("lstm", vecs, ws[3:], go_backwards=True, mask=mask)
    np.testing.assert_allclose(model.predict(idx, verbose=0), want, atol=ATOL)


def test_bidirectional_sequences_are_zero_at_masked_steps():
    rng = np.random.default_rng(5)
    model = Sequential([Embedding(5, 2, mask_zero=True, input_length=4),
                        Bidirectional(GRU(3, return_sequences=True))])
    ws = random_weights(model.layers[1], rng)
    idx = np.array([[0, 0, 1, 2], [3, 0, 4, 1]])
    vecs = model.layers[0].get_weights()[0][idx]
    mask = idx != 0
    fwd = rnn_ref("gru", vecs, ws[:3], True, mask=mask)
    bwd = rnn_ref("gru", vecs, ws[3:], True, go_backwards=True, mask=mask)[:, ::-1]
    want = np.concatenate([fwd, bwd], -1) * mask[..., None]
    np.testing.assert_allclose(model.predict(idx, verbose=0), want, atol=ATOL)


def test_training_moves_only_used_rows():
    set_random_seed(4)
    model = Sequential([Embedding(6, 2, input_length=3), LSTM(3), Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    before = model.layers[0].get_weights()[0]
    idx = np.array([[1, 2, 2], [2, 1, 1]])
    model.fit(idx, np.ones((2, 1)), epochs=1, verbose=0)
    after = model.layers[0].get_weights()[0]
    moved = np.abs(after - before).sum(1) > 0
    np.testing.assert_array_equal(moved, [False, True, True, False, False, False])


@pytest.mark.parametrize("bad,needle", [(6, "[0, 6)"), (-1, "[0, 6)"), (1.5, "integers"), (np.nan, "integers")])
def test_bad_indices_raise_before_running(bad, needle):
    model = Sequential([Embedding(6, 2, input_length=2), LSTM(2), Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    x = np.array([[1.0, bad]])
    for call in (lambda: model.predict(x, verbose=0), lambda: model.fit(x, np.ones((1, 1)), verbose=0)):
        with pytest.raises(ValueError) as e:
            call()
        assert needle in str(e.value) and "Embedding" in str(e.value)


@pytest.mark.parametrize("kwargs,exc,needle", [
    ({"input_dim": 0, "output_dim": 2}, ValueError, "input_dim"),
    ({"input_dim": 4, "output_dim": None}, ValueError, "output_dim"),
    ({"input_dim": 4, "output_dim": 2, "embeddings_constraint": "non_neg"}, NotImplementedError,
     "embeddings_constraint"),
    ({"input_dim": 4, "output_dim": 2, "input_length": 0}, ValueError, "input_length"),
    ({"input_dim": 4, "output_dim": 2, "dropout": 1.0}, ValueError, "dropout"),
])
def test_argument_errors(kwargs, exc, needle):
    with pytest.raises(exc, match=needle):
        Embedding(**kwargs)


def test_config_round_trip():
    model = Sequential([Embedding(7, 3, mask_zero=True, input_length=5), GRU(2)])
    clone = model_from_json(model.to_json())
    assert clone.layers[0].mask_zero and clone.layers[0].input_dim == 7
    assert clone.output_shape == (None, 2)


def test_keras1_dropout_drops_whole_vocabulary_rows_in_training_only():
    # Every sample reads each of the V indices once; the table is all ones, the target zero.
    v, d, n, rate = 40, 3, 4, 0.5
    emb = Embedding(v, d, input_length=v, dropout=rate, seed=3)
    model = Sequential([emb])
    emb.set_weights([np.ones((v, d), np.float32)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.tile(np.arange(v, dtype=np.float32), (n, 1))
    np.testing.assert_allclose(model.predict(x, verbose=0), np.ones((n, v, d)))  # identity at inference
    loss = model.train_on_batch(x, np.zeros((n, v, d), np.float32))
    changed = np.abs(emb.get_weights()[0] - 1.0).max(axis=1) > 0
    kept = int(changed.sum())
    # A kept row reads 1 / (1 - rate) in every sample and position; a dropped one reads 0 and
    # gets no gradient. So the loss is kept / V * (1 / (1 - rate))**2.
    assert 0 < kept < v
    np.testing.assert_allclose(loss, kept / v / (1 - rate) ** 2, rtol=1e-5)
    assert (changed[:, None] == (np.abs(emb.get_weights()[0] - 1.0) > 0)).all()
    assert model_from_json(model.to_json()).layers[0].dropout == rate
