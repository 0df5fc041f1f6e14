"""Data-parallel training on a Ray cluster: `RayTrainer`.

One replica of the model per Ray actor, each on its own shard of the data, with synchronous
gradient averaging at every step::

    trainer = RayTrainer(build, num_workers=4, batch_size_per_worker=64)
    history = trainer.fit(x, y, epochs=5)         # or trainer.fit(ray_dataset, label_column="y")
    model = trainer.model                          # a plain rustkeras model

How a step runs. Replica `i` computes the gradient of its batch in the engine
(`_core.Model.gradient_batch`: forward and backward, the optimizer not applied) and hands back
its rows `n_i` and `n_i * g_i`. The vectors are summed by a tree reduction through Ray's object
store: at each level, replica `2j` adds the vector of replica `2j + 1` (the data moves between
the actors, never through the driver), so after `ceil(log2 W)` levels replica 0 holds
`sum_i n_i g_i`. Every replica then applies `sum_i n_i g_i / sum_i n_i`, the mean gradient of the
global batch, with its own optimizer (`_core.Model.apply_gradients`). All replicas start from
the same state and apply the same vector, so they stay bit-identical, and the result is the
training of one process on the global batch `num_workers * batch_size_per_worker` (within
float rounding: the sum is taken in another order). The application of step `k` rides on the
call that computes step `k + 1`, so a step costs the driver `2W - 1` actor calls.

Communication per step: `2 (W - 1)` transfers of `4 P` bytes for a model of `P` trainable
parameters (`W - 1` up the tree, `W - 1` of the sum back out); between actors on one machine
the object store shares memory instead of copying. `ray.util.collective` is not used: its CPU
backend needs `pygloo`, which the package registries do not carry.

Shards. Arrays are split by rows in blocks of `batch_size_per_worker`: block `k` goes to
replica `k mod W`, so that without shuffling replica `i`'s `j`-th batch is rows
`[(jW + i) b, (jW + i + 1) b)` and the `W` batches of step `j` are exactly the global batch
`j` of single-process training. With `shuffle=True` each replica shuffles its own shard at each
epoch (seeded by the epoch and its rank). A `ray.data.Dataset` is split with
`streaming_split(W, equal=True)` and each replica iterates its part itself; nothing is
collected on the driver.

The driver keeps a model of its own: at the end of every epoch it takes replica 0's state
(weights, optimizer and engine counters, as the `.keras` format carries them), runs the
validation and the callbacks (History, EarlyStopping, ModelCheckpoint, ...) on it, and hands
that state to every replica at the start of the next epoch, so a callback that changes the
model or the learning rate is obeyed. State updates that are not gradients (BatchNormalization's
moving statistics) follow each replica's own batches within an epoch and are replica 0's at its
end; dropout masks are drawn per replica.

Failure. A replica that dies (its process killed, its node lost) or raises fails the fit with a
RuntimeError naming the worker; no call waits longer than `step_timeout` seconds. With a
`BackupAndRestore` callback the trainer instead starts new replicas from the state of the last
completed epoch and runs the epoch again (up to `max_restarts` times).
"""

import io
import math
import os
from typing import Any, Callable, List, Optional

import numpy as np

__all__ = ["RayTrainer"]


def _require_ray():
    try:
        import ray
    except ImportError:
        raise ImportError("rustkeras.distribute.RayTrainer needs Ray: pip install ray") from None
    return ray


def _call_build(build_fn: Callable, x, y):
    """A compiled model from `build_fn`, called as the scikit-learn wrappers call it
    (`build_fn(X=x, y=y)`) when it takes those arguments, else with none."""
    import inspect

    try:
        params = inspect.signature(build_fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if takes_any or ("X" in params and "y" in params):
        model = build_fn(X=x, y=y)
    else:
        model = build_fn()
    from rustkeras.models.training import Trainer

    if not isinstance(model, Trainer):
        raise TypeError(f"RayTrainer: `build_fn` must return a rustkeras model. Received: {type(model).__name__}")
    if getattr(model, "optimizer", None) is None:
        raise ValueError("RayTrainer: the model `build_fn` returns must be compiled (call model.compile)")
    return model


def _state_bytes(model) -> bytes:
    from rustkeras._saving import archive

    buf = io.BytesIO()
    archive.save_to_file_object(model, buf)
    return buf.getvalue()


def _load_state(model, state: bytes) -> None:
    from rustkeras._saving import archive

    archive.load_weights(model, io.BytesIO(state))


def _rows(arrays, rows):
    """`rows` of each array of a list (None entries stay None)."""
    return [None if a is None else np.ascontiguousarray(a[rows]) for a in arrays]


def _blocks(n: int, b: int, world: int, rank: int) -> np.ndarray:
    """The rows of replica `rank`: blocks `rank, rank + W, rank + 2W, ...` of `b` rows."""
    starts = np.arange(rank * b, n, world * b)
    if not len(starts):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(s, min(s + b, n)) for s in starts])


class _Replica:
    """One replica (a Ray actor's state; the actor class is made from it when Ray is first
    used, so that importing this module does not import Ray)."""

    def __init__(self, build_fn, rank: int, world: int, batch: int, sample, state: bytes, seed_offset: int):
        from rustkeras import config

        # The engine hands gradients out of a step on the CPU only (see the module's notes).
        config.set_backend("cpu")
        self.rank, self.world, self.batch = rank, world, batch
        self.model = _call_build(build_fn, *sample)
        _load_state(self.model, state)
        self.seed_offset = seed_offset
        self._offset_seed()
        self.data = None
        self.dataset = None

    def _offset_seed(self) -> None:
        # Dropout masks come from (seed, step): each replica draws its own.
        core = self.model._core
        seed, step, epoch = core.engine_state()
        core.set_engine_state((seed + self.rank * self.seed_offset) % 2**63, step, epoch)

    def ready(self) -> int:
        return self.rank

    def set_arrays(self, xs, ys, sws) -> int:
        self.data = (xs, ys, sws)
        return int(xs[0].shape[0])

    def set_dataset(self, shard, feature_columns, label_column) -> None:
        self.dataset = (shard, feature_columns, label_column)

    def begin_epoch(self, epoch: int, shuffle: bool, state: Optional[bytes]) -> int:
        """Loads the driver's state (when given) and orders this epoch's batches; returns the
        number of batches (-1 for a dataset, whose length is not known)."""
        from rustkeras import _core

        if state is not None:
            _load_state(self.model, state)
            self._offset_seed()
        self.stream = _core.Stream()
        self.logs = None
        self.seen = 0
        if self.dataset is not None:
            shard, _, _ = self.dataset
            kwargs = {"local_shuffle_buffer_size": 4 * self.batch, "local_shuffle_seed": epoch * 7919 + self.rank} \
                if shuffle else {}
            self.iter = iter(shard.iter_batches(batch_size=self.batch, batch_format="numpy", drop_last=False,
                                                **kwargs))
            return -1
        n = int(self.data[0][0].shape[0])
        order = np.arange(n)
        if shuffle:
            np.random.default_rng([epoch, self.rank, 20261201]).shuffle(order)
        self.order = order
        return math.ceil(n / self.batch)

    def _next(self, k: int):
        if self.dataset is not None:
            _, features, label = self.dataset
            try:
                batch = next(self.iter)
            except StopIteration:
                return None
            cols = features or [c for c in batch if c != label]
            xs = [np.asarray(batch[c]) for c in cols]
            return xs, [np.asarray(batch[label])], [None]
        rows = self.order[k * self.batch:(k + 1) * self.batch]
        if not len(rows):
            return None
        xs, ys, sws = self.data
        return _rows(xs, rows), _rows(ys, rows), _rows(sws, rows)

    def _apply(self, total, rows: int) -> None:
        if total is None or rows == 0:
            return
        grads, k = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            grads.append((total[k:k + size] / np.float32(rows)).reshape(shape))
            k += size
        self.model._core.apply_gradients(grads)

    def step(self, total, rows: int, k: int):
        """Applies the previous step's summed gradient `total` (of `rows` rows), then computes
        batch `k`'s: returns `(rows of the batch, n * gradient as one float32 vector)`, and
        `(rows, logs over the epoch so far)` as a second object."""
        self._apply(total, rows)
        batch = self._next(k)
        if batch is None:
            return None, (0, self.logs)
        xs, ys, sws = batch
        m = int(xs[0].shape[0])
        logs, grads = self.model._core.gradient_batch(self.stream, xs, ys, None if sws[0] is None else sws)
        self.logs = list(logs)
        self.seen += m
        self.shapes = [g.shape for g in grads]
        flat = np.concatenate([g.ravel() for g in grads]) * np.float32(m)
        return flat, (m, (self.seen, self.logs))

    def add(self, a, b):
        if a is None:
            return b
        if b is None:
            return a
        return a + b

    def finish(self, total, rows: int):
        self._apply(total, rows)
        return True

    def state(self) -> bytes:
        return _state_bytes(self.model)

    def weights(self) -> List[np.ndarray]:
        return self.model.get_weights()


_ACTOR = None


def _actor_class():
    global _ACTOR
    if _ACTOR is None:
        ray = _require_ray()
        _ACTOR = ray.remote(_Replica)
    return _ACTOR


class RayTrainer:
    """Trains a rustkeras model on `num_workers` Ray actors with synchronous gradient averaging
    (see the module's documentation).

    Args:
        build_fn: returns a compiled rustkeras model; called as `build_fn(X=x, y=y)` when it
            takes those arguments (as the scikit-learn wrappers call it), else with none.
        num_workers: replicas, one Ray actor each.
        batch_size_per_worker: rows per replica per step; the global batch is
            `num_workers * batch_size_per_worker`.
        threads_per_worker: CPUs each actor reserves and the size of its rayon pool.
        step_timeout: seconds any call to a replica may take before the fit fails.
        max_restarts: new starts from the last epoch's state after a replica fails, when a
            `BackupAndRestore` callback is given.
    """

    def __init__(self, build_fn: Callable, num_workers: int = 2, batch_size_per_worker: int = 32, *,
                 threads_per_worker: int = 1, step_timeout: float = 600.0, max_restarts: int = 2):
        if not callable(build_fn):
            raise TypeError(f"RayTrainer: `build_fn` must be callable. Received: {type(build_fn).__name__}")
        for arg, value in (("num_workers", num_workers), ("batch_size_per_worker", batch_size_per_worker),
                           ("threads_per_worker", threads_per_worker)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"Invalid value received for argument `{arg}`. Expected an integer > 0. "
                                 f"Received: {arg}={value!r}")
        if not (isinstance(step_timeout, (int, float)) and step_timeout > 0):
            raise ValueError(f"Invalid value received for argument `step_timeout`. Expected seconds > 0. "
                             f"Received: step_timeout={step_timeout!r}")
        self.build_fn = build_fn
        self.num_workers = int(num_workers)
        self.batch_size_per_worker = int(batch_size_per_worker)
        self.threads_per_worker = int(threads_per_worker)
        self.step_timeout = float(step_timeout)
        self.max_restarts = int(max_restarts)
        self.model = None
        self._workers: List[Any] = []
        # New starts after a replica failed (with BackupAndRestore), over the trainer's life.
        self.restarts = 0
        # Tests look at the replicas after a fit; otherwise their actors end with it.
        self._keep_replicas = False

    # -- replicas ----------------------------------------------------------------------

    def _get(self, refs, what: str, ranks: Optional[List[int]] = None):
        """`ray.get` with the trainer's timeout; a failed replica becomes a RuntimeError naming
        it (`ranks[i]` is the replica behind `refs[i]`)."""
        ray = _require_ray()
        single = not isinstance(refs, list)
        items = [refs] if single else refs
        try:
            out = ray.get(items, timeout=self.step_timeout)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(f"RayTrainer: {what} took more than step_timeout={self.step_timeout}s") from None
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError, ray.exceptions.ObjectLostError) as e:
            rank = self._failed_rank(items, ranks)
            who = f"worker {rank}" if rank is not None else "a worker"
            lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
            # Ray's first line says what happened to the actor, its last one the worker's own error.
            said = lines[0] if lines else ""
            if len(lines) > 1:
                said += f" ... {lines[-1]}"
            raise _WorkerFailed(f"RayTrainer: {who} of {self.num_workers} failed during {what}: "
                                f"{type(e).__name__}: {said}", rank) from e
        return out[0] if single else out

    @staticmethod
    def _failed_rank(refs, ranks) -> Optional[int]:
        """The replica of the first reference that is ready and holds an error."""
        ray = _require_ray()
        if ranks is None:
            return None
        for ref, rank in zip(refs, ranks):
            ready, _ = ray.wait([ref], timeout=0)
            if not ready:
                continue
            try:
                ray.get(ref, timeout=0)
            except Exception:
                return rank
        return None

    def _start(self, sample, state: bytes, data) -> None:
        ray = _require_ray()
        if not ray.is_initialized():
            ray.init()
        # An actor the cluster cannot place would wait forever: refuse what cannot fit.
        need = self.num_workers * self.threads_per_worker
        have = ray.cluster_resources().get("CPU", 0)
        if need > have:
            raise ValueError(f"RayTrainer: num_workers={self.num_workers} x threads_per_worker="
                             f"{self.threads_per_worker} needs {need} CPUs, but the Ray cluster has {have:g}")
        actor = _actor_class().options(
            num_cpus=self.threads_per_worker,
            runtime_env={"env_vars": {"RAYON_NUM_THREADS": str(self.threads_per_worker)}},
            max_restarts=0,
        )
        self._shutdown()
        self._workers = [actor.remote(self.build_fn, r, self.num_workers, self.batch_size_per_worker, sample, state,
                                      1_000_003) for r in range(self.num_workers)]
        self._track([w.ready.remote() for w in self._workers], "starting the replicas")
        kind, payload = data
        if kind == "arrays":
            xs, ys, sws = payload
            n = int(xs[0].shape[0])
            calls = []
            for r, w in enumerate(self._workers):
                rows = _blocks(n, self.batch_size_per_worker, self.num_workers, r)
                calls.append(w.set_arrays.remote(_rows(xs, rows), _rows(ys, rows), _rows(sws, rows)))
            self._track(calls, "sending the shards")
        else:
            shards, features, label = payload
            self._track([w.set_dataset.remote(s, features, label) for w, s in zip(self._workers, shards)],
                        "sending the dataset shards")

    def _track(self, refs, what: str):
        """`_get` of one call per replica, in rank order."""
        return self._get(refs, what, list(range(len(refs))))

    def _shutdown(self) -> None:
        if self._workers:
            ray = _require_ray()
            for w in self._workers:
                try:
                    ray.kill(w)
                except Exception:
                    pass
        self._workers = []

    def _reduce(self, refs):
        """Tree sum of the replicas' vectors: replica `2j` adds replica `2j + 1`'s, level by
        level; the reference of the sum (held by replica 0)."""
        level = list(enumerate(refs))
        while len(level) > 1:
            nxt = []
            for j in range(0, len(level), 2):
                if j + 1 < len(level):
                    (ra, a), (_, b) = level[j], level[j + 1]
                    nxt.append((ra, self._workers[ra].add.remote(a, b)))
                else:
                    nxt.append(level[j])
            level = nxt
        return level[0][1]

    # -- training ----------------------------------------------------------------------

    def fit(self, x=None, y=None, epochs: int = 1, shuffle: bool = True, callbacks=None, verbose=0,
            validation_data=None, sample_weight=None, label_column: Optional[str] = None,
            feature_columns: Optional[List[str]] = None):
        """Trains for `epochs` epochs on arrays `x`, `y` (split by rows among the replicas) or
        on a `ray.data.Dataset` `x` (`label_column` names the targets, by default "y" or
        "label"; `feature_columns` the model's inputs in order, by default every other column). Returns the driver's History;
        `self.model` is the trained model."""
        from rustkeras import callbacks as _callbacks
        from rustkeras.models import _adapter, _data
        from rustkeras.models.training import _callback_list, _pythonify

        ray = _require_ray()
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Invalid value received for argument `epochs`. Expected an integer >= 0. "
                             f"Received: epochs={epochs!r}")
        if shuffle not in (True, False):
            raise ValueError(f"Invalid value received for argument `shuffle`. Expected True or False. "
                             f"Received: shuffle={shuffle!r}")
        verbose = _data.verbose(verbose)
        is_dataset = type(x).__module__.startswith("ray.data") and hasattr(x, "streaming_split")
        W, b = self.num_workers, self.batch_size_per_worker
        if is_dataset:
            if y is not None or sample_weight is not None:
                raise ValueError("RayTrainer.fit: with a ray.data.Dataset the targets are its `label_column`; "
                                 "`y` and `sample_weight` must be None")
            first = x.take_batch(batch_size=min(b, 8), batch_format="numpy")
            if label_column is None:
                label_column = next((c for c in ("y", "label") if c in first), None)
                if label_column is None:
                    raise ValueError("RayTrainer.fit: a ray.data.Dataset without a 'y' or 'label' column needs "
                                     f"`label_column`, the column of the targets. Columns: {sorted(first)}")
            if label_column not in first:
                raise ValueError(f"RayTrainer.fit: label_column={label_column!r} is not a column of the dataset. "
                                 f"Columns: {sorted(first)}")
            cols = feature_columns or [c for c in first if c != label_column]
            sx = [np.asarray(first[c]) for c in cols]
            sample = (sx[0] if len(sx) == 1 else sx, np.asarray(first[label_column]))
        else:
            if x is None or y is None:
                raise ValueError("RayTrainer.fit needs `x` and `y` (arrays), or a ray.data.Dataset `x`")
            head = lambda a: [np.asarray(v)[:8] for v in a] if isinstance(a, (list, tuple)) else np.asarray(a)[:8]
            sample = (head(x), head(y))

        if self.model is None:
            self.model = _call_build(self.build_fn, *sample)
        model = self.model
        if is_dataset:
            data = ("dataset", (x.streaming_split(W, equal=True), feature_columns, label_column))
            steps = None
        else:
            feed, _ = _adapter.fit_feeds(model, x, y, sample_weight, None, W * b, shuffle, None, 0.0, None, None,
                                         None)
            n = feed.n
            data = ("arrays", feed.arrays)
            steps = max(math.ceil(len(_blocks(n, b, W, r)) / b) for r in range(W))
        if validation_data is not None and not (isinstance(validation_data, tuple) and len(validation_data) == 2):
            raise ValueError("RayTrainer.fit: `validation_data` must be a tuple (x_val, y_val); the driver "
                             "evaluates it at the end of every epoch")

        cbs = _callback_list(callbacks, model, add_history=True, verbose=verbose, epochs=epochs, steps=steps)
        layout = model._log_layout()
        backup = any(isinstance(c, _callbacks.BackupAndRestore) for c in cbs.callbacks)
        model.stop_training = False
        cbs.on_train_begin()
        initial = int(model.__dict__.pop("_initial_epoch", 0) or 0)
        state = _state_bytes(model)
        self._start(sample, state, data)
        logs = {}
        epoch = initial
        try:
            while epoch < epochs:
                cbs.on_epoch_begin(epoch)
                try:
                    raw = self._epoch(epoch, shuffle, _state_bytes(model), cbs,
                                      lambda v: _pythonify(model._split_logs(layout, v)))
                except _WorkerFailed:
                    if not backup or self.restarts >= self.max_restarts:
                        raise
                    # Start over from the state of the last completed epoch (the driver's).
                    self.restarts += 1
                    self._start(sample, _state_bytes(model), data)
                    continue
                _load_state(model, self._get(self._workers[0].state.remote(), "reading replica 0's state"))
                logs = _pythonify(model._split_logs(layout, raw))
                if validation_data is not None:
                    vx, vy = validation_data
                    vlogs = model.evaluate(vx, vy, batch_size=W * b, verbose=0, return_dict=True)
                    logs.update({"val_" + k: v for k, v in vlogs.items()})
                cbs.on_epoch_end(epoch, logs)
                epoch += 1
                if model.stop_training:
                    break
        finally:
            if not self._keep_replicas:
                self._shutdown()
        cbs.on_train_end(logs)
        return model.history

    @staticmethod
    def _combine(last) -> List[float]:
        """The logs over the replicas: each replica's logs over its rows so far, weighted by
        those rows (exact for the means: loss, accuracies, errors)."""
        seen = [lg for lg in last if lg is not None]
        if not seen:
            raise ValueError("RayTrainer.fit: the data gave no batch in this epoch")
        weights = np.array([s for s, _ in seen], dtype=np.float64)
        values = np.array([v for _, v in seen], dtype=np.float64)
        return list((weights[:, None] * values).sum(axis=0) / weights.sum())

    def _epoch(self, epoch: int, shuffle: bool, state: bytes, cbs, split) -> List[float]:
        """One epoch on the replicas, with the callbacks' batch hooks on the driver; returns
        the epoch's logs."""
        counts = self._track([w.begin_epoch.remote(epoch, shuffle, state) for w in self._workers],
                             f"the start of epoch {epoch + 1}")
        known = counts[0] >= 0
        total, rows, k = None, 0, 0
        last = [None] * self.num_workers
        while True:
            if known and k >= max(counts):
                break
            cbs.on_train_batch_begin(k)
            outs = [w.step.options(num_returns=2).remote(total, rows, k) for w in self._workers]
            metas = self._track([m for _, m in outs], f"step {k + 1} of epoch {epoch + 1}")
            rows = sum(m for m, _ in metas)
            for r, (m, lg) in enumerate(metas):
                if m:
                    last[r] = lg
            if rows == 0:
                total = None
                break
            total = self._reduce([g for g, _ in outs])
            # The step's update is applied with the next call; the logs are those of the step.
            cbs.on_train_batch_end(k, split(self._combine(last)))
            k += 1
        self._track([w.finish.remote(total, rows) for w in self._workers], f"the last step of epoch {epoch + 1}")
        return self._combine(last)


class _WorkerFailed(RuntimeError):
    def __init__(self, message: str, rank: Optional[int]):
        super().__init__(message)
        self.rank = rank
