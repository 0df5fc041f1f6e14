"""What every model shares: compile, fit, evaluate, predict, train/test on a batch, weights,
summary. `Model` (functional) and `Sequential` differ only in how they build the engine graph.

The batch loops run in Rust with the GIL released (`_core.Pass`). Python runs between
batches only where it must: when a callback defines a batch hook (or the learning rate is a
Python callable) every batch runs on its own and the hooks are called with the model free;
otherwise a whole epoch is one call (returning every `Progbar.interval` seconds when a
progress bar is drawn on a terminal). Ctrl-C stops any loop between two batches with
KeyboardInterrupt.
"""

import functools
import threading
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from rustkeras import _core, _seed
from rustkeras import callbacks as _callbacks
from rustkeras.callbacks import _pythonify
from rustkeras import config as _config
from rustkeras import losses as _losses
from rustkeras import metrics as _metrics
from rustkeras import optimizers as _optimizers
from rustkeras.layers._user import add_loss as _user_add_loss
from rustkeras.layers._user import sublayers as _user_sublayers
from rustkeras.layers.base import Layer
from rustkeras.models import _adapter
from rustkeras.models import _compile
from rustkeras.models import _data

Arrays = List[Optional[np.ndarray]]

# Threads. Each engine call holds the engine model's lock (see `PyModel` in
# src/python/model.rs), so single calls from several threads (`predict`, `predict_on_batch`,
# `train_on_batch`, weights) wait for each other and never race. A `fit` or an `evaluate`,
# though, is many engine calls (passes, callbacks between batches) over state kept in Python
# and in the engine between them (a pass's running sums, `_fits_running`, data kept on the
# GPU until the fit ends); another thread's fit or evaluation in between would mix into it.
# So a model runs at most one of them at a time: the thread that runs one owns the model
# until it returns (its callbacks may evaluate or fit the model again: ownership is per
# thread and counts nested calls), and a fit or evaluate from another thread meanwhile
# raises RuntimeError instead of waiting (waiting on a training that may be long would look
# like a hang). `_OWNER_LOCK` guards the owner record, held only to test and set it.
_OWNER_LOCK = threading.Lock()


def _one_thread(what: str, doing: str):
    """Makes a Trainer method own the model while it runs (see above)."""

    def wrap(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            me = threading.get_ident()
            with _OWNER_LOCK:
                owner = self.__dict__.get("_owner")
                if owner is not None and owner[0] != me:
                    raise RuntimeError(
                        f"{what}: model '{getattr(self, 'name', type(self).__name__)}' is already being {owner[1]} "
                        f"in another thread; a model runs one fit or evaluate at a time (use one model per thread)")
                self.__dict__["_owner"] = (me, owner[1] if owner else doing, (owner[2] if owner else 0) + 1)
            try:
                return method(self, *args, **kwargs)
            finally:
                with _OWNER_LOCK:
                    me, doing_now, depth = self.__dict__["_owner"]
                    self.__dict__["_owner"] = (me, doing_now, depth - 1) if depth > 1 else None

        return run

    return wrap


class Trainer:
    """The training and inference API of a built model.

    A subclass sets `self._core` (the engine model) and `self._layers` (in weight order),
    calls `_record_weights` after building, and provides `_input_names`, `_output_names`,
    `_input_owner`, `_input_validators` and `_outputs_as_list`.
    """

    def _init_trainer(self, name: str, trainable: bool) -> None:
        self.name = name
        self.trainable = trainable
        self._core = None
        self._layers: List[Layer] = []
        # Per layer, the weights it declared in this model's graph (a layer may be rebuilt
        # into another model later; these stay this model's variables).
        self._weight_map: List[Tuple[Layer, list]] = []
        self._compile_args: Optional[Dict[str, Any]] = None
        self._compile_raw: Optional[Dict[str, Any]] = None
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.stop_evaluating = False
        self.stop_predicting = False
        self.history = None

    # -- what subclasses provide ----------------------------------------------------------

    def _input_names(self) -> List[str]:
        raise NotImplementedError

    def _output_names(self) -> List[str]:
        raise NotImplementedError

    def _input_owner(self, i: int) -> str:
        """The layer name an input shape error names."""
        raise NotImplementedError

    def _input_validators(self, i: int) -> List[Callable[[np.ndarray], None]]:
        """Checks of raw input data (an Embedding's indices) before it becomes float32."""
        return []

    def _outputs_as_list(self) -> bool:
        return len(self._output_names()) > 1

    def _input_dtype(self, i: int) -> str:
        """The dtype input `i` declares (`Input(dtype="int32")`); the engine gets float32."""
        return "float32"

    def _require_built(self, x: Optional[np.ndarray] = None) -> None:
        if self._core is None:
            raise ValueError(f'Model "{self.name}" has not been built yet.')

    @property
    def built(self) -> bool:
        return self._core is not None

    def __reduce__(self):
        """Pickling and `copy.deepcopy` go through the model's `.keras` bytes, as in Keras 3 (see
        `rustkeras.models._pickle`): the engine's objects never pickle."""
        from rustkeras.models import _pickle

        return _pickle.reduce(self)

    def _fixed_batch_size(self) -> Optional[int]:
        """The batch size the model's inputs fix (`Input(batch_shape=...)`), else None."""
        return None

    # -- stateful layers ------------------------------------------------------------------

    def _stateful_batch(self) -> Optional[int]:
        """The batch size stateful layers were built for, or None without stateful layers."""
        if not any(getattr(l, "stateful", False) for l in _with_inner_layers(self._layers)):
            return None
        return self._fixed_batch_size()

    def _batch_for(self, batch_size, n: int, arg: str = "batch_size") -> int:
        """Validated batch size; with stateful layers it defaults to, and must equal, the
        batch size they carry states for, and must divide the number of samples."""
        fixed = self._stateful_batch()
        if fixed is None:
            return _data.batch_size(batch_size)
        bs = _data.batch_size(batch_size, fixed)
        if bs != fixed or n % fixed:
            raise ValueError(
                f'Model "{self.name}" has stateful layers built for batch size {fixed}: `{arg}` must be {fixed} '
                f"and the number of samples a multiple of it. Received: {arg}={bs} for {n} samples"
            )
        return bs

    def reset_states(self) -> None:
        """Zeros the states of every stateful layer (Keras 1/2's `model.reset_states()`)."""
        for layer in self._layers:
            reset = getattr(layer, "reset_states", None)
            if reset is not None and getattr(layer, "stateful", False):
                reset()

    def _held_weights(self) -> list:
        """Before a (re)build: for each layer that already has weights (in this model's
        previous engine model or in another model), where they live."""
        return [(layer, layer._core, [(w.var, w.shape) for w in layer._weights])
                for layer in _with_inner_layers(self._layers) if layer._core is not None and layer._weights]

    def _finish_build(self, graph, inputs: List[int], outputs: List[int], held) -> None:
        """Makes the engine model of a built graph and binds the layers to it (initialising
        their weights). A layer whose weights already exist (`held`, from `_held_weights`)
        keeps them: the new model's variables become those very variables, shared with the
        model that holds them, so a layer used by several models has one set of weights, on
        one device, that each of them reads and trains."""
        core = _core.Model(graph, inputs, outputs, _seed.next_seed())
        core.set_device(_config.backend())
        core.set_output_names(self._output_names())
        for layer in self._layers:
            layer._attach(core)
        for layer, old_core, old in held:
            if [shape for _, shape in old] == [w.shape for w in layer._weights]:
                for w, (var, _) in zip(layer._weights, old):
                    core.share_var(w.var, old_core, var)
        losses = [n for layer in _with_inner_layers(self._layers) + [self.__dict__.get("_call_layer")]
                  if layer is not None and layer.__dict__.get("_losses_graph") is graph
                  for n in layer.__dict__.get("_traced_losses", [])]
        if losses:
            core.set_extra_losses(losses)
        self._core = core
        self._record_weights()

    def _record_weights(self) -> None:
        """Remembers, after a build, which of this model's variables hold each layer's weights
        (in `model.layers` order)."""
        self._weight_map = [(layer, list(layer._weights)) for layer in self._layers]

    # -- compile --------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True, **kwargs):
        """Configures training.

        Args:
            optimizer: a name or an optimizer object.
            loss: a name or function (every output), a list (one per output) or a dict by output
                name; None in a list or dict: that output has no loss.
            metrics: a list, a list of lists (one per output) or a dict by output name, of metric
                names, classes, instances or functions; sample weights do not apply to them.
            loss_weights: a list or a dict by output name: each output loss's factor in the total.
            weighted_metrics: as `metrics`, weighted by the sample weights (and class weights).
        """
        for k in ("sample_weight_mode", "target_tensors"):
            if kwargs.pop(k, None) is not None:
                raise NotImplementedError(f"compile: the argument `{k}` is not supported by rustkeras.")
        if kwargs:
            raise ValueError(f"Invalid keyword argument(s) in `compile()`: {tuple(kwargs)}")
        has_extra = self._has_added_losses()
        if loss is None and not has_extra:
            raise ValueError("compile: a `loss` is required for training. Received: loss=None")
        names = self._output_names()
        args = {
            "losses": _compile.losses(loss, names, allow_none=has_extra),
            "loss_weights": _compile.loss_weights(loss_weights, names),
            "metrics": _compile.metrics(metrics, names),
            "weighted_metrics": _compile.metrics(weighted_metrics, names, "weighted_metrics"),
        }
        self.optimizer = _optimizers.get(optimizer)
        self.loss = loss
        self._compile_args = args
        # What compile was given, for the saved `compile_config`.
        self._compile_raw = {"loss": loss, "metrics": metrics, "loss_weights": loss_weights,
                             "weighted_metrics": weighted_metrics}
        if self._core is not None:
            self._compile_core()

    def _has_added_losses(self) -> bool:
        """Whether built layers added losses with `add_loss` (then `compile(loss=None)` is fine)."""
        layers = _with_inner_layers(self._layers) + [self.__dict__.get("_call_layer")]
        return any(l is not None and l.__dict__.get("_traced_losses") for l in layers)

    def _compile_core(self) -> None:
        # compile(optimizer=None) (as Keras 3 allows) is for evaluate and predict: the engine gets
        # a still optimizer, and fit refuses to run (`_require_optimizer`).
        optimizer = self.optimizer if self.optimizer is not None else _optimizers.SGD(learning_rate=0.0)
        kind, params = optimizer._spec()
        regs = [r for layer in self._layers for r in layer._regularizers()]
        a = self._compile_args
        if len(a["losses"]) != self._core.num_outputs():
            raise ValueError(f"compile: the model has {self._core.num_outputs()} outputs, but was compiled "
                             f"for {len(a['losses'])}")
        losses, metrics, weighted = self._traced_entries(a)
        self._core.compile(losses, list(a["loss_weights"]), metrics, kind, list(params), regs, weighted)
        # model.optimizer.learning_rate / .iterations read and steer the model's own optimizer.
        if self.optimizer is not None:
            self.optimizer._model_core = self._core
            self.optimizer._install_schedule()

    def _traced_entries(self, a):
        """compile's losses and metrics for the engine: names as they are, built-in metric
        objects described, and each function (or Loss/Metric object) traced on symbolic tensors
        of the output's shapes."""
        losses, metrics, weighted = [], [], []
        for i, (loss, ms, wms) in enumerate(zip(a["losses"], a["metrics"], a["weighted_metrics"])):
            pred_dims = list(self._core.output_dims(i))
            every = list(ms) + list(wms)
            sparse = isinstance(loss, str) and _losses.is_sparse(loss) or (
                loss is None and every and all(_metrics.is_sparse(m) for m in every))
            true_dims = pred_dims[:-1] if sparse else pred_dims
            if loss is None or isinstance(loss, str):
                losses.append(loss)
            else:
                losses.append(_compile.trace_function(_losses.callable_of(loss), _compile.entry_name(loss),
                                                      true_dims, pred_dims))
            metrics.append([_compile.engine_entry(m, true_dims, pred_dims) for m in ms])
            weighted.append([_compile.engine_entry(m, true_dims, pred_dims) for m in wms])
        return losses, metrics, weighted

    def _require_compiled(self) -> None:
        if self._compile_args is None:
            raise ValueError("You must call `compile()` before using the model for training or evaluation.")

    def _require_optimizer(self, what: str) -> None:
        if self.optimizer is None:
            raise ValueError(f"{what}: the model was compiled with optimizer=None, which allows evaluate and predict "
                             "only. Compile it with an optimizer (e.g. optimizer='rmsprop') to train it.")

    @property
    def metrics_names(self) -> List[str]:
        self._require_compiled()
        if self._core is not None:
            return list(self._core.log_names())
        return ["loss"] + [m if isinstance(m, str) else _compile.entry_name(m)
                           for key in ("metrics", "weighted_metrics") for ms in self._compile_args[key] for m in ms]

    def _log_layout(self) -> List[Tuple[str, Tuple[int, ...]]]:
        """Each log's name and the dims of its value (`()` for a scalar)."""
        return [(n, tuple(d)) for n, d in zip(self.metrics_names, self._core.log_dims())]

    @staticmethod
    def _split_logs(layout, vals) -> Dict[str, Any]:
        """The engine's flat log values by name: a float, or a float32 array for a metric with
        one value per threshold or per class (F1Score, Precision with several thresholds)."""
        out: Dict[str, Any] = {}
        k = 0
        for name, dims in layout:
            if dims:
                n = int(np.prod(dims))
                out[name] = np.asarray(vals[k:k + n], dtype=np.float32).reshape(dims)
                k += n
            else:
                out[name] = vals[k]
                k += 1
        return out

    def _logs(self, vals) -> Dict[str, Any]:
        return self._split_logs(self._log_layout(), vals)

    # -- data -----------------------------------------------------------------------------

    def _prep_x(self, x) -> List[np.ndarray]:
        if self._core is None and not isinstance(x, dict):
            first = x[0] if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray) else x
            self._require_built(_data.numeric("x", first))
        self._require_built()
        names = self._input_names()
        out = []
        for i, data in enumerate(_data.by_name("x", x, names, "input")):
            arr = _data.numeric(_data.entry_name("x", names, i), data)
            expected = tuple(self._core.input_dims(i))
            if tuple(arr.shape[1:]) != expected:
                raise ValueError(
                    f'Input {i} of layer "{self._input_owner(i)}" is incompatible with the layer: '
                    f"expected shape={(None,) + expected}, found shape={arr.shape}"
                )
            if arr.shape[0] == 0:
                raise ValueError("Expected non-empty input data `x`, received an array with 0 samples")
            for check in self._input_validators(i):
                check(arr)
            dtype = self._input_dtype(i)
            if dtype != "float32" and np.dtype(dtype).kind in "iub" and arr.dtype != np.dtype(dtype):
                # An integer input (`Input(dtype="int32")`) takes its data cast as Keras casts it.
                arr = arr.astype(dtype)
            out.append(np.ascontiguousarray(arr, dtype=np.float32))
        _data.check_cardinality(out)
        return out

    def _prep_y(self, y, n: int) -> Arrays:
        names = self._output_names()
        losses = self._compile_args["losses"]
        out: Arrays = []
        for i, data in enumerate(_data.by_name("y", y, names, "output", missing_ok=True)):
            if not self._core.has_labels(i):
                out.append(None)
                continue
            out.append(_data.prep_y(data, _data.entry_name("y", names, i), n, tuple(self._core.label_dims(i)),
                                    tuple(self._core.output_dims(i)), losses[i]))
        return out

    def _prep_weights(self, ys: Arrays, n: int, sample_weight, class_weight) -> Arrays:
        names = self._output_names()
        if sample_weight is None:
            sws: Arrays = [None] * len(names)
        elif isinstance(sample_weight, dict) or isinstance(sample_weight, (list, tuple)) and len(names) > 1:
            sws = _data.by_name("sample_weight", sample_weight, names, "output", missing_ok=True)
        else:
            # One array weighs the samples of every output, as in Keras.
            sws = [sample_weight] * len(names)
        sws = [None if v is None else _data.prep_sample_weight(v, _data.entry_name("sample_weight", names, i), n)
               for i, v in enumerate(sws)]
        if class_weight is not None:
            if len(names) > 1:
                raise ValueError("`class_weight` is only supported for Models with a single output.")
            cw = _data.class_weights(class_weight, ys[0], n, self._compile_args["losses"][0])
            sws[0] = cw if sws[0] is None else np.ascontiguousarray(sws[0] * cw)
        return sws

    def _prep(self, x, y, sample_weight, class_weight):
        xs = self._prep_x(x)
        n = xs[0].shape[0]
        ys = self._prep_y(y, n)
        return xs, ys, self._prep_weights(ys, n, sample_weight, class_weight)

    def _result(self, logs: Dict[str, float], return_dict: bool):
        names = self.metrics_names
        if return_dict:
            return {k: logs[k] for k in names}
        vals = [logs[k] for k in names]
        return vals[0] if len(vals) == 1 else vals

    def _structure_outputs(self, outs: list):
        return list(outs) if self._outputs_as_list() else outs[0]

    # -- training -------------------------------------------------------------------------

    @_one_thread("fit", "trained")
    def fit(self, x=None, y=None, batch_size=None, epochs=None, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1, nb_epoch=None, **kwargs):
        """Trains for `epochs` (Keras 1: `nb_epoch`) epochs; returns a History. `x` and `y` are
        arrays, lists (in input/output order) or dicts by input/output name; or `x` is a Python
        generator or a `PyDataset` of batches (`steps_per_epoch` batches an epoch, as in Keras 3).
        `validation_data` is a tuple of arrays, a generator or a PyDataset."""
        _pop_show_accuracy("fit", kwargs)
        _adapter.reject_worker_args("fit", kwargs)
        if kwargs:
            raise TypeError(f"fit() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        if nb_epoch is not None:
            epochs = nb_epoch
        epochs = 1 if epochs is None else epochs
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Invalid value received for argument `epochs`. Expected an integer >= 0. Received: epochs={epochs!r}")
        if shuffle not in (True, False, "batch"):
            raise ValueError(f"Invalid value received for argument `shuffle`. Expected True or False. Received: shuffle={shuffle!r}")
        _check_epoch_args(initial_epoch, validation_freq)
        verbose = _data.verbose(verbose)
        self._require_compiled()
        self._require_optimizer("fit")
        # Data: arrays, generators and PyDatasets become feeds of batches (models/_adapter.py).
        train, val = _adapter.fit_feeds(self, x, y, sample_weight, class_weight, batch_size, shuffle, steps_per_epoch,
                                        validation_split, validation_data, validation_steps, validation_batch_size)
        steps = train.steps

        cbs = _callback_list(callbacks, self, add_history=True, verbose=verbose, epochs=epochs, steps=steps)
        layout = self._log_layout()
        self.stop_training = False
        cbs.on_train_begin()
        training_logs: Dict[str, float] = {}
        finished = False
        self._fits_running = getattr(self, "_fits_running", 0) + 1
        # A callback that restored a backup (BackupAndRestore) says where training resumes.
        resumed = self.__dict__.pop("_initial_epoch", None)
        if resumed is not None:
            initial_epoch = int(resumed)
        try:
            for epoch in range(initial_epoch, epochs):
                if not train.ready():
                    break
                cbs.on_epoch_begin(epoch)
                ep = train.begin("train")
                self._run_batches(ep, cbs, "train", layout)
                _note_steps(cbs, ep)
                epoch_logs = _pythonify(self._split_logs(layout, ep.finish()))
                if val is not None and _validates(epoch, validation_freq):
                    val_logs = self._test_pass(val, cbs)
                    epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                cbs.on_epoch_end(epoch, epoch_logs)
                training_logs = epoch_logs
                if self.stop_training:
                    break
            finished = True
        finally:
            train.close()
            if val is not None:
                val.close()
            # The data the GPU kept for this fit (training and validation sets) is let go.
            self._fits_running -= 1
            if not self._fits_running:
                self._core.release_data()
            if getattr(self.optimizer, "use_ema", False) and epochs > 0:
                self._core.finalize_weights()
        if finished:
            cbs.on_train_end(training_logs)
        return self.history

    def _run_batches(self, ep, cbs, mode: str, layout) -> None:
        """Runs the batches of pass `ep` ("train", "test" or "predict"), calling Python
        only where it must: batch by batch when a callback has a batch hook of this mode
        (or the learning rate is a Python callable), each hook called with the model free
        and the stop flag checked after each batch; otherwise in one call, returning to
        update a progress bar drawn on a terminal."""
        stop = {"train": "stop_training", "test": "stop_evaluating", "predict": "stop_predicting"}[mode]
        schedule = self.optimizer._python_schedule() is not None if mode == "train" else False
        every, want_logs = cbs._batch_needs(mode)

        def batch_logs(b: int) -> Dict[str, Any]:
            if mode == "predict":
                lo, hi = ep.batch_rows(b)
                outs = [o[lo:hi] for o in ep.outputs]
                return {"outputs": self._structure_outputs(outs)}
            return self._split_logs(layout, ep.logs()) if want_logs else {}

        if not (every or schedule):
            progress = cbs._progress(mode)
            if getattr(self, stop, False):
                # Stopped before the pass began (at epoch begin): one batch, as Keras runs.
                ep.run(1)
            elif progress:
                interval = min(p._bar().interval for p in progress)
                while not ep.done:
                    ep.run(max_seconds=interval)
                    logs = batch_logs(ep.batch - 1)
                    for p in progress:
                        getattr(p, f"on_{mode}_batch_end")(ep.batch - 1, _pythonify(logs))
            else:
                ep.run()
            return
        begin, end = getattr(cbs, f"on_{mode}_batch_begin"), getattr(cbs, f"on_{mode}_batch_end")
        while not ep.done:
            b = ep.batch
            if schedule:
                self.optimizer._apply_python_schedule()
            begin(b)
            ep.run(1)
            end(b, batch_logs(b))
            if getattr(self, stop, False):
                break

    def _test_pass(self, feed, cbs) -> Dict[str, float]:
        """One evaluation pass over a feed (models/_adapter.py) with callbacks' test hooks;
        returns the logs (sorted by name, as Keras hands them out)."""
        layout = self._log_layout()
        self.stop_evaluating = False
        cbs.on_test_begin()
        ep = feed.begin("test")
        self._run_batches(ep, cbs, "test", layout)
        _note_steps(cbs, ep)
        logs = _pythonify(self._split_logs(layout, ep.finish()))
        cbs.on_test_end(logs)
        return logs

    @_one_thread("evaluate", "evaluated")
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, **kwargs):
        """The loss (and per-output losses and metrics) in inference mode: a scalar, or a list
        in `metrics_names` order, or a dict with `return_dict=True`. `callbacks` receive the
        test hooks (`on_test_begin`, `on_test_batch_begin`/`_end`, `on_test_end`)."""
        _pop_show_accuracy("evaluate", kwargs)
        _adapter.reject_worker_args("evaluate", kwargs)
        if kwargs:
            raise TypeError(f"evaluate() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        self._require_compiled()
        verbose = _data.verbose(verbose)
        # Data: arrays, generators and PyDatasets become feeds of batches (models/_adapter.py).
        feed = _adapter.evaluate_feed(self, x, y, sample_weight, batch_size, steps)
        cbs = _callback_list(callbacks, self, verbose=verbose, epochs=1, steps=feed.steps)
        try:
            logs = self._test_pass(feed, cbs)
        finally:
            feed.close()
            # Inside a fit (a callback evaluating), the fit's data stays on the GPU.
            if not getattr(self, "_fits_running", 0):
                self._core.release_data()
        return self._result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None, **kwargs):
        """Model outputs for `x` in inference mode, in batches (default 32): an array, or a
        list of arrays for a model with several outputs. `callbacks` receive the predict
        hooks; `on_predict_batch_end` gets `{"outputs": the batch's outputs}`."""
        _adapter.reject_worker_args("predict", kwargs)
        if kwargs:
            raise TypeError(f"predict() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        verbose = _data.verbose(verbose)
        # Data: arrays, generators and PyDatasets become feeds of batches (models/_adapter.py).
        feed = _adapter.predict_feed(self, x, batch_size, steps)
        cbs = _callback_list(callbacks, self, verbose=verbose, epochs=1, steps=feed.steps)
        self.stop_predicting = False
        try:
            cbs.on_predict_begin()
            ep = feed.begin("predict")
            self._run_batches(ep, cbs, "predict", None)
            rows = ep.rows_done
            _note_steps(cbs, ep)
            ep.finish()
            outs = [o if rows == o.shape[0] else o[:rows] for o in ep.outputs]
        finally:
            feed.close()
        cbs.on_predict_end()
        return self._structure_outputs(outs)

    def predict_on_batch(self, x):
        xs = self._prep_x(x)
        return self._structure_outputs(self._core.predict(xs, xs[0].shape[0]))

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns the batch's loss (and metrics)."""
        self._require_compiled()
        self._require_optimizer("train_on_batch")
        xs, ys, sws = self._prep(x, y, sample_weight, class_weight)
        if self.optimizer._python_schedule() is not None:
            self.optimizer._apply_python_schedule()
        vals = self._core.train_on_batch(xs, ys, sws)
        return self._result(self._logs(vals), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled()
        xs, ys, sws = self._prep(x, y, sample_weight, None)
        return self._result(self._logs(self._core.test_on_batch(xs, ys, sws)), return_dict)

    # -- saving ---------------------------------------------------------------------------

    def save(self, filepath, overwrite: bool = True, zipped: Optional[bool] = None, **kwargs) -> None:
        """Saves the model to a Keras 3 `.keras` file (config, weights, optimizer state); see
        `rustkeras.saving.save_model`.

        Example:
            model.save("model.keras")
            restored = rustkeras.saving.load_model("model.keras")
        """
        from rustkeras import saving

        saving.save_model(self, filepath, overwrite=overwrite, zipped=zipped, **kwargs)

    def save_weights(self, filepath, overwrite: bool = True, max_shard_size=None) -> None:
        """Saves the weights (and optimizer state) to a `.weights.h5` file, in Keras 3's layout."""
        from rustkeras import saving

        saving.save_weights(self, filepath, overwrite=overwrite, max_shard_size=max_shard_size)

    def load_weights(self, filepath, skip_mismatch: bool = False, **kwargs) -> None:
        """Loads weights from a `.weights.h5`, `.keras` or legacy `.h5` file. A compiled model
        also takes the optimizer state and training counters the file holds."""
        from rustkeras import saving

        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)

    def get_compile_config(self) -> Optional[Dict[str, Any]]:
        """What `compile` was given, as Keras 3 serializes it (None before `compile`)."""
        from rustkeras._saving import keras_config

        return keras_config.compile_config(self)

    def compile_from_config(self, config: Dict[str, Any]) -> None:
        """Compiles the model from `get_compile_config()`'s dict."""
        from rustkeras._saving import keras_config

        keras_config.compile_from_config(self, config)

    # -- weights and structure ------------------------------------------------------------

    def get_weights(self) -> List[np.ndarray]:
        """Every layer's weights, layer by layer (as `model.layers` lists them)."""
        if self._core is None:
            return []
        return [self._core.get_var(w.var) for _, ws in self._weight_map for w in ws]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self._require_built()
        expected = sum(len(ws) for _, ws in self._weight_map)
        if len(weights) != expected:
            raise ValueError(
                f"You called `set_weights(weights)` on model \"{self.name}\" with a weight list of length "
                f"{len(weights)}, but the model was expecting {expected} weights."
            )
        i = 0
        for layer, ws in self._weight_map:
            for w in ws:
                value = np.asarray(weights[i])
                if value.shape != w.shape:
                    raise ValueError(
                        f'Layer "{layer.name}" weight shape {w.shape} is not compatible with provided weight shape '
                        f"{value.shape}."
                    )
                i += 1
        i = 0
        for _, ws in self._weight_map:
            for w in ws:
                self._core.set_var(w.var, np.ascontiguousarray(weights[i], dtype=np.float32))
                i += 1

    @property
    def weights(self):
        return self.get_weights()

    @property
    def layers(self) -> List[Layer]:
        """The model's layers (a model used as a layer appears as itself)."""
        return [getattr(l, "model", l) if type(l).__name__ == "_ModelLayer" else l for l in self._layers]

    def count_params(self) -> int:
        self._require_built()
        return sum(layer.count_params() for layer in self._layers)

    def _trainable_count(self) -> int:
        if not getattr(self, "trainable", True):
            return 0
        return sum(layer._trainable_count() for layer in self._layers)

    def get_layer(self, name=None, index=None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in self._layers]}.")

    def _summary_rows(self) -> List[Tuple[str, str, str, str]]:
        return [(f"{l.name} ({type(l).__name__})", str(l.output_shape), f"{l.count_params():,}", "")
                for l in self._layers]

    def summary(self, line_length=None, positions=None, print_fn=None) -> None:
        """Prints the layers, their output shapes and parameter counts (and, for a functional
        model, the layers each one is connected to)."""
        self._require_built()
        print_fn = print_fn or print
        rows = self._summary_rows()
        connected = any(r[3] for r in rows)
        width = line_length or (98 if connected else 65)
        cols = [int(width * p) for p in (positions or ((0.33, 0.55, 0.67, 1.0) if connected else (0.45, 0.8, 1.0)))]

        def row(*cells):
            out, start = "", 0
            for cell, end in zip(cells, cols):
                out += f"{cell:<{end - start}}"[: end - start]
                start = end
            return out.rstrip()

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        print_fn(row(" Layer (type)", "Output Shape", "Param #", *(["Connected to"] if connected else [])))
        print_fn("=" * width)
        for name, shape, params, conn in rows:
            print_fn(row(f" {name}", shape, params, *([conn] if connected else [])))
        print_fn("=" * width)
        total = self.count_params()
        trainable = self._trainable_count()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn("_" * width)

    def __call__(self, inputs, *args, **kwargs):
        """On functional-model tensors (or inside another model's `call`): the model as a
        layer, sharing its weights; on arrays: its predictions."""
        if args:
            raise TypeError(f'Model "{self.name}": pass arguments after the inputs by keyword.')
        from rustkeras.models import _nested

        return _nested.call_model(self, inputs, dict(kwargs))

    def _input_shape_for_layer(self):
        """The per-sample input shape when the model has one input of known shape."""
        try:
            shape = self.input_shape
        except Exception:  # noqa: BLE001 - an unbuilt model has none
            return None
        if isinstance(shape, tuple) and shape and all(d is not None for d in shape[1:]):
            return tuple(shape[1:])
        return None

    def add_loss(self, loss) -> None:
        """Inside a subclassed model's `call`: adds a scalar to the training loss."""
        from rustkeras.models import _nested

        _user_add_loss(_nested._call_adapter(self), loss)


def _is_count(v, low: int) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= low


def _check_epoch_args(initial_epoch, validation_freq) -> None:
    """fit's `initial_epoch` (an int >= 0) and `validation_freq` (an int >= 1, or a list of the
    1-based epochs to validate after, as in Keras 3)."""
    if not _is_count(initial_epoch, 0):
        raise ValueError("Invalid value received for argument `initial_epoch`. Expected an integer >= 0. "
                         f"Received: initial_epoch={initial_epoch!r}")
    if not (_is_count(validation_freq, 1) or isinstance(validation_freq, list)
            and all(_is_count(e, 1) for e in validation_freq)):
        raise ValueError("Invalid value received for argument `validation_freq`. Expected an integer >= 1 or a list "
                         f"of epochs (integers >= 1). Received: validation_freq={validation_freq!r}")


def _validates(epoch: int, validation_freq) -> bool:
    """Whether validation runs after (0-based) `epoch`."""
    if isinstance(validation_freq, list):
        return epoch + 1 in validation_freq
    return (epoch + 1) % validation_freq == 0


def _pop_show_accuracy(method: str, kwargs: Dict[str, Any]) -> None:
    """Keras 0.x/1's `fit(..., show_accuracy=True)`: accepted with Keras 1's deprecation warning."""
    if "show_accuracy" in kwargs:
        kwargs.pop("show_accuracy")
        warnings.warn(
            f'{method}: the "show_accuracy" argument is deprecated, instead you should pass the "accuracy" metric to '
            'the model at compile time: `model.compile(optimizer, loss, metrics=["accuracy"])`',
            DeprecationWarning,
            stacklevel=3,
        )


def _note_steps(cbs, ep) -> None:
    """Tells the progress bars how many batches a pass ran (the count a bar of unknown length
    shows at its end, and what it shows when no batch hook updated it)."""
    for c in cbs.callbacks:
        if isinstance(c, _callbacks.ProgbarLogger):
            c.seen = max(c.seen, ep.batch)


def _callback_list(callbacks, model, add_history: bool = False, **params) -> _callbacks.CallbackList:
    """`callbacks=` as the loops use it: a CallbackList as given, or a list wrapped in one
    (with a History for fit, and a ProgbarLogger unless `verbose=0`)."""
    if isinstance(callbacks, _callbacks.CallbackList):
        return callbacks
    if isinstance(callbacks, _callbacks.Callback):
        callbacks = [callbacks]
    return _callbacks.CallbackList(list(callbacks or []), add_history=add_history,
                                   add_progbar=params["verbose"] != 0, model=model, **params)


def _with_inner_layers(layers: List[Layer]) -> List[Layer]:
    """The layers and, depth first, the layers they hold (a wrapper's wrapped layers)."""
    out: List[Layer] = []
    stack = list(reversed(layers))
    while stack:
        layer = stack.pop()
        if any(layer is other for other in out):
            continue
        out.append(layer)
        inner = [v for v in vars(layer).values() if isinstance(v, Layer)]
        inner += [l for l in _user_sublayers(layer) if not any(l is v for v in inner)]
        # A wrapper's `_inner()` may hold layers outside its attributes (Keras 1 Merge's branches).
        inner += [l for l in getattr(layer, "_inner", lambda: [])() if not any(l is v for v in inner)]
        stack.extend(reversed(inner))
    return out
