"""What a public module shows.

rustkeras' public modules hold their own code, so the modules and typing helpers they import
would look like API (`rustkeras.models.json`, `rustkeras.callbacks.np`). Keras avoids that with
generated facade modules; rustkeras instead makes each public module (those `_keras_names`
lists) a `PublicModule` once the package is imported (`publish`, the last step of
`rustkeras/__init__.py`), so that no module needs to change its imports:

- a name the module imported from outside rustkeras (a module, a typing helper) is not one of
  its attributes (the module's own code still sees it);
- a Keras name that rustkeras lacks raises NotImplementedError naming it, never AttributeError.
  The README's "Not supported yet" lists them, as `readme_section()` writes that list.

Keras 1's layer module paths (`keras.layers.core.Merge`, `keras.layers.convolutional.MaxPooling2D`)
get the layers they held from `rustkeras.layers`.
"""

import importlib
import importlib.util
import types
from typing import Dict, List

from rustkeras._keras_names import KERAS1_NAMES, KERAS_NAMES

_PLAIN = (type, types.FunctionType, types.BuiltinFunctionType)


def _imported(module: str, value) -> bool:
    """Whether `value`, bound in `module`, came from outside rustkeras or is another module."""
    if isinstance(value, types.ModuleType):
        return not value.__name__.startswith(module + ".")
    if isinstance(value, _PLAIN) or type(value).__module__ in ("typing", "__future__"):
        origin = getattr(value, "__module__", None)
        return isinstance(origin, str) and origin.split(".")[0] != "rustkeras"
    return False


def keras_name(module: str) -> str:
    """`rustkeras.layers.core` -> `keras.layers.core`."""
    return "keras" + module[len("rustkeras"):]


def keras_names(module: str) -> List[str]:
    return (KERAS_NAMES.get(module) or KERAS1_NAMES.get(module, "")).split()


def _missing(module, name: str) -> Exception:
    mod = module.__name__
    if name[:1] != "_" and name in keras_names(mod) and not _is_submodule(module, name):
        return NotImplementedError(
            f"`{mod}.{name}` ({'Keras 1' if mod in KERAS1_NAMES else 'Keras 3'}'s {keras_name(mod)}.{name}) is not "
            "supported by rustkeras yet "
            "(the README's \"Not supported yet\" lists what is missing)"
        )
    return AttributeError(f"module '{mod}' has no attribute '{name}'")


def _is_submodule(module, name: str) -> bool:
    """Whether `name` is a submodule still to be imported (`from package import submodule`
    asks the package first and must get an AttributeError then)."""
    if not hasattr(module, "__path__"):
        return False
    return importlib.util.find_spec(f"{module.__name__}.{name}") is not None


class PublicModule(types.ModuleType):
    """A module whose attributes are its API: see the module docstring."""

    def __getattribute__(self, name: str):
        value = super().__getattribute__(name)
        if name[:1] != "_" and _imported(super().__getattribute__("__name__"), value):
            raise AttributeError(name)  # an import, not API: __getattr__ answers
        return value

    def __getattr__(self, name: str):
        raise _missing(self, name)

    def __dir__(self) -> List[str]:
        mod = self.__name__
        return sorted(k for k, v in self.__dict__.items() if k[:1] == "_" or not _imported(mod, v))


PUBLIC_MODULES = sorted(set(KERAS_NAMES) | set(KERAS1_NAMES))


def publish() -> None:
    """Makes every public module a PublicModule and fills Keras 1's layer module paths."""
    layers = importlib.import_module("rustkeras.layers")
    for mod in PUBLIC_MODULES:
        module = importlib.import_module(mod)
        if mod.startswith("rustkeras.layers."):
            for name in keras_names(mod):
                if name not in module.__dict__ and name in layers.__dict__:
                    module.__dict__[name] = layers.__dict__[name]
        module.__class__ = PublicModule


def unsupported() -> Dict[str, List[str]]:
    """For every public module, the Keras names rustkeras lacks."""
    out = {}
    for mod in PUBLIC_MODULES:
        module = importlib.import_module(mod)
        missing = []
        for name in keras_names(mod):
            try:
                getattr(module, name)
            except NotImplementedError:
                missing.append(name)
            except ImportError:
                pass  # there, but needs an optional dependency (rustkeras.wrappers: scikit-learn)
        out[mod] = sorted(missing)
    return out


def readme_section() -> str:
    """The README's list of what is not supported yet."""
    lines = []
    for mod, names in unsupported().items():
        if names:
            lines.append(f"- `{keras_name(mod)}`: " + ", ".join(f"`{n}`" for n in names))
    return "\n".join(lines) + "\n"

