"""Memory stays flat: many single-batch calls, models built, trained and dropped in a loop
(cross-validation), and GPU buffers given back when a model is dropped.

RSS is read from /proc/self/statm (Linux) after a warm-up and a garbage collection."""

import gc
import os

import numpy as np
import pytest

from rustkeras import _core, config
from rustkeras.layers import Dense
from rustkeras.models import Sequential
from rustkeras.utils import set_random_seed

MB = 1 << 20

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def data(n=256, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    return x, (x @ rng.normal(size=(d, 1))).astype("float32")


def regressor(d=8):
    m = Sequential([Dense(32, activation="relu", input_shape=(d,)), Dense(1)])
    m.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return m


@pytest.fixture(autouse=True)
def cpu_afterwards():
    yield
    config.set_backend("cpu")


def test_ten_thousand_train_on_batch_and_predict_calls_keep_rss_flat():
    set_random_seed(0)
    m = regressor()
    x, y = data(n=32)
    for _ in range(500):
        m.train_on_batch(x, y)
        m.predict(x, verbose=0)
    before = rss()
    for _ in range(10_000):
        m.train_on_batch(x, y)
        m.predict(x, verbose=0)
    grown = rss() - before
    assert grown < 5 * MB, f"RSS grew by {grown / MB:.2f} MB"


def cycles(n, x, y):
    """RSS after each of `n` build-fit-evaluate-predict-drop cycles."""
    out = []
    for i in range(n):
        set_random_seed(i)
        m = regressor()
        m.fit(x, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0)
        m.evaluate(x, y, verbose=0)
        m.predict(x, verbose=0)
        del m
        out.append(rss())
    return out


def test_fifty_models_built_fitted_and_dropped_keep_rss_flat():
    x, y = data()
    cycles(5, x, y)  # warm-up: allocator pools, lazily made objects
    r = cycles(50, x, y)
    grown = r[-1] - r[24]
    assert grown < 3 * MB, f"RSS grew by {grown / MB:.2f} MB over the last 25 cycles"


def test_gpu_buffers_are_given_back_when_a_model_is_dropped():
    ok, why = _core.gpu_status()
    assert ok, f"no GPU adapter (CI installs lavapipe): {why}"
    x, y = data()
    config.set_backend("gpu")
    gc.collect()
    base = _core.gpu_bytes_in_use()
    for i in range(3):
        set_random_seed(i)
        m = regressor()
        assert m._core.device() == "gpu"
        m.fit(x, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0)
        m.predict(x, verbose=0)
        # Weights, optimizer slots and programs' buffers (the fit's data is let go on return).
        assert _core.gpu_bytes_in_use() > base
        del m
        gc.collect()
        assert _core.gpu_bytes_in_use() == base
