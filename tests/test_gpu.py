"""The 'gpu' backend (wgpu; Mesa's lavapipe in CI) against the CPU: the same models, weights
and seeds give the same losses, metrics, weights and predictions within float tolerance.

These tests fail, not skip, when no GPU adapter is found: CI installs lavapipe
(`libvulkan1`, `mesa-vulkan-drivers`) so that the GPU path is always exercised.
"""

import numpy as np
import pytest

import rustkeras
from rustkeras import _core, config
from rustkeras import backend as K
from rustkeras.layers import (
    Activation, BatchNormalization, Concatenate, Conv1D, Conv2D, Conv2DTranspose, Dense, Dropout,
    Flatten, Input,
)
from rustkeras.models import Model, Sequential
from rustkeras.utils import set_random_seed


@pytest.fixture(autouse=True)
def cpu_afterwards():
    yield
    config.set_backend("cpu")


def on(backend, build):
    """A model built by `build()` with `backend` selected, and its weights set from a fixed
    seed (so that both backends start from the same values)."""
    config.set_backend(backend)
    assert K.backend() == backend
    set_random_seed(7)
    return build()


def data(n=96, d=20, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x[:, :classes].argmax(1)).astype("int64")
    return x, y


def mlp(d=20, classes=4, dropout=0.2):
    return Sequential([
        Dense(32, activation="relu", input_shape=(d,)),
        Dropout(dropout),
        Dense(classes, activation="softmax"),
    ])


def test_the_gpu_is_found_and_listed():
    ok, name = _core.gpu_status()
    assert ok, f"no GPU adapter (CI installs lavapipe): {name}"
    devices = K.devices()
    assert devices and {"name", "type", "api"} <= set(devices[0])
    assert all(d["api"] == "Vulkan" for d in devices)
    assert name in [d["name"] for d in devices]


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd", "nadam"])
def test_an_mlp_trains_on_the_gpu_as_on_the_cpu(optimizer):
    x, y = data()
    results = {}
    for backend in ("cpu", "gpu"):
        model = on(backend, mlp)
        assert model._core.device() == backend
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        h = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, shuffle=True, verbose=0)
        results[backend] = (h.history, model.get_weights(), model.predict(x, batch_size=40, verbose=0),
                            model.evaluate(x, y, batch_size=33, verbose=0))
    (hc, wc, pc, ec), (hg, wg, pg, eg) = results["cpu"], results["gpu"]
    assert set(hc) == set(hg) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for k in hc:
        np.testing.assert_allclose(hg[k], hc[k], rtol=1e-3, atol=1e-5, err_msg=k)
    for a, b in zip(wc, wg):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(pg, pc, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(eg, ec, rtol=1e-3, atol=1e-6)


def test_batch_normalization_moving_statistics_match():
    x, y = data(seed=3)
    y1 = np.eye(4, dtype="float32")[y]
    out = {}
    for backend in ("cpu", "gpu"):
        model = on(backend, lambda: Sequential([
            Dense(16, input_shape=(20,)), BatchNormalization(), Activation("tanh"), Dense(4, activation="softmax"),
        ]))
        model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
        h = model.fit(x, y1, epochs=2, batch_size=24, shuffle=False, verbose=0)
        out[backend] = (h.history["loss"], model.get_weights())
    np.testing.assert_allclose(out["gpu"][0], out["cpu"][0], rtol=1e-4)
    for a, b in zip(out["cpu"][1], out["gpu"][1]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_a_two_input_functional_model_matches():
    rng = np.random.default_rng(5)
    xa = rng.normal(size=(40, 3)).astype("float32")
    xb = rng.normal(size=(40, 5)).astype("float32")
    ya = (xa.sum(1, keepdims=True) > 0).astype("float32")
    yb = rng.normal(size=(40, 2)).astype("float32")

    def build():
        a, b = Input(shape=(3,), name="a"), Input(shape=(5,), name="b")
        h = Dense(8, activation="relu")(Concatenate()([a, b]))
        m = Model([a, b], [Dense(1, activation="sigmoid", name="cls")(h), Dense(2, name="reg")(h)])
        m.compile(optimizer="adam", loss={"cls": "binary_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"]})
        return m

    out = {}
    for backend in ("cpu", "gpu"):
        m = on(backend, build)
        h = m.fit({"a": xa, "b": xb}, {"cls": ya, "reg": yb}, epochs=3, batch_size=7, shuffle=False, verbose=0)
        out[backend] = (h.history, m.predict([xa, xb], verbose=0))
    for k in out["cpu"][0]:
        np.testing.assert_allclose(out["gpu"][0][k], out["cpu"][0][k], rtol=1e-4, err_msg=k)
    for a, b in zip(out["cpu"][1], out["gpu"][1]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_weights_move_in_and_out_and_train_on_batch_works():
    model = on("gpu", lambda: mlp(dropout=0.0))
    w = [np.full_like(v, 0.01 * (i + 1)) for i, v in enumerate(model.get_weights())]
    model.set_weights(w)
    for a, b in zip(model.get_weights(), w):
        np.testing.assert_array_equal(a, b)
    assert model.layers[0].get_weights()[0].shape == (20, 32)
    x, y = data(n=8)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    loss = model.train_on_batch(x, y)
    p = model.predict_on_batch(x)
    assert np.isfinite(loss) and p.shape == (8, 4)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)


def test_a_layer_shared_by_two_gpu_models_has_one_set_of_weights():
    config.set_backend("gpu")
    inp = Input(shape=(20,))
    encode = Dense(6, activation="relu", name="encode")
    encoder = Model(inp, encode(inp))
    full = Model(inp, Dense(4, activation="softmax")(encode(inp)))
    full.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = encoder.get_weights()[0].copy()
    x, y = data()
    full.fit(x, y, epochs=1, batch_size=32, verbose=0)
    after = encoder.get_weights()[0]
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(after, full.get_weights()[0])
    np.testing.assert_array_equal(encode.get_weights()[0], after)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_convolutions_train_on_the_gpu_as_on_the_cpu(data_format):
    rng = np.random.default_rng(5)
    shape = (7, 6, 2) if data_format == "channels_last" else (2, 7, 6)
    x = rng.normal(size=(24,) + shape).astype("float32")
    y = rng.integers(0, 3, 24)

    def build():
        return Sequential([
            Conv2D(4, 3, strides=(2, 1), padding="same", dilation_rate=1, activation="relu",
                   data_format=data_format, input_shape=shape),
            Conv2DTranspose(3, (2, 3), strides=2, padding="same", data_format=data_format),
            Conv2D(2, 2, dilation_rate=2, data_format=data_format, activation="tanh"),
            Flatten(),
            Dense(3, activation="softmax"),
        ])

    out = {}
    for backend in ("cpu", "gpu"):
        model = on(backend, build)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        h = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        out[backend] = (h.history["loss"], model.get_weights(), model.predict(x, batch_size=10, verbose=0))
    np.testing.assert_allclose(out["gpu"][0], out["cpu"][0], rtol=1e-4)
    for a, b in zip(out["cpu"][1], out["gpu"][1]):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(out["gpu"][2], out["cpu"][2], rtol=1e-3, atol=1e-6)


def test_a_conv1d_with_strides_and_dilation_matches():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20, 13, 3)).astype("float32")
    y = rng.normal(size=(20, 2)).astype("float32")
    out = {}
    for backend in ("cpu", "gpu"):
        model = on(backend, lambda: Sequential([
            Conv1D(5, 3, strides=2, dilation_rate=1, padding="valid", input_shape=(13, 3)),
            Conv1D(4, 2, dilation_rate=2, padding="same", activation="relu"),
            Flatten(),
            Dense(2),
        ]))
        model.compile(optimizer="sgd", loss="mse")
        h = model.fit(x, y, epochs=3, batch_size=7, verbose=0)
        out[backend] = h.history["loss"]
    np.testing.assert_allclose(out["gpu"], out["cpu"], rtol=1e-4)


@pytest.mark.parametrize("options", [
    {"gradient_accumulation_steps": 3},
    {"use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 4},
])
def test_gradient_accumulation_and_ema_train_alike(options):
    x, y = data(seed=4)
    out = {}
    for backend in ("cpu", "gpu"):
        model = on(backend, lambda: mlp(dropout=0.0))
        model.compile(optimizer=rustkeras.optimizers.Adam(learning_rate=0.01, **options),
                      loss="sparse_categorical_crossentropy")
        h = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        out[backend] = (h.history["loss"], model.get_weights(), int(model.optimizer.iterations))
    np.testing.assert_allclose(out["gpu"][0], out["cpu"][0], rtol=1e-4)
    for a, b in zip(out["cpu"][1], out["gpu"][1]):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-6)
    assert out["gpu"][2] == out["cpu"][2]


def test_the_gpu_gemm_benchmark_hook_checks_its_product():
    assert _core.bench_gpu_gemm(64, 2) > 0


def test_a_keras1_merge_of_two_branches_matches():
    from rustkeras.layers import Merge

    rng = np.random.default_rng(9)
    xl = rng.normal(size=(30, 6)).astype("float32")
    xr = rng.normal(size=(30, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 30)]

    def build():
        left = Sequential([Dense(5, input_dim=6, activation="tanh")])
        right = Sequential([Dense(5, input_dim=4, activation="sigmoid")])
        m = Sequential([Merge([left, right], mode="concat"), Dense(3, activation="softmax")])
        m.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
        return m

    out = {}
    for backend in ("cpu", "gpu"):
        m = on(backend, build)
        h = m.fit([xl, xr], y, epochs=3, batch_size=8, verbose=0)
        out[backend] = (h.history["loss"], m.predict([xl, xr], verbose=0))
    np.testing.assert_allclose(out["gpu"][0], out["cpu"][0], rtol=1e-4)
    np.testing.assert_allclose(out["gpu"][1], out["cpu"][1], rtol=1e-4, atol=1e-6)


LOSSES = [
    ("mean_squared_error", "regression"), ("mean_absolute_error", "regression"),
    ("mean_absolute_percentage_error", "positive"), ("mean_squared_logarithmic_error", "positive"),
    ("categorical_crossentropy", "onehot"), ("sparse_categorical_crossentropy", "sparse"),
    ("binary_crossentropy", "binary"), ("kl_divergence", "onehot"), ("hinge", "signs"),
    ("squared_hinge", "signs"), ("categorical_hinge", "onehot"), ("poisson", "positive"),
    ("cosine_similarity", "regression"), ("huber", "regression"), ("log_cosh", "regression"),
]
METRICS = {
    "onehot": ["accuracy", "categorical_accuracy", "top_k_categorical_accuracy", "mse"],
    "sparse": ["accuracy", "sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy"],
    "binary": ["accuracy", "binary_accuracy"],
    "regression": ["mae", "mse"],
    "positive": ["mape", "msle"],
    "signs": ["mae"],
}


@pytest.mark.parametrize("loss,kind", LOSSES)
def test_every_loss_and_metric_matches(loss, kind):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(50, 6)).astype("float32")
    k = 4
    if kind == "sparse":
        y = rng.integers(0, k, 50)
    elif kind == "onehot":
        y = np.eye(k, dtype="float32")[rng.integers(0, k, 50)]
    elif kind == "binary":
        y = rng.integers(0, 2, (50, k)).astype("float32")
    elif kind == "signs":
        y = np.sign(rng.normal(size=(50, k))).astype("float32")
    elif kind == "positive":
        y = rng.uniform(0.5, 2.0, (50, k)).astype("float32")
    else:
        y = rng.normal(size=(50, k)).astype("float32")
    activation = {"onehot": "softmax", "sparse": "softmax", "binary": "sigmoid", "positive": "softplus"}.get(kind)

    def build():
        m = Sequential([Dense(8, activation="tanh", input_shape=(6,)), Dense(k, activation=activation)])
        m.compile(optimizer="adam", loss=loss, metrics=METRICS[kind])
        return m

    out = {}
    for backend in ("cpu", "gpu"):
        m = on(backend, build)
        h = m.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
        out[backend] = h.history
    assert set(out["gpu"]) == set(out["cpu"])
    for name in out["cpu"]:
        np.testing.assert_allclose(out["gpu"][name], out["cpu"][name], rtol=2e-4, atol=1e-6, err_msg=name)


def test_batch_callbacks_steer_a_gpu_model_as_a_cpu_one():
    """Between GPU batches a callback reads weights, sets the learning rate for the next
    batch and evaluates the model on the training data (a nested pass over the dataset the
    epoch keeps on the GPU); the results are the CPU's."""
    from rustkeras.callbacks import LambdaCallback

    x, y = data()
    out = {}
    for backend in ("cpu", "gpu"):
        model = on(backend, lambda: mlp(dropout=0.0))
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        seen = []

        def end(batch, logs, model=model, seen=seen):
            seen.append((logs["loss"], model.get_weights()[0][0, 0], model.evaluate(x, y, verbose=0)[0]))
            model.optimizer.learning_rate = 0.01 * (1 + batch % 3)

        h = model.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_data=(x[:20], y[:20]),
                      callbacks=[LambdaCallback(on_train_batch_end=end)])
        out[backend] = (np.array(seen), h.history, model.get_weights())
    np.testing.assert_allclose(out["gpu"][0], out["cpu"][0], rtol=1e-4, atol=1e-6)
    for k in out["cpu"][1]:
        np.testing.assert_allclose(out["gpu"][1][k], out["cpu"][1][k], rtol=1e-4, err_msg=k)
    for a, b in zip(out["cpu"][2], out["gpu"][2]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_learning_rate_schedule_trains_on_the_gpu_as_on_the_cpu(optimizer):
    from rustkeras.optimizers import SGD, Adam
    from rustkeras.optimizers.schedules import CosineDecay

    x, y = data()
    out = {}
    for backend in ("cpu", "gpu"):
        model = on(backend, lambda: mlp(dropout=0.0))
        schedule = CosineDecay(0.0, 12, warmup_target=0.05, warmup_steps=6)
        opt = SGD(learning_rate=schedule) if optimizer == "sgd" else Adam(learning_rate=schedule)
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
        h = model.fit(x, y, epochs=4, batch_size=16, verbose=0)
        out[backend] = (h.history["loss"], model.get_weights(), model.optimizer.learning_rate)
    np.testing.assert_allclose(out["gpu"][0], out["cpu"][0], rtol=1e-4)
    for a, b in zip(out["cpu"][1], out["gpu"][1]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    assert out["gpu"][2] == out["cpu"][2] == pytest.approx(0.0)
