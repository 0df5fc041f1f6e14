"""Keras-style layers written by the user: `build(input_shape)` with `add_weight`, and
`call(inputs, training=None, mask=None)` on symbolic tensors, traced into the model's graph.

A layer whose class defines `call(inputs, ...)` (rather than the built-in layers' private
`_graph_call(graph, x, in_dims)`) is a user's layer. When a model is built, its `call` runs
once on symbolic tensors (`rustkeras._symbolic`) and adds nodes to the model's graph; fit,
evaluate and predict then run the graph with no Python per batch. A `call` with a `training`
argument is traced twice, once per mode, and the two results are joined by a node that picks
the training one in fit and the other in evaluate and predict (when the two traces built the
same nodes, the layer did not branch and one trace serves both).

Weights: `add_weight` records the weight's spec (name, shape, initializer, regularizer,
trainable) and returns a `Variable`. `build` runs once, with the first concrete input shape;
each graph the layer is built into afterwards declares the same weights again from the specs
(and a model rebuilt over the layer keeps their values, as for every layer). The layers a
user's layer holds in its attributes (directly, or in lists, tuples and dicts) are its
sublayers: their weights follow its own in `weights`, and they are bound to the same model.
"""

import inspect
from typing import Any, Dict, List, Optional

import numpy as np

from rustkeras import _symbolic as S


def _class_defines(layer, name: str) -> bool:
    from rustkeras.layers.base import Layer

    for cls in type(layer).__mro__:
        if cls is Layer:
            return False
        if name in cls.__dict__:
            return True
    return False


def overrides_call(layer) -> bool:
    """Whether the layer's class (or a class between it and Layer) defines a Keras-style
    `call`; the built-in layers define only `_graph_call`."""
    cached = type(layer).__dict__.get("_rk_user_call")
    if cached is None:
        cached = _class_defines(layer, "call")
        setattr(type(layer), "_rk_user_call", cached)
    return cached


def sublayers(layer) -> list:
    """The layers a user's layer holds in its attributes, in attribute order (none for the
    built-in layers, whose inner layers are their own business)."""
    from rustkeras.layers.base import Layer

    tracked = getattr(layer, "_tracked_sublayers", None)
    if tracked is not None:
        return tracked()
    if not overrides_call(layer):
        return []
    out: list = []

    def visit(v, depth=0):
        if isinstance(v, Layer):
            if v is not layer and not any(v is o for o in out):
                out.append(v)
        elif depth < 3 and isinstance(v, (list, tuple)):
            for x in v:
                visit(x, depth + 1)
        elif depth < 3 and isinstance(v, dict):
            for x in v.values():
                visit(x, depth + 1)

    for k, v in layer.__dict__.items():
        if not k.startswith("_") or k in ("_layers_list",):
            visit(v)
    return out


# -- weights ------------------------------------------------------------------------------


def add_weight(layer, args, kwargs):
    from rustkeras import initializers, regularizers

    args = list(args)
    spec: Dict[str, Any] = {}
    if args and isinstance(args[0], str):
        # Keras 2: add_weight(name, shape, dtype=None, initializer=None, regularizer=None, trainable=True, ...)
        order = ["name", "shape", "dtype", "initializer", "regularizer", "trainable", "constraint"]
    else:
        # Keras 3 keywords / Keras 1 positional: add_weight(shape, initializer, name=None, trainable=True, ...)
        order = ["shape", "initializer", "name", "trainable", "regularizer", "constraint"]
    if len(args) > len(order):
        raise TypeError(f'Layer "{layer.name}": add_weight() takes at most {len(order)} positional arguments')
    for k, v in zip(order, args):
        spec[k] = v
    for k, v in kwargs.items():
        if k in spec:
            raise TypeError(f'Layer "{layer.name}": add_weight() got multiple values for argument {k!r}')
        spec[k] = v
    known = {"shape", "initializer", "dtype", "trainable", "regularizer", "constraint", "name", "autocast",
             "aggregation", "synchronization", "overwrite_with_gradient", "use_resource", "partitioner"}
    unknown = set(spec) - known
    if unknown:
        raise TypeError(f'Layer "{layer.name}": add_weight() got unexpected keyword argument(s) {sorted(unknown)}')
    if spec.get("constraint") is not None:
        raise NotImplementedError(f'Layer "{layer.name}": add_weight(constraint=...) is not supported by rustkeras yet.')
    if spec.get("overwrite_with_gradient"):
        raise NotImplementedError(f'Layer "{layer.name}": add_weight(overwrite_with_gradient=True) is not supported.')
    dtype = spec.get("dtype")
    if dtype not in (None, "float32", np.float32):
        raise NotImplementedError(f'Layer "{layer.name}": add_weight(dtype={dtype!r}): rustkeras weights are float32.')
    shape = spec.get("shape")
    shape = () if shape is None else ((int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape))
    if any(d is None or int(d) <= 0 for d in shape):
        raise ValueError(f'Layer "{layer.name}": add_weight(shape={shape}) needs positive, known dimensions '
                         "(build() receives the input shape; use its per-sample dimensions).")
    shape = tuple(int(d) for d in shape)
    init = spec.get("initializer")
    init = initializers.get("glorot_uniform" if init is None else init)
    specs = layer.__dict__.setdefault("_weight_specs", [])
    name = spec.get("name") or "variable"
    taken = {s["name"] for s in specs}
    base, k = name, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    entry = {"name": name, "shape": shape, "initializer": init,
             "regularizer": regularizers.get(spec.get("regularizer")), "trainable": bool(spec.get("trainable", True))}
    specs.append(entry)
    index = len(specs) - 1
    graph = layer.__dict__.get("_tracing_graph")
    if graph is not None:
        _declare(layer, graph, entry)
    return S.Variable(name=name, trainable=entry["trainable"], layer=layer, index=index, shape=shape)


def _declare(layer, graph, entry) -> None:
    layer._graph_weight(graph, entry["name"], entry["shape"], entry["initializer"], entry["regularizer"],
                        entry["trainable"])


def add_loss(layer, loss) -> None:
    trace = S.current()
    if trace is None or trace.eager:
        raise ValueError(f'Layer "{layer.name}": add_loss() is used inside `call`, on the tensors of the call.')
    from rustkeras import ops

    t = S.to_tensor(loss, trace)
    if t.ndim:
        t = ops.sum(t)
    trace.losses.append(t.node)


# -- tracing ------------------------------------------------------------------------------


def _call_params(layer):
    params = inspect.signature(layer.call).parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return ("training" in params or var_kw), ("mask" in params or var_kw), params


def trace_call(layer, graph, nodes: List[int], masks: List[Optional[int]], kwargs: Dict[str, Any], as_list: bool,
               training: Optional[bool] = None):
    """Traces `layer.call` on input nodes `nodes` of `graph`; returns its output node (or a
    list of nodes). `kwargs` are the call's other arguments (`NodeRef`s and symbolic tensors
    among them become symbolic tensors); `training` forces a mode (else: traced per mode
    when `call` takes `training`)."""
    layer._begin_graph(graph)
    layer.input_shape = [(layer._batch_size,) + tuple(graph.dims(n)) for n in nodes] if as_list \
        else (layer._batch_size,) + tuple(graph.dims(nodes[0]))
    _ensure_built(layer, graph)
    takes_training, takes_mask, _ = _call_params(layer)
    if "training" in kwargs:
        training = kwargs.pop("training")
    modes = [training] if (training is not None or not takes_training) else [True, False]
    outs, losses = [], []
    for mode in modes:
        trace = S.Trace(graph, eager=False, training=mode)
        with S.tracing(trace):
            inputs = [_in_tensor(trace, n, m) for n, m in zip(nodes, masks)]
            call_kwargs = {k: _kwarg(trace, v) for k, v in kwargs.items()}
            if takes_training:
                call_kwargs["training"] = mode
            if takes_mask and "mask" not in call_kwargs:
                mask_t = [None if m is None else S.SymbolicTensor(trace, m) for m in masks]
                if any(m is not None for m in mask_t):
                    call_kwargs["mask"] = mask_t if as_list else mask_t[0]
            result = layer.call(inputs if as_list else inputs[0], **call_kwargs)
            out_nodes = _output_nodes(layer, trace, result)
        layer.__dict__.setdefault("_constants", []).extend(trace.constants)
        outs.append(out_nodes)
        losses.append(trace.losses)
    out = outs[0]
    if len(outs) == 2:
        out = _join_modes(layer, graph, outs[0], outs[1])
        extra = _join_losses(graph, losses[0], losses[1])
    else:
        extra = losses[0]
    _collect_weights(layer)
    layer.__dict__.setdefault("_traced_losses", []).extend(extra)
    layer.output_shape = _output_shapes(layer, graph, out)
    layer.built = True
    return out


def _ensure_built(layer, graph) -> None:
    """Runs the user's `build` once; in a later graph, declares the weights it created."""
    specs = layer.__dict__.setdefault("_weight_specs", [])
    if not layer.__dict__.get("_user_built"):
        layer.__dict__["_tracing_graph"] = graph
        # Weights created in __init__ (a known shape) are declared before build adds more.
        for entry in specs[len(layer._weights):]:
            _declare(layer, graph, entry)
        try:
            shape = layer.input_shape
            # Keras 1 layers index the shape (`input_shape[1]`); give them a tuple.
            layer.build(shape)
        finally:
            layer.__dict__["_tracing_graph"] = None
        layer.__dict__["_user_built"] = True
    elif len(layer._weights) < len(specs):
        for entry in specs[len(layer._weights):]:
            _declare(layer, graph, entry)
    layer.__dict__["_constants"] = [c for c in layer.__dict__.get("_constants", [])
                                    if layer.__dict__.get("_constants_graph") is graph]
    layer.__dict__["_constants_graph"] = graph
    if layer.__dict__.get("_losses_graph") is not graph:
        layer.__dict__["_traced_losses"] = []
        layer.__dict__["_losses_graph"] = graph


def _in_tensor(trace, node, mask):
    t = S.SymbolicTensor(trace, node)
    if mask is not None:
        t._keras_mask = S.SymbolicTensor(trace, mask)
    return t


class NodeRef(int):
    """A graph node passed as a call's keyword argument (a functional tensor's node)."""


def _kwarg(trace, v):
    if isinstance(v, NodeRef):
        return S.SymbolicTensor(trace, int(v))
    if isinstance(v, (list, tuple)):
        return type(v)(_kwarg(trace, x) for x in v)
    if isinstance(v, dict):
        return {k: _kwarg(trace, x) for k, x in v.items()}
    return v


def _output_nodes(layer, trace, result):
    if isinstance(result, (list, tuple)):
        return [S.to_tensor(r, trace).node for r in result]
    if isinstance(result, dict):
        raise NotImplementedError(f'Layer "{layer.name}": call() returning a dict is not supported; return a list.')
    if result is None:
        raise ValueError(f'Layer "{layer.name}": call() returned None; it must return the output tensor(s).')
    return S.to_tensor(result, trace).node


def _join_modes(layer, graph, a, b):
    if isinstance(a, list) != isinstance(b, list) or (isinstance(a, list) and len(a) != len(b)):
        raise ValueError(f'Layer "{layer.name}": call() returns different structures for training=True and False.')
    pairs = list(zip(a, b)) if isinstance(a, list) else [(a, b)]
    out = []
    for x, y in pairs:
        if graph.dims(x) != graph.dims(y) or graph.batched(x) != graph.batched(y):
            raise ValueError(f'Layer "{layer.name}": call() returns different shapes for training=True '
                             f"({graph.dims(x)}) and training=False ({graph.dims(y)}).")
        out.append(x if graph.equivalent(x, y) else graph.train_select(x, y))
    return out if isinstance(a, list) else out[0]


def _join_losses(graph, a, b):
    if len(a) != len(b):
        return a
    return [x if graph.equivalent(x, y) else graph.train_select(x, y) for x, y in zip(a, b)]


def _collect_weights(layer) -> None:
    own = layer._own_weights()
    seen = {w.var for w in own}
    extra = []
    for sub in sublayers(layer):
        for w in sub._weights:
            if w.var not in seen:
                seen.add(w.var)
                extra.append(w)
    layer._weights = list(own) + extra


def _output_shapes(layer, graph, out):
    if isinstance(out, list):
        return [(layer._batch_size,) + tuple(graph.dims(o)) for o in out]
    return (layer._batch_size,) + tuple(graph.dims(out))


def output_mask(layer, graph, x, mask):
    """The mask a user's layer passes on: from its `compute_mask(inputs, mask)` when it
    defines one, else the incoming mask when it `supports_masking`."""
    if _class_defines(layer, "compute_mask"):
        params = inspect.signature(layer.compute_mask).parameters
        if "graph" not in params:
            trace = S.Trace(graph, eager=False)
            with S.tracing(trace):
                m = layer.compute_mask(S.SymbolicTensor(trace, x),
                                       None if mask is None else S.SymbolicTensor(trace, mask))
            return None if m is None else S.to_tensor(m, trace).node
    return mask if layer.supports_masking else None


def build_multi(layer, graph, inputs, masks, kwargs):
    as_list = bool(layer.__dict__.get("_call_as_list", len(inputs) != 1))
    out = trace_call(layer, graph, list(inputs), list(masks), dict(kwargs), as_list)
    if isinstance(out, list):
        layer._output_masks = [None] * len(out)
    else:
        layer._output_mask = output_mask(layer, graph, inputs[0], masks[0]) if len(inputs) == 1 else None
    return out


# -- calls on symbolic tensors and on arrays ----------------------------------------------


def call_symbolic(layer, inputs, kwargs):
    """A layer called inside another layer's `call` (or a Lambda, or a subclassed model):
    builds it into the same graph and returns symbolic tensors."""
    flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    trace = flat[0].trace
    graph = trace.graph
    training = kwargs.pop("training", None)
    mask = kwargs.pop("mask", None)
    if training is None:
        training = trace.training
    nodes = [S.to_tensor(x, trace).node for x in flat]
    masks = [None if getattr(x, "_keras_mask", None) is None else x._keras_mask.node for x in flat]
    if mask is not None:
        ms = mask if isinstance(mask, (list, tuple)) else [mask]
        masks = [None if m is None else S.to_tensor(m, trace).node for m in ms]
    layer._batch_size = getattr(layer, "_batch_size", None)
    node_kwargs = {k: _to_noderef(trace, v) for k, v in kwargs.items()}
    as_list = isinstance(inputs, (list, tuple))
    if overrides_call(layer):
        layer._begin_graph(graph)
        out = trace_call(layer, graph, nodes, masks, node_kwargs, as_list, training=training)
        out_mask = output_mask(layer, graph, nodes[0], masks[0]) if not isinstance(out, list) and len(nodes) == 1 \
            else None
    else:
        _check_builtin_mode(layer, trace, training)
        layer.__dict__["_call_as_list"] = as_list
        try:
            if as_list or node_kwargs:
                out = layer.build_graph_multi(graph, nodes, masks, **node_kwargs)
            else:
                out = layer.build_graph(graph, nodes[0], masks[0])
        finally:
            layer.__dict__.pop("_call_as_list", None)
        out_mask = None if isinstance(out, list) else layer._output_mask
    if isinstance(out, (list, tuple)):
        return [S.SymbolicTensor(trace, o) for o in out]
    t = S.SymbolicTensor(trace, out)
    if out_mask is not None:
        t._keras_mask = S.SymbolicTensor(trace, out_mask)
    return t


def _to_noderef(trace, v):
    if isinstance(v, (S.SymbolicTensor, S.Variable)):
        return NodeRef(S.to_tensor(v, trace).node)
    if isinstance(v, (list, tuple)):
        return type(v)(_to_noderef(trace, x) for x in v)
    return v


def _check_builtin_mode(layer, trace, training) -> None:
    if training is None or trace.training is None or training == trace.training:
        forced = training if (training is not None and trace.training is None) else None
    else:
        forced = training
    layer.__dict__["_forced_training"] = forced
    if forced is not None and getattr(layer, "_mode_dependent", False) and not getattr(layer, "_accepts_forced", False):
        raise NotImplementedError(
            f'Layer "{layer.name}" ({type(layer).__name__}): `training={training}` differs from the mode the model runs '
            "in, which rustkeras does not support for this layer.")


def builtin_call(layer, inputs, kwargs):
    """`call` of a built-in layer on symbolic tensors (`super().call(x)` in a user's
    subclass of a built-in layer, or `layer.call(x)` directly)."""
    flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    if not flat or not isinstance(flat[0], S.SymbolicTensor):
        raise TypeError(f'Layer "{layer.name}": call() takes the symbolic tensors of a trace; call the layer '
                        "itself (`layer(x)`) on arrays or functional-model tensors.")
    trace = flat[0].trace
    graph = trace.graph
    nodes = [S.to_tensor(x, trace).node for x in flat]
    kwargs = dict(kwargs)
    kwargs.pop("training", None)
    mask = kwargs.pop("mask", None)
    layer._begin_graph(graph)
    if len(nodes) == 1 and not isinstance(inputs, (list, tuple)) and not kwargs:
        in_dims = tuple(graph.dims(nodes[0]))
        layer._input_mask = None if mask is None else S.to_tensor(mask, trace).node
        out = layer._graph_call(graph, nodes[0], in_dims)
    else:
        out = layer.build_graph_multi(graph, nodes, [None] * len(nodes),
                                      **{k: _to_noderef(trace, v) for k, v in kwargs.items()})
    if isinstance(out, (list, tuple)):
        return [S.SymbolicTensor(trace, o) for o in out]
    return S.SymbolicTensor(trace, out)


def call_eager(layer, inputs, kwargs):
    """A layer called on arrays: built into a small model of its own (which then holds its
    weights, as the first model a layer is built into does) and run in inference mode, or in
    training mode with `training=True` (dropout applies; no weights change)."""
    from rustkeras.layers.core import Input
    from rustkeras.models.functional import Model

    training = kwargs.pop("training", None)
    flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    arrays = []
    for x in flat:
        if isinstance(x, S.Variable):
            x = x.numpy()
        a = np.asarray(x)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise TypeError(f'Layer "{layer.name}" was called on a value of type {type(x).__name__}; expected arrays.')
        if a.ndim == 0:
            raise ValueError(f'Layer "{layer.name}" was called on a scalar; its input needs a batch axis.')
        arrays.append(np.ascontiguousarray(a, dtype=np.float32))
    if training:
        raise NotImplementedError(f'Layer "{layer.name}": an eager call with training=True is not supported by '
                                  "rustkeras (eager calls run in inference mode).")
    cache = layer.__dict__.setdefault("_eager_models", {})
    key = tuple(a.shape[1:] for a in arrays) + (tuple(sorted(kwargs)),)
    model = cache.get(key)
    if model is None:
        ins = [Input(shape=a.shape[1:]) for a in arrays]
        out = layer(ins if isinstance(inputs, (list, tuple)) else ins[0], **kwargs)
        model = Model(ins if isinstance(inputs, (list, tuple)) else ins[0], out)
        cache[key] = model
    elif model._core is not layer._core:
        # The layer's weights moved to another model since: read them where they are now.
        model._build()
    result = model.predict(arrays if len(arrays) > 1 else arrays[0], batch_size=max(len(arrays[0]), 1), verbose=0)
    return result


class call_options:
    """Context for building one functional call of a layer: whether its inputs were a list,
    and the `training` it was called with (a user's layer receives it; a built-in layer whose
    behaviour depends on the mode is told to use that mode, or refuses it)."""

    def __init__(self, layer, node, kwargs):
        self.layer = layer
        self.kwargs = dict(kwargs)
        self.as_list = isinstance(node.call_inputs, (list, tuple))

    def __enter__(self):
        layer, kwargs = self.layer, self.kwargs
        layer.__dict__["_call_as_list"] = self.as_list
        if not overrides_call(layer):
            training = kwargs.pop("training", None)
            layer.__dict__["_forced_training"] = training
            if training is not None and getattr(layer, "_mode_dependent", False) \
                    and not getattr(layer, "_accepts_forced", False):
                raise NotImplementedError(
                    f'Layer "{layer.name}" ({type(layer).__name__}): the argument `training={training}` is not '
                    "supported by rustkeras for this layer.")
        return kwargs

    def __exit__(self, *exc):
        self.layer.__dict__.pop("_call_as_list", None)
        self.layer.__dict__.pop("_forced_training", None)
        return False
