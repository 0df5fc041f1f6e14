"""`PyDataset` (Keras 3's name; Keras 2's `Sequence`): a dataset written in Python, one batch per
index, that `fit`, `evaluate` and `predict` read while the engine trains.

Example:

    import math
    import numpy as np
    from rustkeras.utils import PyDataset

    class Batches(PyDataset):
        def __init__(self, x, y, batch_size, **kwargs):
            super().__init__(**kwargs)          # workers, use_multiprocessing, max_queue_size
            self.x, self.y, self.batch_size = x, y, batch_size

        def __len__(self):
            return math.ceil(len(self.x) / self.batch_size)

        def __getitem__(self, idx):
            lo = idx * self.batch_size
            return self.x[lo:lo + self.batch_size], self.y[lo:lo + self.batch_size]

    model.fit(Batches(x, y, 32, workers=4), epochs=5)
"""

import itertools
import warnings
from typing import Any, Iterator, Optional

__all__ = ["PyDataset", "Sequence"]


class PyDataset:
    """Base class for a dataset of batches computed in Python.

    Implement `__getitem__(index)` (the batch at `index`: `x`, `(x,)`, `(x, y)` or
    `(x, y, sample_weight)`) and `__len__()` (the number of batches), or the `num_batches`
    property returning None for an endless dataset; `on_epoch_begin()` and `on_epoch_end()`
    are called around every epoch. A subclass calls `super().__init__(**kwargs)`.

    Args:
        workers: how many workers fetch batches while the model trains: 0 fetches each batch in
            the training thread; 1 (the default) in one background thread; more in a pool of
            threads (or processes), batches still arriving in index order.
        use_multiprocessing: fetch in worker processes instead of threads (for CPU-bound
            Python). On Linux the processes are forked, elsewhere the dataset must pickle; a
            process sees the dataset as it was when its pass over the data began.
        max_queue_size: how many batches may be fetched ahead of the one training (default 10).
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self) -> None:
        missing = [k for k in ("_workers", "_use_multiprocessing", "_max_queue_size") if not hasattr(self, k)]
        if not missing:
            return
        self._workers = getattr(self, "_workers", 1)
        self._use_multiprocessing = getattr(self, "_use_multiprocessing", False)
        self._max_queue_size = getattr(self, "_max_queue_size", 10)
        warnings.warn(
            "Your `PyDataset` class should call `super().__init__(**kwargs)` in its constructor. "
            "`**kwargs` can include `workers`, `use_multiprocessing`, `max_queue_size`. Do not pass "
            "these arguments to `fit()`, as they will be ignored.",
            stacklevel=3,
        )

    @property
    def workers(self) -> int:
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = value

    @property
    def use_multiprocessing(self) -> bool:
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = value

    @property
    def max_queue_size(self) -> int:
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = value

    def __getitem__(self, index: int) -> Any:
        """The batch at position `index`."""
        raise NotImplementedError(f"{type(self).__name__} must implement `__getitem__(index)`")

    @property
    def num_batches(self) -> Optional[int]:
        """The number of batches (`len(self)`), or None for an endless dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(
            f"{type(self).__name__} must implement `__len__()` or the `num_batches` property "
            "(None for an endless dataset)"
        )

    def __iter__(self) -> Iterator[Any]:
        """The batches in index order (endless when `num_batches` is None)."""
        n = self.num_batches
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    def on_epoch_begin(self) -> None:
        """Called at the start of every epoch."""

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch."""


# Keras 2's name for the same class.
Sequence = PyDataset
