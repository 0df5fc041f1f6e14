"""The data of fit, evaluate and predict as feeds of batches.

Arrays go to the engine's own loops (`_core.fit_epoch`, `evaluate`, `predict`), which gather
every batch in Rust. A Python generator, a `PyDataset` (Keras 2's `Sequence`) and arrays read a
few batches an epoch (`steps_per_epoch`) follow Keras 3's epoch rules (`_Epochs`): with
`steps_per_epoch`, an epoch goes on where the last one stopped, and where the data runs out
first the epoch ends early with Keras' warning. A generator or PyDataset is read batch by batch,
a background thread fetching the next batch (running the user's Python) while the engine trains
on the current one with the GIL released.

Every feed offers what the loops call:

    steps            batches an epoch (None while a generator's length is unknown)
    train_epoch(hook, every_s) -> logs      test(hook, every_s) -> logs
    predict(hook, every_s) -> list of output arrays
    last_steps       batches the last call ran
    ready()          whether another epoch can run (False once a generator has run dry)
    close()

`hook(batch, batches, running_logs)` is the engine's per-batch hook, called at most every
`every_s` seconds and after the last batch; `batches` is None while unknown.
"""

import collections
import collections.abc
import itertools
import math
import multiprocessing
import queue
import random
import threading
import time
import types
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable, Iterator, List, Optional, Tuple

import numpy as np

from rustkeras import _seed
from rustkeras.utils.py_dataset import PyDataset

_END = object()  # a reader's end of data
_EMPTY = object()  # a reader's empty lookahead

# The Keras 2 `fit` arguments that Keras 3 moved onto the PyDataset.
_WORKER_ARGS = ("workers", "use_multiprocessing", "max_queue_size")


def reject_worker_args(method: str, kwargs: dict) -> None:
    """Keras 2's `fit(..., workers=4)`: Keras 3 takes these on the PyDataset; say so."""
    given = [k for k in _WORKER_ARGS if k in kwargs]
    if given:
        raise ValueError(
            f"{method}: {', '.join(f'`{k}`' for k in given)} are arguments of the PyDataset in Keras 3, not of "
            f"`{method}()`: pass them to your PyDataset's constructor (`super().__init__(workers=..., "
            f"use_multiprocessing=..., max_queue_size=...)`). Received: "
            + ", ".join(f"{k}={kwargs[k]!r}" for k in given)
        )


def _ran_out_warning() -> None:
    warnings.warn(
        "Your input ran out of data; interrupting training. Make sure that your dataset or generator can "
        "generate at least `steps_per_epoch * epochs` batches (a generator is read once: loop over your data "
        "inside it, or use a PyDataset).",
        stacklevel=4,
    )


def _steps(name: str, value) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Invalid value received for argument `{name}`. Expected an integer > 0. "
                         f"Received: {name}={value!r}")
    return int(value)


def is_stream(data) -> bool:
    """Whether `data` is read batch by batch: a generator (or any iterator) or a PyDataset."""
    if isinstance(data, PyDataset):
        return True
    if isinstance(data, (np.ndarray, list, tuple, dict)):
        return False
    mro = [f"{c.__module__}.{c.__name__}" for c in type(data).__mro__]
    if any(m.startswith("tensorflow.") and m.endswith("DatasetV2") for m in mro) or \
            any(m.startswith("torch.utils.data") and m.endswith("DataLoader") for m in mro):
        raise NotImplementedError(
            f"rustkeras does not read {type(data).__name__} inputs: pass numpy arrays, a Python generator or a "
            "rustkeras.utils.PyDataset"
        )
    return isinstance(data, (types.GeneratorType, collections.abc.Iterator))


# -- arrays -----------------------------------------------------------------------------------


class ArrayFeed:
    """Arrays in batches of `batch_size`. Without `steps` (or with `steps` equal to the number
    of batches) every epoch is one pass in the engine's loop, shuffled there; with other
    `steps`, Keras 3's rules: an epoch trains on the next `steps` batches of the current pass
    (shuffled once per pass), fewer with a warning where the pass ends first, and evaluate and
    predict read the first `steps` batches."""

    def __init__(self, model, xs, ys, sws, batch_size: int, shuffle=False, steps: Optional[int] = None):
        self.model = model
        self.arrays = (xs, ys, sws)
        self.n = int(xs[0].shape[0])
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.num_batches = math.ceil(self.n / self.batch_size)
        self.steps = steps or self.num_batches
        self.whole = self.steps == self.num_batches
        self.last_steps = 0
        self._order: Optional[np.ndarray] = None
        self._seen = 0

    def _rows(self, rows) -> Tuple[list, list, list]:
        return tuple(None if arrays is None else [None if a is None else np.ascontiguousarray(a[rows]) for a in arrays]
                     for arrays in self.arrays)

    def ready(self) -> bool:
        return True

    def begin(self, mode: str):
        """The engine's pass (`_core.Pass`) over this feed's next batches: for "train" the
        next epoch's, for "test" and "predict" the first `steps` batches."""
        core = self.model._core
        if mode != "train":
            xs, ys, sws = self._first()
            if mode == "test":
                return core.begin_pass("test", xs, ys, sws, self.batch_size)
            return core.begin_pass("predict", xs, batch_size=self.batch_size)
        if self.whole:
            self.last_steps = self.num_batches
            return core.begin_pass("train", *self.arrays, self.batch_size, self.shuffle)
        if self._order is None:
            self._order = (np.random.default_rng(_seed.next_seed()).permutation(self.n) if self.shuffle
                           else np.arange(self.n))
            self._seen = 0
        k = min(self.steps, self.num_batches - self._seen)
        if k < self.steps:
            _ran_out_warning()
        rows = self._order[self._seen * self.batch_size: min((self._seen + k) * self.batch_size, self.n)]
        self._seen += k
        if self._seen >= self.num_batches:
            self._order = None
        self.last_steps = k
        return core.begin_pass("train", *self._rows(rows), self.batch_size, False)

    def _first(self) -> Tuple[list, list, list]:
        """The arrays of the first `steps` batches (all of them without `steps`)."""
        if self.whole or self.steps > self.num_batches:
            if not self.whole:
                _ran_out_warning()
            self.last_steps = self.num_batches
            return self.arrays
        self.last_steps = self.steps
        return self._rows(slice(0, self.steps * self.batch_size))

    def close(self) -> None:
        pass


# -- reading Python data in the background ------------------------------------------------------


class _Reader:
    """Items of an iterator, read ahead (up to `size` of them) on a background thread, or read
    on demand when `background` is False; `peek` looks at the next item without taking it.
    The iterator's exceptions are raised by `get`/`peek` in the reading thread."""

    def __init__(self, it: Iterator, size: int, background: bool = True, owns: bool = False):
        self._it = it
        self._owns = owns
        self._head: Any = _EMPTY
        self._done = False
        self._thread: Optional[threading.Thread] = None
        if background:
            self._q: queue.Queue = queue.Queue(max(1, int(size)))
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="rustkeras-data", daemon=True)
            self._thread.start()

    def _put(self, message) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(message, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _run(self) -> None:
        try:
            for item in self._it:
                if not self._put((True, item)):
                    return
            self._put((False, None))
        except BaseException as e:  # noqa: BLE001 - the user's error, raised again in the training thread
            self._put((False, e))

    def _next(self):
        if self._done:
            return _END
        if self._thread is None:
            try:
                return next(self._it)
            except StopIteration:
                self._done = True
                return _END
        ok, value = self._q.get()
        if ok:
            return value
        self._done = True
        if value is not None:
            raise value
        return _END

    def peek(self):
        if self._head is _EMPTY:
            self._head = self._next()
        return self._head

    def get(self):
        item = self.peek()
        if item is not _END:
            self._head = _EMPTY
        return item

    def close(self) -> None:
        """Stops the thread (what it read ahead is dropped) and, when the reader owns the
        iterator, closes it (a worker pool shuts down)."""
        if self._thread is not None:
            self._stop.set()
            while self._thread.is_alive():
                try:
                    self._q.get(timeout=0.05)
                except queue.Empty:
                    pass
            self._thread.join()
            self._thread = None
            self._done = True
        if self._owns and hasattr(self._it, "close"):
            self._it.close()


class _GeneratorSource:
    """A generator (or any iterator): one reader for the whole run, each pass going on where the
    last one stopped, since a generator can be read only once."""

    num_batches = None

    def __init__(self, gen: Iterator):
        self.reader = _Reader(gen, 2)

    @property
    def exhausted(self) -> bool:
        return self.reader.peek() is _END

    def start_pass(self) -> None:
        pass

    def open(self) -> _Reader:
        return self.reader

    def taken(self) -> None:
        pass

    def close_reader(self) -> None:
        pass

    def on_epoch_begin(self) -> None:
        pass

    def on_epoch_end(self) -> None:
        pass

    def first(self):
        return self.reader.peek()

    def close(self) -> None:
        self.reader.close()


_worker_dataset: Optional[PyDataset] = None


def _set_worker_dataset(dataset: PyDataset) -> None:
    global _worker_dataset
    _worker_dataset = dataset


def _worker_item(index: int):
    return _worker_dataset[index]


def _fetch(dataset: PyDataset, indices, workers: int, processes: bool, window: int):
    """The batches at `indices`, in order: read one by one, or by a pool of `workers` threads (or
    processes) keeping `window` batches in flight."""
    if workers <= 1 and not processes:
        for i in indices:
            yield dataset[i]
        return
    if processes:
        methods = multiprocessing.get_all_start_methods()
        # Forked workers share the dataset as it is; elsewhere it travels pickled.
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        pool = ProcessPoolExecutor(max(1, workers), mp_context=ctx, initializer=_set_worker_dataset,
                                   initargs=(dataset,))
        submit: Callable = lambda i: pool.submit(_worker_item, i)  # noqa: E731
    else:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="rustkeras-data")
        submit = lambda i: pool.submit(dataset.__getitem__, i)  # noqa: E731
    try:
        it = iter(indices)
        pending = collections.deque(submit(i) for i in itertools.islice(it, max(1, window)))
        while pending:
            batch = pending.popleft().result()
            pending.extend(submit(i) for i in itertools.islice(it, 1))
            yield batch
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _PyDatasetSource:
    """A PyDataset: a pass visits every index (in Keras 3's shuffled order with `shuffle`:
    `random.Random(epoch).shuffle`); each epoch reads the rest of the current pass with the
    dataset's workers, fetching nothing across an epoch's end (so that `on_epoch_end` and
    `on_epoch_begin` come between the epochs' batches)."""

    exhausted = False

    def __init__(self, dataset: PyDataset, shuffle: bool):
        self.dataset = dataset
        n = dataset.num_batches
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
            raise ValueError(f"{type(dataset).__name__}: `__len__`/`num_batches` must be an integer >= 0 or None. "
                             f"Received: {n!r}")
        if n == 0:
            raise ValueError(f"The PyDataset {type(dataset).__name__} has length 0: it must have at least one batch")
        self.num_batches = None if n is None else int(n)
        if shuffle and n is None:
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as an "
                          "infinite PyDataset. The PyDataset is expected to already be shuffled.", stacklevel=4)
        self.shuffle = bool(shuffle) and n is not None
        self.workers = int(dataset.workers)
        self.processes = bool(dataset.use_multiprocessing) and self.workers > 0
        self.window = max(1, int(dataset.max_queue_size))
        # Keras 3 counts an epoch's end before the first epoch too (it resets its iterator).
        self._epoch = 1
        self._order: Optional[list] = None
        self._pos = 0
        self._reader: Optional[_Reader] = None

    def start_pass(self) -> None:
        self._order = None if self.num_batches is None else list(range(self.num_batches))
        if self.shuffle:
            random.Random(self._epoch).shuffle(self._order)
        self._pos = 0

    def open(self) -> _Reader:
        rest = itertools.count(self._pos) if self._order is None else self._order[self._pos:]
        pooled = self.workers > 1 or self.processes
        self._reader = _Reader(_fetch(self.dataset, rest, self.workers, self.processes, self.window),
                               1 if pooled else self.window, background=self.workers > 0, owns=True)
        return self._reader

    def taken(self) -> None:
        self._pos += 1

    def close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def on_epoch_begin(self) -> None:
        self.dataset.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()
        self._epoch += 1

    def first(self):
        return self.dataset[0 if self._order is None else self._order[0]]

    def close(self) -> None:
        self.close_reader()


class _Epochs:
    """Keras 3's epochs over a source: without `steps`, each epoch is a new pass; with `steps`,
    an epoch takes the next `steps` batches of the current pass, fewer (with a warning) where the
    pass ends, and the next epoch starts a new pass."""

    def __init__(self, source, steps: Optional[int]):
        self.source = source
        self.steps = steps
        self._fresh = True
        self._seen = 0
        self.warned = False

    def restart(self) -> None:
        """The next epoch starts a new pass (Keras resets its iterator before each evaluation)."""
        self._fresh = True

    def batches(self) -> Iterator[Tuple[Any, bool]]:
        """One epoch's batches, each with whether it is the epoch's last."""
        src = self.source
        n = src.num_batches
        per_epoch = self.steps or n
        src.on_epoch_begin()
        if self._fresh or self.steps is None:
            src.start_pass()
            self._fresh = False
            self._seen = 0
        reader = src.open()
        try:
            step = 0
            while per_epoch is None or step < per_epoch:
                if n is not None and self._seen >= n:
                    if self.steps:
                        self._warn()
                    break
                batch = reader.get()
                if batch is _END:
                    if self.steps:
                        self._warn()
                    break
                src.taken()
                self._seen += 1
                step += 1
                last = step == per_epoch or (n is not None and self._seen >= n) or \
                    (per_epoch is None and reader.peek() is _END)
                yield batch, last
            if n is not None and self._seen >= n:
                self._fresh = True
        finally:
            src.close_reader()
            src.on_epoch_end()

    def _warn(self) -> None:
        if not self.warned:
            self.warned = True
            _ran_out_warning()


def _unpack(batch, what: str):
    """A batch as (x, y, sample_weight), from `(x,)`, `(x, y)` or `(x, y, sample_weight)`, or, from
    a PyDataset, an array or dict (the inputs alone)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if isinstance(batch, tuple) and len(batch) in (1, 2, 3):
        return tuple(batch) + (None,) * (3 - len(batch))
    if what == "PyDataset" and isinstance(batch, (np.ndarray, dict)):
        return batch, None, None
    kind = "PyDataset.__getitem__() must return a tuple or a dict" if what == "PyDataset" else \
        "When passing a Python generator to a model, the generator must return a tuple"
    raise ValueError(f"{kind}: (inputs,), (inputs, targets) or (inputs, targets, sample_weights). "
                     f"Received: {str(batch)[:100]} of type {type(batch).__name__}")


class StreamFeed:
    """A generator or a PyDataset, read batch by batch (see the module docstring)."""

    def __init__(self, model, data, steps: Optional[int], shuffle, class_weight, purpose: str):
        self.model = model
        self.what = "PyDataset" if isinstance(data, PyDataset) else "generator"
        self.purpose = purpose
        self.class_weight = class_weight
        self.source = _PyDatasetSource(data, shuffle) if self.what == "PyDataset" else _GeneratorSource(data)
        try:
            if self.source.num_batches is None and steps is None and self.what == "PyDataset":
                raise ValueError(f"{purpose}: the PyDataset {type(data).__name__} is endless (`num_batches` is None): "
                                 f"pass `{'steps_per_epoch' if purpose == 'fit' else 'steps'}`")
            self._epochs = _Epochs(self.source, steps)
            self.steps = steps or self.source.num_batches
            self.last_steps = 0
            # Keras looks at a generator's first batch before it starts; a model that waits for its
            # input shape is built on that batch's inputs (a PyDataset's batch 0 is read for it).
            if self.what == "generator" or model._core is None:
                first = self.source.first()
                if first is _END:
                    raise ValueError("When passing a Python generator to a model, the generator must yield at least "
                                     "one batch. Received an empty generator.")
                x = _unpack(first, self.what)[0]
                if model._core is None:
                    model._prep_x(x)
        except BaseException:
            self.source.close()
            raise

    def ready(self) -> bool:
        """Whether another epoch has data: False (with Keras' warning) once a generator ran dry."""
        if self.source.exhausted:
            if self.purpose == "fit" and not self._epochs.warned:
                self._epochs._warn()
            return False
        return True

    def _prep(self, batch):
        x, y, sw = _unpack(batch, self.what)
        if self.class_weight is not None and sw is not None:
            raise ValueError("You cannot specify `class_weight` and `sample_weight` at the same time.")
        return self.model._prep(x, y, sw, self.class_weight)

    def begin(self, mode: str) -> "_StreamPass":
        """A pass over the next epoch's batches ("train") or from the start ("test",
        "predict"), run batch by batch through the engine."""
        if mode != "train":
            self._epochs.restart()
        return _StreamPass(self, mode)

    def close(self) -> None:
        self.source.close()


class _StreamPass:
    """A pass over a generator or PyDataset with the interface of the engine's `_core.Pass`
    (`run`, `done`, `batch`, `logs`, `finish`, `rows_done`, `batch_rows`, `outputs`): each
    batch, fetched in the background, runs as one engine step (train_on_batch, test_on_batch
    or predict); the logs are the pass's, from sums the engine keeps over its batches."""

    def __init__(self, feed: "StreamFeed", mode: str):
        from rustkeras import _core

        self.feed = feed
        self.mode = mode
        self._batches = feed._epochs.batches()
        # The engine keeps the pass's running sums under this stream's identity, so that a
        # metric class's value is the pass's (AUC over every row), as for arrays.
        self._stream = _core.Stream()
        self._logs: List[float] = []
        self._seen = 0
        self._parts: List[list] = []
        self._bounds: List[Tuple[int, int]] = []
        self.batch = 0
        self.done = False

    def run(self, max_batches: Optional[int] = None, max_seconds: Optional[float] = None) -> int:
        start = time.monotonic()
        k = 0
        while not self.done and (max_batches is None or k < max_batches):
            try:
                batch, last = next(self._batches)
            except StopIteration:
                self.done = True
                break
            self._one(batch)
            k += 1
            self.done = bool(last)
            if max_seconds is not None and time.monotonic() - start >= max_seconds:
                break
        return k

    def _one(self, batch) -> None:
        model = self.feed.model
        core = model._core
        if self.mode == "predict":
            xs = model._prep_x(_unpack(batch, self.feed.what)[0])
            m = xs[0].shape[0]
            self._parts.append(list(core.predict(xs, m)))
        else:
            xs, ys, sws = self.feed._prep(batch)
            m = xs[0].shape[0]
            self._logs = list(core.stream_batch(self._stream, xs, ys, sws, self.mode == "train"))
        self._bounds.append((self._seen, self._seen + m))
        self._seen += m
        self.batch += 1

    def logs(self) -> List[float]:
        return list(self._logs)

    def finish(self) -> List[float]:
        self.feed.last_steps = self.batch
        if self.batch == 0:
            raise ValueError(
                f"{self.feed.purpose}: the {self.feed.what} yielded no batches"
                + (" (it ran out of data before; a generator is read once: loop over your data inside it, or "
                   "use a PyDataset)" if self.feed.what == "generator" else "")
            )
        return self.logs()

    @property
    def rows_done(self) -> int:
        return self._seen

    def batch_rows(self, b: int) -> Tuple[int, int]:
        return self._bounds[b]

    @property
    def outputs(self) -> list:
        if not self._parts:
            return []
        return [np.concatenate(parts, axis=0) for parts in zip(*self._parts)]


def _stream_feed(model, data, y, sample_weight, class_weight, steps, shuffle, batch_size, purpose: str):
    what = "PyDataset" if isinstance(data, PyDataset) else "generator"
    for name, value, description in (("y", y, "the targets"), ("sample_weight", sample_weight, "the sample weights")):
        if value is not None:
            raise ValueError(f"When providing `x` as a {what}, `{name}` should not be passed. Instead, {description} "
                             f"should be included as part of the {what}.")
    if class_weight is not None and what == "generator":
        raise ValueError(f"Argument `class_weight` is not supported for Python generator inputs. "
                         f"Received: class_weight={class_weight}")
    if shuffle and what == "generator":
        warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as a generator. "
                      "The generator is expected to yield already-shuffled data.", stacklevel=3)
    if batch_size is not None:
        warnings.warn(f"`batch_size={batch_size}` was passed, but will be ignored since the data `x` was provided as "
                      f"a {what}, which makes the batches.", stacklevel=3)
    return StreamFeed(model, data, steps, shuffle and what == "PyDataset", class_weight, purpose)


# -- what fit, evaluate and predict call ---------------------------------------------------------


def fit_feeds(model, x, y, sample_weight, class_weight, batch_size, shuffle, steps_per_epoch, validation_split,
              validation_data, validation_steps, validation_batch_size):
    """The training feed and the validation feed (or None) of `fit`'s arguments."""
    steps_per_epoch = _steps("steps_per_epoch", steps_per_epoch)
    validation_steps = _steps("validation_steps", validation_steps)
    val_arrays = None
    if is_stream(x):
        if validation_split:
            raise ValueError("Argument `validation_split` is only supported for tensors or NumPy arrays. "
                             f"Received: x of type {type(x).__name__}; pass `validation_data` instead.")
        train = _stream_feed(model, x, y, sample_weight, class_weight, steps_per_epoch, shuffle, batch_size, "fit")
    else:
        xs, ys, sws = model._prep(x, y, sample_weight, class_weight)
        n = xs[0].shape[0]
        if validation_data is None and validation_split:
            if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                    or not 0 < validation_split < 1:
                raise ValueError(f"Invalid value received for argument `validation_split`. Expected a float in (0, 1). "
                                 f"Received: validation_split={validation_split!r}")
            split = int(math.ceil(n * (1.0 - validation_split)))
            if split >= n or split == 0:
                raise ValueError(f"validation_split={validation_split} leaves no samples on one side of the split of "
                                 f"{n} samples")
            cut = lambda arrays, part: [None if a is None else a[part] for a in arrays]  # noqa: E731
            val_arrays = tuple(cut(a, slice(split, None)) for a in (xs, ys, sws))
            xs, ys, sws = (cut(a, slice(None, split)) for a in (xs, ys, sws))
            n = split
        bs = batch_size if batch_size is not None or steps_per_epoch is None else math.ceil(n / steps_per_epoch)
        train = ArrayFeed(model, xs, ys, sws, model._batch_for(bs, n), shuffle, steps_per_epoch)
    try:
        val = None
        if validation_data is not None:
            if is_stream(validation_data):
                val = _stream_feed(model, validation_data, None, None, None, validation_steps, False,
                                   validation_batch_size, "validation")
            elif not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("`validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, "
                                 "val_sample_weight), a generator or a PyDataset")
            else:
                val_arrays = model._prep(validation_data[0], validation_data[1],
                                         validation_data[2] if len(validation_data) == 3 else None, None)
        if val_arrays is not None:
            # Keras: `validation_batch_size or batch_size` (fit's argument), else sized by the steps, else 32.
            n_val = val_arrays[0][0].shape[0]
            vbs = validation_batch_size or batch_size
            if vbs is None and validation_steps is not None:
                vbs = math.ceil(n_val / validation_steps)
            val = ArrayFeed(model, *val_arrays, model._batch_for(vbs, n_val, "validation_batch_size"),
                            steps=validation_steps)
    except BaseException:
        train.close()
        raise
    return train, val


def evaluate_feed(model, x, y, sample_weight, batch_size, steps):
    """The feed of `evaluate`'s arguments."""
    steps = _steps("steps", steps)
    if is_stream(x):
        return _stream_feed(model, x, y, sample_weight, None, steps, False, batch_size, "evaluate")
    xs, ys, sws = model._prep(x, y, sample_weight, None)
    n = xs[0].shape[0]
    bs = batch_size if batch_size is not None or steps is None else math.ceil(n / steps)
    return ArrayFeed(model, xs, ys, sws, model._batch_for(bs, n), steps=steps)


def predict_feed(model, x, batch_size, steps):
    """The feed of `predict`'s arguments (a generator's or PyDataset's targets are not used)."""
    steps = _steps("steps", steps)
    if is_stream(x):
        return _stream_feed(model, x, None, None, None, steps, False, batch_size, "predict")
    xs = model._prep_x(x)
    n = xs[0].shape[0]
    bs = batch_size if batch_size is not None or steps is None else math.ceil(n / steps)
    return ArrayFeed(model, xs, None, None, model._batch_for(bs, n), steps=steps)
