"""`Lambda`: a layer from a function, traced into the model's graph; and the layers that
`ops.*` on functional-model tensors become.

    model.add(Lambda(lambda x: ops.square(x) * 2 + 1))
    y = Lambda(lambda t, k: t[:, :k], arguments={"k": 3})(x)
    z = ops.relu(x) + 1          # x = Input(...): becomes a layer of the functional model

The function runs once per model build, on symbolic tensors; training runs the graph.
"""

import inspect
import reprlib
from typing import Any, Callable, Dict, Optional

from rustkeras.layers.base import Layer, unique_name


class Lambda(Layer):
    """Wraps `function(inputs, **arguments)` as a layer.

    Args:
        function: called on the layer's input (a tensor, or a list of them) with
            `arguments` as keyword arguments; it may take `mask` and `training` too.
        output_shape: accepted for Keras compatibility and checked against the shape the
            traced function produces (the batch axis left out, or a callable of the input shape).
        mask: a mask for the output (a callable `(inputs, mask) -> mask`), or None.
        arguments: extra keyword arguments for `function`.

    Lambda layers hold no weights. Saved configs carry the function's name only: loading a
    Lambda from a file needs the function passed in `custom_objects`. A function Keras saved as
    bytecode (a `lambda`) is rebuilt only with `load_model(..., safe_mode=False)`, as in Keras.
    """

    supports_masking = True

    def __init__(self, function: Callable, output_shape=None, mask=None, arguments: Optional[Dict[str, Any]] = None,
                 **kwargs):
        if not callable(function):
            raise TypeError(f"Lambda: `function` must be callable. Received: {function!r}")
        if "name" not in kwargs:
            kwargs["name"] = unique_name("lambda")
        super().__init__(**kwargs)
        self.function = function
        self._output_shape_arg = output_shape
        self.mask = mask
        self.arguments = dict(arguments or {})
        params = inspect.signature(function).parameters
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self._fn_takes_mask = "mask" in params or var_kw
        self._fn_takes_training = "training" in params or var_kw

    def call(self, inputs, mask=None, training=None):
        kwargs = dict(self.arguments)
        if self._fn_takes_mask:
            kwargs["mask"] = mask
        if self._fn_takes_training:
            kwargs["training"] = training
        out = self.function(inputs, **kwargs)
        self._check_output_shape(inputs, out)
        return out

    def _check_output_shape(self, inputs, out) -> None:
        spec = self._output_shape_arg
        if spec is None or isinstance(out, (list, tuple)):
            return
        if callable(spec):
            shape_in = [t.shape for t in inputs] if isinstance(inputs, (list, tuple)) else inputs.shape
            expected = tuple(spec(shape_in))
        else:
            expected = (None,) + tuple(spec) if len(tuple(spec)) == len(out.shape) - 1 else tuple(spec)
        got = tuple(getattr(out, "shape", ()))
        if len(expected) != len(got) or any(e is not None and g is not None and int(e) != int(g)
                                            for e, g in zip(expected, got)):
            raise ValueError(f'Lambda "{self.name}": `output_shape` {tuple(spec) if not callable(spec) else expected} '
                             f"does not match the shape its function returns, {got}")

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        if self.mask is not None:
            return self.mask
        return mask

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        fn = self.function
        cfg.update({
            "function": {"class_name": "function", "config": getattr(fn, "__name__", "<lambda>"),
                         "module": getattr(fn, "__module__", None)},
            "arguments": self.arguments,
        })
        if self._output_shape_arg is not None and not callable(self._output_shape_arg):
            cfg["output_shape"] = list(self._output_shape_arg)
        return cfg

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        """The layer of a config: its function by name (from `custom_objects`, a scope or the
        registry); one saved as Python bytecode (Keras' `__lambda__` entry, or Keras 2's
        `function_type: "lambda"`) only when `safe_mode` is False (by default, the innermost
        `SafeModeScope`'s, as `load_model` sets it), for it runs code from the config."""
        from rustkeras.saving import in_safe_mode

        cfg = dict(config)
        safe = (in_safe_mode() if safe_mode is None else safe_mode) is not False
        name = cfg.get("name")
        fn = cfg.pop("function", None)
        saved = _saved_bytecode(fn, cfg.pop("function_type", None), name, "function")
        if saved is not None:
            found = _function_from_bytecode(saved, name, "function", safe)
        else:
            fname = fn.get("config") if isinstance(fn, dict) else fn
            found = (custom_objects or {}).get(fname) if isinstance(fname, str) else None
            if found is None and callable(fn):
                found = fn
            if found is None:
                from rustkeras.saving import get_registered_object

                found = get_registered_object(fname) if isinstance(fname, str) else None
            if found is None:
                raise ValueError(
                    f'Lambda "{name}": the function {reprlib.repr(fname)} of this config is not known. Pass it in '
                    "`custom_objects` (a function saved by name is looked up, never imported from the module the "
                    "config names).")
        for key in ("output_shape", "mask"):
            saved = _saved_bytecode(cfg.get(key), cfg.get(f"{key}_type"), name, key)
            if saved is not None:
                cfg[key] = _function_from_bytecode(saved, name, key, safe)
            elif isinstance(cfg.get(key), dict):
                raise ValueError(f'Lambda "{name}": its `{key}` is a saved object ({cfg[key].get("class_name")!r}); '
                                 "expected a shape, None, or a function saved as bytecode")
        # Keras 2's bookkeeping beside the function and the output shape.
        for key in ("output_shape_type", "mask_type", "module", "output_shape_module"):
            cfg.pop(key, None)
        return cls(found, **cfg)


def _saved_bytecode(value, kind, layer: Optional[str], key: str):
    """`(code, defaults, closure)` of a function saved as bytecode, or None for anything else:
    Keras 3 writes `{"class_name": "__lambda__", "config": {"code", "defaults", "closure"}}`,
    Keras 2 the triple itself with `<key>_type: "lambda"`."""
    if isinstance(value, dict) and value.get("class_name") == "__lambda__":
        inner = value.get("config")
        if not isinstance(inner, dict):
            raise ValueError(f'Lambda "{layer}": its `{key}` entry `__lambda__` has no config; expected '
                             '{"code", "defaults", "closure"}')
        return inner.get("code"), inner.get("defaults"), inner.get("closure")
    if kind == "lambda":
        if isinstance(value, str):
            return value, None, None
        if isinstance(value, (list, tuple)) and len(value) == 3:
            return tuple(value)
        raise ValueError(f'Lambda "{layer}": its `{key}` of type "lambda" must be [code, defaults, closure]. '
                         f"Received: {type(value).__name__}")
    return None


def _function_from_bytecode(saved, layer: Optional[str], key: str, safe: bool) -> Callable:
    """The function Keras' `func_dump` saved (base64 of the marshalled code object), rebuilt
    only outside safe mode. Its globals are rustkeras' `ops`, `keras` (rustkeras) and `K`."""
    if safe:
        raise ValueError(
            f'Lambda "{layer}": its `{key}` was saved as Python bytecode (a `lambda`). Rebuilding it runs code from '
            "the file, so it is refused by default (as in Keras). If you trust the file, pass `safe_mode=False` to "
            "`load_model` (or call `rustkeras.config.enable_unsafe_deserialization()` before `model_from_json`); "
            "else rebuild the layer in code.")
    import base64
    import binascii
    import builtins
    import marshal
    import types

    import rustkeras
    from rustkeras import backend, ops

    code, defaults, closure = saved
    if not isinstance(code, str):
        raise ValueError(f'Lambda "{layer}": its `{key}` bytecode must be a base64 string. Received: '
                         f"{type(code).__name__}")
    try:
        try:
            raw = base64.decodebytes(code.encode("ascii"))
        except (UnicodeEncodeError, binascii.Error):
            raw = code.encode("raw_unicode_escape")
        obj = marshal.loads(raw)
        if not isinstance(obj, types.CodeType):
            raise ValueError(f"the bytecode holds a {type(obj).__name__}, not a function's code")
        cells = None if closure is None else tuple(types.CellType(v) for v in closure)
        argdefs = None if defaults is None else tuple(defaults)
        return types.FunctionType(obj, {"__builtins__": builtins, "ops": ops, "keras": rustkeras, "K": backend},
                                  obj.co_name, argdefs, cells)
    except (ValueError, TypeError, EOFError) as e:
        raise ValueError(f'Lambda "{layer}": its `{key}` bytecode cannot be rebuilt by this Python ({e}); it may '
                         "come from another Python version. Rebuild the layer in code.") from None


class _OpLayer(Layer):
    """The layer an `ops.*` call on functional-model tensors becomes (Keras 3 wraps such calls
    as layers too). It re-applies the op to the traced tensors of its inputs."""

    def __init__(self, fn: Callable, args, kwargs, **layer_kwargs):
        name = getattr(fn, "__name__", "op")
        super().__init__(name=unique_name(name.strip("_") or "op"), **layer_kwargs)
        self._fn = fn
        self._args = args
        self._kwargs = kwargs

    def call(self, inputs):
        from rustkeras.layers.node import KerasTensor, map_structure

        it = iter(inputs if isinstance(inputs, (list, tuple)) else [inputs])
        args = map_structure(lambda v: next(it) if isinstance(v, KerasTensor) else v, (self._args, self._kwargs))
        return self._fn(*args[0], **args[1])

    def get_config(self) -> Dict[str, Any]:
        raise NotImplementedError(
            f'Layer "{self.name}" comes from calling {getattr(self._fn, "__name__", "an op")} on a functional tensor; '
            "its config cannot be saved. Use a Lambda layer (with the function in custom_objects to load it).")


def functional_op(fn: Callable, args, kwargs):
    """`fn(*args, **kwargs)` where some arguments are functional-model KerasTensors: a new
    `_OpLayer` called on those tensors."""
    from rustkeras.layers.node import KerasTensor, flatten

    tensors = [v for v in flatten((list(args), kwargs)) if isinstance(v, KerasTensor)]
    layer = _OpLayer(fn, args, kwargs)
    layer.__dict__["_call_as_list"] = True
    return layer(tensors)
