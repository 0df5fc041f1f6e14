"""Symbolic tensors and the call history a functional model is built from.

`Input(shape)` returns a `KerasTensor`; calling a layer on KerasTensors records a `Node` (the
layer, the tensors it was called on, its keyword arguments) and returns new KerasTensors
whose `_keras_history` points back at it. `Model(inputs, outputs)` walks this history from
the outputs back to the inputs and builds one engine graph from it.

    x = Input(shape=(8,))
    y = Dense(4)(x)          # y._keras_history == (the Dense layer, 0, 0)
"""

import itertools
from typing import Any, Callable, List, Optional, Tuple

from rustkeras._symbolic import ArithmeticOperators

_node_ids = itertools.count()
_tensor_ids = itertools.count(1)


class KerasTensor(ArithmeticOperators):
    """A symbolic tensor: a shape (batch axis first, None) and the call that produced it.
    Its arithmetic operators (`x + 1`, `x @ w`, `x[:, :3]`) become layers of the functional
    model, as `ops.*` on it do.

    Attributes:
        shape: e.g. `(None, 784)`.
        dtype: a model input's declared dtype (`Input(dtype="int32")`), else "float32" (what
            every layer computes in).
        name: the input's name for model inputs, else a unique `keras_tensor_N`.
    """

    def __init__(self, shape: Tuple[Optional[int], ...], history: Tuple[Any, int, int], name: Optional[str] = None,
                 dtype: str = "float32"):
        self.shape = tuple(shape)
        self.dtype = dtype
        # (producing layer, index of the call among the layer's calls, index among its outputs)
        self._keras_history = history
        self.name = name or f"keras_tensor_{next(_tensor_ids)}"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def _layer(self):
        """The layer that produced this tensor (the InputLayer for a model input)."""
        return self._keras_history[0]

    @property
    def _node(self) -> "Node":
        layer, node_index, _ = self._keras_history
        return layer._inbound_nodes[node_index]

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


def flatten(structure) -> List[Any]:
    """The leaves of nested lists, tuples and dicts (dict values in key order), in order."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in structure for leaf in flatten(structure[key])]
    return [structure]


def map_structure(fn: Callable[[Any], Any], structure):
    """`structure` with `fn` applied to every leaf; lists, tuples and dicts keep their shape."""
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, item) for item in structure)
    if isinstance(structure, dict):
        return {key: map_structure(fn, value) for key, value in structure.items()}
    return fn(structure)


def fixed_batch_size(tensors) -> Optional[int]:
    """The batch size the tensors fix (`Input(batch_shape=...)`), if they agree on one, else None."""
    sizes = {t.shape[0] for t in tensors if t.shape[0] is not None}
    return sizes.pop() if len(sizes) == 1 else None


class Node:
    """One call of a layer on KerasTensors.

    Attributes:
        layer: the layer called.
        call_inputs: its first argument as given (one tensor, or a list of them).
        input_tensors: the tensors of `call_inputs`, flattened.
        kwargs: the other keyword arguments, KerasTensors among them (e.g. `initial_state`).
        kwarg_tensors: the KerasTensors found in `kwargs`, flattened.
        outputs: the KerasTensors the call returned.
        multi_output: whether the call returned a list.
        id: creation order; a node is always created after the nodes it depends on.
    """

    def __init__(self, layer, call_inputs, kwargs):
        self.layer = layer
        self.call_inputs = call_inputs
        self.input_tensors: List[KerasTensor] = flatten(call_inputs)
        self.kwargs = kwargs
        self.kwarg_tensors: List[KerasTensor] = [t for t in flatten(kwargs) if isinstance(t, KerasTensor)]
        self.outputs: List[KerasTensor] = []
        self.multi_output = False
        self.id = next(_node_ids)

    @property
    def parents(self) -> List[KerasTensor]:
        """Every tensor this call read: its inputs, then the tensors among its kwargs."""
        return self.input_tensors + self.kwarg_tensors

    def batch_size(self):
        """The fixed batch size of the call's inputs (`Input(batch_shape=...)`), else None."""
        return fixed_batch_size(self.parents)

    def __repr__(self):
        return f"<Node {self.layer.name} inputs={[t.name for t in self.parents]}>"
