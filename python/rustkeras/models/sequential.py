"""Sequential models: a linear stack of layers, as in Keras.

    model = Sequential()
    model.add(Dense(32, input_dim=784))
    model.add(Activation("relu"))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=10, batch_size=32, validation_data=(x_val, y_val))

Training, inference and weights come from `Model`'s shared base (`training.Trainer`).
"""

import reprlib
import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from rustkeras import _core
from rustkeras import layers as _layers
from rustkeras.layers.base import Layer, unique_name
from rustkeras.layers.core import InputLayer, KerasTensor
from rustkeras.models.functional import Model

__all__ = ["Sequential"]


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: layers to add, in order (the first may be `Input(shape)` or an `InputLayer`).
        name: the model's name.
    """

    def __init__(self, layers: Optional[Sequence] = None, name: Optional[str] = None, trainable: bool = True):
        self._init_trainer(name or unique_name("sequential"), trainable)
        self._input_layer: Optional[InputLayer] = None
        for layer in layers or []:
            self.add(layer)

    # -- structure ------------------------------------------------------------------------

    def _input_dims(self):
        if self._input_layer is not None:
            return self._input_layer._input_shape_arg
        if self._layers and self._layers[0]._input_shape_arg is not None:
            return self._layers[0]._input_shape_arg
        return None

    def _merge_first(self):
        """The Keras 1 `Merge` of models this model starts with, if it does."""
        from rustkeras.layers.merge_v1 import Merge

        return self._layers[0] if self._layers and isinstance(self._layers[0], Merge) else None

    def _ready(self) -> bool:
        """Whether the input shapes are known, so that the model can be built."""
        merge = self._merge_first()
        return merge._ready() if merge is not None else self._input_dims() is not None

    def _fixed_batch_size(self) -> Optional[int]:
        """The batch size fixed by `Input(batch_shape=...)` or the first layer's
        `batch_input_shape`/`batch_size` (stateful layers need one), else None."""
        if self._input_layer is not None and self._input_layer.batch_size is not None:
            return self._input_layer.batch_size
        return self._layers[0]._batch_size_arg if self._layers else None

    def add(self, layer) -> None:
        """Appends a layer; builds the model as soon as the input shape is known."""
        if isinstance(layer, KerasTensor):
            layer = layer._layer
        from rustkeras.models.training import Trainer

        if isinstance(layer, Trainer):
            from rustkeras.models._nested import layer_of

            if layer._input_shape_for_layer() is not None and not self._layers and self._input_layer is None:
                self._input_layer = InputLayer(shape=layer._input_shape_for_layer())
            layer = layer_of(layer)
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
        from rustkeras.layers.merge_v1 import Merge

        if isinstance(layer, Merge) and (self._layers or self._input_layer is not None):
            raise ValueError(f'Layer "{layer.name}" (Merge) can only be the first layer of a Sequential model.')
        self._layers.append(layer)
        if self._ready():
            self._build()

    def pop(self) -> Layer:
        """Removes and returns the last layer."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        layer._core = None
        layer.built = False
        self._core = None
        if self._layers and self._ready():
            self._build()
        return layer

    def build(self, input_shape=None) -> None:
        """Builds the model for `input_shape` (with the batch axis, e.g. `(None, 784)`)."""
        if input_shape is not None:
            dims = tuple(input_shape)[1:]
            if self._input_dims() is None:
                self._input_layer = InputLayer(shape=dims, batch_size=tuple(input_shape)[0])
            elif tuple(self._input_dims()) != tuple(dims):
                raise ValueError(f"build: input_shape {tuple(input_shape)} does not match the model's input {(None,) + tuple(self._input_dims())}")
        if not self._ready():
            raise ValueError("You must provide an `input_shape` argument to build a model whose first layer has none.")
        self._build()

    def _build(self) -> None:
        if not self._layers:
            return
        held = self._held_weights()
        graph = _core.Graph()
        inp, x, _mask = self._build_into(graph, self._fixed_batch_size())
        self._finish_build(graph, inp, [x], held)
        if self._compile_args is not None:
            self._compile_core()

    def _build_into(self, graph, batch_size, x=None, mask=None):
        """Builds the layers into `graph` from new input nodes (or from node `x`, when the
        model is a layer of another); returns `(input nodes, output node, output mask)` (a
        Merge first builds its branches into the same graph)."""
        layers = self._layers
        merge = self._merge_first()
        if x is not None:
            if merge is not None:
                raise NotImplementedError(f'Model "{self.name}" starts with a Merge and cannot be used as a layer.')
            inputs = [x]
        elif merge is not None:
            inputs, x, mask = merge.build_branches(graph, batch_size)
            layers = layers[1:]
        else:
            x = graph.input(list(self._input_dims()))
            inputs, mask = [x], None
        for layer in layers:
            layer._batch_size = batch_size
            graph.set_scope(layer.name)
            try:
                x = layer.build_graph(graph, x, mask)
                mask = layer._output_mask
            except ValueError as e:
                raise ValueError(f'Error building layer "{layer.name}" ({type(layer).__name__}): {e}') from None
        return inputs, x, mask

    def _require_built(self, x: Optional[np.ndarray] = None) -> None:
        if self._core is None and x is not None and self._layers and self._merge_first() is None:
            self._input_layer = InputLayer(shape=tuple(x.shape[1:]))
            self._build()
        if self._core is None:
            raise ValueError(
                f'Sequential model "{self.name}" has not been built yet: give the first layer an '
                "`input_shape` (or `input_dim`), start with `Input(shape=...)`, or call `build()`."
            )

    @property
    def input_shape(self):
        merge = self._merge_first()
        if merge is not None:
            shapes = [b.input_shape for b in merge.branches]
            return [s for shape in shapes for s in (shape if isinstance(shape, list) else [shape])]
        d = self._input_dims()
        return None if d is None else (None,) + tuple(d)

    @property
    def output_shape(self):
        self._require_built()
        return (None,) + tuple(self._core.output_dims())

    @property
    def inputs(self) -> List[KerasTensor]:
        self._require_built()
        merge = self._merge_first()
        if merge is not None:
            return [t for b in merge.branches for t in b.inputs]
        layer = self._input_layer or InputLayer(shape=self._input_dims(), name=f"{self.name}_input")
        return [layer.output]

    @property
    def outputs(self) -> List[KerasTensor]:
        """The output's shape; its layers' calls are not recorded, so it cannot feed a
        functional model."""
        self._require_built()
        return [KerasTensor(self.output_shape, (None, 0, 0))]

    def _input_names(self) -> List[str]:
        merge = self._merge_first()
        if merge is not None:
            return [b._input_names()[i] for b, i in merge._input_entries()]
        return [self._input_layer.name if self._input_layer is not None else f"{self.name}_input"]

    def _output_names(self) -> List[str]:
        return [self._layers[-1].name] if self._layers else ["output"]

    def _input_owner(self, i: int) -> str:
        merge = self._merge_first()
        if merge is not None:
            branch, j = merge._input_entries()[i]
            return branch._input_owner(j)
        return self._layers[0].name

    def _input_validators(self, i: int):
        merge = self._merge_first()
        if merge is not None:
            branch, j = merge._input_entries()[i]
            return branch._input_validators(j)
        check = getattr(self._layers[0], "_validate_input", None)
        return [check] if check is not None else []

    def _outputs_as_list(self) -> bool:
        return False

    def _input_dtype(self, i: int) -> str:
        merge = self._merge_first()
        if merge is not None:
            branch, j = merge._input_entries()[i]
            return branch._input_dtype(j)
        return self._input_layer.dtype if self._input_layer is not None else "float32"

    # -- Keras 1/2's Sequential-only inference helpers -------------------------------------------

    def predict_proba(self, x, batch_size: int = 32, verbose=0) -> np.ndarray:
        """Keras 1/2's `predict_proba`: the predictions, with a warning when they are not
        probabilities (the last layer is not a softmax or a sigmoid)."""
        preds = self.predict(x, batch_size=batch_size, verbose=verbose)
        if preds.min() < 0.0 or preds.max() > 1.0:
            warnings.warn("Network returning invalid probability values. The last layer might not normalize "
                          "predictions into probabilities (like softmax or sigmoid would).", stacklevel=2)
        return preds

    def predict_classes(self, x, batch_size: int = 32, verbose=0) -> np.ndarray:
        """Keras 1/2's `predict_classes`: the most probable class of each sample (the argmax of
        several outputs, or a single probability thresholded at 0.5, as int32 of shape (n, 1))."""
        proba = self.predict(x, batch_size=batch_size, verbose=verbose)
        if proba.shape[-1] > 1:
            return proba.argmax(axis=-1)
        return (proba > 0.5).astype("int32")

    def _summary_rows(self):
        return [(f"{l.name} ({type(l).__name__})", str(l.output_shape), f"{l.count_params():,}", "")
                for l in self._layers]

    # -- config ---------------------------------------------------------------------------

    def get_config(self) -> Dict[str, Any]:
        """Keras 3's Sequential config: an InputLayer entry (when the input shape is known),
        then each layer as Keras 3 serializes it."""
        from rustkeras._saving import keras_config

        entries = []
        dims = self._input_dims()
        if dims is not None:
            il = self._input_layer or InputLayer(shape=dims, batch_size=self._fixed_batch_size(),
                                                 name=f"{self.name}_input")
            entries.append(keras_config.serialize_layer(il))
        for l in self._layers:
            entry = keras_config.serialize_layer(l)
            if dims is not None and not keras_config.is_model_entry(entry):
                entry["config"].pop("batch_input_shape", None)
            entries.append(entry)
        return {"name": self.name, "trainable": self.trainable, "dtype": keras_config.dtype_policy(),
                "layers": entries}

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects=None) -> "Sequential":  # type: ignore[override]
        entries = config.get("layers", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError("Sequential config: `layers` must be a list of layer configs (dicts). Received: "
                             f"{type(entries).__name__}")
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for entry in entries:
            cfg = entry.get("config") or {}
            if not isinstance(cfg, dict):
                raise ValueError("Sequential config: the config of layer class "
                                 f"{reprlib.repr(entry.get('class_name'))} must be a dict. Received: "
                                 f"{type(cfg).__name__}")
            cfg = dict(cfg)
            if any(l.name == cfg.get("name") for l in model._layers):
                cfg["name"] = unique_name(cfg["name"])
            model.add(_layers.layer_from_config({**entry, "config": cfg}, custom_objects))
        return model

    def to_json(self, **kwargs) -> str:
        """The model's Keras 3 JSON (what `model_from_json` and Keras' `model_from_json` read)."""
        from rustkeras._saving import keras_config

        return keras_config.to_json(keras_config.model_entry(self), **kwargs)

    def __repr__(self):
        return f"<Sequential name={self.name}, built={self.built}>"
