"""`timeseries_dataset_from_array`: sliding windows over a series, in batches, as a PyDataset
that `fit`, `evaluate` and `predict` read (Keras 3 returns a tf.data.Dataset of the same batches)."""

import math
from typing import Any, Optional

import numpy as np

from rustkeras.utils.py_dataset import PyDataset

__all__ = ["timeseries_dataset_from_array"]


class TimeseriesDataset(PyDataset):
    """Windows of `data` starting at `starts` (positions from `start_index`), `batch_size` a batch
    (one window an item when `batch_size` is None); with `targets`, each window comes with the
    target at its start position."""

    def __init__(self, data, targets, starts: np.ndarray, start_index: int, sequence_length: int,
                 sampling_rate: int, batch_size: Optional[int]):
        super().__init__()
        self.data = data
        self.targets = targets
        self.starts = starts
        self.start_index = start_index
        self.offsets = np.arange(sequence_length) * sampling_rate
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.starts) if self.batch_size is None else math.ceil(len(self.starts) / self.batch_size)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} batches")
        if self.batch_size is None:
            starts = self.starts[index]
        else:
            starts = self.starts[index * self.batch_size:(index + 1) * self.batch_size]
        first = self.start_index + np.asarray(starts)
        windows = np.asarray(self.data)[first[..., None] + self.offsets]
        if self.targets is None:
            return windows
        return windows, np.asarray(self.targets)[first]


def timeseries_dataset_from_array(data: Any, targets: Any, sequence_length: int, sequence_stride: int = 1,
                                  sampling_rate: int = 1, batch_size: Optional[int] = 128, shuffle: bool = False,
                                  seed: Optional[int] = None, start_index: Optional[int] = None,
                                  end_index: Optional[int] = None) -> TimeseriesDataset:
    """Sliding windows over a series (axis 0 is time), in batches, as in Keras 3.

    Args:
        data: the series, an array whose axis 0 is time.
        targets: `targets[i]` goes with the window that starts at `data[i]`; None for windows alone.
        sequence_length: the steps in a window.
        sequence_stride: the steps from one window's start to the next's.
        sampling_rate: the steps between a window's samples (`data[i], data[i + r], ...`).
        batch_size: windows a batch (the last may hold fewer); None: one window an item.
        shuffle: shuffle the windows' start positions (with `numpy.random.RandomState(seed)`, as
            Keras does; Keras also shuffles within a buffer, which rustkeras does not).
        seed: the shuffling seed.
        start_index, end_index: the part of `data` the windows are taken from
            (`data[start_index:end_index]`), to keep a test part apart.

    Returns:
        A `PyDataset` of `(windows, targets)` batches (windows alone without targets), of shape
        `(batch, sequence_length) + data.shape[1:]`.

    Example:

        series = np.arange(100)
        ds = timeseries_dataset_from_array(series[:-10], series[10:], sequence_length=10, batch_size=32)
        x, y = ds[0]     # x[0] == series[0:10], y[0] == series[10]
        model.fit(ds, epochs=5)
    """
    n = len(data)
    for name, v in (("sequence_length", sequence_length), ("sequence_stride", sequence_stride),
                    ("sampling_rate", sampling_rate)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"`{name}` must be higher than 0. Received: {name}={v!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size <= 0):
        raise ValueError(f"`batch_size` must be an integer > 0 or None. Received: batch_size={batch_size!r}")
    if start_index:
        if start_index < 0:
            raise ValueError(f"`start_index` must be 0 or greater. Received: start_index={start_index}")
        if start_index >= n:
            raise ValueError(f"`start_index` must be lower than the length of the data. Received: "
                             f"start_index={start_index}, for data of length {n}")
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError(f"`end_index` must be higher than `start_index`. Received: start_index={start_index}, "
                             f"and end_index={end_index}")
        if end_index >= n:
            raise ValueError(f"`end_index` must be lower than the length of the data. Received: "
                             f"end_index={end_index}, for data of length {n}")
        if end_index <= 0:
            raise ValueError(f"`end_index` must be higher than 0. Received: end_index={end_index}")
    if sampling_rate >= n:
        raise ValueError(f"`sampling_rate` must be lower than the length of the data. Received: "
                         f"sampling_rate={sampling_rate}, for data of length {n}")
    if sequence_stride >= n:
        raise ValueError(f"`sequence_stride` must be lower than the length of the data. Received: "
                         f"sequence_stride={sequence_stride}, for data of length {n}")
    start_index = start_index or 0
    end_index = n if end_index is None else end_index
    # Windows that fit before end_index (and that have a target).
    count = end_index - start_index - (sequence_length - 1) * sampling_rate
    if targets is not None:
        count = min(count, len(targets) - start_index)
    starts = np.arange(0, max(count, 0), sequence_stride, dtype=np.int64)
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(starts)
    return TimeseriesDataset(data, targets, starts, start_index, sequence_length, sampling_rate, batch_size)
