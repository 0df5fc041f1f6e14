"""Models as user code and models inside models.

- A subclassed `Model` (layers set in `__init__`, `call(inputs, training=None)`) is built by
  tracing `call` once on symbolic tensors of the input shape, when the model is first built
  (`build`, `fit`/`predict` on arrays, or a call). Its `layers` are the layers it holds in
  its attributes, in the order they were set, which is also the order of `get_weights()`.
- A model called on tensors (functional-model tensors, or a trace's symbolic tensors) acts
  as a layer of the outer model: its layers are built into the outer graph and keep their
  weights, shared by both models (one set of weights, on one device).
- A model called on arrays predicts them.
"""

import inspect
from typing import List

import numpy as np

from rustkeras import _core
from rustkeras import _symbolic as S
from rustkeras.layers import _user
from rustkeras.layers.base import Layer
from rustkeras.layers.wrappers import _Wrapper


class _CallAdapter(Layer):
    """The layer through which a subclassed model's `call` is traced: its sublayers are the
    model's layers."""

    def __init__(self, model):
        super().__init__(name=model.name)
        self.__dict__["_model_ref"] = model

    def _tracked_sublayers(self):
        return model_sublayers(self.__dict__["_model_ref"])

    def call(self, inputs, training=None, mask=None):
        model = self.__dict__["_model_ref"]
        params = inspect.signature(model.call).parameters
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kwargs = {}
        if "training" in params or var_kw:
            kwargs["training"] = training
        if mask is not None and ("mask" in params or var_kw):
            kwargs["mask"] = mask
        return model.call(inputs, **kwargs)


def model_sublayers(model) -> List[Layer]:
    """The layers a subclassed model holds in its attributes (also inside lists, tuples and
    dicts), in the order they were set; a nested model counts as its own layer."""
    from rustkeras.models.training import Trainer

    out: list = []

    def visit(v, depth=0):
        if isinstance(v, Trainer):
            v = layer_of(v)
        if isinstance(v, Layer):
            if not any(v is o for o in out):
                out.append(v)
        elif depth < 3 and isinstance(v, (list, tuple)):
            for x in v:
                visit(x, depth + 1)
        elif depth < 3 and isinstance(v, dict):
            for x in v.values():
                visit(x, depth + 1)

    for k, v in model.__dict__.items():
        if not k.startswith("_"):
            visit(v)
    return out


def _call_adapter(model) -> _CallAdapter:
    adapter = model.__dict__.get("_call_layer")
    if adapter is None:
        adapter = _CallAdapter(model)
        model.__dict__["_call_layer"] = adapter
    return adapter


def build_subclassed(model, input_shapes, as_list: bool) -> None:
    """Traces a subclassed model's `call` for per-sample `input_shapes` and makes its engine
    model."""
    if type(model).call is _base_call():
        raise NotImplementedError(f'Model "{model.name}" ({type(model).__name__}) must define `call(inputs)`.')
    held = model._held_weights()
    adapter = _call_adapter(model)
    graph = _core.Graph()
    nodes = [graph.input([int(d) for d in s]) for s in input_shapes]
    adapter._batch_size = None
    graph.set_scope(model.name)
    out = _user.trace_call(adapter, graph, nodes, [None] * len(nodes), {}, as_list)
    outs = out if isinstance(out, list) else [out]
    model._sub_io = ([tuple(s) for s in input_shapes], as_list, [tuple(graph.dims(o)) for o in outs],
                     isinstance(out, list))
    model._layers = model_sublayers(model)
    model._finish_build(graph, nodes, outs, held)
    core = model._core
    for var, value in adapter.__dict__.get("_constants", ()):
        core.set_var(var, value)
        core.set_trainable(var, False)
    if model._compile_args is not None:
        model._compile_core()


def _base_call():
    from rustkeras.models.training import Trainer

    return getattr(Trainer, "call", None)


class _ModelLayer(_Wrapper):
    """A model used as a layer of another model: builds the model's layers into the outer
    graph. Its weights are the model's, in the model's order."""

    supports_masking = True

    def __init__(self, model):
        super().__init__(name=model.name, trainable=model.trainable)
        self.__dict__["_model_ref"] = model

    @property
    def model(self):
        return self.__dict__["_model_ref"]

    def _inner(self):
        model = self.model
        if getattr(model, "_subclassed", False):
            return model_sublayers(model) + [_call_adapter(model)]
        return list(model._layers)

    def _attach(self, core) -> None:
        super()._attach(core)
        model = self.model
        if getattr(model, "_subclassed", False):
            for var, value in _call_adapter(model).__dict__.get("_constants", ()):
                core.set_var(var, value)
                core.set_trainable(var, False)

    def build_graph(self, graph, x, mask=None):
        return self.build_graph_multi(graph, [x], [mask])

    def build_graph_multi(self, graph, inputs, masks, **kwargs):
        from rustkeras.models.functional import Model
        from rustkeras.models.sequential import Sequential

        model = self.model
        self._begin_graph(graph)
        training = kwargs.pop("training", None)
        kwargs.pop("mask", None)
        if kwargs:
            raise self._unexpected_kwarg(next(iter(kwargs)))
        if getattr(model, "_subclassed", False):
            adapter = _call_adapter(model)
            adapter._batch_size = self._batch_size
            as_list = len(inputs) != 1 or bool(self.__dict__.get("_call_as_list"))
            out = _user.trace_call(adapter, graph, list(inputs), list(masks), {}, as_list, training=training)
            self._output_mask = None
            self._output_masks = [None] * len(out) if isinstance(out, list) else None
        elif isinstance(model, Sequential):
            if len(inputs) != 1:
                raise ValueError(f'Model "{model.name}" (Sequential) takes one input, received {len(inputs)}')
            _, out, mask = model._build_into(graph, self._batch_size, x=inputs[0], mask=masks[0])
            self._output_mask = mask
        elif isinstance(model, Model):
            if len(inputs) != len(model._inputs):
                raise ValueError(f'Model "{model.name}" expects {len(model._inputs)} input(s), received {len(inputs)}')
            outs, out_masks = model._build_into(graph, list(inputs), list(masks))
            if len(outs) == 1 and not model._outputs_list:
                out = outs[0]
                self._output_mask = out_masks[0]
            else:
                out = outs
                self._output_masks = out_masks
        else:
            raise TypeError(f"cannot use {type(model).__name__} as a layer")
        self._collect()
        self.output_shape = ([(self._batch_size,) + tuple(graph.dims(o)) for o in out] if isinstance(out, list)
                             else (self._batch_size,) + tuple(graph.dims(out)))
        self.built = True
        return out

    def _collect(self) -> None:
        seen, ws = set(), []
        for layer in self._inner():
            for w in layer._weights:
                if w.var not in seen:
                    seen.add(w.var)
                    ws.append(w)
        self._weights = ws

    def count_params(self) -> int:
        return self.model.count_params() if self.model.built else 0

    def _trainable_count(self) -> int:
        return self.model._trainable_count() if self.trainable and self.model.built else 0

    def get_config(self):
        return self.model.get_config()

    def __repr__(self):
        return f"<{type(self.model).__name__} name={self.model.name} (as a layer)>"


def layer_of(model) -> _ModelLayer:
    """The one layer a model acts as inside other models (so that its calls share weights)."""
    layer = model.__dict__.get("_as_layer")
    if layer is None:
        layer = _ModelLayer(model)
        model.__dict__["_as_layer"] = layer
    return layer


def call_model(model, inputs, kwargs):
    """`model(inputs)`: on functional-model tensors or a trace's tensors, the model as a layer;
    on arrays, its predictions."""
    from rustkeras.layers.node import KerasTensor

    flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    if flat and all(isinstance(t, (KerasTensor, S.SymbolicTensor)) for t in flat):
        if getattr(model, "_subclassed", False) and model._core is None:
            shapes = [tuple(t.shape[1:]) for t in flat]
            build_subclassed(model, shapes, isinstance(inputs, (list, tuple)))
        return layer_of(model)(inputs, **kwargs)
    training = kwargs.pop("training", None)
    kwargs.pop("mask", None)
    if kwargs:
        raise TypeError(f'Model "{model.name}": call() got unexpected keyword argument(s) {sorted(kwargs)}')
    if training:
        raise NotImplementedError(f'Model "{model.name}": an eager call with training=True is not supported by '
                                  "rustkeras (eager calls run in inference mode).")
    arrays = [np.asarray(a.numpy() if isinstance(a, S.Variable) else a) for a in flat]
    x = arrays if isinstance(inputs, (list, tuple)) else arrays[0]
    return model.predict(x, batch_size=max(int(arrays[0].shape[0]), 1), verbose=0)
