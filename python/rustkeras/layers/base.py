"""The Layer base class: argument checking, naming, weights and config, shared by every layer.

A layer builds its part of the model's graph in `build_graph(graph, x)`: it declares its
variables with `add_weight` and returns the node of its output. The model owns the values
(in Rust); `get_weights`/`set_weights` copy them to and from numpy.

Calling a layer on KerasTensors (`Dense(4)(x)`) records the call for a functional model and
returns KerasTensors of the output shapes. A layer called more than once in a model shares
its weights: the first call in a model's graph declares them, later calls reuse them.
Layers that take several tensors, return several, or take tensors as keyword arguments
override `build_graph_multi`.
"""

import itertools
import re
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from rustkeras import _seed
from rustkeras import _symbolic
from rustkeras import initializers as _initializers
from rustkeras.layers import _user
from rustkeras import regularizers as _regularizers

_name_counts: Dict[str, int] = defaultdict(int)


def snake_case(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def unique_name(base: str) -> str:
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def dtype_name(dtype) -> Optional[str]:
    """The dtype a layer's `dtype` argument names: a name, or the name inside a Keras 3
    `DTypePolicy` config (`{"class_name": "DTypePolicy", "config": {"name": "float32"}}`), or a
    numpy dtype."""
    if isinstance(dtype, dict) and dtype.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
        return (dtype.get("config") or {}).get("name")
    if dtype is None or isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        return repr(dtype)


def invalid(arg: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"Invalid value received for argument `{arg}`. Expected {expected}. Received: {arg}={value!r}")


MAX_SAMPLE_VALUES = _symbolic.MAX_SAMPLE_VALUES


def check_addressable(layer, dims) -> None:
    """MemoryError naming the layer when its per-sample output `dims` hold more values than
    memory can address: checked before the engine computes with sizes that large."""
    if int(np.prod([int(d) for d in dims], dtype=object)) > MAX_SAMPLE_VALUES:
        raise MemoryError(f'Layer "{layer.name}" ({type(layer).__name__}): its output of shape '
                          f"{(None,) + tuple(int(d) for d in dims)} holds more values per sample than memory can "
                          "address")


def _check_weight_memory(layer, name: str, shape) -> None:
    """MemoryError naming the layer and the weight when its values need more memory than the
    system has available: raised when the weight is declared, before anything is allocated."""
    from rustkeras import _core

    count = 1
    for d in shape:
        count *= d
    what = f'Layer "{layer.name}" ({type(layer).__name__}): its weight "{name}" of shape {tuple(shape)}'
    _core.check_memory(min(count, 2**127), what)


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
        if dtype_name(dtype) not in (None, "float32"):
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
            if any(d is not None and (not isinstance(d, (int, np.integer)) or isinstance(d, (bool, np.bool_)))
                   for d in input_shape):
                raise ValueError(f"{type(self).__name__}: every input dimension must be an integer. Received: "
                                 f"input_shape={input_shape}")
            if any(d is None or int(d) <= 0 for d in input_shape):
                raise ValueError(
                    f"{type(self).__name__}: every input dimension must be a positive integer "
                    f"(rustkeras has fixed per-sample shapes). Received: input_shape={input_shape}"
                )
            input_shape = tuple(int(d) for d in input_shape)
            if int(np.prod(input_shape, dtype=object)) > MAX_SAMPLE_VALUES:
                raise MemoryError(
                    f"{type(self).__name__}: input_shape={input_shape} holds more values per sample than memory "
                    "can address"
                )
        self._input_shape_arg: Optional[Tuple[int, ...]] = input_shape
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        self.built = False
        self._weights: List[_Weight] = []
        self._core = None
        # The graph `_weights` were declared in: a layer called again in it reuses them.
        self._graph = None
        # The calls on KerasTensors (functional models), in order.
        self._inbound_nodes: list = []
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

    def _begin_graph(self, graph) -> None:
        """Starts this layer's weights in `graph` (a model's graph, or a throwaway one for
        shape inference) unless it has already declared them there."""
        if self._graph is not graph:
            self._graph = graph
            self._weights = []

    def _graph_weight(self, graph, name: str, shape: Sequence[int], initializer, regularizer=None, trainable=True):
        """The node of the layer's variable `name`: declared on the layer's first call in
        `graph`, the same variable on later calls (a shared layer). (The built-in layers'
        protocol; a user's layer calls the Keras-style `add_weight`.)"""
        self._begin_graph(graph)
        shape = tuple(int(d) for d in shape)
        for w in self._weights:
            if w.name == name:
                if w.shape != shape:
                    raise ValueError(
                        f'Layer "{self.name}" is called on inputs of different shapes: its weight "{name}" has '
                        f"shape {w.shape}, but this call needs {shape}. A layer called more than once shares its "
                        "weights, so every call needs inputs of the same shape."
                    )
                return graph.param(w.var)
        _check_weight_memory(self, name, shape)
        var, node = graph.variable(list(shape))
        self._weights.append(
            _Weight(var, name, shape, _initializers.get(initializer), _regularizers.get(regularizer), trainable)
        )
        return node

    def build_graph(self, graph, x: int, mask: Optional[int] = None) -> int:
        """Declares this layer's weights and returns its output node for input node `x`.

        `mask` is the node of the incoming timestep mask, if any (1.0 keep, 0.0 masked); a
        layer reads it as `self._input_mask` in `call`, and `compute_mask` gives the mask it
        passes on (kept in `self._output_mask`)."""
        self._begin_graph(graph)
        in_dims = tuple(graph.dims(x))
        self.input_shape = (None,) + in_dims
        self._input_mask = mask
        if _user.overrides_call(self):
            y = _user.trace_call(self, graph, [x], [mask], {}, as_list=False)
            self._output_mask = _user.output_mask(self, graph, x, mask)
        else:
            y = self._graph_call(graph, x, in_dims)
            self._output_mask = self.compute_mask(graph, x, mask)
        self.output_shape = (None,) + tuple(graph.dims(y))
        self.built = True
        return y

    def build_graph_multi(self, graph, inputs: List[int], masks: List[Optional[int]], **kwargs):
        """The output node(s) of one call in a functional model.

        Args:
            graph: the model's `_core.Graph`.
            inputs: the nodes of the tensors the layer was called on (one, or a list).
            masks: the mask node of each input, or None.
            **kwargs: the call's keyword arguments, KerasTensors among them replaced by their
                nodes (e.g. `initial_state=[h, c]`).

        Returns:
            One node, or a list of nodes for a layer with several outputs. A layer with
            several outputs sets `self._output_masks` (a list) for their masks; a layer with
            one output sets `self._output_mask` (as `build_graph` does).

        The default takes exactly one input and no keyword arguments and calls `build_graph`;
        a user's layer (one that defines `call(inputs, ...)`) is traced with all of them.
        """
        if _user.overrides_call(self):
            return _user.build_multi(self, graph, inputs, masks, kwargs)
        if kwargs:
            raise self._unexpected_kwarg(next(iter(kwargs)))
        if len(inputs) != 1:
            raise ValueError(f'Layer "{self.name}" expects 1 input(s), but it received {len(inputs)} input tensors.')
        return self.build_graph(graph, inputs[0], masks[0])

    # Keyword arguments (besides `training` and `mask`) that `build_graph_multi` accepts.
    _call_kwargs: Tuple[str, ...] = ()

    def _unexpected_kwarg(self, name: str) -> TypeError:
        return TypeError(f'Layer "{self.name}" ({type(self).__name__}): call() got an unexpected keyword argument {name!r}')

    def __call__(self, inputs, *args, **kwargs):
        """Calls the layer on KerasTensors: records the call and returns the output tensor(s).

        Example:
            x = Input(shape=(8,))
            y = Dense(4, activation="relu")(x)      # y.shape == (None, 4)
        """
        from rustkeras.layers.node import KerasTensor, Node

        if args:
            raise TypeError(
                f'Layer "{self.name}" ({type(self).__name__}): pass arguments after the inputs by keyword. '
                f"Received {len(args)} extra positional argument(s)"
            )
        flat = _flatten_call(inputs)
        if flat and all(isinstance(t, _symbolic.SymbolicTensor) for t in flat):
            return _user.call_symbolic(self, inputs, kwargs)
        if not flat or not all(isinstance(t, KerasTensor) for t in flat):
            if any(isinstance(t, KerasTensor) for t in flat):
                raise TypeError(f'Layer "{self.name}": its inputs mix functional-model tensors and other values: '
                                f"{[type(t).__name__ for t in flat]}")
            return _user.call_eager(self, inputs, kwargs)
        training = kwargs.get("training", None)
        if training is not None and not isinstance(training, (bool, np.bool_)):
            raise TypeError(f'Layer "{self.name}": `training` must be True, False or None. Received: {training!r}')
        if training is None:
            kwargs.pop("training", None)
        if kwargs.get("mask", None) is None:
            kwargs.pop("mask", None)
        elif not isinstance(kwargs["mask"], KerasTensor):
            raise TypeError(f'Layer "{self.name}": `mask` must be a tensor of the functional model. '
                            f"Received: {type(kwargs['mask']).__name__}")
        for k in kwargs:
            if k not in self._call_kwargs and k not in ("training", "mask") and not _user.overrides_call(self):
                raise self._unexpected_kwarg(k)
        node = Node(self, inputs, kwargs)
        shapes, multi = self._infer_output_shapes(node)
        node.multi_output = multi
        index = len(self._inbound_nodes)
        node.outputs = [KerasTensor(s, (self, index, i)) for i, s in enumerate(shapes)]
        self._inbound_nodes.append(node)
        return list(node.outputs) if multi else node.outputs[0]

    def _infer_output_shapes(self, node):
        """Output shapes of a call, from building it in a throwaway graph (the layer's state is
        restored afterwards). Returns `(shapes, whether the layer returned a list)`."""
        from rustkeras import _core
        from rustkeras.layers.node import KerasTensor, map_structure

        graph = _core.Graph()
        nodes = {}
        for t in node.parents:
            if id(t) not in nodes:
                nodes[id(t)] = graph.input([int(d) for d in t.shape[1:]])
        kwargs = map_structure(lambda v: _user.NodeRef(nodes[id(v)]) if isinstance(v, KerasTensor) else v,
                               node.kwargs)
        state = self._save_state()
        batch = node.batch_size()
        try:
            self._output_mask = self._output_masks = None
            self._batch_size = batch
            with _user.call_options(self, node, kwargs) as kwargs:
                kwargs.pop("mask", None)
                out = self.build_graph_multi(graph, [nodes[id(t)] for t in node.input_tensors],
                                             [None] * len(node.input_tensors), **kwargs)
            multi = isinstance(out, (list, tuple))
            shapes = [(batch,) + tuple(graph.dims(o)) for o in (out if multi else [out])]
            signature = [(w.name, w.shape) for w in self._weights]
        except ValueError as e:
            if f'"{self.name}"' in str(e):
                raise
            raise ValueError(f'Error in layer "{self.name}" ({type(self).__name__}): {e}') from None
        finally:
            _restore_state(state)
        self._check_weight_signature(signature)
        return shapes, multi

    def _check_weight_signature(self, signature) -> None:
        """A layer's weights have the shapes of its first build: a later call on inputs that
        would need other shapes is an error (the calls share the weights)."""
        before = getattr(self, "_weight_signature", None) or [(w.name, w.shape) for w in self._weights]
        if before and signature and before != signature:
            (name, had), (other, needs) = next(
                (p, q) for p, q in itertools.zip_longest(before, signature, fillvalue=(None, None)) if p != q)
            name = name or other
            raise ValueError(
                f'Layer "{self.name}" is called on inputs of a different shape than before: its weight "{name}" has '
                f"shape {had}, but this call needs {needs}. A layer called more than once shares its weights, so "
                "every call needs inputs of the same shape."
            )
        if signature:
            self._weight_signature = signature

    def _save_state(self):
        """A copy of the attributes of this layer and the layers inside it (wrappers)."""
        saved, stack = [], [self]
        while stack:
            layer = stack.pop()
            if any(layer is other for other, _ in saved):
                continue
            saved.append((layer, {k: list(v) if isinstance(v, list) else v for k, v in layer.__dict__.items()}))
            stack.extend(v for v in layer.__dict__.values() if isinstance(v, Layer))
        return saved

    @property
    def output(self):
        """The output tensor(s) of the layer's only call (Keras' `layer.output`)."""
        node = self._only_node("output")
        return list(node.outputs) if node.multi_output else node.outputs[0]

    @property
    def input(self):
        """The input tensor(s) of the layer's only call (Keras' `layer.input`)."""
        return self._only_node("input").call_inputs

    def _only_node(self, what: str):
        if not self._inbound_nodes:
            raise AttributeError(f'Layer "{self.name}" has never been called and thus has no defined {what}.')
        if len(self._inbound_nodes) > 1:
            raise AttributeError(
                f'Layer "{self.name}" has multiple inbound nodes, hence the notion of "layer {what}" is '
                "ill-defined."
            )
        return self._inbound_nodes[0]

    def compute_mask(self, graph, x: int, mask: Optional[int]) -> Optional[int]:
        """The mask node this layer passes on: the incoming one if it supports masking."""
        return mask if self.supports_masking else None

    def _graph_call(self, graph, x: int, in_dims: Tuple[int, ...]) -> int:
        """The built-in layers' protocol: adds the layer's nodes for input node `x`."""
        raise NotImplementedError(f"Layer {type(self).__name__} does not have a `call()` method implemented.")

    def call(self, inputs, *args, **kwargs):
        """The layer's computation on symbolic tensors (Keras' `call`). A user's layer
        overrides it; for a built-in layer it builds the layer's nodes, so that
        `super().call(inputs)` and calling a built-in layer inside a user's `call` work."""
        return _user.builtin_call(self, inputs, kwargs)

    def build(self, input_shape) -> None:
        """Creates the layer's weights for `input_shape` (Keras' `build`; a user's layer
        overrides it and calls `add_weight`)."""
        self.built = True

    def add_weight(self, *args, **kwargs):
        """Creates a weight of this layer (Keras' `add_weight`) and returns it as a Variable.

        Keras 3: `add_weight(shape=None, initializer=None, dtype=None, trainable=True,
        regularizer=None, constraint=None, name=None)`; the Keras 1 positional form
        `add_weight(shape, initializer, name=None, trainable=True, regularizer=None)` and the
        Keras 2 form `add_weight(name, shape, ...)` work too. Called in `build` (or in
        `__init__` when the shape is known); the model that the layer is built into owns the
        value.
        """
        return _user.add_weight(self, args, kwargs)

    def add_loss(self, loss) -> None:
        """Adds a scalar (or a tensor, summed) to the model's loss, from inside `call`."""
        _user.add_loss(self, loss)

    def _own_weights(self) -> List["_Weight"]:
        """The weights this layer created with `add_weight`, in this graph, in order."""
        return self._weights[: len(getattr(self, "_weight_specs", ()))]

    def _attach(self, core) -> None:
        """Binds the layer to the model that owns its weights, and initialises them (and the
        layers it holds, and the constants its traced code captured)."""
        self._core = core
        for layer in _user.sublayers(self):
            layer._attach(core)
            for w in layer._weights:
                core.set_trainable(w.var, self.trainable and layer.trainable and w.trainable)
        for var, value in getattr(self, "_constants", ()):
            core.set_var(var, value)
            core.set_trainable(var, False)
        own = self._weights if not _user.sublayers(self) else self._own_weights()
        for w in own:
            init = w.initializer
            seed = init.seed if getattr(init, "seed", None) is not None else _seed.next_seed()
            core.initialize(w.var, init.kind, int(seed) & ((1 << 63) - 1), **init._params)
            core.set_trainable(w.var, self.trainable and w.trainable)

    def compute_output_shape(self, input_shape):
        """Output shape for an input shape with the batch axis (a list of shapes for a layer
        that takes several inputs)."""
        from rustkeras import _core

        several = isinstance(input_shape, list) and all(isinstance(s, (list, tuple)) for s in input_shape)
        shapes = input_shape if several else [input_shape]
        g = _core.Graph()
        xs = [g.input([int(d) for d in tuple(s)[1:]]) for s in shapes]
        state = self._save_state()
        try:
            self._output_mask = self._output_masks = None
            y = self.build_graph_multi(g, xs, [None] * len(xs))
            if isinstance(y, (list, tuple)):
                return [(shapes[0][0],) + tuple(g.dims(o)) for o in y]
            return (shapes[0][0],) + tuple(g.dims(y))
        finally:
            _restore_state(state)

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

    def _trainable_count(self) -> int:
        """The parameters training updates (a summary's "Trainable params"): the trainable
        weights of a trainable layer, less those of frozen layers it holds; BatchNormalization's
        moving statistics are not among them."""
        if not self.trainable:
            return 0
        frozen = {w.var for layer in _user.sublayers(self) if not layer.trainable for w in layer._weights}
        return int(sum(int(np.prod(w.shape)) for w in self._weights if w.trainable and w.var not in frozen))

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


def _restore_state(saved) -> None:
    for layer, attrs in saved:
        layer.__dict__.clear()
        layer.__dict__.update(attrs)


def _flatten_call(inputs) -> list:
    """The tensors a layer is called on: one, or a (nested) list or tuple of them."""
    if isinstance(inputs, (list, tuple)):
        return [t for item in inputs for t in _flatten_call(item)]
    return [inputs]
