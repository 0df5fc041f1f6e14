"""Layers, Sequential models and the training loop against numpy references.

Forward passes are compared with x @ W + b and numpy transcriptions of Keras 3's activations;
training-loop behaviour (dropout, weights, callbacks, splits, regularizers) with quantities
that can be computed by hand for a one-Dense-layer model and plain SGD.
"""

import json
import math

import numpy as np
import pytest

from rustkeras import activations, callbacks, layers, optimizers, regularizers
from rustkeras.layers import (
    ELU,
    Activation,
    Dense,
    Dropout,
    Flatten,
    Input,
    InputLayer,
    LeakyReLU,
    PReLU,
    Reshape,
)
from rustkeras.models import Sequential, model_from_json
from rustkeras.utils import set_random_seed, to_categorical

# ---- numpy references of the activations --------------------------------------------------

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_erf = np.vectorize(math.erf)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


REF_ACT = {
    "linear": lambda x: x,
    "identity": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "sigmoid": _sigmoid,
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "tanh": np.tanh,
    "softmax": _softmax,
    "softplus": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1)),
    "exponential": np.exp,
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "binary_step": lambda x: (x >= 0).astype(np.float64),
    "arctan": np.arctan,
}


def test_reference_covers_every_activation_name():
    assert set(REF_ACT) == set(activations.NAMES)


X_ACT = np.array([[-7.0, -3.5, -1.0, -0.25, 0.0, 0.3, 1.0, 2.5, 6.5, 8.0],
                  [0.1, -0.1, 4.0, -4.0, 0.7, -0.7, 3.0, -2.0, 5.5, -6.0]], np.float32)


@pytest.mark.parametrize("name", activations.NAMES)
def test_activation_function_on_numpy(name):
    got = getattr(activations, name)(X_ACT)
    assert got.shape == X_ACT.shape
    np.testing.assert_allclose(got, REF_ACT[name](X_ACT.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_activations_get_by_name_function_and_none():
    assert activations.get(None) == "linear"
    assert activations.get("ReLU") == "relu"
    assert activations.get(activations.tanh) == "tanh"
    assert activations.deserialize("sigmoid") is activations.sigmoid


RNG = np.random.default_rng(0)
XD = RNG.normal(size=(7, 5)).astype(np.float32) * 2
WD = RNG.normal(size=(5, 4)).astype(np.float32)
BD = RNG.normal(size=(4,)).astype(np.float32)


@pytest.mark.parametrize("name", activations.NAMES)
def test_dense_forward_every_activation(name):
    m = Sequential([Dense(4, activation=name, input_shape=(5,))])
    m.set_weights([WD, BD])
    got = m.predict(XD, verbose=0)
    want = REF_ACT[name](XD.astype(np.float64) @ WD + BD)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dense_activation_given_as_function():
    m = Sequential([Dense(4, activation=activations.softsign, input_dim=5)])
    m.set_weights([WD, BD])
    np.testing.assert_allclose(m.predict(XD, verbose=0), REF_ACT["softsign"](XD @ WD + BD), rtol=1e-5, atol=1e-6)


# ---- individual layers ---------------------------------------------------------------------


def _predict(model_layers, x, weights=None):
    m = Sequential(model_layers)
    if weights is not None:
        m.set_weights(weights)
    return m, m.predict(x, verbose=0)


def test_activation_layer():
    for name in ("relu", "softmax", "tanh"):
        _, got = _predict([Input((10,)), Activation(name)], X_ACT)
        np.testing.assert_allclose(got, REF_ACT[name](X_ACT.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_flatten_and_reshape():
    x = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    m, got = _predict([Input((2, 3)), Flatten()], x)
    assert m.output_shape == (None, 6)
    np.testing.assert_array_equal(got, x.reshape(2, 6))
    m, got = _predict([Input((2, 3)), Flatten(), Reshape((-1, 2))], x)
    assert m.output_shape == (None, 3, 2)
    np.testing.assert_array_equal(got, x.reshape(2, 3, 2))
    m, got = _predict([Input((6,)), Reshape((3, 2))], x.reshape(2, 6))
    np.testing.assert_array_equal(got, x.reshape(2, 3, 2))
    assert Reshape((2, -1)).compute_output_shape((None, 6)) == (None, 2, 3)


def test_dense_on_rank3_input_acts_on_last_axis():
    x = RNG.normal(size=(3, 2, 5)).astype(np.float32)
    m, got = _predict([Input((2, 5)), Dense(4)], x, [WD, BD])
    assert m.output_shape == (None, 2, 4)
    np.testing.assert_allclose(got, x @ WD + BD, rtol=1e-5, atol=1e-5)


def test_leaky_relu_default_and_alpha_alias():
    assert LeakyReLU().negative_slope == 0.3
    assert LeakyReLU(alpha=0.1).negative_slope == 0.1
    _, got = _predict([Input((10,)), LeakyReLU()], X_ACT)
    np.testing.assert_allclose(got, np.where(X_ACT >= 0, X_ACT, 0.3 * X_ACT), rtol=1e-6)
    _, got = _predict([Input((10,)), LeakyReLU(alpha=0.05)], X_ACT)
    np.testing.assert_allclose(got, np.where(X_ACT >= 0, X_ACT, 0.05 * X_ACT), rtol=1e-6)


def test_elu_layer():
    _, got = _predict([Input((10,)), ELU()], X_ACT)
    np.testing.assert_allclose(got, np.where(X_ACT > 0, X_ACT, np.exp(X_ACT) - 1), rtol=1e-5, atol=1e-6)
    _, got = _predict([Input((10,)), ELU(alpha=0.5)], X_ACT)
    np.testing.assert_allclose(got, np.where(X_ACT > 0, X_ACT, 0.5 * (np.exp(X_ACT) - 1)), rtol=1e-5, atol=1e-6)


def test_prelu_weights_and_forward():
    x = RNG.normal(size=(4, 2, 3)).astype(np.float32)
    m = Sequential([Input((2, 3)), PReLU()])
    (alpha0,) = m.get_weights()
    assert alpha0.shape == (2, 3)
    np.testing.assert_array_equal(alpha0, 0)  # alpha_initializer='zeros' -> relu
    np.testing.assert_allclose(m.predict(x, verbose=0), np.maximum(x, 0), atol=1e-7)
    alpha = RNG.uniform(0.1, 0.9, (2, 3)).astype(np.float32)
    m.set_weights([alpha])
    np.testing.assert_allclose(m.predict(x, verbose=0), np.where(x >= 0, x, alpha * x), rtol=1e-6, atol=1e-7)
    assert m.count_params() == 6
    shared = Sequential([Input((2, 3)), PReLU(shared_axes=[1])])
    assert [w.shape for w in shared.get_weights()] == [(1, 3)]
    a = np.array([[0.1, 0.2, 0.3]], np.float32)
    shared.set_weights([a])
    np.testing.assert_allclose(shared.predict(x, verbose=0), np.where(x >= 0, x, a * x), rtol=1e-6, atol=1e-7)


def test_dropout_is_identity_at_inference():
    x = RNG.normal(size=(6, 10)).astype(np.float32)
    _, got = _predict([Input((10,)), Dropout(0.5)], x)
    np.testing.assert_array_equal(got, x)
    m, got = _predict([Input((5,)), Dropout(0.9), Dense(4)], XD, [WD, BD])
    np.testing.assert_allclose(got, XD @ WD + BD, rtol=1e-5, atol=1e-5)


def test_dropout_in_training_drops_about_half_and_rescales():
    # Input ones -> Dropout(0.5) -> Dense(1, no bias, zeros); mse against 1 with SGD(lr):
    # grad_j = 2 * (0 - 1) * mask_j / (1 - rate)  => new W_j = lr * 4 * mask_j.
    d, lr = 2000, 0.01
    m = Sequential([Input((d,)), Dropout(0.5), Dense(1, use_bias=False, kernel_initializer="zeros")])
    m.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    loss = m.train_on_batch(np.ones((1, d), np.float32), np.ones((1, 1), np.float32))
    assert loss == pytest.approx(1.0)  # W = 0 at the forward pass
    w = m.get_weights()[0].ravel()
    kept = np.isclose(w, lr * 4.0, rtol=1e-5)
    dropped = w == 0
    assert np.all(kept | dropped), np.unique(w)
    assert abs(kept.mean() - 0.5) < 0.06  # ~ 0.5 +- 5 sigma for 2000 units
    # inference: no dropout, no scaling
    np.testing.assert_allclose(m.predict(np.ones((1, d), np.float32), verbose=0), [[w.sum()]], rtol=1e-5)


# ---- Keras 1 aliases, weights ---------------------------------------------------------------


def test_keras1_aliases():
    layer = Dense(output_dim=3, init="ones", W_regularizer=regularizers.l2(0.5), bias=False, input_dim=2)
    assert layer.units == 3 and layer.use_bias is False
    m = Sequential([layer])
    assert m.input_shape == (None, 2)
    ws = m.get_weights()
    assert len(ws) == 1
    np.testing.assert_array_equal(ws[0], np.ones((2, 3)))
    assert layer.get_config()["kernel_regularizer"]["config"] == {"l2": 0.5}
    assert Dropout(p=0.25).rate == 0.25
    assert Dense(2, input_shape=(7,))._input_shape_arg == (7,)


def test_get_weights_shapes_order_and_round_trip():
    m = Sequential([Input((5,)), Dense(4, name="a"), Dense(3, name="b")])
    shapes = [w.shape for w in m.get_weights()]
    assert shapes == [(5, 4), (4,), (4, 3), (3,)]
    new = [RNG.normal(size=s).astype(np.float32) for s in shapes]
    m.set_weights(new)
    for a, b in zip(m.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    k, b = m.get_layer("b").get_weights()
    np.testing.assert_array_equal(k, new[2])
    m.get_layer("a").set_weights([np.zeros((5, 4)), np.ones(4)])
    np.testing.assert_array_equal(m.predict(XD, verbose=0),
                                  np.ones((7, 4), np.float32) @ new[2] + new[3])
    assert m.count_params() == 5 * 4 + 4 + 4 * 3 + 3


# ---- config --------------------------------------------------------------------------------

LAYER_FACTORIES = [
    lambda: Dense(3, activation="tanh", use_bias=False, kernel_regularizer=regularizers.l1_l2(0.1, 0.2)),
    lambda: Dense(4, kernel_initializer="he_normal", bias_regularizer="l2", input_shape=(6,)),
    lambda: Activation("softplus"),
    lambda: Dropout(0.3, seed=5),
    lambda: Flatten(),
    lambda: Reshape((2, -1)),
    lambda: LeakyReLU(0.15),
    lambda: ELU(0.7),
    lambda: PReLU(alpha_initializer="ones", shared_axes=[1]),
    lambda: InputLayer(shape=(4, 2)),
]


@pytest.mark.parametrize("factory", LAYER_FACTORIES)
def test_layer_config_round_trip(factory):
    layer = factory()
    cfg = layer.get_config()
    json.dumps(cfg)  # serialisable
    clone = type(layer).from_config(cfg)
    assert type(clone) is type(layer)
    assert clone.get_config() == cfg


def _mixed_model():
    return Sequential([
        Input((2, 3)), Flatten(), Dense(5, activation="relu"), LeakyReLU(0.1), Dropout(0.2),
        Dense(6), PReLU(), Reshape((3, 2)), ELU(0.5), Flatten(), Dense(2), Activation("softmax"),
    ])


def test_model_config_and_json_round_trip():
    m = _mixed_model()
    x = RNG.normal(size=(5, 2, 3)).astype(np.float32)
    weights = [RNG.normal(size=w.shape).astype(np.float32) for w in m.get_weights()]
    m.set_weights(weights)
    want = m.predict(x, verbose=0)
    for clone in (Sequential.from_config(m.get_config()), model_from_json(m.to_json())):
        assert [type(l) for l in clone.layers] == [type(l) for l in m.layers]
        assert [w.shape for w in clone.get_weights()] == [w.shape for w in weights]
        assert clone.get_config()["layers"][1:] == m.get_config()["layers"][1:]
        clone.set_weights(weights)
        np.testing.assert_allclose(clone.predict(x, verbose=0), want, rtol=1e-6, atol=1e-7)
    assert json.loads(m.to_json())["class_name"] == "Sequential"


def test_summary_and_count_params(capsys):
    m = Sequential([Input((8,)), Dense(16, name="hidden"), Dropout(0.1, name="drop"), Dense(3, name="out")])
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for s in ("hidden", "drop", "out", "Dense", "Dropout", "144", "51", "195"):
        assert s in text, s
    assert m.count_params() == 8 * 16 + 16 + 16 * 3 + 3 == 195
    m.summary()
    assert "Total params: 195" in capsys.readouterr().out


def test_summary_counts_moving_statistics_and_frozen_layers_as_non_trainable():
    # Keras: BatchNormalization's moving mean and variance are non-trainable params, and so is
    # every weight of a layer with trainable=False.
    from rustkeras.layers import BatchNormalization
    m = Sequential([Input((4,)), Dense(3), BatchNormalization(), Dense(2, name="frozen")])
    m.get_layer("frozen").trainable = False
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    total = 4 * 3 + 3 + 4 * 3 + 3 * 2 + 2
    assert m.count_params() == total == 35
    assert "Total params: 35" in text
    assert "Trainable params: 21" in text
    assert "Non-trainable params: 14" in text


def test_pop():
    m = Sequential([Input((5,)), Dense(4), Dense(2)])
    m.set_weights([WD, BD, np.ones((4, 2), np.float32), np.zeros(2, np.float32)])
    popped = m.pop()
    assert isinstance(popped, Dense) and popped.units == 2
    assert len(m.layers) == 1
    assert m.output_shape == (None, 4)
    np.testing.assert_allclose(m.predict(XD, verbose=0), XD @ WD + BD, rtol=1e-5, atol=1e-5)
    assert m.count_params() == 24


# ---- training ------------------------------------------------------------------------------


def _tutorial_model(metric="accuracy"):
    model = Sequential()
    model.add(Dense(32, input_dim=784))
    model.add(Activation("relu"))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=[metric])
    return model


def test_tutorial_usage():
    r = np.random.default_rng(3)
    x = r.uniform(size=(64, 784)).astype(np.float32)
    y = to_categorical(r.integers(0, 10, 64), 10)
    xv = r.uniform(size=(16, 784)).astype(np.float32)
    yv = to_categorical(r.integers(0, 10, 16), 10)
    model = _tutorial_model()
    h = model.fit(x, y, nb_epoch=2, batch_size=16, validation_data=(xv, yv), verbose=0)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in h.history.values())
    assert h.epoch == [0, 1]
    assert all(np.isfinite(v).all() for v in h.history.values())
    assert all(0 <= a <= 1 for a in h.history["accuracy"] + h.history["val_accuracy"])
    # val logs are evaluate() on the validation data with the end-of-training weights
    vl, va = model.evaluate(xv, yv, batch_size=16, verbose=0)
    assert h.history["val_loss"][-1] == pytest.approx(vl, rel=1e-5)
    assert h.history["val_accuracy"][-1] == pytest.approx(va, rel=1e-5)
    p = model.predict(xv, verbose=0)
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-5)
    model2 = _tutorial_model("acc")
    h2 = model2.fit(x, y, epochs=1, batch_size=32, validation_data=(xv, yv), verbose=0)
    assert set(h2.history) == {"loss", "acc", "val_loss", "val_acc"}


def _fit_once(seed):
    set_random_seed(seed)
    r = np.random.default_rng(0)
    x = r.normal(size=(40, 6)).astype(np.float32)
    y = r.normal(size=(40, 2)).astype(np.float32)
    m = Sequential([Input((6,)), Dense(8, activation="tanh"), Dropout(0.3), Dense(2)])
    m.compile(optimizer="adam", loss="mse")
    m.fit(x, y, epochs=2, batch_size=8, shuffle=True, verbose=0)
    return m.get_weights()


def test_set_random_seed_reproducible():
    a, b, c = _fit_once(42), _fit_once(42), _fit_once(43)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a, c))


def test_early_stopping_stops_and_restores_best_weights():
    r = np.random.default_rng(5)
    x = (r.normal(size=(16, 4)) * 3).astype(np.float32)
    y = r.normal(size=(16, 1)).astype(np.float32)
    m = Sequential([Input((4,)), Dense(1, kernel_initializer="ones")])
    m.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="mse")  # diverges
    seen = []

    class Record(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["loss"], [w.copy() for w in self.model.get_weights()]))

    es = callbacks.EarlyStopping(monitor="loss", patience=2, restore_best_weights=True)
    h = m.fit(x, y, epochs=20, batch_size=16, shuffle=False, verbose=0, callbacks=[Record(), es])
    losses_ = h.history["loss"]
    assert np.all(np.diff(losses_) > 0), losses_  # got worse every epoch
    assert len(losses_) == 3  # epoch 0 best, then 2 epochs without improvement
    assert es.stopped_epoch == 2 and es.best_epoch == 0
    for a, b in zip(m.get_weights(), seen[0][1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(m.get_weights()[0], seen[-1][1][0])


def test_early_stopping_without_restore_keeps_last_weights():
    r = np.random.default_rng(5)
    x = (r.normal(size=(16, 4)) * 3).astype(np.float32)
    y = r.normal(size=(16, 1)).astype(np.float32)
    m = Sequential([Input((4,)), Dense(1, kernel_initializer="ones")])
    m.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="mse")
    last = []
    cb = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: last.append(m.get_weights()))
    h = m.fit(x, y, epochs=20, batch_size=16, verbose=0, shuffle=False,
              callbacks=[cb, callbacks.EarlyStopping(monitor="loss", patience=1)])
    assert len(h.history["loss"]) == 2
    np.testing.assert_array_equal(m.get_weights()[0], last[-1][0])


def _linear(lr=0.1, units=1, d=3):
    m = Sequential([Input((d,)), Dense(units)])
    m.set_weights([np.full((d, units), 0.5, np.float32), np.zeros(units, np.float32)])
    m.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    return m


def _mse_grad(x, y, W, b, sw):
    """Gradient of Keras' weighted mse batch loss sum_i w_i * mean_j (p-y)^2 / n."""
    n, u = y.shape
    err = x @ W + b - y
    g = 2.0 * err * sw[:, None] / (n * u)
    return x.T @ g, g.sum(0)


def test_sample_weight_and_class_weight_in_train_on_batch():
    r = np.random.default_rng(6)
    x = r.normal(size=(6, 3)).astype(np.float64)
    ycls = np.array([0, 1, 1, 0, 1, 0], np.float64)
    y = ycls[:, None]
    W, b = np.full((3, 1), 0.5), np.zeros(1)
    per = np.mean((x @ W + b - y) ** 2, -1)
    for kw, sw in [({}, np.ones(6)),
                   ({"sample_weight": np.array([1, 2, 0, 1, 3, 0.5])}, np.array([1, 2, 0, 1, 3, 0.5])),
                   ({"class_weight": {0: 1.0, 1: 4.0}}, np.where(ycls == 1, 4.0, 1.0))]:
        m = _linear()
        loss = m.train_on_batch(x.astype(np.float32), y.astype(np.float32), **kw)
        assert loss == pytest.approx(np.sum(per * sw) / 6, rel=1e-5), kw
        gW, gb = _mse_grad(x, y, W, b, sw)
        Wn, bn = m.get_weights()
        np.testing.assert_allclose(Wn, W - 0.1 * gW, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn, b - 0.1 * gb, rtol=1e-5, atol=1e-6)


def test_class_weight_in_fit_changes_training_as_expected():
    r = np.random.default_rng(7)
    x = r.normal(size=(8, 3)).astype(np.float32)
    y = (r.uniform(size=(8, 1)) > 0.5).astype(np.float32)
    W, b = np.full((3, 1), 0.5), np.zeros(1)
    cw = {0: 0.5, 1: 2.0}
    m = _linear()
    m.fit(x, y, epochs=1, batch_size=8, class_weight=cw, verbose=0)
    sw = np.where(y[:, 0] == 1, 2.0, 0.5)
    gW, gb = _mse_grad(x.astype(np.float64), y.astype(np.float64), W, b, sw)
    np.testing.assert_allclose(m.get_weights()[0], W - 0.1 * gW, rtol=1e-5, atol=1e-6)
    m2 = _linear()
    m2.fit(x, y, epochs=1, batch_size=8, sample_weight=sw, verbose=0)
    np.testing.assert_allclose(m2.get_weights()[0], m.get_weights()[0], rtol=1e-6)


def test_validation_split_takes_last_fraction():
    r = np.random.default_rng(8)
    x = r.normal(size=(10, 3)).astype(np.float32)
    y = r.normal(size=(10, 1)).astype(np.float32)
    y[7:] += 5.0  # make the last 30% distinguishable
    m = _linear(lr=0.0)
    h = m.fit(x, y, epochs=1, batch_size=4, validation_split=0.3, verbose=0)
    W = np.full((3, 1), 0.5)
    per = np.mean((x.astype(np.float64) @ W - y) ** 2, -1)
    assert h.history["val_loss"][0] == pytest.approx(per[7:].mean(), rel=1e-5)
    # the training loss covers the first 7 samples (batches of 4 and 3)
    assert h.history["loss"][0] == pytest.approx(per[:7].mean(), rel=1e-5)


def test_train_test_predict_on_batch():
    r = np.random.default_rng(9)
    x = r.normal(size=(5, 3)).astype(np.float32)
    y = r.normal(size=(5, 1)).astype(np.float32)
    m = _linear(lr=0.1)
    W, b = np.full((3, 1), 0.5), np.zeros(1)
    np.testing.assert_allclose(m.predict_on_batch(x), x @ W + b, rtol=1e-6)
    per = np.mean((x @ W + b - y) ** 2, -1)
    assert m.test_on_batch(x, y) == pytest.approx(per.mean(), rel=1e-5)
    assert m.train_on_batch(x, y) == pytest.approx(per.mean(), rel=1e-5)
    gW, gb = _mse_grad(x.astype(np.float64), y.astype(np.float64), W, b, np.ones(5))
    W2, b2 = W - 0.1 * gW, b - 0.1 * gb
    np.testing.assert_allclose(m.predict_on_batch(x), x @ W2 + b2, rtol=1e-5, atol=1e-6)
    per2 = np.mean((x @ W2 + b2 - y) ** 2, -1)
    assert m.test_on_batch(x, y) == pytest.approx(per2.mean(), rel=1e-5)
    logs = m.test_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss"}


def test_kernel_regularizer_l2_adds_to_loss():
    r = np.random.default_rng(10)
    x = r.normal(size=(10, 3)).astype(np.float32)
    y = r.normal(size=(10, 2)).astype(np.float32)
    W = r.normal(size=(3, 2)).astype(np.float32)
    b = r.normal(size=(2,)).astype(np.float32)
    m = Sequential([Input((3,)), Dense(2, kernel_regularizer=regularizers.l2(0.1))])
    m.set_weights([W, b])
    m.compile(optimizer="sgd", loss="mse")
    data = np.mean((x.astype(np.float64) @ W + b - y) ** 2, -1).mean()
    got = m.evaluate(x, y, batch_size=4, verbose=0)
    assert got == pytest.approx(data + 0.1 * np.sum(W.astype(np.float64) ** 2), rel=1e-5)
    m1 = Sequential([Input((3,)), Dense(2, kernel_regularizer=regularizers.l1(0.05), bias_regularizer="l2")])
    m1.set_weights([W, b])
    m1.compile(optimizer="sgd", loss="mse")
    want = data + 0.05 * np.abs(W).sum() + 0.01 * np.sum(b.astype(np.float64) ** 2)
    assert m1.evaluate(x, y, batch_size=10, verbose=0) == pytest.approx(want, rel=1e-5)


def test_batch_callback_called_once_per_batch():
    r = np.random.default_rng(11)
    x = r.normal(size=(10, 3)).astype(np.float32)
    y = r.normal(size=(10, 1)).astype(np.float32)
    calls = []

    class Batches(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            calls.append((batch, dict(logs or {})))

    m = _linear()
    m.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[Batches()])
    assert [c[0] for c in calls] == [0, 1, 2, 0, 1, 2]
    assert all("loss" in c[1] and np.isfinite(c[1]["loss"]) for c in calls)
    lam = []
    m.fit(x, y, epochs=1, batch_size=3, verbose=0,
          callbacks=[callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: lam.append(b))])
    assert lam == [0, 1, 2, 3]


def test_predict_with_batch_size_not_dividing_n():
    x = RNG.normal(size=(11, 5)).astype(np.float32)
    m = Sequential([Input((5,)), Dense(4, activation="sigmoid")])
    m.set_weights([WD, BD])
    want = _sigmoid(x.astype(np.float64) @ WD + BD)
    for bs in (1, 3, 4, 10, 11, 64):
        got = m.predict(x, batch_size=bs, verbose=0)
        assert got.shape == (11, 4)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fit_reduces_loss_on_learnable_problem():
    set_random_seed(1)
    r = np.random.default_rng(12)
    x = r.normal(size=(64, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5], [0.0]], np.float32) + 0.3
    m = Sequential([Input((4,)), Dense(1)])
    m.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    h = m.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert h.history["loss"][-1] < 1e-3 < h.history["loss"][0]
    W, b = m.get_weights()
    np.testing.assert_allclose(W.ravel(), [1.0, -2.0, 0.5, 0.0], atol=0.02)
    np.testing.assert_allclose(b, [0.3], atol=0.02)


def test_non_trainable_layer_is_frozen_and_counted():
    r = np.random.default_rng(13)
    x = r.normal(size=(10, 3)).astype(np.float32)
    m = Sequential([Input((3,)), Dense(2, trainable=False), Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    before = m.get_weights()
    m.fit(x, np.ones((10, 1), np.float32), epochs=2, batch_size=4, verbose=0)
    after = m.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert not np.array_equal(after[2], before[2])
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Trainable params: 3" in text and "Non-trainable params: 8" in text


def test_class_weight_with_one_hot_targets_uses_argmax():
    r = np.random.default_rng(14)
    x = r.normal(size=(6, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    y = np.eye(3, dtype=np.float32)[labels]
    m = Sequential([Input((3,)), Dense(3, activation="softmax")])
    W = r.normal(size=(3, 3)).astype(np.float32)
    m.set_weights([W, np.zeros(3, np.float32)])
    m.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="categorical_crossentropy")
    p = _softmax(x.astype(np.float64) @ W)
    per = -np.log(p[np.arange(6), labels])
    cw = {0: 0.0, 1: 2.0, 2: 0.5}
    loss = m.train_on_batch(x, y, class_weight=cw)
    assert loss == pytest.approx(np.sum(per * np.array([cw[c] for c in labels])) / 6, rel=1e-5)


def test_validation_data_with_sample_weight():
    r = np.random.default_rng(15)
    x = r.normal(size=(10, 3)).astype(np.float32)
    y = r.normal(size=(10, 1)).astype(np.float32)
    m = _linear(lr=0.0)
    sw = np.r_[np.ones(5), np.zeros(5)].astype(np.float32)
    h = m.fit(x, y, batch_size=10, verbose=0, validation_data=(x, y, sw))
    per = np.mean((x.astype(np.float64) @ np.full((3, 1), 0.5) - y) ** 2, -1)
    assert h.history["val_loss"][0] == pytest.approx(np.sum(per * sw) / 10, rel=1e-5)


def test_epochs_zero_and_initial_epoch():
    x = np.ones((4, 3), np.float32)
    y = np.ones((4, 1), np.float32)
    m = _linear()
    w = m.get_weights()
    h = m.fit(x, y, epochs=0, verbose=0)
    assert h.history == {}
    np.testing.assert_array_equal(m.get_weights()[0], w[0])
    h = m.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
    assert h.epoch == [1, 2] and len(h.history["loss"]) == 2


def test_model_optimizer_steers_and_reports_training():
    from rustkeras.optimizers import SGD

    m = Sequential([Dense(1, input_shape=(2,), kernel_initializer="ones", use_bias=False)])
    opt = SGD(learning_rate=0.1)
    m.compile(optimizer=opt, loss="mse")
    x = np.ones((4, 2), np.float32)
    y = np.zeros((4, 1), np.float32)
    m.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert m.optimizer is opt and opt.iterations == 2
    opt.learning_rate = 0.0
    w = m.get_weights()[0].copy()
    m.fit(x, y, epochs=1, batch_size=2, verbose=0)
    np.testing.assert_array_equal(m.get_weights()[0], w)
    assert opt.learning_rate == 0.0 and opt.iterations == 4


def test_use_ema_writes_the_averages_at_the_end_of_fit():
    from rustkeras.optimizers import SGD

    m = Sequential([Dense(1, input_shape=(1,), kernel_initializer="ones", use_bias=False)])
    m.compile(optimizer=SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5), loss="mse")
    x = np.ones((1, 1), np.float32)
    y = np.zeros((1, 1), np.float32)
    # Plain SGD would take w: 1 -> 0.8 -> 0.64; the EMA (Keras: first step copies) ends between.
    m.fit(x, y, epochs=2, batch_size=1, verbose=0)
    w = float(m.get_weights()[0][0, 0])
    assert 0.64 < w < 0.8


def test_flatten_channels_first_moves_channels_last_first():
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    m = Sequential([Flatten(data_format="channels_first", input_shape=(3, 2, 2))])
    np.testing.assert_array_equal(m.predict(x, verbose=0), x.transpose(0, 2, 3, 1).reshape(2, -1))
    m = Sequential([Flatten(input_shape=(3, 2, 2))])
    np.testing.assert_array_equal(m.predict(x, verbose=0), x.reshape(2, -1))
