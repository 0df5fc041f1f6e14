"""Keras 1's merges: the `Merge` layer that joins several Sequential models into the first layer
of another, and the `merge` function on tensors.

    left = Sequential([Dense(32, input_dim=784)])
    right = Sequential([Dense(32, input_dim=784)])
    model = Sequential()
    model.add(Merge([left, right], mode="concat"))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    model.fit([x_left, x_right], y)

The merged model has the branches' inputs, in order, and shares their layers (training it
trains the branch models' weights too, as in Keras 1). The modes map to Keras 3's merge
layers: sum (Add), mul (Multiply), ave (Average), max (Maximum), concat (Concatenate).
"""

from typing import Any, Dict, List

from rustkeras.layers.base import not_supported
from rustkeras.layers.merging import Add, Average, Concatenate, Maximum, Multiply
from rustkeras.layers.node import KerasTensor
from rustkeras.layers.wrappers import _Wrapper

__all__ = ["Merge", "merge"]

_MODES = {"sum": Add, "mul": Multiply, "ave": Average, "max": Maximum, "concat": Concatenate}


def _merge_layer(mode, concat_axis, dot_axes, name=None):
    if dot_axes != -1:
        raise not_supported("Merge", f"dot_axes={dot_axes!r} (mode 'dot' is not supported)")
    if callable(mode) or mode not in _MODES:
        raise NotImplementedError(
            f"Merge: mode={mode!r} is not supported by rustkeras (supported: {', '.join(_MODES)}; "
            "'dot', 'cos' and callables are not)."
        )
    cls = _MODES[mode]
    return cls(axis=concat_axis, name=name) if cls is Concatenate else cls(name=name)


def _unsupported(**args) -> None:
    for arg, value in args.items():
        if value is not None:
            raise not_supported("Merge", arg)


def merge(inputs, mode="sum", concat_axis=-1, dot_axes=-1, output_shape=None, output_mask=None, arguments=None,
          name=None):
    """Keras 1's functional merge of tensors: `merge([a, b], mode='concat')`."""
    _unsupported(output_shape=output_shape, output_mask=output_mask, arguments=arguments)
    return _merge_layer(mode, concat_axis, dot_axes, name)(list(inputs))


class Merge(_Wrapper):
    """The first layer of a Sequential model that merges the outputs of several Sequential
    models (Keras 1).

    Args:
        layers: the Sequential models to merge (two or more), each with a known input shape.
        mode: 'sum', 'mul', 'concat', 'ave' or 'max'.
        concat_axis: the axis of 'concat'.
    """

    supports_masking = True

    def __init__(self, layers=None, mode="sum", concat_axis=-1, dot_axes=-1, output_shape=None, output_mask=None,
                 arguments=None, node_indices=None, tensor_indices=None, name=None, **kwargs):
        from rustkeras.models.sequential import Sequential

        _unsupported(output_shape=output_shape, output_mask=output_mask, arguments=arguments,
                     node_indices=node_indices, tensor_indices=tensor_indices)
        layers = list(layers or [])
        if any(isinstance(l, KerasTensor) for l in layers):
            raise ValueError("Merge joins models; to merge tensors use `merge([a, b], mode=...)` (or Keras 3's "
                             "Concatenate, Add, ...).")
        if len(layers) < 2:
            raise ValueError(f"Merge needs at least 2 models to merge. Received: {len(layers)}")
        for l in layers:
            if not isinstance(l, Sequential):
                raise NotImplementedError(
                    f"Merge: rustkeras merges Sequential models; received {type(l).__name__}. For other graphs "
                    "use the functional API."
                )
        op = _merge_layer(mode, concat_axis, dot_axes)
        super().__init__(name=name, **kwargs)
        self._op = op
        self.mode = mode
        self.concat_axis = concat_axis
        self.branches: List[Sequential] = layers

    def _inner(self):
        return [l for b in self.branches for l in b._layers]

    def _ready(self) -> bool:
        return all(b._ready() for b in self.branches)

    def _graph_call(self, graph, x, in_dims):
        raise ValueError(f'Layer "{self.name}" (Merge) can only be the first layer of a Sequential model.')

    def build_branches(self, graph, batch_size):
        """Builds every branch from inputs of its own into `graph`, then merges their outputs.
        Returns `(input nodes, output node, output mask)`."""
        inputs, outs, masks = [], [], []
        for b in self.branches:
            ins, y, mask = b._build_into(graph, batch_size)
            inputs.extend(ins)
            outs.append(y)
            masks.append(mask)
        self._begin_graph(graph)
        self._op._output_mask = None
        y = self._op.build_graph_multi(graph, outs, masks)
        self._output_mask = self._op._output_mask
        self._collect()
        self.input_shape = [(None,) + tuple(graph.dims(o)) for o in outs]
        self.output_shape = (None,) + tuple(graph.dims(y))
        self.built = True
        return inputs, y, self._output_mask

    def _input_entries(self):
        """`(branch, index)` for every input of the merged model, in order."""
        return [(b, i) for b in self.branches for i in range(len(b._input_names()))]

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable, "mode": self.mode, "concat_axis": self.concat_axis,
                "layers": [{"class_name": "Sequential", "config": b.get_config()} for b in self.branches]}

    @classmethod
    def from_config(cls, config):
        from rustkeras.models.sequential import Sequential

        config = dict(config)
        branches = [Sequential.from_config(entry["config"]) for entry in config.pop("layers")]
        config.pop("trainable", None)
        return cls(branches, **config)
