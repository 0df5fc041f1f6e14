"""Saving and loading models (Keras 3's formats), and the serialization hooks for user code:
`register_keras_serializable`, `custom_objects`.

    model.save("model.keras")                      # config.json + model.weights.h5, zipped
    model = rustkeras.saving.load_model("model.keras")
    model.save_weights("model.weights.h5")
    model.load_weights("model.weights.h5")

Files are Keras 3's: a model saved by rustkeras loads in Keras 3 and one saved by Keras 3 (of
layers rustkeras has) loads in rustkeras; Keras 2's `.h5` files load too. Saves are atomic
(written beside the target, flushed, renamed over it). Loading treats every file as untrusted:
it never unpickles, never imports or calls what a file names, and a damaged, foreign or hostile
file is a ValueError or OSError naming it, raised before anything the file merely claims is
allocated (`rustkeras._saving.reading`).

    @rustkeras.saving.register_keras_serializable(package="my_package")
    class MyDense(layers.Layer): ...

    model = Sequential.from_config(config, custom_objects={"MyDense": MyDense})

A config names a class by `class_name` (and a registered class also by
`registered_name`, `"package>Name"`); it is looked up among the objects passed in
`custom_objects`, then `custom_object_scope`s, then the registered ones, then rustkeras' own
layers. Code stored in a config (a Lambda's function, saved by Keras as bytecode) is rebuilt
only with `load_model(..., safe_mode=False)` (or inside `SafeModeScope(False)`), as in Keras.
"""

import io
import os
import threading
from typing import Any, Callable, Dict, Optional

__all__ = [
    "CustomObjectScope", "SafeModeScope", "custom_object_scope", "get_custom_objects", "get_registered_name",
    "get_registered_object", "load_model", "load_weights", "register_keras_serializable", "save_model",
    "save_weights",
]

_REGISTERED: Dict[str, Any] = {}
_NAMES: Dict[Any, str] = {}


class _Scopes(threading.local):
    def __init__(self):
        self.stack = []
        self.safe_mode = []


_scopes = _Scopes()
_unsafe_deserialization = False


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


class SafeModeScope:
    """`with SafeModeScope(False): ...` lets configs read inside the block rebuild `Lambda`
    functions from their saved bytecode (as Keras' scope of that name); `load_model` opens one
    with its `safe_mode`."""

    def __init__(self, safe_mode: bool = True):
        self.safe_mode = safe_mode

    def __enter__(self):
        _scopes.safe_mode.append(self.safe_mode)
        return self

    def __exit__(self, *exc):
        _scopes.safe_mode.pop()
        return False


def in_safe_mode() -> bool:
    """Whether a config being read may not rebuild code: the innermost `SafeModeScope`'s
    setting; outside any, True unless `rustkeras.config.enable_unsafe_deserialization()` was
    called."""
    if _scopes.safe_mode:
        return _scopes.safe_mode[-1]
    return not _unsafe_deserialization


def enable_unsafe_deserialization() -> None:
    """Lets configs read outside a `SafeModeScope` (`model_from_json`, `from_config`) rebuild
    `Lambda` functions from their saved bytecode, as Keras' function of that name. Only for
    configs you trust: rebuilding them runs their code."""
    global _unsafe_deserialization
    _unsafe_deserialization = True


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


# -- models and weights -------------------------------------------------------------------


def _path(filepath) -> Optional[str]:
    """The path of `filepath` (a str or os.PathLike), or None for a file object."""
    if isinstance(filepath, (str, os.PathLike)):
        return os.fspath(filepath)
    if isinstance(filepath, io.TextIOBase):
        raise TypeError(f"`filepath` must be a path or a binary file object; the file object {filepath!r} is open in "
                        "text mode. Open it with mode 'rb' or 'wb'.")
    if hasattr(filepath, "read") or hasattr(filepath, "write"):
        return None
    raise TypeError(f"`filepath` must be a path or a file object. Received: {filepath!r}")


def save_model(model, filepath, overwrite: bool = True, zipped: Optional[bool] = None, **kwargs) -> None:
    """Saves a model as a Keras 3 `.keras` file: its config, weights, and optimizer state.

    Args:
        model: a built rustkeras model.
        filepath: a path ending in `.keras` (with `zipped=False`, a directory path without it),
            or a binary file object.
        overwrite: whether to replace an existing file (if False, the user is asked on a
            terminal, as in Keras; without one, FileExistsError).
        zipped: whether to write a zip (the default) or a directory of the three members.

    The write is atomic: a crash during the save leaves the previous file whole.
    """
    from rustkeras._saving import archive, files
    from rustkeras.models.training import Trainer

    if kwargs:
        raise ValueError(f"The following argument(s) are not supported: {list(kwargs)}")
    if not isinstance(model, Trainer):
        raise TypeError(f"save_model: expected a rustkeras model. Received: {type(model).__name__}")
    model._require_built()
    path = _path(filepath)
    zipped = True if zipped is None else bool(zipped)
    if path is None:
        if not zipped:
            raise ValueError("zipped=False saves a directory: pass a path, not a file object.")
        archive.save_to_file_object(model, filepath)
        return
    if path.endswith((".h5", ".hdf5")):
        raise NotImplementedError(
            "rustkeras does not write the legacy .h5 format (it reads it). Save to a `.keras` path, the Keras 3 "
            f"format. Received: filepath={path}")
    if zipped and not path.endswith(".keras"):
        raise ValueError("Invalid filepath extension for saving. Please add either a `.keras` extension for the "
                         f"native Keras format (recommended) or a `.h5` extension. Received: filepath={path}")
    if not zipped and path.endswith(".keras"):
        raise ValueError(f"When using `zipped=False`, the `filepath` argument should not end in `.keras`. "
                         f"Received: filepath={path}")
    if not files.proceed_with_overwrite(path, overwrite):
        return
    archive.save(model, path, zipped=zipped)


def load_model(filepath, custom_objects: Optional[Dict[str, Any]] = None, compile: bool = True,  # noqa: A002
               safe_mode: bool = True):
    """Loads a model saved by `model.save` (rustkeras' or Keras 3's `.keras`, or Keras 2's `.h5`).

    Args:
        filepath: a `.keras` or `.h5` path (or a directory saved with `zipped=False`), or a binary
            file object of a `.keras` file.
        custom_objects: classes and functions the config names (user layers, Lambda functions,
            custom losses and metrics), by name.
        compile: whether to compile the model as it was saved (and restore its optimizer).
        safe_mode: as in Keras, a `Lambda` whose function was saved as Python bytecode (a
            `lambda`) is refused unless `safe_mode=False`: rebuilding it runs code from the
            file, so pass False only for files you trust. Nothing else in a file is ever run.

    Returns:
        The model, with its weights (and, compiled, its optimizer state and training counters).

    A file that cannot be read, or that holds anything but a model rustkeras can build, is an
    OSError or a ValueError naming the file (see `rustkeras._saving.reading`).
    """
    from rustkeras._saving import archive, legacy_h5, reading

    if not isinstance(safe_mode, bool):
        raise TypeError(f"`safe_mode` must be True or False. Received: safe_mode={safe_mode!r}")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"`custom_objects` must be a dict. Received: {type(custom_objects).__name__}")
    path = _path(filepath)
    if path is not None and path.endswith(".keras") and not os.path.exists(path):
        raise ValueError(f"File not found: filepath={path}. Please ensure the file is an accessible `.keras` zip "
                         "file.")
    with CustomObjectScope(custom_objects or {}), SafeModeScope(safe_mode), reading.naming(filepath, "a model"):
        if path is None:
            return archive.load(filepath, custom_objects, compile)
        if path.endswith(".keras") or (os.path.isdir(path) and os.path.isfile(os.path.join(path, archive.CONFIG))):
            return archive.load(path, custom_objects, compile)
        if path.endswith((".h5", ".hdf5")):
            return legacy_h5.load_model(path, custom_objects, compile)
    raise ValueError(
        f"File format not supported: filepath={path}. rustkeras (as Keras 3) loads `.keras` files and legacy "
        "H5 files (`.h5` extension).")


def save_weights(model, filepath, overwrite: bool = True, max_shard_size=None) -> None:
    """Saves the model's weights (and optimizer and training state) to a `.weights.h5` file, in
    Keras 3's layout; atomically."""
    from rustkeras._saving import files, weights_h5

    if max_shard_size is not None:
        raise NotImplementedError("save_weights: the argument `max_shard_size` is not supported by rustkeras.")
    path = _path(filepath)
    if path is None or not path.endswith(".weights.h5"):
        raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={filepath}")
    if not model.built:
        raise ValueError("You are saving a model that has not yet been built. Try building the model first by "
                         "calling it on some data or by using `build()`.")
    if not files.proceed_with_overwrite(path, overwrite):
        return
    weights_h5.save_file(model, path)


def load_weights(model, filepath, skip_mismatch: bool = False, **kwargs) -> None:
    """Loads weights into a built model from a `.weights.h5` or `.keras` file (Keras 3's layout),
    or a legacy `.h5` file (by layer order, or by name with `by_name=True`)."""
    from rustkeras._saving import archive, legacy_h5, reading, weights_h5

    by_name = kwargs.pop("by_name", None)
    if kwargs:
        raise ValueError(f"Invalid keyword arguments: {kwargs}")
    if not model.built:
        raise ValueError("You are loading weights into a model that has not yet been built. Try building the model "
                         "first by calling it on some data or by using `build()`.")
    path = _path(filepath)
    if path is None:
        raise TypeError("load_weights: pass a path.")
    if path.endswith(".keras"):
        if by_name is not None:
            raise ValueError(f"`by_name` only supports loading legacy '.h5' or '.hdf5' files. Received: {path}")
        with reading.naming(path, "weights"):
            archive.load_weights(model, path, skip_mismatch=skip_mismatch)
        return
    if path.endswith(".weights.h5"):
        if by_name is not None:
            raise ValueError(f"`by_name` only supports loading legacy '.h5' or '.hdf5' files. Received: {path}")
        weights_h5.load_file(model, path, skip_mismatch=skip_mismatch)
        return
    if path.endswith((".h5", ".hdf5")):
        with reading.naming(path, "weights"), reading.open_hdf5(path, legacy_h5.EXPECTED) as f:
            legacy_h5.load_weights(model, f, skip_mismatch=skip_mismatch, by_name=bool(by_name))
        return
    raise ValueError(f"File format not supported: filepath={path}. rustkeras loads weights from `.weights.h5`, "
                     "`.keras` and legacy `.h5` files.")
