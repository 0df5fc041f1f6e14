"""Callbacks: when each hook fires (batch begin before its batch, with the right indices), what
a callback may do with the model between batches (read weights, change the learning rate for
the next batch, stop after the current batch), the test and predict hooks of evaluate and
predict, and each built-in callback's behaviour against Keras 3's."""

import csv
import sys

import numpy as np
import pytest

from rustkeras import callbacks as cb
from rustkeras.layers import Dense
from rustkeras.models import Sequential
from rustkeras.optimizers import SGD

N, D, BS = 20, 3, 6  # 4 batches: 6, 6, 6, 2 rows


def linear_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3).astype("float32")
    return x, y


def linear_model(lr=0.05):
    m = Sequential([Dense(1, input_shape=(D,))])
    m.compile(optimizer=SGD(learning_rate=lr), loss="mse")
    return m


def sgd_step(w, b, x, y, lr):
    """One SGD step of a Dense(1) on mean squared error (numpy, float64)."""
    err = x @ w + b - y
    gw = 2.0 / len(x) * x.T @ err
    gb = 2.0 / len(x) * err.sum(0)
    return w - lr * gw, b - lr * gb


class Recorder(cb.Callback):
    """Records every hook with its arguments (each hook is a method of its own)."""

    def __init__(self):
        super().__init__()
        self.events = []


def _recording(name):
    arity = 2 if "batch" in name or "epoch" in name else 1

    def hook(self, *args, **kwargs):
        args = list(args) + ([kwargs["logs"]] if "logs" in kwargs else [])
        args += [None] * (arity - len(args))
        self.events.append((name,) + tuple(args))

    return hook


for _name in [n for n in vars(cb.Callback) if n.startswith("on_")]:
    setattr(Recorder, _name, _recording(_name))


def names(events, *keep):
    return [e[:-1] for e in events if e[0] in keep]


# -- batch hooks and the model between batches ------------------------------------------------


def test_a_batch_callback_reads_weights_and_sets_the_learning_rate_for_the_next_batch():
    x, y = linear_data()
    m = linear_model(lr=0.05)
    w0, b0 = (a.astype(np.float64) for a in m.get_weights())
    rates = [0.05, 0.01, 0.1, 0.02, 0.07, 0.03, 0.05, 0.04, 0.06]
    seen = []

    class Steer(cb.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            w, b = self.model.get_weights()
            seen.append((w.copy(), b.copy(), float(self.model.optimizer.learning_rate)))

        def on_train_batch_end(self, batch, logs=None):
            step = len(seen)
            self.model.optimizer.learning_rate = rates[step]

    m.fit(x, y, batch_size=BS, epochs=2, shuffle=False, verbose=0, callbacks=[Steer()])
    assert len(seen) == 8
    w, b = w0, b0
    for step, (got_w, got_b, lr) in enumerate(seen):
        np.testing.assert_allclose(got_w, w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_b, b, rtol=1e-5, atol=1e-6)
        assert lr == pytest.approx(rates[step], rel=1e-6)
        k = step % 4
        w, b = sgd_step(w, b, x[k * BS:(k + 1) * BS].astype(np.float64), y[k * BS:(k + 1) * BS], rates[step])
    np.testing.assert_allclose(m.get_weights()[0], w, rtol=1e-5, atol=1e-6)


def test_a_batch_callback_can_set_weights():
    x, y = linear_data()
    m = linear_model(lr=0.0)

    class Reset(cb.Callback):
        def on_train_batch_end(self, batch, logs=None):
            w, b = self.model.get_weights()
            self.model.set_weights([np.full_like(w, batch + 1.0), b])

    m.fit(x, y, batch_size=BS, epochs=1, verbose=0, callbacks=[Reset()])
    np.testing.assert_array_equal(m.get_weights()[0], np.full((D, 1), 4.0, "float32"))


def test_batch_begin_fires_before_batch_end_with_the_batch_indices():
    x, y = linear_data()
    m = linear_model()
    rec = Recorder()
    m.fit(x, y, batch_size=BS, epochs=2, verbose=0, callbacks=[rec])
    got = names(rec.events, "on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end")
    want = []
    for epoch in range(2):
        want.append(("on_epoch_begin", epoch))
        for b in range(4):
            want += [("on_train_batch_begin", b), ("on_train_batch_end", b)]
        want.append(("on_epoch_end", epoch))
    assert got == want
    ends = [e for e in rec.events if e[0] == "on_train_batch_end"]
    assert all(set(e[-1]) == {"loss"} for e in ends)
    # Batch-end logs are the running mean over the epoch so far; the last is the epoch's.
    epoch_ends = [e for e in rec.events if e[0] == "on_epoch_end"]
    assert ends[3][-1]["loss"] == pytest.approx(epoch_ends[0][-1]["loss"], rel=1e-6)


def test_the_keras_1_batch_aliases_fire_for_training_batches():
    x, y = linear_data()
    m = linear_model()
    calls = []

    class Old(cb.Callback):
        def on_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch, round(logs["loss"], 6) > 0))

    m.fit(x, y, batch_size=BS, epochs=1, verbose=0, callbacks=[Old()])
    assert calls == [("begin", 0), ("end", 0, True), ("begin", 1), ("end", 1, True),
                     ("begin", 2), ("end", 2, True), ("begin", 3), ("end", 3, True)]


def test_stop_training_stops_after_the_current_batch():
    x, y = linear_data()
    m = linear_model()
    batches = []

    class StopAt(cb.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)
            if batch == 1:
                self.model.stop_training = True

    h = m.fit(x, y, batch_size=BS, epochs=5, verbose=0, callbacks=[StopAt()])
    assert batches == [0, 1]
    assert m.optimizer.iterations == 2
    assert h.epoch == [0] and len(h.history["loss"]) == 1


def test_stop_training_at_epoch_begin_runs_one_batch_as_keras_does():
    x, y = linear_data()
    m = linear_model()
    stop = cb.LambdaCallback(on_epoch_begin=lambda epoch, logs: setattr(m, "stop_training", True))
    m.fit(x, y, batch_size=BS, epochs=3, verbose=0, callbacks=[stop])
    assert m.optimizer.iterations == 1


def test_epoch_hooks_alone_cost_no_python_per_batch():
    """Python is entered only at the hooks callbacks define: with epoch hooks only, the
    number of Python calls during fit does not grow with the number of batches."""
    x, y = linear_data()
    x = np.repeat(x, 10, axis=0)
    y = np.repeat(y, 10, axis=0)

    def python_calls(batch_size, callback):
        m = linear_model()
        count = [0]

        def profile(frame, event, arg):
            if event == "call":
                count[0] += 1

        sys.setprofile(profile)
        try:
            m.fit(x, y, batch_size=batch_size, epochs=2, verbose=0, callbacks=[callback])
        finally:
            sys.setprofile(None)
        return count[0]

    epochs_only = cb.LambdaCallback(on_epoch_end=lambda epoch, logs: None)
    assert python_calls(100, epochs_only) == python_calls(4, epochs_only)
    per_batch = cb.LambdaCallback(on_train_batch_end=lambda batch, logs: None)
    assert python_calls(4, per_batch) > python_calls(100, per_batch) + 80


def test_a_callback_may_evaluate_in_the_middle_of_an_epoch():
    """The epoch's running logs survive a nested evaluate (they are set aside and restored)."""
    x, y = linear_data()
    a, b = linear_model(lr=0.01), linear_model(lr=0.01)
    b.set_weights(a.get_weights())
    evals = []
    nested = cb.LambdaCallback(on_train_batch_end=lambda batch, logs: evals.append(a.evaluate(x, y, verbose=0)))
    plain = cb.LambdaCallback(on_train_batch_end=lambda batch, logs: None)
    ha = a.fit(x, y, batch_size=BS, epochs=2, shuffle=False, verbose=0, callbacks=[nested])
    hb = b.fit(x, y, batch_size=BS, epochs=2, shuffle=False, verbose=0, callbacks=[plain])
    assert len(evals) == 8
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(a.get_weights()[0], b.get_weights()[0], rtol=1e-6)


def test_validation_fires_the_test_hooks_inside_fit():
    x, y = linear_data()
    m = linear_model()
    rec = Recorder()
    m.fit(x, y, batch_size=BS, epochs=2, verbose=0, validation_data=(x[:8], y[:8]), callbacks=[rec])
    got = names(rec.events, "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
                "on_epoch_end")
    one = [("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0),
           ("on_test_batch_begin", 1), ("on_test_batch_end", 1), ("on_test_end",)]
    assert got == one + [("on_epoch_end", 0)] + one + [("on_epoch_end", 1)]


# -- evaluate and predict ---------------------------------------------------------------------


def test_evaluate_fires_the_test_hooks_with_running_logs():
    x, y = linear_data()
    m = linear_model()
    rec = Recorder()
    loss = m.evaluate(x, y, batch_size=BS, verbose=0, callbacks=[rec])
    got = names(rec.events, "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end")
    assert got == [("on_test_begin",)] + [
        e for b in range(4) for e in (("on_test_batch_begin", b), ("on_test_batch_end", b))
    ] + [("on_test_end",)]
    ends = [e[-1]["loss"] for e in rec.events if e[0] == "on_test_batch_end"]
    pred = m.predict(x, verbose=0)
    sq = ((pred - y) ** 2)[:, 0]
    want = [sq[: min((b + 1) * BS, N)].mean() for b in range(4)]
    np.testing.assert_allclose(ends, want, rtol=1e-5)
    assert rec.events[-1][-1]["loss"] == pytest.approx(loss)
    assert not any(e[0].startswith(("on_train", "on_epoch")) for e in rec.events)


def test_stop_evaluating_ends_evaluate_after_the_current_batch():
    x, y = linear_data()
    m = linear_model()
    stop = cb.LambdaCallback(on_test_batch_end=lambda batch, logs: setattr(m, "stop_evaluating", batch == 1))
    loss = m.evaluate(x, y, batch_size=BS, verbose=0, callbacks=[stop])
    sq = ((m.predict(x, verbose=0) - y) ** 2)[:, 0]
    assert loss == pytest.approx(sq[: 2 * BS].mean(), rel=1e-5)


def test_predict_fires_the_predict_hooks_with_each_batch_of_outputs():
    x, _ = linear_data()
    m = linear_model()
    got = []
    rec = cb.LambdaCallback(
        on_predict_begin=lambda logs: got.append("begin"),
        on_predict_batch_begin=lambda batch, logs: got.append(("batch_begin", batch)),
        on_predict_batch_end=lambda batch, logs: got.append((batch, logs["outputs"].copy())),
        on_predict_end=lambda logs: got.append("end"),
    )
    out = m.predict(x, batch_size=BS, verbose=0, callbacks=[rec])
    assert got[0] == "begin" and got[-1] == "end"
    assert [g[0] for g in got[1:-1]] == ["batch_begin", 0, "batch_begin", 1, "batch_begin", 2, "batch_begin", 3]
    batches = [g for g in got[1:-1] if g[0] != "batch_begin"]
    np.testing.assert_array_equal(np.concatenate([o for _, o in batches]), out)
    assert [len(o) for _, o in batches] == [6, 6, 6, 2]


def test_stop_predicting_returns_the_rows_predicted_so_far():
    x, _ = linear_data()
    m = linear_model()
    stop = cb.LambdaCallback(on_predict_batch_end=lambda batch, logs: setattr(m, "stop_predicting", batch == 1))
    out = m.predict(x, batch_size=BS, verbose=0, callbacks=[stop])
    np.testing.assert_array_equal(out, m.predict(x, verbose=0)[: 2 * BS])


# -- the built-in callbacks -------------------------------------------------------------------


class FakeModel:
    """What EarlyStopping touches: weights and the stop flag."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(1)]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, ws):
        self.weights = [w.copy() for w in ws]


def run_epochs(callback, model, values, monitor="val_loss"):
    callback.set_model(model)
    callback.on_train_begin()
    stopped = None
    for epoch, v in enumerate(values):
        model.weights = [np.array([float(epoch)])]
        callback.on_epoch_end(epoch, {monitor: v})
        if model.stop_training:
            stopped = epoch
            break
    callback.on_train_end()
    return stopped


def test_early_stopping_waits_patience_epochs_and_restores_the_best_weights():
    model = FakeModel()
    stop = cb.EarlyStopping(patience=2, restore_best_weights=True)
    assert run_epochs(stop, model, [1.0, 0.5, 0.6, 0.55, 0.4]) == 3
    assert stop.stopped_epoch == 3 and stop.best_epoch == 1
    assert model.weights[0][0] == 1.0
    # min_delta: an improvement smaller than it does not count.
    model = FakeModel()
    stop = cb.EarlyStopping(patience=1, min_delta=0.1)
    assert run_epochs(stop, model, [1.0, 0.95, 0.5]) == 1
    # mode max (inferred from the name) and a baseline that is never beaten.
    model = FakeModel()
    stop = cb.EarlyStopping(monitor="val_accuracy", patience=2, baseline=0.9)
    assert run_epochs(stop, model, [0.5, 0.4, 0.45, 0.6], monitor="val_accuracy") == 1
    # start_from_epoch: nothing is watched before it.
    model = FakeModel()
    stop = cb.EarlyStopping(patience=0, start_from_epoch=3)
    assert run_epochs(stop, model, [1.0, 2.0, 3.0, 4.0, 5.0]) == 4


def test_early_stopping_in_fit_and_unknown_monitors():
    x, y = linear_data()
    m = linear_model(lr=0.0)
    h = m.fit(x, y, batch_size=BS, epochs=10, shuffle=False, verbose=0,
              callbacks=[cb.EarlyStopping(monitor="loss", patience=2)])
    assert len(h.history["loss"]) == 3
    with pytest.warns(UserWarning, match="val_loss"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[cb.EarlyStopping()])
    with pytest.raises(ValueError, match="mode='max'"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[cb.EarlyStopping(monitor="something")])


def test_reduce_lr_on_plateau_reduces_after_patience_and_cools_down():
    x, y = linear_data()
    m = linear_model(lr=0.1)
    r = cb.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, cooldown=2, min_lr=0.02)
    r.set_model(m)
    r.on_train_begin()
    lrs = []
    for epoch, v in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        logs = {"val_loss": v}
        r.on_epoch_end(epoch, logs)
        lrs.append(logs["learning_rate"])
    # Reduced at epoch 1 (patience 1), cooling down at 2, reduced at 3, cooling down at 4, and at
    # 5 down to min_lr.
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02], rtol=1e-6)
    assert m.optimizer.learning_rate == pytest.approx(0.02)
    with pytest.raises(ValueError, match="factor"):
        cb.ReduceLROnPlateau(factor=1.5)


def test_reduce_lr_on_plateau_in_fit_records_the_learning_rate():
    x, y = linear_data()
    m = linear_model(lr=0.1)
    r = cb.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=100.0)
    h = m.fit(x, y, batch_size=BS, epochs=4, verbose=0, callbacks=[r])
    np.testing.assert_allclose(h.history["learning_rate"], [0.1, 0.1, 0.05, 0.025], rtol=1e-6)


def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    x, y = linear_data()
    m = linear_model(lr=0.1)
    seen = []
    spy = cb.LambdaCallback(on_train_batch_begin=lambda batch, logs: seen.append(float(m.optimizer.learning_rate)))
    sched = cb.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    h = m.fit(x, y, batch_size=BS, epochs=3, verbose=0, callbacks=[sched, spy])
    np.testing.assert_allclose(h.history["learning_rate"], [0.1, 0.05, 0.025], rtol=1e-6)
    np.testing.assert_allclose(seen, [0.1] * 4 + [0.05] * 4 + [0.025] * 4, rtol=1e-6)
    one_arg = cb.LearningRateScheduler(lambda epoch: 0.3)
    m.fit(x, y, epochs=1, verbose=0, callbacks=[one_arg])
    assert m.optimizer.learning_rate == pytest.approx(0.3)
    with pytest.raises(ValueError, match="should be a float"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[cb.LearningRateScheduler(lambda epoch, lr: 1)])


def read_csv(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path):
    x, y = linear_data()
    m = Sequential([Dense(1, input_shape=(D,))])
    m.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    path = tmp_path / "log.csv"
    h = m.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[cb.CSVLogger(path)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], h.history["mae"], rtol=1e-6)
    # Appending: no second header; a separator of our choice.
    m.fit(x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[cb.CSVLogger(path, append=True)])
    assert len(read_csv(path)) == 4 and read_csv(path)[3][0] == "0"
    semi = tmp_path / "semi.csv"
    m.fit(x, y, epochs=1, verbose=0, callbacks=[cb.CSVLogger(semi, separator=";")])
    rows = read_csv(semi, sep=";")
    # Without validation, Keras still writes val_ columns, as "NA".
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert rows[1][3:] == ["NA", "NA"]


def test_terminate_on_nan_stops_after_the_batch_with_a_nan_loss(capsys):
    x, y = linear_data()
    y = y.copy()
    y[13] = np.nan  # in batch 2
    m = linear_model()
    m.fit(x, y, batch_size=BS, epochs=3, shuffle=False, verbose=0, callbacks=[cb.TerminateOnNaN()])
    assert m.optimizer.iterations == 3
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 2"):
        linear_model().fit(x, y, batch_size=BS, shuffle=False, verbose=0,
                           callbacks=[cb.TerminateOnNaN(raise_error=True)])


def test_lambda_callback_takes_any_hook():
    x, y = linear_data()
    m = linear_model()
    got = []
    lam = cb.LambdaCallback(
        on_train_begin=lambda logs: got.append("train_begin"),
        on_epoch_end=lambda epoch, logs: got.append(("epoch_end", epoch)),
        on_train_batch_begin=lambda batch, logs: got.append(("batch", batch)),
        on_train_end=lambda logs: got.append("train_end"),
        on_test_begin=lambda logs: got.append("test_begin"),
    )
    m.fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[lam])
    m.evaluate(x, y, verbose=0, callbacks=[lam])
    assert got == ["train_begin", ("batch", 0), ("batch", 1), ("epoch_end", 0), "train_end", "test_begin"]
    with pytest.raises(ValueError, match="on_nothing"):
        cb.LambdaCallback(on_nothing=print)


def test_callback_list_drives_a_custom_loop_and_can_be_passed_to_fit():
    x, y = linear_data()
    m = linear_model()
    rec = Recorder()
    cbs = cb.CallbackList([rec], add_history=True, model=m, epochs=1, steps=1, verbose=0)
    assert rec.model is m and rec.params == {"epochs": 1, "steps": 1, "verbose": 0}
    cbs.on_train_begin()
    cbs.on_epoch_end(0, {"loss": np.float32(0.5), "accuracy": 1})
    assert rec.events[-1] == ("on_epoch_end", 0, {"accuracy": 1.0, "loss": 0.5})
    assert list(m.history.history) == ["accuracy", "loss"]
    h = m.fit(x, y, epochs=2, verbose=0, callbacks=cbs)
    assert h is m.history and h.history["loss"][0] == 0.5 and len(h.history["loss"]) == 3


def test_history_and_params():
    x, y = linear_data()
    m = linear_model()
    rec = Recorder()
    h = m.fit(x, y, batch_size=BS, epochs=3, initial_epoch=1, verbose=0, callbacks=[rec])
    assert h.epoch == [1, 2] and rec.params == {"verbose": 0, "epochs": 3, "steps": 4}
    assert m.history is h
