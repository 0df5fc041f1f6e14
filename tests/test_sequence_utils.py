"""`pad_sequences` and `timeseries_dataset_from_array` against Keras' documented behaviour (the
examples of their docstrings) and against windows and paddings built with numpy."""

import numpy as np
import pytest

from rustkeras.layers import Dense, Flatten, Input
from rustkeras.models import Sequential
from rustkeras.preprocessing import sequence
from rustkeras.utils import PyDataset, pad_sequences, timeseries_dataset_from_array

SEQS = [[1], [2, 3], [4, 5, 6]]


def test_pad_sequences_keras_documented_examples():
    out = pad_sequences(SEQS)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQS, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQS, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQS, maxlen=2), [[0, 1], [2, 3], [5, 6]])
    assert sequence.pad_sequences is pad_sequences  # Keras 1's path


def test_pad_sequences_against_numpy():
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(1, 50, size=k)) for k in (0, 3, 7, 12)]
    for maxlen in (None, 5, 12, 15):
        for padding in ("pre", "post"):
            for truncating in ("pre", "post"):
                out = pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=-2)
                width = maxlen or 12
                want = np.full((4, width), -2, dtype=np.int32)
                for i, s in enumerate(seqs):
                    kept = s[len(s) - width:] if truncating == "pre" and len(s) > width else s[:width]
                    if kept:
                        if padding == "pre":
                            want[i, width - len(kept):] = kept
                        else:
                            want[i, :len(kept)] = kept
                np.testing.assert_array_equal(out, want, err_msg=f"{maxlen} {padding} {truncating}")


def test_pad_sequences_steps_with_features_dtypes_and_strings():
    seqs = [np.ones((2, 3)), np.full((4, 3), 2.0)]
    out = pad_sequences(seqs, dtype="float32")
    assert out.shape == (2, 4, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, :2], 0.0)
    np.testing.assert_array_equal(out[0, 2:], 1.0)
    words = pad_sequences([["a"], ["b", "c"]], dtype=object, value="<pad>")
    assert words.tolist() == [["<pad>", "a"], ["b", "c"]]
    with pytest.raises(ValueError, match="dtype=object"):
        pad_sequences([["a"]], value="<pad>")
    with pytest.raises(ValueError, match="Padding type"):
        pad_sequences(SEQS, padding="middle")
    with pytest.raises(ValueError, match="Truncating type"):
        pad_sequences(SEQS, truncating="middle")
    with pytest.raises(ValueError, match="non-iterable"):
        pad_sequences([[1], 2])
    with pytest.raises(ValueError, match="different from expected shape"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))])


def test_timeseries_keras_example_1_windows():
    ds = timeseries_dataset_from_array(np.arange(99), None, sequence_length=10, sampling_rate=2, sequence_stride=3,
                                       batch_size=128)
    assert isinstance(ds, PyDataset) and len(ds) == 1
    windows = ds[0]
    assert windows.shape == (27, 10)
    np.testing.assert_array_equal(windows[0], np.arange(0, 20, 2))
    np.testing.assert_array_equal(windows[1], np.arange(3, 23, 2))
    np.testing.assert_array_equal(windows[2], np.arange(6, 26, 2))
    np.testing.assert_array_equal(windows[-1], np.arange(78, 98, 2))


def test_timeseries_keras_examples_2_and_3():
    data = np.arange(200, dtype="float32")
    ds = timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10)
    inputs, targets = ds[0]
    np.testing.assert_array_equal(inputs[0], data[:10])
    assert targets[0] == data[10]
    assert [len(b[0]) for b in ds] == [128, 53]  # 190 - 9 windows, 128 a batch

    x = np.arange(100)
    y = x * 2
    xs = timeseries_dataset_from_array(x, None, sequence_length=20, sequence_stride=20)
    ys = timeseries_dataset_from_array(y, None, sequence_length=20, sequence_stride=20)
    for inputs, targets in zip(xs, ys):
        np.testing.assert_array_equal(inputs[0], x[:20])
        np.testing.assert_array_equal(targets[1], y[20:40])


def test_timeseries_against_numpy_windows():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(60, 3)).astype("float32")
    targets = rng.normal(size=(60,)).astype("float32")
    ds = timeseries_dataset_from_array(data, targets, sequence_length=5, sequence_stride=2, sampling_rate=3,
                                       batch_size=4, start_index=6, end_index=50)
    starts = np.arange(6, 50 - 4 * 3, 2)
    want_x = np.stack([data[s:s + 15:3] for s in starts])
    got_x = np.concatenate([b[0] for b in ds])
    got_y = np.concatenate([b[1] for b in ds])
    np.testing.assert_array_equal(got_x, want_x)
    np.testing.assert_array_equal(got_y, targets[starts])
    # shuffled start positions: numpy.random.RandomState(seed), as in Keras
    shuffled = timeseries_dataset_from_array(data, targets, sequence_length=5, batch_size=None, shuffle=True, seed=3)
    order = np.arange(56)
    np.random.RandomState(3).shuffle(order)
    x0, y0 = shuffled[0]
    np.testing.assert_array_equal(x0, data[order[0]:order[0] + 5])
    assert y0 == targets[order[0]] and len(shuffled) == 56


def test_timeseries_errors_name_the_argument():
    data = np.arange(20)
    for kwargs, needle in ((dict(sampling_rate=0), "sampling_rate"), (dict(sequence_stride=20), "sequence_stride"),
                           (dict(start_index=-1), "start_index"), (dict(start_index=5, end_index=3), "end_index"),
                           (dict(end_index=25), "end_index"), (dict(batch_size=0), "batch_size")):
        with pytest.raises(ValueError, match=needle):
            timeseries_dataset_from_array(data, None, sequence_length=3, **kwargs)


def test_a_model_fits_a_timeseries_dataset_like_the_windows():
    rng = np.random.default_rng(2)
    series = rng.normal(size=(300, 2)).astype("float32")
    ds = timeseries_dataset_from_array(series[:-1], series[8:, 0], sequence_length=8, batch_size=32)
    x = np.stack([series[i:i + 8] for i in range(292)])
    y = series[8:, 0]

    def make():
        m = Sequential([Input((8, 2)), Flatten(), Dense(4, activation="relu"), Dense(1)])
        m.compile(optimizer="adam", loss="mse")
        return m

    a, b = make(), make()
    b.set_weights(a.get_weights())
    a.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    b.fit(ds, epochs=2, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
