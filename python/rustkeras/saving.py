"""Serialization hooks for user code: `register_keras_serializable`, `custom_objects`.

    @rustkeras.saving.register_keras_serializable(package="my_package")
    class MyDense(layers.Layer): ...

    model = Sequential.from_config(config, custom_objects={"MyDense": MyDense})

A config names a class by `class_name` (and a registered class also by
`registered_name`, `"package>Name"`); it is looked up among the objects passed in
`custom_objects`, then `custom_object_scope`s, then the registered ones, then rustkeras' own
layers. Nothing is ever rebuilt from code stored in a config.
"""

import threading
from typing import Any, Callable, Dict, Optional

__all__ = [
    "CustomObjectScope", "custom_object_scope", "get_custom_objects", "get_registered_name",
    "get_registered_object", "register_keras_serializable",
]

_REGISTERED: Dict[str, Any] = {}
_NAMES: Dict[Any, str] = {}


class _Scopes(threading.local):
    def __init__(self):
        self.stack = []


_scopes = _Scopes()


def register_keras_serializable(package: str = "Custom", name: Optional[str] = None) -> Callable:
    """Registers a class or function under `"package>name"` (name defaults to its own), so
    that configs that name it can be loaded without `custom_objects`."""

    def decorator(obj):
        key = f"{package}>{name or obj.__name__}"
        if key in _REGISTERED and _REGISTERED[key] is not obj:
            raise ValueError(f"{key!r} has already been registered to {_REGISTERED[key]!r}")
        if hasattr(obj, "get_config") is False and isinstance(obj, type):
            raise ValueError(f"Cannot register {obj!r}: a registered class must define get_config()")
        _REGISTERED[key] = obj
        _NAMES[obj] = key
        return obj

    return decorator


def get_registered_name(obj) -> str:
    """`"package>name"` for a registered object, else its own name."""
    return _NAMES.get(obj, getattr(obj, "__name__", type(obj).__name__))


def get_custom_objects() -> Dict[str, Any]:
    """The global dict of registered objects (by `"package>name"`); it may be edited."""
    return _REGISTERED


class CustomObjectScope:
    """`with custom_object_scope({"MyLayer": MyLayer}): ...` makes those names known to
    `from_config` inside the block."""

    def __init__(self, *objects: Dict[str, Any]):
        self.objects: Dict[str, Any] = {}
        for o in objects:
            self.objects.update(o or {})

    def __enter__(self):
        _scopes.stack.append(self.objects)
        return self

    def __exit__(self, *exc):
        _scopes.stack.pop()
        return False


custom_object_scope = CustomObjectScope


def get_registered_object(name: str, custom_objects: Optional[Dict[str, Any]] = None, module_objects=None):
    """The object a config names: from `custom_objects`, the active scopes, the registry
    (also by the bare name of a registered object), then `module_objects`; None if unknown."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    for scope in reversed(_scopes.stack):
        if name in scope:
            return scope[name]
    if name in _REGISTERED:
        return _REGISTERED[name]
    for key, obj in _REGISTERED.items():
        if key.split(">", 1)[-1] == name:
            return obj
    if module_objects and name in module_objects:
        return module_objects[name]
    return None
