"""Generators, PyDataset (Keras 2's Sequence) and `steps_per_epoch`/`validation_steps`: a model fed
batch by batch trains to the very weights of the array fit on the same batches, and the step
rules follow Keras 3's epoch iterator."""

import math
import random
import threading
import warnings

import numpy as np
import pytest

from rustkeras import config
from rustkeras.layers import Dense, Input
from rustkeras.models import Sequential
from rustkeras.utils import PyDataset, Sequence

N, BS = 100, 16
RNG = np.random.default_rng(7)
X = RNG.normal(size=(N, 5)).astype("float32")
Y = (X @ RNG.normal(size=(5, 2)) + 0.1).astype("float32")
XV = RNG.normal(size=(40, 5)).astype("float32")
YV = (XV @ RNG.normal(size=(5, 2))).astype("float32")


@pytest.fixture(params=["cpu", "gpu"])
def backend(request):
    """Runs a test on the CPU and on the GPU (Mesa's lavapipe in CI)."""
    config.set_backend(request.param)
    yield request.param
    config.set_backend("cpu")


def twins(optimizer="adam", loss="mse"):
    """Two models with the same weights."""
    def make():
        m = Sequential([Input((5,)), Dense(8, activation="tanh"), Dense(2)])
        m.compile(optimizer=optimizer, loss=loss, metrics=["mae"])
        return m
    a, b = make(), make()
    b.set_weights(a.get_weights())
    return a, b


def batches(x, y, bs, sw=None):
    return [(x[i:i + bs], y[i:i + bs]) + (() if sw is None else (sw[i:i + bs],)) for i in range(0, len(x), bs)]


def cycle(items):
    while True:
        yield from items


class Batches(PyDataset):
    def __init__(self, x, y, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.bs = x, y, bs
        self.calls = []
        self.begins = self.ends = 0

    def __len__(self):
        return math.ceil(len(self.x) / self.bs)

    def __getitem__(self, i):
        self.calls.append(i)
        if i >= len(self):
            raise IndexError(i)
        return self.x[i * self.bs:(i + 1) * self.bs], self.y[i * self.bs:(i + 1) * self.bs]

    def on_epoch_begin(self):
        self.begins += 1

    def on_epoch_end(self):
        self.ends += 1


def same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


# ---- a generator and a PyDataset train like the arrays ----------------------------------------


def test_generator_fit_equals_array_fit_on_the_same_batches(backend):
    a, b = twins()
    ha = a.fit(X, Y, batch_size=BS, epochs=3, shuffle=False, verbose=0)
    hb = b.fit(cycle(batches(X, Y, BS)), steps_per_epoch=math.ceil(N / BS), epochs=3, shuffle=False, verbose=0)
    same_weights(a, b)
    for k in ("loss", "mae"):
        np.testing.assert_allclose(hb.history[k], ha.history[k], rtol=1e-5)
    assert hb.params["steps"] == 7


@pytest.mark.parametrize("workers,processes", [(0, False), (1, False), (3, False), (2, True)],
                         ids=["inline", "one-thread", "thread-pool", "processes"])
def test_pydataset_fit_equals_array_fit(workers, processes):
    a, b = twins()
    a.fit(X, Y, batch_size=BS, epochs=2, shuffle=False, verbose=0)
    data = Batches(X, Y, BS, workers=workers, use_multiprocessing=processes, max_queue_size=3)
    h = b.fit(data, epochs=2, shuffle=False, verbose=0)
    same_weights(a, b)
    assert len(h.history["loss"]) == 2
    assert (data.begins, data.ends) == (2, 2)
    if processes:
        assert data.calls == []  # every batch was read in a worker process (its own copy of the list)
    else:
        assert sorted(data.calls) == sorted(list(range(7)) * 2)


def test_keras2_sequence_is_pydataset_and_a_subclass_without_super_init_warns():
    assert Sequence is PyDataset

    class Old(Sequence):  # Keras 2 style: no super().__init__()
        def __init__(self, half):
            self.half = half

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return X[i * self.half:(i + 1) * self.half], Y[i * self.half:(i + 1) * self.half]

    a, b = twins()
    a.fit(X, Y, batch_size=50, epochs=1, shuffle=False, verbose=0)
    with pytest.warns(UserWarning, match="super\\(\\).__init__"):
        b.fit(Old(50), epochs=1, shuffle=False, verbose=0)
    same_weights(a, b)


def test_pydataset_shuffle_visits_batches_in_keras_order():
    model, _ = twins()
    data = Batches(X, Y, BS, workers=1)
    model.fit(data, epochs=2, verbose=0)  # shuffle=True: the batch order of Keras 3's PyDataset adapter
    expected = []
    for epoch in (1, 2):
        order = list(range(7))
        random.Random(epoch).shuffle(order)
        expected += order
    assert data.calls == expected


def test_pydataset_class_weight_and_sample_weights_equal_arrays():
    y = (X[:, :1] > 0).astype("float32")
    sw = RNG.uniform(0.5, 2.0, size=N).astype("float32")

    def make():
        m = Sequential([Input((5,)), Dense(1, activation="sigmoid")])
        m.compile(optimizer="sgd", loss="binary_crossentropy")
        return m

    a, b, c, d = make(), make(), make(), make()
    for m in (b, c, d):
        m.set_weights(a.get_weights())
    a.fit(X, y, batch_size=20, class_weight={0: 1.0, 1: 3.0}, shuffle=False, verbose=0)
    b.fit(Batches(X, y, 20), class_weight={0: 1.0, 1: 3.0}, shuffle=False, verbose=0)
    same_weights(a, b)
    c.fit(X, y, sample_weight=sw, batch_size=20, shuffle=False, verbose=0)
    d.fit(cycle(batches(X, y, 20, sw)), steps_per_epoch=5, shuffle=False, verbose=0)
    same_weights(c, d)


def test_an_unbuilt_sequential_builds_from_the_first_batch():
    model = Sequential([Dense(3), Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(cycle(batches(X, Y, BS)), steps_per_epoch=2, shuffle=False, verbose=0)
    assert model.input_shape == (None, 5)


# ---- evaluate and predict ---------------------------------------------------------------------


def test_evaluate_and_predict_on_a_generator_and_a_pydataset_equal_arrays():
    model, _ = twins()
    model.fit(X, Y, epochs=1, verbose=0)
    want = model.evaluate(X, Y, batch_size=BS, verbose=0)
    np.testing.assert_allclose(model.evaluate(iter(batches(X, Y, BS)), verbose=0), want, rtol=1e-5)
    np.testing.assert_allclose(model.evaluate(Batches(X, Y, BS), verbose=0), want, rtol=1e-5)
    p = model.predict(X, batch_size=BS, verbose=0)
    np.testing.assert_allclose(model.predict((b[:1] for b in batches(X, Y, BS)), verbose=0), p, rtol=1e-6)
    np.testing.assert_allclose(model.predict(Batches(X, Y, BS, workers=2), verbose=0), p, rtol=1e-6)
    # `steps` reads that many batches from an endless generator
    np.testing.assert_allclose(model.predict(cycle(batches(X, Y, BS)), steps=2, verbose=0), p[:2 * BS], rtol=1e-6)
    np.testing.assert_allclose(model.evaluate(cycle(batches(X, Y, BS)), steps=2, verbose=0),
                               model.evaluate(X[:2 * BS], Y[:2 * BS], batch_size=BS, verbose=0), rtol=1e-5)


def test_validation_data_as_a_generator_and_a_pydataset():
    vb = batches(XV, YV, 10)  # 4 batches
    a, b = twins()
    # validation_steps=3 from an endless generator: epoch 1 sees batches 0-2, epoch 2 goes on (3, 0, 1)
    h = a.fit(X, Y, batch_size=BS, epochs=2, shuffle=False, verbose=0, validation_data=cycle(vb), validation_steps=3)
    want = []
    for used in ([0, 1, 2], [3, 0, 1]):
        b.fit(X, Y, batch_size=BS, epochs=1, shuffle=False, verbose=0)
        xs = np.concatenate([vb[i][0] for i in used])
        ys = np.concatenate([vb[i][1] for i in used])
        want.append(b.evaluate(xs, ys, batch_size=10, verbose=0)[0])
    np.testing.assert_allclose(h.history["val_loss"], want, rtol=1e-5)

    # a PyDataset starts over at every validation, as Keras resets its iterator
    c, d = twins()
    h = c.fit(X, Y, batch_size=BS, epochs=2, shuffle=False, verbose=0, validation_data=Batches(XV, YV, 10),
              validation_steps=2)
    want = []
    for _ in range(2):
        d.fit(X, Y, batch_size=BS, epochs=1, shuffle=False, verbose=0)
        want.append(d.evaluate(XV[:20], YV[:20], batch_size=10, verbose=0)[0])
    np.testing.assert_allclose(h.history["val_loss"], want, rtol=1e-5)


# ---- steps with arrays, as Keras 3 treats them ------------------------------------------------


def test_steps_per_epoch_with_arrays_goes_on_where_the_last_epoch_stopped():
    a, b = twins()
    a.fit(X, Y, batch_size=10, steps_per_epoch=3, epochs=2, shuffle=False, verbose=0)  # batches 0-2, then 3-5
    b.fit(X[:60], Y[:60], batch_size=10, epochs=1, shuffle=False, verbose=0)
    same_weights(a, b)


def test_steps_per_epoch_past_the_end_of_the_data_warns_and_cuts_the_epoch(backend):
    a, b = twins()
    # 5 batches, 2 an epoch: epochs see [0, 1], [2, 3], [4] (cut short, with Keras' warning)
    with pytest.warns(UserWarning, match="ran out of data"):
        h = a.fit(X[:50], Y[:50], batch_size=10, steps_per_epoch=2, epochs=3, shuffle=False, verbose=0)
    b.fit(X[:50], Y[:50], batch_size=10, epochs=1, shuffle=False, verbose=0)
    same_weights(a, b)
    assert len(h.history["loss"]) == 3

    c, d = twins()
    with pytest.warns(UserWarning, match="ran out of data"):
        c.fit(X[:30], Y[:30], batch_size=10, steps_per_epoch=5, epochs=2, shuffle=False, verbose=0)
    d.fit(X[:30], Y[:30], batch_size=10, epochs=2, shuffle=False, verbose=0)
    same_weights(c, d)


def test_steps_per_epoch_without_batch_size_sizes_the_batches():
    a, b = twins()
    h = a.fit(X, Y, steps_per_epoch=4, shuffle=False, verbose=0)  # batch_size = ceil(100 / 4) = 25
    b.fit(X, Y, batch_size=25, shuffle=False, verbose=0)
    same_weights(a, b)
    assert h.params["steps"] == 4


def test_shuffled_steps_per_epoch_covers_every_sample_once_a_pass(monkeypatch):
    import rustkeras.models._adapter as adapter

    taken = []
    rows_of = adapter.ArrayFeed._rows
    monkeypatch.setattr(adapter.ArrayFeed, "_rows", lambda self, rows: taken.extend(rows) or rows_of(self, rows))
    model, _ = twins()
    model.fit(X[:40], Y[:40], batch_size=10, steps_per_epoch=2, epochs=4, verbose=0)  # 4 epochs = 2 passes
    assert sorted(taken[:40]) == list(range(40)) and sorted(taken[40:]) == list(range(40))
    assert taken[:40] != list(range(40)) and taken[:40] != taken[40:]


def test_validation_steps_with_arrays_reads_the_first_batches_every_time():
    a, b = twins()
    h = a.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0, validation_data=(XV, YV), validation_steps=2)
    b.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(h.history["val_loss"], [b.evaluate(XV[:16], YV[:16], verbose=0)[0]], rtol=1e-5)
    # without a batch size, the validation batches are sized by validation_steps: all 40 samples
    h = a.fit(X, Y, steps_per_epoch=4, epochs=1, shuffle=False, verbose=0, validation_data=(XV, YV),
              validation_steps=2)
    np.testing.assert_allclose(h.history["val_loss"], [a.evaluate(XV, YV, verbose=0)[0]], rtol=1e-5)


def test_evaluate_and_predict_steps_with_arrays():
    model, _ = twins()
    np.testing.assert_allclose(model.predict(X, batch_size=10, steps=3, verbose=0),
                               model.predict(X[:30], verbose=0), rtol=1e-6)
    np.testing.assert_allclose(model.evaluate(X, Y, batch_size=10, steps=3, verbose=0),
                               model.evaluate(X[:30], Y[:30], batch_size=10, verbose=0), rtol=1e-6)
    assert model.predict(X, steps=3, verbose=0).shape == (N, 2)  # batch_size = ceil(100 / 3)
    with pytest.warns(UserWarning, match="ran out of data"):
        assert model.predict(X, batch_size=50, steps=3, verbose=0).shape == (N, 2)


# ---- reading in the background ------------------------------------------------------------------


def test_the_generator_runs_on_a_background_thread_and_is_free_after_fit():
    threads = set()

    def gen():
        while True:
            threads.add(threading.get_ident())
            yield X[:BS], Y[:BS]

    g = gen()
    model, _ = twins()
    model.fit(g, steps_per_epoch=3, epochs=2, verbose=0, shuffle=False)
    assert threads and threading.get_ident() not in threads
    next(g)  # the reading thread has let go of the generator


def test_a_finite_generator_without_steps_trains_one_pass_then_stops_with_a_warning():
    model, _ = twins()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = model.fit(iter(batches(X, Y, BS)), epochs=3, shuffle=False, verbose=0)
    assert len(h.history["loss"]) == 1


def test_progress_lines_for_a_generator_of_unknown_length(capsys):
    model, _ = twins()
    model.fit(iter(batches(X, Y, BS)), shuffle=False, verbose=2)
    assert "7/7" in capsys.readouterr().out


# ---- errors -------------------------------------------------------------------------------------


class Boom(Exception):
    pass


def test_errors_in_the_users_data_code_reach_the_caller():
    def bad():
        yield X[:BS], Y[:BS]
        raise Boom("from the generator")

    model, _ = twins()
    with pytest.raises(Boom, match="from the generator"):
        model.fit(bad(), steps_per_epoch=3, shuffle=False, verbose=0)

    class BadSet(Batches):
        def __getitem__(self, i):
            if i == 2:
                raise Boom("from __getitem__")
            return super().__getitem__(i)

    for workers in (0, 1, 3):
        with pytest.raises(Boom, match="from __getitem__"):
            model.fit(BadSet(X, Y, BS, workers=workers), shuffle=False, verbose=0)


@pytest.mark.parametrize("call,error,needles", [
    ("fit(iter(B), y=Y, verbose=0)", ValueError, ["`y`", "generator"]),
    ("fit(iter(B), sample_weight=np.ones(N), verbose=0)", ValueError, ["`sample_weight`", "generator"]),
    ("fit(iter(B), class_weight={0: 1.0}, verbose=0)", ValueError, ["class_weight", "generator"]),
    ("fit(iter(B), validation_split=0.2, verbose=0)", ValueError, ["validation_split"]),
    ("fit(iter([X]), shuffle=False, verbose=0)", ValueError, ["tuple"]),
    ("fit(iter([]), shuffle=False, verbose=0)", ValueError, ["at least one batch"]),
    ("fit(Endless(), verbose=0)", ValueError, ["steps_per_epoch", "Endless"]),
    ("fit(X, Y, workers=4, verbose=0)", ValueError, ["workers", "PyDataset"]),
    ("predict(X, use_multiprocessing=True)", ValueError, ["use_multiprocessing", "PyDataset"]),
    ("fit(X, Y, steps_per_epoch=0, verbose=0)", ValueError, ["steps_per_epoch", "0"]),
    ("evaluate(X, Y, steps=1.5, verbose=0)", ValueError, ["steps", "1.5"]),
])
def test_data_errors(call, error, needles):
    class Endless(PyDataset):
        num_batches = None

        def __getitem__(self, i):
            return X[:4], Y[:4]

    model, _ = twins()
    env = {"model": model, "X": X, "Y": Y, "N": N, "np": np, "B": batches(X, Y, BS), "Endless": Endless}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error) as e:
            eval("model." + call, env)
    for needle in needles:
        assert needle in str(e.value), str(e.value)


def test_generator_warnings_follow_keras():
    model, _ = twins()
    with pytest.warns(UserWarning, match="shuffle=True"):
        model.fit(cycle(batches(X, Y, BS)), steps_per_epoch=1, verbose=0)
    with pytest.warns(UserWarning, match="batch_size=8"):
        model.fit(cycle(batches(X, Y, BS)), steps_per_epoch=1, batch_size=8, shuffle=False, verbose=0)


def test_metric_classes_over_a_generator_are_the_pass_values_not_batch_means():
    from rustkeras import metrics

    rng = np.random.default_rng(5)
    x = rng.normal(size=(96, 5)).astype("float32")
    y = (x[:, :1] + 0.5 * rng.normal(size=(96, 1)) > 0).astype("float32")
    model = Sequential([Input((5,)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=[metrics.AUC(name="auc"), "precision"])
    arrays = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    stream = model.evaluate(iter(batches(x, y, 16)), verbose=0, return_dict=True)
    for k in ("loss", "auc", "precision"):
        np.testing.assert_allclose(stream[k], arrays[k], rtol=1e-5)
    # The mean of per-batch AUCs differs from the pass's AUC on this data.
    per_batch = [model.test_on_batch(x[i:i + 16], y[i:i + 16], return_dict=True)["auc"] for i in range(0, 96, 16)]
    assert abs(np.mean(per_batch) - arrays["auc"]) > 1e-4
    # And in training: the epoch's logs over a generator equal a pass's value too.
    h = model.fit(iter(batches(x, y, 16)), steps_per_epoch=6, epochs=1, shuffle=False, verbose=0)
    assert 0.0 <= h.history["auc"][0] <= 1.0
