"""Callbacks with Keras 3's names and behaviour: `Callback` (the base class for your own),
`CallbackList`, `History`, `ProgbarLogger`, `EarlyStopping`, `ReduceLROnPlateau`,
`LearningRateScheduler`, `CSVLogger`, `TerminateOnNaN`, `LambdaCallback`, `ModelCheckpoint` and
`BackupAndRestore`.

`fit`, `evaluate` and `predict` run their batches in Rust. Python is entered only at the hooks
some callback defines: epoch hooks at epoch boundaries, and batch hooks (then every batch runs
on its own) only when a callback overrides one. The model is free while a callback runs, so a
callback may read or set weights, change `model.optimizer.learning_rate` (the next batch uses
it) or set `model.stop_training` (training stops after the current batch).

Example:
    >>> from rustkeras.callbacks import EarlyStopping, LambdaCallback
    >>> stop = EarlyStopping(monitor="loss", patience=2)
    >>> show = LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))
    >>> # model.fit(x, y, epochs=20, callbacks=[stop, show])
"""

import collections
import csv
import json
import os
import shutil
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

import numpy as np

from rustkeras._progbar import Progbar, _is_terminal

# The batch hooks of each mode; the second group are those that receive logs.
_BATCH_HOOKS = {
    "train": (("on_train_batch_begin", "on_batch_begin"), ("on_train_batch_end", "on_batch_end")),
    "test": (("on_test_batch_begin",), ("on_test_batch_end",)),
    "predict": (("on_predict_batch_begin",), ("on_predict_batch_end",)),
}


def _print(message: str) -> None:
    from rustkeras._progbar import _write

    _write(message + "\n")


class Callback:
    """Base class of callbacks; override the hooks you need.

    `self.model` is the model being trained, evaluated or run, and `self.params` a dict of
    `verbose`, `epochs` and `steps` (batches per epoch), both set before the first hook.
    `on_train_batch_begin`/`on_train_batch_end` call `on_batch_begin`/`on_batch_end` unless
    overridden (Keras' backward-compatible aliases).

    Example:
        >>> class Watch(Callback):
        ...     def on_train_batch_end(self, batch, logs=None):
        ...         if logs["loss"] < 0.01:
        ...             self.model.stop_training = True
    """

    def __init__(self):
        self.model = None
        self.params: Optional[Dict[str, Any]] = None

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: Dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...

    def _overrides(self, name: str) -> bool:
        """Whether this callback does something in hook `name` (a method of its own class,
        or a function set on the instance, as LambdaCallback does)."""
        return name in vars(self) or getattr(type(self), name, None) is not getattr(Callback, name)


def _pythonify(logs) -> Dict[str, Any]:
    """Logs as Keras hands them to callbacks: sorted by name, numbers as Python floats."""
    out: Dict[str, Any] = {}
    for k, v in sorted((logs or {}).items()):
        if isinstance(v, dict):
            out.update(_pythonify(v))
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[k] = float(v)
        else:
            out[k] = v
    return out


class CallbackList(Callback):
    """Calls a list of callbacks together (what `fit` uses; also for custom loops).

    Args:
        callbacks: a list of `Callback`s.
        add_history: add a `History` if the list has none.
        add_progbar: add a `ProgbarLogger` if the list has none.
        model: the model the callbacks see.
        **params: the callbacks' `params` (`verbose`, `epochs`, `steps`).

    Example:
        >>> cbs = CallbackList([History()], model=None, epochs=1, steps=1, verbose=0)
        >>> cbs.on_train_begin()
        >>> cbs.on_epoch_end(0, {"loss": 0.5})
        >>> cbs.callbacks[0].history
        {'loss': [0.5]}
    """

    def __init__(self, callbacks: Optional[Iterable[Callback]] = None, add_history: bool = False,
                 add_progbar: bool = False, model=None, **params):
        super().__init__()
        self.callbacks: List[Callback] = list(callbacks or [])
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"`callbacks` must be a list of Callback instances. Received: {c!r}")
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        self._progbar = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self.set_model(model)
        self.set_params(params)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def set_params(self, params) -> None:
        self.params = params
        if params:
            for c in self.callbacks:
                c.set_params(params)

    def set_model(self, model) -> None:
        if model is None:
            return
        self.model = model
        if self._history is not None:
            model.history = self._history
        for c in self.callbacks:
            c.set_model(model)

    def _call(self, hook: str, *args) -> None:
        for c in self.callbacks:
            getattr(c, hook)(*args)

    def on_train_begin(self, logs=None): self._call("on_train_begin", _pythonify(logs))
    def on_train_end(self, logs=None): self._call("on_train_end", _pythonify(logs))
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, _pythonify(logs))
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, _pythonify(logs))
    def on_batch_begin(self, batch, logs=None): self._call("on_batch_begin", batch, _pythonify(logs))
    def on_batch_end(self, batch, logs=None): self._call("on_batch_end", batch, _pythonify(logs))
    def on_train_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, _pythonify(logs))
    def on_train_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, _pythonify(logs))
    def on_test_begin(self, logs=None): self._call("on_test_begin", _pythonify(logs))
    def on_test_end(self, logs=None): self._call("on_test_end", _pythonify(logs))
    def on_test_batch_begin(self, batch, logs=None): self._call("on_test_batch_begin", batch, _pythonify(logs))
    def on_test_batch_end(self, batch, logs=None): self._call("on_test_batch_end", batch, _pythonify(logs))
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", _pythonify(logs))
    def on_predict_end(self, logs=None): self._call("on_predict_end", _pythonify(logs))
    def on_predict_batch_begin(self, batch, logs=None): self._call("on_predict_batch_begin", batch, _pythonify(logs))
    def on_predict_batch_end(self, batch, logs=None): self._call("on_predict_batch_end", batch, _pythonify(logs))

    def _batch_needs(self, mode: str):
        """For a loop in `mode` ("train", "test", "predict"): whether some callback needs
        every batch (it overrides a batch hook), and whether batch-end logs are needed. The
        progress bar alone does not need every batch: it is updated every `interval` seconds
        (what it would draw anyway)."""
        begin, end = _BATCH_HOOKS[mode]
        every = logs = False
        for c in self.callbacks:
            if type(c) is ProgbarLogger:
                logs = logs or c._shows_batches(mode)
                continue
            if any(c._overrides(h) for h in end):
                every = logs = True
            elif any(c._overrides(h) for h in begin):
                every = True
        return every, logs

    def _progress(self, mode: str) -> List["ProgbarLogger"]:
        """The progress bars that draw the batches of a loop in `mode` (on a terminal)."""
        return [c for c in self.callbacks if type(c) is ProgbarLogger and c._shows_batches(mode)]


class History(Callback):
    """Records the epoch logs: `history.history["loss"]`, `history.epoch`; `fit` returns it."""

    def __init__(self):
        super().__init__()
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        self.model.history = self


class ProgbarLogger(Callback):
    """Prints progress and metrics (what `verbose=1` and `verbose=2` show); `fit`, `evaluate`
    and `predict` add one when `verbose` is not 0. Validation inside `fit` is silent."""

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar: Optional[Progbar] = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        verbose = params["verbose"]
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params["epochs"]
        self.target = params["steps"]

    def _shows_batches(self, mode: str) -> bool:
        """Whether it draws the batches of a loop in `mode` (validation inside fit is silent)."""
        return self.verbose == 1 and not (mode == "test" and self._called_in_fit) and _is_terminal()

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset()

    def on_predict_begin(self, logs=None):
        self._reset()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize(logs)

    def on_predict_end(self, logs=None):
        self._finalize(logs)

    def _reset(self):
        self.seen = 0
        self.progbar = None

    def _bar(self) -> Progbar:
        if self.progbar is None:
            self.progbar = Progbar(target=self.target, verbose=self.verbose, unit_name="step",
                                   stateless_metrics=set())
        return self.progbar

    def _update(self, batch, logs):
        bar = self._bar()
        self.seen = batch + 1
        if self.verbose == 1:
            bar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finalize(self, logs):
        bar = self._bar()
        if self.target is None:
            self.target = bar.target = self.seen
        bar.update(self.target, list((logs or {}).items()), finalize=True)


def _direction(monitor: str) -> Optional[str]:
    """Whether a log improves going "up" or "down", from its name (None if unknown)."""
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss" or name.endswith("_loss"):
        return "down"
    up = ("acc", "auc", "precision", "recall", "f1_score", "fbeta_score", "iou", "r2_score",
          "cosine_similarity", "sensitivity", "specificity")
    down = ("error", "crossentropy", "hinge", "divergence", "poisson", "logcosh", "huber", "mse",
            "mae", "mape", "msle")
    if any(t in name for t in up):
        return "up"
    if any(t in name for t in down):
        return "down"
    return None


class MonitorCallback(Callback):
    """Base class of callbacks that watch a log for improvement (EarlyStopping,
    ReduceLROnPlateau).

    Args:
        monitor: the log to watch.
        mode: "min", "max", or "auto" (from the log's name: losses and errors go down,
            accuracies and the like go up; an unknown name is an error).
        baseline: the first value to beat (None: the first value seen).
        min_delta: the smallest change that counts as an improvement.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op: Optional[Callable[[Any, Any], bool]] = None

    def _set_monitor_op(self) -> None:
        mode = self.mode
        if mode == "auto":
            mode = {"down": "min", "up": "max"}.get(_direction(self.monitor))
            if mode is None:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but rustkeras "
                    "isn't able to automatically determine whether that metric should be maximized or "
                    "minimized. Pass `mode='max'` in order to monitor based on the highest metric value, "
                    "or pass `mode='min'` in order to use the lowest value."
                )
        if mode == "min":
            self.monitor_op = np.less
            self.min_delta = -abs(self.min_delta)
        else:
            self.monitor_op = np.greater
            self.min_delta = abs(self.min_delta)

    def _is_improvement(self, value, reference) -> bool:
        if reference is None:
            return True
        return bool(self.monitor_op(value - self.min_delta, reference))


class EarlyStopping(MonitorCallback):
    """Stops training when `monitor` has stopped improving.

    Args:
        monitor: the log to watch (default "val_loss").
        min_delta: the smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        verbose: 1 prints a message when it stops and when it restores weights.
        mode: "min", "max" or "auto" (see `MonitorCallback`).
        baseline: a value the monitor must beat; training stops if no epoch beats it within
            `patience` epochs.
        restore_best_weights: at the end of training, restore the weights of the best epoch.
        start_from_epoch: epochs to wait before watching.

    Example:
        >>> stop = EarlyStopping(monitor="loss", patience=3)
        >>> # model.fit(x, y, epochs=100, callbacks=[stop]); stop.stopped_epoch
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.start_from_epoch = start_from_epoch
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(logs)}",
                stacklevel=2,
            )
        return value


class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the learning rate by `factor` when `monitor` has stopped improving for
    `patience` epochs, down to `min_lr`; adds `learning_rate` to the epoch logs.

    Args:
        monitor: the log to watch (default "val_loss").
        factor: the factor (< 1) applied to the learning rate.
        patience: epochs without improvement before reducing.
        verbose: 1 prints a message at each reduction.
        mode: "min", "max" or "auto" (see `MonitorCallback`).
        min_delta: the smallest change that counts as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the lower bound of the learning rate.

    Example:
        >>> reduce = ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=5, min_lr=0.001)
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__(monitor, mode, min_delta=min_delta)
        if kwargs:
            raise ValueError(f"Unrecognized argument(s) for ReduceLROnPlateau: {sorted(kwargs)}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _reduce(self, optimizer, epoch) -> bool:
        old = float(optimizer.learning_rate)
        if old <= np.float32(self.min_lr):
            return False
        new = max(old * self.factor, self.min_lr)
        optimizer.learning_rate = new
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
        return True

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                f"available. Available metrics are: {','.join(logs)}.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(self.model.optimizer, epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of every epoch to `schedule(epoch, lr)` (or
    `schedule(epoch)`), and adds `learning_rate` to the epoch logs.

    Args:
        schedule: a function of the epoch index (from 0) and the current learning rate,
            returning the new rate (a float).
        verbose: 1 prints the rate it sets.

    Example:
        >>> import math
        >>> decay = LearningRateScheduler(lambda epoch, lr: lr if epoch < 10 else lr * math.exp(-0.1))
    """

    def __init__(self, schedule: Callable, verbose: int = 0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # the one-argument form
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr}")
        optimizer.learning_rate = lr
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """Writes each epoch's logs as a row of a CSV file (columns: `epoch`, then the log names
    in sorted order, with `val_` columns even without validation, filled with "NA").

    Args:
        filename: the file to write.
        separator: the string between fields.
        append: append to an existing file (its header is kept) instead of overwriting it.

    Example:
        >>> logger = CSVLogger("training.log", separator=";", append=True)
    """

    def __init__(self, filename, separator: str = ",", append: bool = False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys: Optional[List[str]] = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, "r", encoding="utf-8") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="", encoding="utf-8")
        self.writer = None
        self.keys = None

    @staticmethod
    def _cell(value):
        if isinstance(value, str):
            return value
        if isinstance(value, collections.abc.Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
            return f'"[{", ".join(map(str, value))}]"'
        return value

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            dialect = type("Dialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, self._cell(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class TerminateOnNaN(Callback):
    """Stops training after the batch whose loss is NaN or infinite.

    Args:
        raise_error: raise a RuntimeError instead of stopping gracefully (then
            `on_train_end` is not called).
    """

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or np.isfinite(loss):
            return
        if self.raise_error:
            raise RuntimeError(
                f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. Terminating training immediately."
            )
        _print(f"Batch {batch}: Invalid loss, terminating training")
        self.model.stop_training = True


def _monitor_mode(monitor: str, mode: str) -> str:
    """'min' or 'max' for a monitored log; 'auto' is 'max' for accuracy-like names (Keras' rule:
    'acc' in the name, or an F-measure), else 'min'."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"Invalid value received for argument `mode`. Expected 'auto', 'min' or 'max'. "
                         f"Received: mode={mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor or monitor.startswith("fmeasure") else "min"


def _check_save_freq(save_freq) -> None:
    if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, (int, np.integer))
                                 or save_freq <= 0):
        raise ValueError(f"Invalid value for argument `save_freq`. Received: save_freq={save_freq!r}. Expected "
                         "either 'epoch' or a positive integer (a number of batches).")


class _BatchCounter:
    """Counts the batches seen across epochs and says when `every` of them have passed."""

    def __init__(self, every: int):
        self.every = int(every)
        self.since_last = 0
        self.last_batch = -1

    def new_epoch(self) -> None:
        self.last_batch = -1

    def due(self, batch: int) -> bool:
        self.since_last += batch - self.last_batch if batch > self.last_batch else batch + 1
        self.last_batch = batch
        if self.since_last >= self.every:
            self.since_last = 0
            return True
        return False


class ModelCheckpoint(Callback):
    """Saves the model (or its weights) during training.

    Args:
        filepath: where to save: a `.keras` path (a `.weights.h5` path with
            `save_weights_only=True`); it may hold `str.format` fields filled from the epoch
            (1-based), the batch (1-based, with a batch `save_freq`) and the logs, e.g.
            `"w.{epoch:02d}-{val_loss:.2f}.keras"`. Missing directories are created.
        monitor: the log that decides the best model (default 'val_loss').
        verbose: 1 prints a line when a model is saved.
        save_best_only: save only when `monitor` improves on the best value so far (the file is
            then replaced each time unless `filepath` names the epoch).
        save_weights_only: save the weights (`model.save_weights`) instead of the whole model.
        mode: 'min', 'max' or 'auto' (max for accuracy-like names, else min).
        save_freq: 'epoch' (at the end of every epoch) or a number of batches (at the end of
            every that many batches, counted across epochs; the logs are the running means).
        initial_value_threshold: the value `monitor` must beat before the first save (with
            `save_best_only`).

    Example:
        model.fit(x, y, validation_split=0.2, epochs=10,
                  callbacks=[ModelCheckpoint("best.keras", save_best_only=True)])
    """

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq: Union[str, int] = "epoch",
                 initial_value_threshold: Optional[float] = None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        _check_save_freq(save_freq)
        self.save_freq = save_freq
        self.mode = _monitor_mode(monitor, mode)
        if initial_value_threshold is not None:
            self.best = float(initial_value_threshold)
        else:
            self.best = np.inf if self.mode == "min" else -np.inf
        if self.save_weights_only:
            if not self.filepath.endswith(".weights.h5"):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided "
                                 f"must end in `.weights.h5` (Keras weights format). Received: "
                                 f"filepath={self.filepath}")
        elif self.filepath.endswith(".h5"):
            raise NotImplementedError("ModelCheckpoint: rustkeras does not write the legacy .h5 format (it reads it); "
                                      f"save to a `.keras` path. Received: filepath={self.filepath}")
        elif not self.filepath.endswith(".keras"):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format). Received: "
                             f"filepath={self.filepath}")
        self._counter = None if save_freq == "epoch" else _BatchCounter(save_freq)
        self._current_epoch = 0
        if self._counter is not None:
            # A batch hook only when saving every so many batches: otherwise fit calls no
            # Python between batches.
            self.on_train_batch_end = self._batch_end

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        if self._counter is not None:
            self._counter.new_epoch()

    def _batch_end(self, batch, logs=None):
        if self._counter.due(batch):
            self._save(self._current_epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _file_path(self, epoch: int, batch: Optional[int], logs: Dict[str, Any]) -> str:
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError, ValueError) as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e!r} (the '
                           f"fields available are epoch{', batch' if batch is not None else ''} and the logs "
                           f"{sorted(logs)})") from None

    def _save(self, epoch: int, batch: Optional[int], logs: Dict[str, Any]) -> None:
        path = self._file_path(epoch, batch, logs)
        where = f"Epoch {epoch + 1}" + (f", batch {batch + 1}" if batch is not None else "")
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available, skipping.", stacklevel=2)
                return
            improved = current < self.best if self.mode == "min" else current > self.best
            if not improved:
                if self.verbose > 0:
                    print(f"\n{where}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"\n{where}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, saving model to "
                      f"{path}")
            self.best = float(current)
        elif self.verbose > 0:
            print(f"\n{where}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)


class BackupAndRestore(Callback):
    """Backs up the training state so that an interrupted `fit` resumes where it stopped.

    At the end of every epoch (or every `save_freq` batches) the model's weights, its
    optimizer's state and its training counters are saved in `backup_dir` (atomically). When
    `fit` starts and a backup is there, the model takes it back and training resumes at the
    epoch after the one backed up, drawing the same shuffles and dropout masks an uninterrupted
    run would (for a backup taken at an epoch's end; from a backup taken mid-epoch, as Keras,
    the epoch is run again from its start). The backup is deleted when `fit` completes.

    Args:
        backup_dir: the directory of the backup (`latest.weights.h5`, `training_metadata.json`).
        save_freq: 'epoch' or a number of batches.
        double_checkpoint: also keep the previous backup (`*.bkp`), used when the latest one
            cannot be read.
        delete_checkpoint: delete the backup directory when training ends normally.

    Example:
        model.fit(x, y, epochs=100, callbacks=[BackupAndRestore("backup")])
    """

    def __init__(self, backup_dir, save_freq: Union[str, int] = "epoch", double_checkpoint: bool = False,
                 delete_checkpoint: bool = True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        _check_save_freq(save_freq)
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._weights_path = os.path.join(self.backup_dir, "latest.weights.h5")
        self._metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._counter = None if save_freq == "epoch" else _BatchCounter(save_freq)
        self._current_epoch = 0
        if self._counter is not None:
            self.on_train_batch_end = self._batch_end

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError("To use the BackupAndRestore callback, your model must be built before you call "
                             f"`fit()`. Model {self.model.name} is unbuilt.")
        try:
            self._restore(self._weights_path, self._metadata_path)
        except (OSError, ValueError):
            previous = self._weights_path + ".bkp"
            if not os.path.exists(previous):
                raise
            warnings.warn(f"BackupAndRestore: the latest backup in {self.backup_dir} cannot be read; restoring the "
                          "previous one.", stacklevel=2)
            self._restore(previous, self._metadata_path + ".bkp")

    def _restore(self, weights_path: str, metadata_path: str) -> None:
        from rustkeras._saving import weights_h5

        if not os.path.exists(weights_path):
            return
        weights_h5.load_file(self.model, weights_path)
        # The weights file carries the epoch it was saved at; Keras' JSON beside it is read
        # for a backup rustkeras did not write.
        metadata = weights_h5.training_metadata(weights_path)
        if metadata is None and os.path.exists(metadata_path):
            with open(metadata_path) as f:
                try:
                    metadata = json.loads(f.read(1 << 16))
                except ValueError as e:
                    raise ValueError(f"BackupAndRestore: {metadata_path} is not valid JSON ({e})") from None
        epoch = metadata.get("epoch") if isinstance(metadata, dict) else None
        if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0:
            self._current_epoch = epoch
            self.model._initial_epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        if self._counter is not None:
            self._counter.new_epoch()

    def _batch_end(self, batch, logs=None):
        if self._counter.due(batch):
            self._backup(self._current_epoch, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._backup(epoch + 1, 0)

    def _backup(self, epoch: int, batch: int) -> None:
        """Saves the weights with the epoch and batch in the same file (atomically), then Keras'
        `training_metadata.json` beside it."""
        from rustkeras._saving import files, weights_h5

        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for path in (self._weights_path, self._metadata_path):
                if os.path.exists(path):
                    with files.atomic_path(path + ".bkp") as tmp:
                        shutil.copyfile(path, tmp)
        metadata = {"epoch": epoch, "batch": batch}
        weights_h5.save_file(self.model, self._weights_path, training_metadata=metadata)
        with files.atomic_path(self._metadata_path) as tmp:
            with open(tmp, "w") as f:
                json.dump(metadata, f)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir)


class LambdaCallback(Callback):
    """A callback from plain functions: `on_epoch_begin(epoch, logs)`, `on_epoch_end(epoch,
    logs)`, `on_train_begin(logs)`, `on_train_end(logs)`, `on_train_batch_begin(batch, logs)`,
    `on_train_batch_end(batch, logs)`, and any other hook by keyword.

    Example:
        >>> show = LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback: unknown hook `{name}`")
            if fn is not None:
                setattr(self, name, fn)


__all__ = [
    "Callback", "CallbackList", "CSVLogger", "EarlyStopping", "History", "LambdaCallback",
    "LearningRateScheduler", "MonitorCallback", "ProgbarLogger", "ReduceLROnPlateau", "TerminateOnNaN",
]
