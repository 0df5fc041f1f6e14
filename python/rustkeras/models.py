"""Sequential models: build, compile, fit, evaluate, predict, weights and config, as in Keras.

    model = Sequential()
    model.add(Dense(32, input_dim=784))
    model.add(Activation("relu"))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=10, batch_size=32, validation_data=(x_val, y_val))

The epoch loop runs in Rust with the GIL released; Python is called back only for callbacks,
progress and Ctrl-C (which stops fit between two batches with KeyboardInterrupt).
"""

import json
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from rustkeras import _core, _seed
from rustkeras import callbacks as _callbacks
from rustkeras import config as _config
from rustkeras import layers as _layers
from rustkeras import losses as _losses
from rustkeras import metrics as _metrics
from rustkeras import optimizers as _optimizers
from rustkeras._progbar import Progbar, format_logs
from rustkeras.layers.base import Layer, snake_case, unique_name
from rustkeras.layers.core import InputLayer, KerasTensor

__all__ = ["Sequential", "model_from_json", "model_from_config"]


def _numeric(name: str, data) -> np.ndarray:
    if data is None:
        raise ValueError(f"`{name}` must be an array, received None")
    if isinstance(data, (list, tuple)) and len(data) == 1 and isinstance(data[0], np.ndarray):
        data = data[0]
    try:
        arr = np.asarray(data)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"`{name}` must be array-like numeric data. Received: {type(data).__name__} ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold numeric data (int, float or bool). Received an array of dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"`{name}` must have a batch axis. Received a scalar")
    return arr


def _batch_size(value, default: int = 32) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(
            f"Invalid value received for argument `batch_size`. Expected an integer > 0. Received: batch_size={value!r}"
        )
    return int(value)


def _verbose(v) -> int:
    if v == "auto":
        return 1
    if v not in (0, 1, 2):
        raise ValueError(f"Invalid value received for argument `verbose`. Expected 0, 1, 2 or 'auto'. Received: verbose={v!r}")
    return int(v)


class Sequential:
    """A linear stack of layers.

    Args:
        layers: layers to add, in order (the first may be `Input(shape)` or an `InputLayer`).
        name: the model's name.
    """

    def __init__(self, layers: Optional[Sequence] = None, name: Optional[str] = None, trainable: bool = True):
        self.name = name or unique_name("sequential")
        self.trainable = trainable
        self._layers: List[Layer] = []
        self._input_layer: Optional[InputLayer] = None
        self._core = None
        self._compile_args: Optional[Dict[str, Any]] = None
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.history = None
        for layer in layers or []:
            self.add(layer)

    # -- structure ------------------------------------------------------------------------

    @property
    def layers(self) -> List[Layer]:
        return list(self._layers)

    def _input_dims(self):
        if self._input_layer is not None:
            return self._input_layer._input_shape_arg
        if self._layers and self._layers[0]._input_shape_arg is not None:
            return self._layers[0]._input_shape_arg
        return None

    def add(self, layer) -> None:
        """Appends a layer; builds the model as soon as the input shape is known."""
        if isinstance(layer, KerasTensor):
            layer = layer._layer
        if not isinstance(layer, Layer):
            raise TypeError(
                "The added layer must be an instance of class Layer. "
                f"Received: layer={layer!r} of type {type(layer).__name__}."
            )
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("An InputLayer can only be the first layer of a Sequential model.")
            self._input_layer = layer
            return
        if any(l.name == layer.name for l in self._layers):
            raise ValueError(
                f'All layers added to a Sequential model should have unique names. Name "{layer.name}" '
                "is already the name of a layer in this model."
            )
        if self._layers and layer._input_shape_arg is not None:
            import warnings

            warnings.warn(f'Layer "{layer.name}": input_shape is ignored on a layer that is not the first.', stacklevel=2)
        self._layers.append(layer)
        if self._input_dims() is not None:
            self._build()

    def pop(self) -> Layer:
        """Removes and returns the last layer."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        layer._core = None
        layer.built = False
        self._core = None
        if self._layers and self._input_dims() is not None:
            self._build()
        return layer

    def build(self, input_shape=None) -> None:
        """Builds the model for `input_shape` (with the batch axis, e.g. `(None, 784)`)."""
        if input_shape is not None:
            dims = tuple(input_shape)[1:]
            if self._input_dims() is None:
                self._input_layer = InputLayer(shape=dims)
            elif tuple(self._input_dims()) != tuple(dims):
                raise ValueError(f"build: input_shape {tuple(input_shape)} does not match the model's input {(None,) + tuple(self._input_dims())}")
        if self._input_dims() is None:
            raise ValueError("You must provide an `input_shape` argument to build a model whose first layer has none.")
        self._build()

    @property
    def built(self) -> bool:
        return self._core is not None

    def _build(self) -> None:
        if not self._layers:
            return
        saved = [(l, l.get_weights()) for l in self._layers if l._core is not None]
        graph = _core.Graph()
        x = inp = graph.input(list(self._input_dims()))
        mask = None
        for layer in self._layers:
            try:
                x = layer.build_graph(graph, x, mask)
                mask = layer._output_mask
            except ValueError as e:
                raise ValueError(f'Error building layer "{layer.name}" ({type(layer).__name__}): {e}') from None
        core = _core.Model(graph, inp, x, _seed.next_seed())
        core.set_device(_config.backend())
        for layer in self._layers:
            layer._attach(core)
        for layer, weights in saved:
            if [w.shape for w in weights] == [w.shape for w in layer._weights]:
                layer.set_weights(weights)
        self._core = core
        if self._compile_args is not None:
            self._compile_core()

    def _require_built(self, x: Optional[np.ndarray] = None):
        if self._core is None and x is not None and self._layers:
            self._input_layer = InputLayer(shape=tuple(x.shape[1:]))
            self._build()
        if self._core is None:
            raise ValueError(
                f'Sequential model "{self.name}" has not been built yet: give the first layer an '
                "`input_shape` (or `input_dim`), start with `Input(shape=...)`, or call `build()`."
            )

    @property
    def input_shape(self):
        d = self._input_dims()
        return None if d is None else (None,) + tuple(d)

    @property
    def output_shape(self):
        self._require_built()
        return (None,) + tuple(self._core.output_dims())

    # -- compile --------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True, **kwargs):
        """Configures training: an optimizer (name or object), a loss (name or function), metrics."""
        for k in ("sample_weight_mode", "target_tensors"):
            if kwargs.pop(k, None) is not None:
                raise NotImplementedError(f"compile: the argument `{k}` is not supported by rustkeras.")
        if kwargs:
            raise ValueError(f"Invalid keyword argument(s) in `compile()`: {tuple(kwargs)}")
        if loss_weights is not None or weighted_metrics is not None:
            raise NotImplementedError("compile: `loss_weights` and `weighted_metrics` are not supported by rustkeras yet.")
        if loss is None:
            raise ValueError("compile: a `loss` is required for training. Received: loss=None")
        self.optimizer = _optimizers.get(optimizer)
        loss_name = _losses.resolve_name(loss)
        metric_names = []
        for m in metrics or []:
            metric_names.append(_metrics.resolve_name(m))
        self.loss = loss
        self._compile_args = {"loss": loss_name, "metrics": metric_names}
        if self._core is not None:
            self._compile_core()

    def _compile_core(self):
        kind, params = self.optimizer._spec()
        regs = [r for layer in self._layers for r in layer._regularizers()]
        self._core.compile([self._compile_args["loss"]], [1.0], [list(self._compile_args["metrics"])], kind,
                           list(params), regs)
        # model.optimizer.learning_rate / .iterations read and steer the model's own optimizer.
        self.optimizer._model_core = self._core

    def _require_compiled(self):
        if self._compile_args is None:
            raise ValueError("You must call `compile()` before using the model for training or evaluation.")

    @property
    def metrics_names(self) -> List[str]:
        self._require_compiled()
        return ["loss"] + list(self._compile_args["metrics"])

    # -- data -----------------------------------------------------------------------------

    def _prep_x(self, x) -> np.ndarray:
        arr = _numeric("x", x)
        self._require_built(arr)
        expected = tuple(self._core.input_dims())
        if tuple(arr.shape[1:]) != expected:
            raise ValueError(
                f'Input 0 of layer "{self._layers[0].name}" is incompatible with the layer: '
                f"expected shape={(None,) + expected}, found shape={arr.shape}"
            )
        if arr.shape[0] == 0:
            raise ValueError("Expected non-empty input data `x`, received an array with 0 samples")
        # Layers that read indices (Embedding) check them before they become float32.
        check = getattr(self._layers[0], "_validate_input", None)
        if check is not None:
            check(arr)
        return np.ascontiguousarray(arr, dtype=np.float32)

    def _prep_y(self, y, n: int) -> np.ndarray:
        arr = _numeric("y", y)
        if arr.shape[0] != n:
            raise ValueError(
                f"Data cardinality is ambiguous: x sizes: {n}, y sizes: {arr.shape[0]}. "
                "Make sure all arrays contain the same number of samples."
            )
        label = tuple(self._core.label_dims())
        out = tuple(self._core.output_dims())
        if _losses.is_sparse(self._compile_args["loss"]):
            if tuple(arr.shape[1:]) not in (label, label + (1,)):
                raise ValueError(
                    f"sparse labels must have shape {(n,) + label} (integer class indices) for output "
                    f"shape {(None,) + out}. Received: y.shape={arr.shape}"
                )
            arr = arr.reshape((n,) + label)
            bad = (arr < 0) | (arr >= out[-1]) | (arr != np.floor(arr))
            if bad.any():
                raise ValueError(
                    f"sparse labels must be integers in [0, {out[-1]}) for an output of {out[-1]} classes. "
                    f"Received: {arr[bad].ravel()[0]!r}"
                )
        elif tuple(arr.shape[1:]) != label:
            if int(np.prod(arr.shape[1:])) == int(np.prod(label)):
                arr = arr.reshape((n,) + label)
            else:
                raise ValueError(
                    f"`y` has shape {arr.shape} but the model's output has shape {(None,) + out}: "
                    f"expected targets of shape {(n,) + label}"
                    + (" (use to_categorical for class labels, or loss='sparse_categorical_crossentropy')"
                       if self._compile_args["loss"] == "categorical_crossentropy" and arr.ndim == 1 else "")
                )
        return np.ascontiguousarray(arr, dtype=np.float32)

    def _prep_weights(self, y: np.ndarray, n: int, sample_weight, class_weight) -> Optional[np.ndarray]:
        sw = None
        if sample_weight is not None:
            sw = _numeric("sample_weight", sample_weight).astype(np.float32)
            if sw.shape != (n,):
                sw = sw.reshape(-1) if sw.size == n else None
                if sw is None:
                    raise ValueError(f"`sample_weight` must have shape ({n},). Received: {np.shape(sample_weight)}")
        if class_weight is not None:
            if not isinstance(class_weight, dict):
                raise TypeError(f"`class_weight` must be a dict mapping class indices to weights. Received: {type(class_weight).__name__}")
            if _losses.is_sparse(self._compile_args["loss"]):
                cls = y.reshape(n, -1)[:, 0].astype(np.int64)
            elif y.ndim > 1 and y.shape[-1] > 1:
                cls = y.reshape(n, -1, y.shape[-1])[:, 0, :].argmax(-1)
            else:
                cls = np.round(y.reshape(n, -1)[:, 0]).astype(np.int64)
            cw = np.array([float(class_weight.get(int(c), 1.0)) for c in cls], dtype=np.float32)
            sw = cw if sw is None else sw * cw
        return None if sw is None else np.ascontiguousarray(sw, dtype=np.float32)

    # -- training -------------------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, epochs=None, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1, nb_epoch=None, **kwargs):
        """Trains for `epochs` (Keras 1: `nb_epoch`) epochs; returns a History."""
        if kwargs:
            raise TypeError(f"fit() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        if steps_per_epoch is not None or validation_steps is not None:
            raise NotImplementedError("fit: `steps_per_epoch`/`validation_steps` are not supported for array data.")
        if nb_epoch is not None:
            epochs = nb_epoch
        epochs = 1 if epochs is None else epochs
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Invalid value received for argument `epochs`. Expected an integer >= 0. Received: epochs={epochs!r}")
        batch_size = _batch_size(batch_size)
        if shuffle not in (True, False, "batch"):
            raise ValueError(f"Invalid value received for argument `shuffle`. Expected True or False. Received: shuffle={shuffle!r}")
        verbose = _verbose(verbose)
        self._require_compiled()
        x = self._prep_x(x)
        n = x.shape[0]
        y = self._prep_y(y, n)
        sw = self._prep_weights(y, n, sample_weight, class_weight)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("`validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight)")
            xv = self._prep_x(validation_data[0])
            yv = self._prep_y(validation_data[1], xv.shape[0])
            swv = self._prep_weights(yv, xv.shape[0], validation_data[2] if len(validation_data) == 3 else None, None)
            val = (xv, yv, swv)
        elif validation_split:
            if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                    or not 0 < validation_split < 1:
                raise ValueError(f"Invalid value received for argument `validation_split`. Expected a float in (0, 1). Received: validation_split={validation_split!r}")
            split = int(math.ceil(n * (1.0 - validation_split)))
            if split >= n or split == 0:
                raise ValueError(f"validation_split={validation_split} leaves no samples on one side of the split of {n} samples")
            val = (x[split:], y[split:], None if sw is None else sw[split:])
            x, y, sw = x[:split], y[:split], None if sw is None else sw[:split]
            n = split
        val_bs = _batch_size(validation_batch_size, batch_size)

        history = _callbacks.History()
        cbs = _callbacks.CallbackList(list(callbacks or []) + [history], self,
                                      {"verbose": verbose, "epochs": epochs, "steps": math.ceil(n / batch_size)})
        names = self.metrics_names
        steps = math.ceil(n / batch_size)
        batch_hooks = cbs.has_batch_hooks()
        self.stop_training = False
        self.history = history
        cbs.call("on_train_begin", {})
        logs: Dict[str, float] = {}
        for epoch in range(initial_epoch, epochs):
            cbs.call("on_epoch_begin", epoch, {})
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            bar = Progbar(steps, verbose)

            def hook(b, total, vals, bar=bar):
                batch_logs = dict(zip(names, vals))
                if batch_hooks:
                    for c in cbs.callbacks:
                        c.on_train_batch_begin(b, {})
                        c.on_batch_begin(b, {})
                        c.on_train_batch_end(b, batch_logs)
                        c.on_batch_end(b, batch_logs)
                if b + 1 < total:
                    bar.update(b + 1, batch_logs)

            wants_hook = batch_hooks or bar.dynamic
            vals = self._core.fit_epoch(x, y, sw, int(batch_size), bool(shuffle), hook if wants_hook else None,
                                        0.0 if batch_hooks else 0.05)
            logs = dict(zip(names, vals))
            if val is not None and (epoch + 1) % validation_freq == 0:
                vvals = self._core.evaluate(val[0], val[1], val[2], int(val_bs))
                logs.update({"val_" + k: v for k, v in zip(names, vvals)})
            bar.update(steps, logs, finalize=True)
            cbs.call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        if getattr(self.optimizer, "use_ema", False):
            self._core.finalize_weights()
        cbs.call("on_train_end", logs)
        history.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        history.model = self
        return history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, **kwargs):
        """Loss (and metrics) in inference mode: a scalar, or a list `[loss, *metrics]`."""
        if kwargs:
            raise TypeError(f"evaluate() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        if steps is not None:
            raise NotImplementedError("evaluate: `steps` is not supported for array data.")
        self._require_compiled()
        verbose = _verbose(verbose)
        x = self._prep_x(x)
        y = self._prep_y(y, x.shape[0])
        sw = self._prep_weights(y, x.shape[0], sample_weight, None)
        bs = _batch_size(batch_size)
        total = math.ceil(x.shape[0] / bs)
        bar = Progbar(total, verbose)
        names = self.metrics_names

        def hook(b, n, vals):
            if b + 1 < n:
                bar.update(b + 1, dict(zip(names, vals)))

        vals = self._core.evaluate(x, y, sw, bs, hook if bar.dynamic else None)
        logs = dict(zip(names, vals))
        bar.update(total, logs, finalize=True)
        return self._result(logs, return_dict)

    def _result(self, logs: Dict[str, float], return_dict: bool):
        if return_dict:
            return logs
        vals = list(logs.values())
        return vals[0] if len(vals) == 1 else vals

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None, **kwargs):
        """Model outputs for `x`, computed in batches (default 32) in inference mode."""
        if kwargs:
            raise TypeError(f"predict() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        if steps is not None:
            raise NotImplementedError("predict: `steps` is not supported for array data.")
        verbose = _verbose(verbose)
        x = self._prep_x(x)
        bs = _batch_size(batch_size)
        total = math.ceil(x.shape[0] / bs)
        bar = Progbar(total, verbose)
        out, = self._core.predict(x, bs, (lambda b, n, v: bar.update(b + 1, {}) if b + 1 < n else None)
                                  if bar.dynamic else None)
        bar.update(total, {}, finalize=True)
        return out

    def predict_on_batch(self, x):
        x = self._prep_x(x)
        return self._core.predict(x, x.shape[0])[0]

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns the batch's loss (and metrics)."""
        self._require_compiled()
        x = self._prep_x(x)
        y = self._prep_y(y, x.shape[0])
        sw = self._prep_weights(y, x.shape[0], sample_weight, class_weight)
        return self._result(dict(zip(self.metrics_names, self._core.train_on_batch(x, y, sw))), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled()
        x = self._prep_x(x)
        y = self._prep_y(y, x.shape[0])
        sw = self._prep_weights(y, x.shape[0], sample_weight, None)
        return self._result(dict(zip(self.metrics_names, self._core.test_on_batch(x, y, sw))), return_dict)

    # -- weights and structure ------------------------------------------------------------

    def get_weights(self) -> List[np.ndarray]:
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self._require_built()
        expected = sum(len(l._weights) for l in self._layers)
        if len(weights) != expected:
            raise ValueError(
                f"You called `set_weights(weights)` on model \"{self.name}\" with a weight list of length "
                f"{len(weights)}, but the model was expecting {expected} weights."
            )
        i = 0
        for layer in self._layers:
            k = len(layer._weights)
            layer.set_weights(weights[i:i + k])
            i += k

    @property
    def weights(self):
        return self.get_weights()

    def count_params(self) -> int:
        self._require_built()
        return sum(l.count_params() for l in self._layers)

    def get_layer(self, name=None, index=None) -> Layer:
        if index is not None:
            return self._layers[index]
        for l in self._layers:
            if l.name == name:
                return l
        raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in self._layers]}.")

    def summary(self, line_length=None, positions=None, print_fn=None) -> None:
        """Prints the layers, their output shapes and parameter counts."""
        self._require_built()
        print_fn = print_fn or print
        width = line_length or 65
        cols = [int(width * p) for p in (positions or (0.45, 0.8, 1.0))]
        def row(a, b, c):
            s = f"{a:<{cols[0]}}"[: cols[0]] + f"{b:<{cols[1] - cols[0]}}"[: cols[1] - cols[0]] + f"{c}"
            return s
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        print_fn(row(" Layer (type)", "Output Shape", "Param #"))
        print_fn("=" * width)
        for l in self._layers:
            print_fn(row(f" {l.name} ({type(l).__name__})", str(l.output_shape), f"{l.count_params():,}"))
        print_fn("=" * width)
        total = self.count_params()
        trainable = sum(l.count_params() for l in self._layers if l.trainable)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn("_" * width)

    # -- config ---------------------------------------------------------------------------

    def get_config(self) -> Dict[str, Any]:
        entries = []
        dims = self._input_dims()
        if dims is not None:
            il = self._input_layer or InputLayer(shape=dims, name=f"{self.name}_input")
            entries.append({"module": "keras.layers", "class_name": "InputLayer", "config": il.get_config()})
        for l in self._layers:
            cfg = l.get_config()
            cfg.pop("batch_input_shape", None) if dims is not None else None
            entries.append({"module": "keras.layers", "class_name": type(l).__name__, "config": cfg})
        return {"name": self.name, "trainable": self.trainable, "layers": entries}

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects=None) -> "Sequential":
        model = cls(name=config.get("name"))
        for entry in config.get("layers", []):
            layer_cls = _layers.get(entry["class_name"])
            cfg = dict(entry.get("config", {}))
            cfg["name"] = unique_name(cfg["name"]) if any(l.name == cfg.get("name") for l in model._layers) else cfg.get("name")
            model.add(layer_cls.from_config(cfg))
        return model

    def to_json(self, **kwargs) -> str:
        return json.dumps({"module": "keras", "class_name": "Sequential", "config": self.get_config(),
                           "keras_version": "3", "backend": "rustkeras"}, **kwargs)

    def __repr__(self):
        return f"<Sequential name={self.name}, built={self.built}>"


def model_from_config(config: Dict[str, Any], custom_objects=None) -> Sequential:
    if config.get("class_name") != "Sequential":
        raise ValueError(f"Unknown model class: {config.get('class_name')!r} (rustkeras builds Sequential models)")
    return Sequential.from_config(config["config"])


def model_from_json(json_string: str, custom_objects=None) -> Sequential:
    """A new (untrained) model from `model.to_json()`."""
    return model_from_config(json.loads(json_string), custom_objects)
