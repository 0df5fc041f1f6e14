"""Functional models: `Model(inputs, outputs)` over the calls recorded on KerasTensors.

    a = Input(shape=(8,), name="a")
    b = Input(shape=(4,), name="b")
    h = Dense(16, activation="relu")(concatenate([a, b]))
    model = Model(inputs=[a, b], outputs=[Dense(1, name="score")(h), Dense(3, name="kind")(h)])
    model.compile(optimizer="adam", loss={"score": "mse", "kind": "categorical_crossentropy"},
                  loss_weights={"score": 1.0, "kind": 0.2}, metrics={"kind": ["accuracy"]})
    model.fit({"a": xa, "b": xb}, {"score": ys, "kind": yk}, epochs=5)

The model walks the calls from its outputs back to its inputs and builds one engine graph, in
the order the calls were made; a layer called more than once shares its weights.
"""

import json
from typing import Any, Dict, List, Optional

from rustkeras import _core
from rustkeras import layers as _layers
from rustkeras.layers.base import Layer, unique_name
from rustkeras.layers.core import InputLayer
from rustkeras.layers._user import NodeRef, call_options
from rustkeras.layers.node import KerasTensor, Node, fixed_batch_size, flatten, map_structure
from rustkeras.models.training import Trainer

__all__ = ["Model"]


def _tensors(arg: str, value) -> List[KerasTensor]:
    if isinstance(value, dict):
        raise NotImplementedError(f"Model: `{arg}` as a dict is not supported by rustkeras; pass a list.")
    flat = flatten(value)
    bad = [t for t in flat if not isinstance(t, KerasTensor)]
    if not flat or bad:
        raise TypeError(
            f"Model: every entry of `{arg}` must be a KerasTensor (from `Input(...)` or a layer call). "
            f"Received: {bad[0] if bad else value!r}"
        )
    return flat


def _history(t: KerasTensor):
    layer, node_index, tensor_index = t._keras_history
    if layer is None or node_index >= len(layer._inbound_nodes):
        raise ValueError(f"{t!r} has no recorded layer call: it cannot be part of a functional model.")
    return layer, layer._inbound_nodes[node_index], tensor_index


class Model(Trainer):
    """A model from input tensors to output tensors (Keras' functional API).

    Args:
        inputs: a KerasTensor from `Input(...)`, or a list of them (Keras 1: `input`).
        outputs: a KerasTensor computed from the inputs, or a list of them (Keras 1: `output`).
        name: the model's name.
        trainable: whether fit updates its weights.
    """

    def __init__(self, inputs=None, outputs=None, name: Optional[str] = None, trainable: bool = True, **kwargs):
        if "input" in kwargs:
            inputs = kwargs.pop("input") if inputs is None else inputs
        if "output" in kwargs:
            outputs = kwargs.pop("output") if outputs is None else outputs
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to Model: {kwargs}")
        if inputs is None or outputs is None:
            raise NotImplementedError(
                "Model: subclassing (a Model without `inputs` and `outputs`) is not supported by rustkeras; "
                "build a functional model with Model(inputs, outputs), or a Sequential."
            )
        self._init_trainer(name or unique_name("functional"), trainable)
        self._inputs_list = isinstance(inputs, (list, tuple))
        self._outputs_list = isinstance(outputs, (list, tuple))
        self._inputs = _tensors("inputs", inputs)
        self._outputs = _tensors("outputs", outputs)
        self._nodes = self._walk()
        self._layers = self._layer_order()
        self._build()

    # -- structure ------------------------------------------------------------------------

    def _walk(self) -> List[Node]:
        """The calls between the inputs and the outputs, in the order they were made."""
        seen_inputs = set()
        for t in self._inputs:
            if not isinstance(t._layer, InputLayer):
                raise ValueError(f"Model: every input must come from `Input(...)`. Received: {t!r}")
            if id(t) in seen_inputs:
                raise ValueError(f"Model: the input {t.name!r} is passed twice in `inputs`.")
            seen_inputs.add(id(t))
        nodes: Dict[int, Node] = {}
        stack = list(self._outputs)
        while stack:
            t = stack.pop()
            if id(t) in seen_inputs:
                continue
            layer, node, _ = _history(t)
            if isinstance(layer, InputLayer):
                raise ValueError(
                    f'Graph disconnected: cannot obtain value for tensor {t!r} at layer "{layer.name}": it is not '
                    f"one of the model's inputs {[x.name for x in self._inputs]}."
                )
            if node.id not in nodes:
                nodes[node.id] = node
                stack.extend(node.parents)
        return sorted(nodes.values(), key=lambda n: n.id)

    def _layer_order(self) -> List[Layer]:
        """`model.layers` in Keras 3's order, which is also the order of `get_weights()`: by
        depth (the longest path to an output, a shared layer at its deepest call), deepest
        first, and at equal depth in the order a depth-first walk from the outputs meets them.
        Inputs that no output uses come last among the layers of depth 0."""
        input_ids = {id(t) for t in self._inputs}
        first_seen: Dict[int, int] = {}
        layers: Dict[int, Layer] = {}
        finished: List[Node] = []
        done = set()
        for out in self._outputs:
            stack = [(out, False)]
            while stack:
                t, expanded = stack.pop()
                layer, node, _ = _history(t)
                if node.id in done:
                    continue
                if expanded:
                    done.add(node.id)
                    finished.append(node)
                    continue
                first_seen.setdefault(id(layer), len(first_seen))
                layers[id(layer)] = layer
                stack.append((t, True))
                if id(t) not in input_ids:
                    stack.extend((p, False) for p in reversed(node.parents))
        node_depth: Dict[int, int] = {}
        layer_depth: Dict[int, int] = {}
        for node in reversed(finished):
            depth = max(node_depth.get(node.id, 0), layer_depth.get(id(node.layer), 0))
            layer_depth[id(node.layer)] = node_depth[node.id] = depth
            for p in node.parents:
                parent = _history(p)[1]
                node_depth[parent.id] = max(node_depth.get(parent.id, 0), depth + 1)
        for t in self._inputs:
            if id(t._layer) not in layer_depth:
                layers[id(t._layer)] = t._layer
                layer_depth[id(t._layer)], first_seen[id(t._layer)] = 0, -1
        return sorted(layers.values(), key=lambda l: (-layer_depth[id(l)], first_seen[id(l)]))

    def _node_index(self, node: Node) -> int:
        """A call's index among this model's calls of the same layer (the config's node index)."""
        return [n for n in self._nodes if n.layer is node.layer].index(node) if node in self._nodes else 0

    def _fixed_batch_size(self) -> Optional[int]:
        return fixed_batch_size(self._inputs)

    def _build(self) -> None:
        held = self._held_weights()
        graph = _core.Graph()
        values: Dict[int, Any] = {}
        in_nodes = []
        for t in self._inputs:
            in_nodes.append(graph.input([int(d) for d in t.shape[1:]]))
            values[id(t)] = (in_nodes[-1], None)
        for node in self._nodes:
            layer = node.layer
            kwargs = map_structure(lambda v: NodeRef(values[id(v)][0]) if isinstance(v, KerasTensor) else v,
                                   node.kwargs)
            layer._output_mask = layer._output_masks = None
            layer._batch_size = node.batch_size()
            graph.set_scope(layer.name)
            masks = [values[id(t)][1] for t in node.input_tensors]
            try:
                with call_options(layer, node, kwargs) as kwargs:
                    if "mask" in kwargs:
                        given = kwargs.pop("mask")
                        masks = [int(m) if m is not None else None
                                 for m in (given if isinstance(given, (list, tuple)) else [given])]
                    out = layer.build_graph_multi(graph, [values[id(t)][0] for t in node.input_tensors], masks,
                                                  **kwargs)
            except ValueError as e:
                raise ValueError(f'Error building layer "{layer.name}" ({type(layer).__name__}): {e}') from None
            outs = list(out) if node.multi_output else [out]
            masks = (layer._output_masks or [None] * len(outs)) if node.multi_output else [layer._output_mask]
            for t, o, m in zip(node.outputs, outs, masks):
                values[id(t)] = (o, m)
        self._finish_build(graph, in_nodes, [values[id(t)][0] for t in self._outputs], held)

    @property
    def inputs(self) -> List[KerasTensor]:
        return list(self._inputs)

    @property
    def outputs(self) -> List[KerasTensor]:
        return list(self._outputs)

    @property
    def input(self):
        ins = self.inputs
        return ins if len(ins) > 1 else ins[0]

    @property
    def output(self):
        outs = self.outputs
        return outs if len(outs) > 1 else outs[0]

    @property
    def input_shape(self):
        shapes = [t.shape for t in self._inputs]
        return shapes if len(shapes) > 1 else shapes[0]

    @property
    def output_shape(self):
        shapes = [t.shape for t in self._outputs]
        return shapes if len(shapes) > 1 else shapes[0]

    @property
    def input_names(self) -> List[str]:
        return self._input_names()

    @property
    def output_names(self) -> List[str]:
        return self._output_names()

    def _input_names(self) -> List[str]:
        return [t._layer.name for t in self._inputs]

    def _output_names(self) -> List[str]:
        return [t._layer.name for t in self._outputs]

    def _input_owner(self, i: int) -> str:
        return self.name

    def _input_validators(self, i: int):
        t = self._inputs[i]
        checks = [getattr(n.layer, "_validate_input", None) for n in self._nodes if any(p is t for p in n.parents)]
        return [c for c in checks if c is not None]

    def _outputs_as_list(self) -> bool:
        return len(self._outputs) > 1

    def _summary_rows(self):
        rows = []
        for layer in self._layers:
            conn = []
            for node in self._nodes:
                if node.layer is layer:
                    conn += [f"{p._layer.name}[{self._node_index(_history(p)[1])}][{p._keras_history[2]}]"
                             for p in node.parents]
            shape = str(layer.output_shape) if sum(n.layer is layer for n in self._nodes) <= 1 else "multiple"
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}",
                         ", ".join(conn) or "-"))
        return rows

    # -- config ---------------------------------------------------------------------------

    def _tensor_config(self, t: KerasTensor) -> Dict[str, Any]:
        layer, node, tensor_index = _history(t)
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(t.shape), "dtype": "float32",
                           "keras_history": [layer.name, self._node_index(node), tensor_index]}}

    def get_config(self) -> Dict[str, Any]:
        """Keras 3's functional config: each layer with the calls (`inbound_nodes`) that feed it,
        and the model's `input_layers` and `output_layers` as `[layer name, call, output]`."""
        serialize = lambda v: self._tensor_config(v) if isinstance(v, KerasTensor) else v  # noqa: E731
        entries = []
        for layer in self._layers:
            calls = [n for n in self._nodes if n.layer is layer]
            entries.append({
                "module": "keras.layers", "class_name": type(layer).__name__, "config": layer.get_config(),
                "registered_name": None, "name": layer.name,
                "inbound_nodes": [{"args": [map_structure(serialize, n.call_inputs)],
                                   "kwargs": map_structure(serialize, n.kwargs)} for n in calls],
            })

        def ends(tensors, as_list):
            refs = [self._tensor_config(t)["config"]["keras_history"] for t in tensors]
            return refs if as_list else refs[0]

        return {"name": self.name, "trainable": self.trainable, "layers": entries,
                "input_layers": ends(self._inputs, self._inputs_list),
                "output_layers": ends(self._outputs, self._outputs_list)}

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects=None) -> "Model":
        """A new (untrained) model from `get_config()`: the layers are made from their configs
        and called again as the config's `inbound_nodes` say."""
        created: Dict[str, Layer] = {}
        outputs: Dict[tuple, list] = {}
        pending = []
        for entry in config.get("layers", []):
            layer = _layers.layer_from_config(entry, custom_objects)
            name = entry.get("name", layer.name)
            created[name] = layer
            if isinstance(layer, InputLayer):
                outputs[(name, 0)] = [layer.output]
            pending += [(name, k, call) for k, call in enumerate(entry.get("inbound_nodes", []))]

        def tensor(ref):
            name, node_index, tensor_index = ref
            return outputs[(name, node_index)][tensor_index]

        def resolve(v):
            if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
                return tensor(v["config"]["keras_history"])
            return v

        def ready(v):
            return all(not (isinstance(x, dict) and x.get("class_name") == "__keras_tensor__")
                       or tuple(x["config"]["keras_history"][:2]) in outputs for x in _leaves(v))

        while pending:
            progressed = False
            for item in list(pending):
                name, k, call = item
                args, kwargs = call.get("args", []), call.get("kwargs", {})
                if len(args) != 1:
                    raise NotImplementedError(f'Model config: layer "{name}" is called with {len(args)} positional '
                                              "arguments; rustkeras layers take one (the inputs).")
                if (name, k - 1) not in outputs and k > 0 or not ready(args) or not ready(kwargs):
                    continue
                out = created[name](_map_config(resolve, args[0]), **_map_config(resolve, kwargs))
                outputs[(name, k)] = out if isinstance(out, list) else [out]
                pending.remove(item)
                progressed = True
            if not progressed:
                raise ValueError(f"Model config: cannot resolve the inputs of layers {[p[0] for p in pending]}")

        def ends(refs):
            if refs and isinstance(refs[0], (list, tuple)):
                return [tensor(r) for r in refs]
            return tensor(refs)

        return cls(inputs=ends(config["input_layers"]), outputs=ends(config["output_layers"]),
                   name=config.get("name"), trainable=config.get("trainable", True))

    def to_json(self, **kwargs) -> str:
        return json.dumps({"module": "keras", "class_name": "Functional", "config": self.get_config(),
                           "keras_version": "3", "backend": "rustkeras"}, **kwargs)

    def __repr__(self):
        return f"<Functional name={self.name}, built={self.built}>"


def _leaves(v) -> list:
    """Leaves of a config value, where a tensor reference (a dict) counts as one leaf."""
    if isinstance(v, (list, tuple)):
        return [x for item in v for x in _leaves(item)]
    if isinstance(v, dict) and v.get("class_name") != "__keras_tensor__":
        return [x for item in v.values() for x in _leaves(item)]
    return [v]


def _map_config(fn, v):
    """`v` with `fn` applied to its leaves (tensor references count as leaves)."""
    if isinstance(v, (list, tuple)):
        return [_map_config(fn, item) for item in v]
    if isinstance(v, dict) and v.get("class_name") != "__keras_tensor__":
        return {k: _map_config(fn, item) for k, item in v.items()}
    return fn(v)
