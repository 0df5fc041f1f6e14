"""Models used from several Python threads: calls on one model wait for each other (the
engine model sits behind a lock taken with the GIL released), two models train at once,
and a second fit or evaluate of a model that another thread is training is refused with
a RuntimeError (see `_one_thread` in rustkeras/models/training.py and `PyModel` in
src/python/model.rs)."""

import threading

import numpy as np
import pytest

from rustkeras.callbacks import Callback
from rustkeras.layers import Dense
from rustkeras.models import Sequential
from rustkeras.utils import set_random_seed

WAIT = 60  # seconds a thread waits for another before the test fails (never reached)


def data(n=256, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x @ rng.normal(size=(d, 1)) + 0.5).astype("float32")
    return x, y


def regressor(d=8, seed=1):
    set_random_seed(seed)
    m = Sequential([Dense(32, activation="relu", input_shape=(d,)), Dense(1)])
    m.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return m


def run_threads(targets):
    """Runs each callable in its own thread, all released at once; returns their results
    (raising the first exception one of them raised)."""
    start = threading.Barrier(len(targets))
    results, errors = [None] * len(targets), []

    def body(i, f):
        try:
            start.wait(WAIT)
            results[i] = f()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i, f)) for i, f in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


def test_predict_from_four_threads_matches_sequential_predictions():
    m = regressor()
    x, y = data()
    m.fit(x, y, epochs=2, batch_size=32, verbose=0)
    inputs = [data(n=300 + 37 * i, seed=10 + i)[0] for i in range(4)]
    expected = [m.predict(xi, batch_size=16, verbose=0) for xi in inputs]
    expected_batch = [m.predict_on_batch(xi) for xi in inputs]

    def work(i):
        def f():
            outs = []
            for _ in range(20):
                outs.append(m.predict(inputs[i], batch_size=16, verbose=0))
                outs.append(m.predict_on_batch(inputs[i]))
            return outs
        return f

    results = run_threads([work(i) for i in range(4)])
    for i, outs in enumerate(results):
        for k, o in enumerate(outs):
            ref = expected[i] if k % 2 == 0 else expected_batch[i]
            assert o.shape == ref.shape
            np.testing.assert_array_equal(o, ref)


def test_two_models_fit_in_two_threads_at_once_and_both_converge():
    models = [regressor(seed=1), regressor(seed=2)]
    sets = [data(seed=3), data(seed=4)]
    # Both fits wait for each other at the start of every epoch: they run at the same time.
    together = threading.Barrier(2)

    class Together(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            together.wait(WAIT)

    def work(i):
        def f():
            x, y = sets[i]
            return models[i].fit(x, y, epochs=8, batch_size=16, verbose=0, callbacks=[Together()]).history
        return f

    histories = run_threads([work(0), work(1)])
    for h in histories:
        assert len(h["loss"]) == 8
        assert h["loss"][-1] < 0.5 * h["loss"][0]
    # Each model learned its own data: training on one did not touch the other.
    for m, (x, y) in zip(models, sets):
        assert m.evaluate(x, y, verbose=0)[0] < 0.5 * float(np.mean((y - y.mean()) ** 2) + np.mean(y) ** 2)


def test_fit_or_evaluate_while_another_thread_trains_the_model_is_a_clean_error():
    m = regressor()
    x, y = data()
    started, tried = threading.Event(), threading.Event()

    class Hold(Callback):
        """Holds the fit between its first batches (the model is free there) until the main
        thread has tried to use the model."""

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                started.set()
                assert tried.wait(WAIT)

    result = {}

    def fit():
        result["history"] = m.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[Hold()]).history

    t = threading.Thread(target=fit)
    t.start()
    try:
        assert started.wait(WAIT)
        with pytest.raises(RuntimeError, match="fit: model '.*' is already being trained in another thread"):
            m.fit(x, y, epochs=1, verbose=0)
        with pytest.raises(RuntimeError, match="evaluate: model '.*' is already being trained in another thread"):
            m.evaluate(x, y, verbose=0)
        # Single calls are not refused: they wait their turn for the engine model.
        assert m.predict(x[:5], verbose=0).shape == (5, 1)
    finally:
        tried.set()
        t.join(WAIT)
    assert len(result["history"]["loss"]) == 3
    # Once the fit has returned, the model is free for any thread again.
    assert len(m.fit(x, y, epochs=1, verbose=0).history["loss"]) == 1


def test_a_callback_may_evaluate_the_model_its_thread_is_training():
    m = regressor()
    x, y = data()
    seen = []

    class Evaluate(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.evaluate(x, y, verbose=0))

    m.fit(x, y, epochs=2, verbose=0, callbacks=[Evaluate()])
    assert len(seen) == 2
    # The fit is over: another thread may train the model.
    run_threads([lambda: m.fit(x, y, epochs=1, verbose=0)])


def test_train_on_batch_from_threads_serializes_the_steps():
    m = regressor()
    x, y = data(n=32)
    run_threads([lambda: [m.train_on_batch(x, y) for _ in range(50)] for _ in range(4)])
    assert m.optimizer.iterations == 200


def test_predict_in_a_batch_callback_leaves_the_epochs_logs():
    """A prediction between two batches of an epoch (as another thread's would be) does not
    take the epoch's running logs away."""
    x, y = data()
    m, ref = regressor(), regressor()
    outs = []

    class Predict(Callback):
        def on_train_batch_end(self, batch, logs=None):
            outs.append(self.model.predict(x[:5], verbose=0))

    h = m.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0, callbacks=[Predict()]).history
    want = ref.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0).history
    assert len(outs) == 16
    np.testing.assert_allclose(h["loss"], want["loss"], rtol=1e-6)
    np.testing.assert_allclose(h["mae"], want["mae"], rtol=1e-6)
