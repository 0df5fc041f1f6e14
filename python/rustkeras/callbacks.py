"""Callbacks: History, EarlyStopping, ModelCheckpoint, BackupAndRestore, and the base class for
your own. Python is called only at epoch boundaries, and at batch boundaries only when a callback
overrides a batch hook."""

import json
import os
import shutil
import warnings
from typing import Any, Dict, List, Optional, Union

import numpy as np


class Callback:
    """Base class; override the hooks you need. `self.model` and `self.params` are set by fit."""

    def __init__(self):
        self.model = None
        self.params: Dict[str, Any] = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...

    def _has_batch_hooks(self) -> bool:
        names = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")
        return any(getattr(type(self), n) is not getattr(Callback, n) for n in names)


class History(Callback):
    """Records the epoch logs: `history.history['loss']`, `history.epoch`."""

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


class EarlyStopping(Callback):
    """Stops training when `monitor` has stopped improving for `patience` epochs.

    Args:
        monitor: the log to watch (default 'val_loss').
        min_delta: the smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        mode: 'min', 'max' or 'auto' (max for accuracy-like names, else min).
        baseline: a value the monitor must beat.
        restore_best_weights: restore the weights of the best epoch when stopping.
        start_from_epoch: epochs to wait before watching.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"Invalid value received for argument `mode`. Expected 'auto', 'min' or 'max'. Received: mode={mode!r}")
        if patience < 0:
            raise ValueError(f"Invalid value received for argument `patience`. Expected an integer >= 0. Received: patience={patience!r}")
        self.monitor = monitor
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(float(min_delta))
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        if mode == "auto":
            name = monitor[4:] if monitor.startswith("val_") else monitor
            mode = "max" if name.endswith(("acc", "accuracy", "auc")) else "min"
        self.mode = mode
        self.stopped_epoch = 0
        self.best_epoch = 0

    def _better(self, current, reference) -> bool:
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            import warnings

            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(logs or {})}",
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._better(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch > 0:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


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

    def _has_batch_hooks(self) -> bool:
        return self._counter is not None

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
        model.fit(x, y, epochs=100, callbacks=[BackupAndRestore("/tmp/backup")])
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

    def _has_batch_hooks(self) -> bool:
        return self._counter is not None

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
    """A callback from plain functions: `LambdaCallback(on_epoch_end=lambda epoch, logs: ...)`."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None):
        super().__init__()
        for name, fn in dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                             on_train_begin=on_train_begin, on_train_end=on_train_end,
                             on_train_batch_begin=on_train_batch_begin,
                             on_train_batch_end=on_train_batch_end).items():
            if fn is not None:
                setattr(self, name, fn)

    def _has_batch_hooks(self) -> bool:
        return "on_train_batch_begin" in self.__dict__ or "on_train_batch_end" in self.__dict__


class CallbackList:
    def __init__(self, callbacks: List[Callback], model, params):
        self.callbacks = callbacks
        for c in callbacks:
            c.set_model(model)
            c.set_params(params)

    def call(self, hook: str, *args):
        for c in self.callbacks:
            getattr(c, hook)(*args)

    def has_batch_hooks(self) -> bool:
        return any(c._has_batch_hooks() for c in self.callbacks)
