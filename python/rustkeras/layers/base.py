"""The Layer base class: argument checking, naming, weights and config, shared by every layer.

A layer builds its part of the model's graph in `build_graph(graph, x)`: it declares its
variables with `add_weight` and returns the node of its output. The model owns the values
(in Rust); `get_weights`/`set_weights` copy them to and from numpy.
"""

import re
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from rustkeras import _seed
from rustkeras import initializers as _initializers
from rustkeras import regularizers as _regularizers

_name_counts: Dict[str, int] = defaultdict(int)


def snake_case(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def unique_name(base: str) -> str:
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def invalid(arg: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"Invalid value received for argument `{arg}`. Expected {expected}. Received: {arg}={value!r}")


def not_supported(layer: str, arg: str) -> NotImplementedError:
    return NotImplementedError(f"{layer}: the argument `{arg}` is not supported by rustkeras yet.")


class _Weight:
    """A variable a layer declared: its id in the model, name, and how to initialise it."""

    def __init__(self, var: int, name: str, shape: Tuple[int, ...], initializer, regularizer, trainable: bool):
        self.var = var
        self.name = name
        self.shape = shape
        self.initializer = initializer
        self.regularizer = regularizer
        self.trainable = trainable


class Layer:
    """Base class of all layers.

    Args:
        name: the layer's name (unique names like `dense_1` are made by default).
        trainable: whether fit updates its weights.
        input_shape / batch_input_shape / input_dim: the input shape, for a model's first layer.
    """

    # Keras 1 keyword -> Keras 3 keyword, per layer class.
    _aliases: Dict[str, str] = {}
    # Whether a mask arriving with the input (from Embedding(mask_zero=True) or Masking) passes
    # through this layer unchanged to the next one.
    supports_masking = False

    def __init__(self, name: Optional[str] = None, trainable: bool = True, dtype: Optional[str] = None, **kwargs):
        input_shape = kwargs.pop("input_shape", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        input_dim = kwargs.pop("input_dim", None)
        batch_size = kwargs.pop("batch_size", None)
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if dtype not in (None, "float32"):
            raise not_supported(type(self).__name__, f"dtype={dtype!r} (only float32)")
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
            batch_size = tuple(batch_input_shape)[0] if batch_size is None else batch_size
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size <= 0):
            raise invalid("batch_size", "a positive integer or None", batch_size)
        # A fixed batch size (from batch_input_shape or batch_size), which stateful layers need.
        self._batch_size_arg: Optional[int] = None if batch_size is None else int(batch_size)
        # The batch size the model fixes for its layers (set when the model builds).
        self._batch_size: Optional[int] = None
        if input_dim is not None:
            input_shape = (int(input_dim),)
        if input_shape is not None:
            if isinstance(input_shape, int):
                input_shape = (input_shape,)
            input_shape = tuple(input_shape)
            if any(d is None or int(d) <= 0 for d in input_shape):
                raise ValueError(
                    f"{type(self).__name__}: every input dimension must be a positive integer "
                    f"(rustkeras has fixed per-sample shapes). Received: input_shape={input_shape}"
                )
            input_shape = tuple(int(d) for d in input_shape)
        self._input_shape_arg: Optional[Tuple[int, ...]] = input_shape
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        self.built = False
        self._weights: List[_Weight] = []
        self._core = None
        self.input_shape: Optional[Tuple] = None
        self.output_shape: Optional[Tuple] = None

    @classmethod
    def _translate(cls, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """Renames Keras 1 keywords to their Keras 3 names."""
        out = {}
        for k, v in kwargs.items():
            out[cls._aliases.get(k, k)] = v
        return out

    # -- graph building -------------------------------------------------------------------

    def add_weight(self, graph, name: str, shape: Sequence[int], initializer, regularizer=None, trainable=True):
        var, node = graph.variable(list(shape))
        self._weights.append(
            _Weight(var, name, tuple(shape), _initializers.get(initializer), _regularizers.get(regularizer), trainable)
        )
        return node

    def build_graph(self, graph, x: int, mask: Optional[int] = None) -> int:
        """Declares this layer's weights and returns its output node for input node `x`.

        `mask` is the node of the incoming timestep mask, if any (1.0 keep, 0.0 masked); a
        layer reads it as `self._input_mask` in `call`, and `compute_mask` gives the mask it
        passes on (kept in `self._output_mask`)."""
        self._weights = []
        in_dims = tuple(graph.dims(x))
        self.input_shape = (None,) + in_dims
        self._input_mask = mask
        y = self.call(graph, x, in_dims)
        self._output_mask = self.compute_mask(graph, x, mask)
        self.output_shape = (None,) + tuple(graph.dims(y))
        self.built = True
        return y

    def compute_mask(self, graph, x: int, mask: Optional[int]) -> Optional[int]:
        """The mask node this layer passes on: the incoming one if it supports masking."""
        return mask if self.supports_masking else None

    def call(self, graph, x: int, in_dims: Tuple[int, ...]) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define call()")

    def _attach(self, core) -> None:
        """Binds the layer to the model that owns its weights, and initialises them."""
        self._core = core
        for w in self._weights:
            init = w.initializer
            seed = init.seed if getattr(init, "seed", None) is not None else _seed.next_seed()
            core.initialize(w.var, init.kind, int(seed) & ((1 << 63) - 1), **init._params)
            core.set_trainable(w.var, self.trainable and w.trainable)

    def compute_output_shape(self, input_shape):
        """Output shape for an input shape (with the batch axis)."""
        from rustkeras import _core

        g = _core.Graph()
        x = g.input([int(d) for d in tuple(input_shape)[1:]])
        saved = (self._weights, self.input_shape, self.output_shape, self.built)
        try:
            y = self.call(g, x, tuple(g.dims(x)))
            return (input_shape[0],) + tuple(g.dims(y))
        finally:
            self._weights, self.input_shape, self.output_shape, self.built = saved

    # -- weights --------------------------------------------------------------------------

    def get_weights(self) -> List[np.ndarray]:
        if self._core is None:
            return []
        return [self._core.get_var(w.var) for w in self._weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        if len(weights) != len(self._weights):
            raise ValueError(
                f'You called `set_weights(weights)` on layer "{self.name}" with a weight list of length '
                f"{len(weights)}, but the layer was expecting {len(self._weights)} weights."
            )
        if self._core is None:
            raise ValueError(f'Layer "{self.name}" is not built yet: add it to a model with a known input shape.')
        for w, value in zip(self._weights, weights):
            value = np.asarray(value)
            if value.shape != w.shape:
                raise ValueError(
                    f'Layer "{self.name}" weight shape {w.shape} is not compatible with provided weight shape {value.shape}.'
                )
            self._core.set_var(w.var, np.ascontiguousarray(value, dtype=np.float32))

    @property
    def weights(self) -> List[np.ndarray]:
        return self.get_weights()

    @property
    def trainable_weights(self) -> List[np.ndarray]:
        if not self.trainable:
            return []
        return [a for a, w in zip(self.get_weights(), self._weights) if w.trainable]

    @property
    def non_trainable_weights(self) -> List[np.ndarray]:
        return [a for a, w in zip(self.get_weights(), self._weights) if not (self.trainable and w.trainable)]

    def count_params(self) -> int:
        return int(sum(int(np.prod(w.shape)) for w in self._weights))

    def _regularizers(self) -> List[Tuple[int, float, float]]:
        return [(w.var, w.regularizer.l1, w.regularizer.l2) for w in self._weights if w.regularizer is not None]

    # -- config ---------------------------------------------------------------------------

    def get_config(self) -> Dict[str, Any]:
        cfg: Dict[str, Any] = {"name": self.name, "trainable": self.trainable, "dtype": "float32"}
        if self._input_shape_arg is not None:
            cfg["batch_input_shape"] = (self._batch_size_arg,) + self._input_shape_arg
        return cfg

    @classmethod
    def from_config(cls, config: Dict[str, Any]):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
