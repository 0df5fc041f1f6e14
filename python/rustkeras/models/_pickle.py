"""Pickling a model, as Keras 3 does: a model pickles as its `.keras` bytes (config, weights,
optimizer state and training counters), never as the engine's objects, so it crosses process
boundaries (joblib, Dask, Ray) and `copy.deepcopy` gives an independent copy.

The classes and functions the model's config names that rustkeras does not know (the user's
layers, a subclassed model, Lambda functions, compile's own losses and metrics) travel beside
the bytes by reference, the way pickle sends any class or function, so unpickling needs no
`register_keras_serializable`. A model that is not built yet has no weights: its config (and
compile config) travels instead.

    import pickle
    copy = pickle.loads(pickle.dumps(model))     # same weights, optimizer state and compile
"""

import io
from typing import Any, Dict, Tuple

from rustkeras.layers.base import Layer


def reduce(model) -> Tuple[Any, tuple]:
    """`model.__reduce__()`: the function that rebuilds the model and its arguments."""
    from rustkeras import saving
    from rustkeras._saving import keras_config

    objects = user_objects(model)
    if not model.built:
        return from_config, (keras_config.model_entry(model), objects)
    buf = io.BytesIO()
    saving.save_model(model, buf)
    return _from_keras_bytes, (buf.getvalue(), objects)


def _from_keras_bytes(data: bytes, objects: Dict[str, Any]):
    from rustkeras import saving

    return saving.load_model(io.BytesIO(data), custom_objects=objects)


def from_config(entry: Dict[str, Any], objects: Dict[str, Any]):
    """A new model, with newly initialized weights, from a model's entry (`model_entry`) and
    compiled as its `compile_config` says."""
    from rustkeras._saving import keras_config
    from rustkeras.saving import CustomObjectScope

    entry = dict(entry)
    compile_config = entry.pop("compile_config", None)
    with CustomObjectScope(objects):
        model = keras_config.model_from_entry(entry, objects)
        if compile_config is not None:
            keras_config.compile_from_config(model, compile_config, objects)
    return model


def _is_ours(obj) -> bool:
    return str(getattr(obj, "__module__", "")).split(".")[0] == "rustkeras"


def user_objects(model) -> Dict[str, Any]:
    """The classes and functions outside rustkeras that the model's saved config names, by the
    names the config gives them (registered name and plain name)."""
    from rustkeras.models.training import _with_inner_layers
    from rustkeras.saving import get_registered_name

    found = []
    if not _is_ours(type(model)):
        found.append(type(model))
    for layer in _with_inner_layers(list(model._layers)):
        if isinstance(layer, Layer) and not _is_ours(type(layer)):
            found.append(type(layer))
        function = layer.__dict__.get("function")
        if callable(function) and not _is_ours(function):
            found.append(function)
    stack = list((model.__dict__.get("_compile_raw") or {}).values())
    while stack:
        value = stack.pop()
        if isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif value is not None and not isinstance(value, str) and not _is_ours(value):
            found.append(value if isinstance(value, type) or not hasattr(value, "get_config") else type(value))
    objects: Dict[str, Any] = {}
    for obj in found:
        name = getattr(obj, "__name__", None)
        if isinstance(name, str) and name != "<lambda>":
            objects[name] = obj
            objects[get_registered_name(obj)] = obj
    return objects
