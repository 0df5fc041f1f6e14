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

from typing import Any, Dict, List, Optional

from rustkeras import _core
from rustkeras import layers as _layers
from rustkeras.layers.base import Layer, snake_case, unique_name
from rustkeras.layers.core import InputLayer
from rustkeras.layers._user import NodeRef, call_options
from rustkeras.layers.node import KerasTensor, Node, fixed_batch_size, flatten, map_structure
from rustkeras.models import _nested
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
        if inputs is None and outputs is None and type(self) is not Model:
            # A subclassed model: layers are set in the subclass's __init__ and `call` is
            # traced when the model is first built or called.
            self._init_trainer(name or unique_name(snake_case(type(self).__name__)), trainable)
            self._subclassed = True
            return
        if inputs is None or outputs is None:
            raise ValueError(
                "Model: a functional model needs both `inputs` and `outputs` (Model(inputs, outputs)); to write "
                "the model's computation yourself, subclass Model and define `call`."
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
        if self._is_subclassed():
            return None
        return fixed_batch_size(self._inputs)

    def _is_subclassed(self) -> bool:
        return self.__dict__.get("_subclassed", False)

    def build(self, input_shape) -> None:
        """Builds a subclassed model for `input_shape` (with the batch axis; a list of shapes
        for several inputs) by tracing its `call`."""
        if not self._is_subclassed():
            return
        several = isinstance(input_shape, list) and all(isinstance(s, (list, tuple)) for s in input_shape)
        shapes = input_shape if several else [input_shape]
        for shape in shapes:
            if any(d is None for d in tuple(shape)[1:]):
                raise ValueError(f'Model "{self.name}": build() needs known per-sample dimensions, received {shape}')
        _nested.build_subclassed(self, [tuple(sh)[1:] for sh in shapes], several)

    def _require_built(self, x=None) -> None:
        if self._core is None and self._is_subclassed() and x is not None:
            _nested.build_subclassed(self, [tuple(x.shape[1:])], False)
        if self._core is None:
            raise ValueError(
                f'Model "{self.name}" has not been built yet: call it on data, or call `build(input_shape)`.')

    def _build(self) -> None:
        if self._is_subclassed():
            io = self.__dict__.get("_sub_io")
            if io is not None:
                _nested.build_subclassed(self, io[0], io[1])
            return
        held = self._held_weights()
        graph = _core.Graph()
        in_nodes = [graph.input([int(d) for d in t.shape[1:]]) for t in self._inputs]
        outs, _ = self._build_into(graph, in_nodes, [None] * len(in_nodes))
        self._finish_build(graph, in_nodes, outs, held)

    def _build_into(self, graph, in_nodes, in_masks):
        """Builds the model's calls into `graph` from the given input nodes; returns the
        output nodes and their masks (also how a model used as a layer joins another)."""
        values: Dict[int, Any] = {}
        for t, n, m in zip(self._inputs, in_nodes, in_masks):
            values[id(t)] = (n, m)
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
        return [values[id(t)][0] for t in self._outputs], [values[id(t)][1] for t in self._outputs]

    @property
    def inputs(self) -> List[KerasTensor]:
        if self._is_subclassed():
            raise AttributeError(f'Model "{self.name}" is a subclassed model: it has no symbolic inputs.')
        return list(self._inputs)

    @property
    def outputs(self) -> List[KerasTensor]:
        if self._is_subclassed():
            raise AttributeError(f'Model "{self.name}" is a subclassed model: it has no symbolic outputs.')
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
        if self._is_subclassed():
            io = self.__dict__.get("_sub_io")
            if io is None:
                raise AttributeError(f'Model "{self.name}" has not been built yet.')
            shapes = [(None,) + s for s in io[0]]
            return shapes if io[1] else shapes[0]
        shapes = [t.shape for t in self._inputs]
        return shapes if len(shapes) > 1 else shapes[0]

    @property
    def output_shape(self):
        if self._is_subclassed():
            io = self.__dict__.get("_sub_io")
            if io is None:
                raise AttributeError(f'Model "{self.name}" has not been built yet.')
            shapes = [(None,) + s for s in io[2]]
            return shapes if io[3] else shapes[0]
        shapes = [t.shape for t in self._outputs]
        return shapes if len(shapes) > 1 else shapes[0]

    @property
    def input_names(self) -> List[str]:
        return self._input_names()

    @property
    def output_names(self) -> List[str]:
        return self._output_names()

    def _input_names(self) -> List[str]:
        if self._is_subclassed():
            io = self.__dict__.get("_sub_io")
            n = len(io[0]) if io else 1
            return [f"input_{i + 1}" for i in range(n)] if n > 1 else ["input"]
        return [t._layer.name for t in self._inputs]

    def _output_names(self) -> List[str]:
        if self._is_subclassed():
            io = self.__dict__.get("_sub_io")
            n = len(io[2]) if io else 1
            return [f"output_{i + 1}" for i in range(n)] if n > 1 else ["output"]
        return [t._layer.name for t in self._outputs]

    def _input_owner(self, i: int) -> str:
        return self.name

    def _input_validators(self, i: int):
        if self._is_subclassed():
            return []
        t = self._inputs[i]
        checks = [getattr(n.layer, "_validate_input", None) for n in self._nodes if any(p is t for p in n.parents)]
        return [c for c in checks if c is not None]

    def _input_dtype(self, i: int) -> str:
        return "float32" if self._is_subclassed() else self._inputs[i].dtype

    def _outputs_as_list(self) -> bool:
        if self._is_subclassed():
            io = self.__dict__.get("_sub_io")
            return bool(io and io[3])
        return len(self._outputs) > 1

    def _summary_rows(self):
        if self._is_subclassed():
            return [(f"{l.name} ({type(getattr(l, 'model', l)).__name__})", str(l.output_shape),
                     f"{l.count_params():,}", "") for l in self._layers]
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
        index = self._node_index(node) + (1 if _calls_count_from_one(getattr(layer, "model", None)) else 0)
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(t.shape), "dtype": t.dtype,
                           "keras_history": [layer.name, index, tensor_index]}}

    def get_config(self) -> Dict[str, Any]:
        """Keras 3's functional config: each layer with the calls (`inbound_nodes`) that feed it,
        and the model's `input_layers` and `output_layers` as `[layer name, call, output]`.
        A subclassed model has no such config: as in Keras, it defines its own."""
        if self._is_subclassed():
            raise NotImplementedError(
                f'Model "{self.name}" ({type(self).__name__}) is a subclassed model: define get_config() (and '
                "from_config()) to serialize it, as Keras requires.")
        from rustkeras._saving import keras_config

        serialize = lambda v: self._tensor_config(v) if isinstance(v, KerasTensor) else v  # noqa: E731
        entries = []
        for layer in self._layers:
            calls = [n for n in self._nodes if n.layer is layer]
            entry = keras_config.serialize_layer(layer)
            entry["name"] = layer.name
            entry["inbound_nodes"] = [{"args": [map_structure(serialize, n.call_inputs)],
                                       "kwargs": map_structure(serialize, n.kwargs)} for n in calls]
            entries.append(entry)

        def ends(tensors, as_list):
            refs = [self._tensor_config(t)["config"]["keras_history"] for t in tensors]
            return refs if as_list else refs[0]

        return {"name": self.name, "trainable": self.trainable, "layers": entries,
                "input_layers": ends(self._inputs, self._inputs_list),
                "output_layers": ends(self._outputs, self._outputs_list)}

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects=None) -> "Model":
        """A new (untrained) model from `get_config()`: the layers are made from their configs
        and called again as the config's `inbound_nodes` say. (A subclass's own config, one
        without layers, is passed to its constructor, as Keras does.)"""
        if not isinstance(config, dict):
            raise ValueError(f"Model config: expected a dict. Received: {type(config).__name__}")
        if not all(k in config for k in ("layers", "input_layers", "output_layers")):
            if cls is not Model and "layers" not in config:
                return cls(**config)
            raise ValueError("Model config: a functional model's config needs `layers`, `input_layers` and "
                             f"`output_layers`. Received keys: {sorted(config)}")
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

        def key(ref):
            if not isinstance(ref, (list, tuple)) or len(ref) < 3 or not all(
                    isinstance(i, int) and not isinstance(i, bool) for i in ref[1:3]):
                raise ValueError(f"Model config: a tensor reference must be [layer name, call, output]. Received: "
                                 f"{ref!r}")
            # As in Keras, a functional model's call 0 is the model's own (the history counts from 1).
            return (ref[0], ref[1] - (1 if _calls_count_from_one(created.get(ref[0])) else 0))

        def tensor(ref):
            outs = outputs.get(key(ref))
            if outs is None or not 0 <= ref[2] < len(outs):
                raise ValueError(f"Model config: no layer call produces the tensor {list(ref)}")
            return outs[ref[2]]

        def history(v):
            cfg = v.get("config")
            if not isinstance(cfg, dict) or "keras_history" not in cfg:
                raise ValueError(f"Model config: a tensor reference lacks its `keras_history`. Received: {v!r}")
            return cfg["keras_history"]

        def resolve(v):
            if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
                return tensor(history(v))
            return v

        def ready(v):
            return all(not (isinstance(x, dict) and x.get("class_name") == "__keras_tensor__")
                       or key(history(x)) in outputs for x in _leaves(v))

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
        """The model's Keras 3 JSON (what `model_from_json` and Keras' `model_from_json` read)."""
        from rustkeras._saving import keras_config

        return keras_config.to_json(keras_config.model_entry(self), **kwargs)

    def __repr__(self):
        return f"<Functional name={self.name}, built={self.built}>"


def _calls_count_from_one(layer) -> bool:
    """Whether a layer is a functional model: Keras counts its calls in another model from 1
    (its call 0 is its own construction)."""
    from rustkeras.models.sequential import Sequential

    return isinstance(layer, Model) and not isinstance(layer, Sequential) and not layer._is_subclassed()


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
