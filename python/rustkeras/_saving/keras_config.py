"""Configs as Keras 3 writes them (`config.json` of a `.keras` file, `model.to_json()`), both ways.

Out: a layer becomes `{"module", "class_name", "config", "registered_name"}` with its `dtype` as
a `DTypePolicy` dict, a model used as a layer becomes a `Functional` or `Sequential` entry, and a
model's top-level entry carries `build_config` and `compile_config`.

In: `layer_entry_from_keras` turns a Keras 3 layer entry into one rustkeras' layers take:
`DTypePolicy` dicts become dtype names, `shared_object_id`s go, and the keys of Keras features
rustkeras lacks are dropped when they hold the value that turns the feature off
(`kernel_constraint: null`, `quantization_config: null`, `renorm: false`); any other value is
left for the layer to refuse by name. Nothing in a config is ever run: functions and classes are
looked up by name (custom objects, the registry, rustkeras' own).
"""

import reprlib
import warnings
from typing import Any, Dict, Optional

# Keras 3 config keys rustkeras' layers have no argument for, and the value (None or False)
# that means the feature is off (a layer that does take the key has that value as its default).
_OFF_VALUES: Dict[str, Any] = {
    "activity_regularizer": None,
    "kernel_constraint": None,
    "bias_constraint": None,
    "recurrent_constraint": None,
    "beta_constraint": None,
    "gamma_constraint": None,
    "embeddings_constraint": None,
    "alpha_constraint": None,
    "quantization_config": None,
    "lora_rank": None,
    "lora_alpha": None,
    "synchronized": False,
}

# Keys that only mean something when another key is on (BatchNormalization's renormalization).
_ONLY_WITH = {"renorm_momentum": "renorm", "renorm_clipping": "renorm"}

# Initializer arguments Keras 3 writes that change nothing at their default.
_INITIALIZER_OFF = {"input_axes": None, "output_axes": None}

# Config keys that hold a wrapped layer's entry.
_NESTED_LAYER_KEYS = ("layer", "backward_layer")

_MODEL_CLASSES = ("Functional", "Sequential", "Model")

# The marker rustkeras puts in the configs it writes: Keras ignores it; rustkeras reads the
# recorded `training` of a call as the user's choice only in its own configs (Keras records
# `training: false` on every call of a mode-dependent layer and overrides it when it runs).
WRITER_KEY = "backend"
WRITER = "rustkeras"


def to_json(entry, **kwargs) -> str:
    """JSON text of a config; numpy scalars and arrays (a user's `units=np.int64(4)`) as numbers
    and lists."""
    import json

    import numpy as np

    def default(obj):
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"Cannot save a config holding an object of type {type(obj).__name__}: {obj!r}. "
                        "A layer's get_config() must return plain values (numbers, strings, lists, dicts).")

    return json.dumps(entry, default=default, **kwargs)


def dtype_policy(name: str = "float32") -> Dict[str, Any]:
    """A Keras 3 `DTypePolicy` config for a dtype name."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def is_model_entry(entry: Dict[str, Any]) -> bool:
    """Whether a config entry describes a model (nested in another, or at the top)."""
    return entry.get("class_name") in _MODEL_CLASSES or str(entry.get("module", "")).startswith("keras.src.models")


# -- in -----------------------------------------------------------------------------------


def clean(value):
    """A config value without Keras' object-sharing ids, with `DTypePolicy` dicts as names and
    initializers without the arguments that are off."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(value.get("config"), dict):
            return value["config"].get("name")
        out = {k: clean(v) for k, v in value.items() if k != "shared_object_id"}
        if str(out.get("module", "")).endswith("initializers") and isinstance(out.get("config"), dict):
            out["config"] = {k: v for k, v in out["config"].items()
                             if not (k in _INITIALIZER_OFF and v == _INITIALIZER_OFF[k])}
        return out
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def layer_entry_from_keras(entry: Dict[str, Any]) -> Dict[str, Any]:
    """A layer entry (`{"class_name", "config", ...}`) as rustkeras' `from_config` takes it."""
    entry = clean(entry)
    if is_model_entry(entry):
        return entry
    cfg = dict(entry.get("config") or {})
    for key, on in _ONLY_WITH.items():
        if key in cfg and not cfg.get(on):
            del cfg[key]
    if cfg.get("renorm") is False:
        del cfg["renorm"]
    for key, off in _OFF_VALUES.items():
        if key in cfg and cfg[key] is off:
            del cfg[key]
    for key in _NESTED_LAYER_KEYS:
        if isinstance(cfg.get(key), dict) and "class_name" in cfg[key]:
            cfg[key] = layer_entry_from_keras(cfg[key])
    if entry.get("class_name") == "Bidirectional":
        cfg = _bidirectional_from_keras(cfg)
    return {**entry, "config": cfg}


def _bidirectional_from_keras(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Keras writes the backward layer of a Bidirectional even when it is the forward layer's
    mirror (what rustkeras builds), and names the forward layer `forward_<name>`; its inner
    layers zero the output at masked steps (which rustkeras' Bidirectional does itself)."""
    forward = cfg.get("layer")
    backward = cfg.pop("backward_layer", None)
    if isinstance(forward, dict):
        fcfg = dict(forward.get("config") or {})
        fcfg.pop("zero_output_for_mask", None)
        name = fcfg.get("name")
        if isinstance(name, str) and name.startswith("forward_"):
            fcfg["name"] = name[len("forward_"):]
        forward = {**forward, "config": fcfg}
        cfg["layer"] = forward
    if isinstance(backward, dict) and isinstance(forward, dict):
        ignore = ("name", "go_backwards", "zero_output_for_mask")
        f = {k: v for k, v in forward["config"].items() if k not in ignore}
        b = {k: v for k, v in (backward.get("config") or {}).items() if k not in ignore}
        mirrored = (backward.get("class_name") == forward.get("class_name") and f == b
                    and bool(backward["config"].get("go_backwards")) != bool(forward["config"].get("go_backwards")))
        if not mirrored:
            raise NotImplementedError(
                "Bidirectional: the argument `backward_layer` is not supported by rustkeras when it differs from "
                f"the forward layer run backwards. Received: backward_layer={backward.get('class_name')} with "
                f"config {backward.get('config')}")
    return cfg


def strip_recorded_training(config: Dict[str, Any]) -> Dict[str, Any]:
    """A functional model config (`{"layers": [...], ...}`, nested models included) whose calls
    no longer carry the `training` Keras recorded: Keras 3 overrides it whenever the model
    runs, so it never decides the mode. (Anything malformed is left for the model to refuse.)"""
    if not isinstance(config.get("layers"), list):
        return config
    layers = []
    for entry in config["layers"]:
        if not isinstance(entry, dict):
            layers.append(entry)
            continue
        entry = dict(entry)
        if is_model_entry(entry) and isinstance(entry.get("config"), dict):
            entry["config"] = strip_recorded_training(entry["config"])
        nodes = []
        inbound = entry.get("inbound_nodes", [])
        for node in inbound if isinstance(inbound, list) else []:
            if isinstance(node, dict) and isinstance(node.get("kwargs"), dict):
                node = {**node, "kwargs": {k: v for k, v in node["kwargs"].items() if k != "training"}}
            nodes.append(node)
        if isinstance(inbound, list):
            entry["inbound_nodes"] = nodes
        layers.append(entry)
    return {**config, "layers": layers}


# -- out ----------------------------------------------------------------------------------


def _builtin_layer_class(cls) -> bool:
    from rustkeras import layers as _layers

    return cls.__module__.startswith("rustkeras.") and getattr(_layers, cls.__name__, None) is cls


def _class_entry(cls, builtin_module: str, builtin: bool, config) -> Dict[str, Any]:
    """`{module, class_name, config, registered_name}`: Keras' module for rustkeras' own classes,
    the class's module and registered name (`package>Name`, else the class name) for user code."""
    from rustkeras.saving import get_registered_name

    if builtin:
        return {"module": builtin_module, "class_name": cls.__name__, "config": config, "registered_name": None}
    return {"module": cls.__module__, "class_name": cls.__name__, "config": config,
            "registered_name": get_registered_name(cls)}


def _keras_layer_config(cfg: Dict[str, Any], input_layer: bool = False) -> Dict[str, Any]:
    cfg = dict(cfg)
    if not input_layer and isinstance(cfg.get("dtype", "float32"), str):
        cfg["dtype"] = dtype_policy(cfg.get("dtype") or "float32")
    for key in _NESTED_LAYER_KEYS:
        spec = cfg.get(key)
        if isinstance(spec, dict) and "class_name" in spec and "config" in spec:
            from rustkeras import layers as _layers

            inner_cls = getattr(_layers, spec["class_name"], None)
            builtin = inner_cls is not None and _builtin_layer_class(inner_cls)
            cfg[key] = {"module": "keras.layers" if builtin else spec.get("module"),
                        "class_name": spec["class_name"],
                        "config": _keras_layer_config(spec["config"]),
                        "registered_name": None if builtin else spec.get("registered_name", spec["class_name"])}
    return cfg


def serialize_layer(layer) -> Dict[str, Any]:
    """A layer (or a model used as a layer) as Keras 3 serializes it inside a model config."""
    from rustkeras.layers.core import InputLayer
    from rustkeras.models._nested import _ModelLayer
    from rustkeras.models.training import Trainer

    if isinstance(layer, _ModelLayer):
        layer = layer.model
    if isinstance(layer, Trainer):
        return model_entry(layer, top=False)
    config = _keras_layer_config(layer.get_config(), isinstance(layer, InputLayer))
    return _class_entry(type(layer), "keras.layers", _builtin_layer_class(type(layer)), config)


def model_entry(model, top: bool = True) -> Dict[str, Any]:
    """A model's Keras 3 entry: `{module, class_name, config, registered_name, build_config}`;
    at the top (not nested in another model's config), also `compile_config` and rustkeras'
    writer marker."""
    from rustkeras.models.sequential import Sequential

    config = model.get_config()
    if isinstance(model, Sequential):
        entry = {"module": "keras", "class_name": "Sequential", "config": config, "registered_name": None}
        shape = model.input_shape if model._merge_first() is None else None
        build = {"input_shape": list(shape) if shape is not None else None}
    elif model.__dict__.get("_subclassed"):
        entry = _class_entry(type(model), "keras", False, config)
        io = model.__dict__.get("_sub_io")
        if io is None:
            build = None
        else:
            shapes = [[None] + list(s) for s in io[0]]
            build = {"input_shape": shapes if io[1] else shapes[0]}
    else:
        entry = {"module": "keras.src.models.functional", "class_name": "Functional", "config": config,
                 "registered_name": "Functional"}
        build = {"input_shape": None}
    if build is not None:
        entry["build_config"] = build
    if top:
        cc = compile_config(model)
        if cc is not None:
            entry["compile_config"] = cc
        entry[WRITER_KEY] = WRITER
    return entry


def _function_entry(fn, module: str, builtin: bool) -> Dict[str, Any]:
    from rustkeras.saving import get_registered_name

    name = getattr(fn, "__name__", None)
    if builtin:
        return {"module": module, "class_name": "function", "config": name, "registered_name": name}
    return {"module": getattr(fn, "__module__", None), "class_name": "function", "config": name,
            "registered_name": get_registered_name(fn)}


def _serialize_entry(value, kind: str):
    """A loss or metric of `compile` as Keras 3 serializes it (`kind`: "losses" or "metrics")."""
    import rustkeras.losses as _losses
    import rustkeras.metrics as _metrics

    module = _losses if kind == "losses" else _metrics
    keras_module = f"keras.{kind}"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_serialize_entry(v, kind) for v in value]
    if isinstance(value, dict):
        return {k: _serialize_entry(v, kind) for k, v in value.items()}
    if isinstance(value, type):
        raise ValueError(f"compile: cannot save the class {value.__name__} as a {kind[:-1]}; pass an instance.")
    if callable(value) and not hasattr(value, "get_config"):
        name = getattr(value, "__name__", None)
        builtin = (getattr(module, str(name), None) is value or getattr(_losses, str(name), None) is value)
        return _function_entry(value, keras_module, builtin)
    cls = type(value)
    builtin = cls.__module__.startswith("rustkeras.") and (getattr(module, cls.__name__, None) is cls)
    return _class_entry(cls, keras_module, builtin, value.get_config())


def compile_config(model) -> Optional[Dict[str, Any]]:
    """What `compile` was given, as Keras 3's `compile_config` (None when not compiled)."""
    from rustkeras import optimizers as _optimizers

    raw = model.__dict__.get("_compile_raw")
    if model.__dict__.get("_compile_args") is None or raw is None:
        return None
    return {
        "optimizer": _optimizers.serialize(model.optimizer),
        "loss": _serialize_entry(raw["loss"], "losses"),
        "loss_weights": raw["loss_weights"],
        "metrics": _serialize_entry(raw["metrics"], "metrics"),
        "weighted_metrics": _serialize_entry(raw.get("weighted_metrics"), "metrics"),
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


def _deserialize_entry(value, kind: str, custom_objects):
    import rustkeras.losses as _losses
    import rustkeras.metrics as _metrics
    from rustkeras.saving import get_registered_object

    module = _losses if kind == "losses" else _metrics
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list):
        return [_deserialize_entry(v, kind, custom_objects) for v in value]
    if isinstance(value, dict) and "class_name" not in value:
        return {k: _deserialize_entry(v, kind, custom_objects) for k, v in value.items()}
    if not isinstance(value, dict):
        raise ValueError(f"compile_config: cannot read the {kind[:-1]} {value!r}")
    value = clean(value)
    cls_name, cfg = value.get("class_name"), value.get("config")
    if cls_name == "function":
        names = [n for n in (value.get("registered_name"), cfg) if isinstance(n, str)]
        for name in names:
            found = get_registered_object(name, custom_objects)
            if found is None and str(value.get("module", "")).startswith("keras"):
                found = getattr(module, name, None) or getattr(_losses, name, None)
            if found is not None:
                return found
        raise ValueError(f"compile_config: the {kind[:-1]} function {cfg!r} is not known; pass it in "
                         "`custom_objects` (rustkeras never rebuilds code from a saved file).")
    names = [n for n in (value.get("registered_name"), cls_name) if isinstance(n, str)]
    cls = None
    for name in names:
        cls = get_registered_object(name, custom_objects)
        if cls is not None:
            break
    if cls is None and str(value.get("module", "")).startswith("keras"):
        cls = getattr(module, str(cls_name), None)
        if cls is None and kind == "metrics":
            name = _metric_name_of(str(cls_name), cfg)
            if name is not None:
                return name
    if cls is None or not hasattr(cls, "from_config"):
        raise ValueError(f"compile_config: the {kind[:-1]} class {cls_name!r} is not known; pass it in "
                         "`custom_objects`.")
    return cls.from_config(dict(cfg or {}))


# Keras' metric classes that compute a named metric, and their arguments at the defaults the
# named metric has.
_METRIC_DEFAULTS = {"BinaryAccuracy": {"threshold": 0.5}, "TopKCategoricalAccuracy": {"k": 5},
                    "SparseTopKCategoricalAccuracy": {"k": 5, "from_sorted_ids": False}}


def _metric_name_of(class_name: str, config) -> Optional[str]:
    """The metric name a Keras metric object stands for (`CategoricalAccuracy()` is
    "categorical_accuracy", `MeanSquaredError()` "mean_squared_error") when its arguments are
    the defaults and its name is that name; else None."""
    import rustkeras.metrics as _metrics
    from rustkeras._saving.weights_h5 import snake_case

    name = snake_case(class_name)
    if not isinstance(config, dict) or config.get("name", name) != name:
        return None
    if {k: v for k, v in config.items() if k not in ("dtype", "name")} != _METRIC_DEFAULTS.get(class_name, {}):
        return None
    try:
        _metrics.resolve_name(name)
    except ValueError:
        return None
    return name


def compile_from_config(model, config: Dict[str, Any], custom_objects=None) -> bool:
    """Compiles `model` as `compile_config` says; warns and leaves it uncompiled (as Keras
    does) when that cannot be done. Returns whether it compiled."""
    from rustkeras import optimizers as _optimizers

    try:
        # compile's default when the key is missing; an explicit null is a model compiled
        # with optimizer=None (for evaluate and predict), and stays so.
        optimizer = config.get("optimizer", "rmsprop")
        if isinstance(optimizer, dict):
            optimizer = _optimizers.deserialize(clean(optimizer), custom_objects)
        model.compile(optimizer=optimizer,
                      loss=_deserialize_entry(config.get("loss"), "losses", custom_objects),
                      metrics=_deserialize_entry(config.get("metrics"), "metrics", custom_objects),
                      loss_weights=config.get("loss_weights"),
                      weighted_metrics=_deserialize_entry(config.get("weighted_metrics"), "metrics", custom_objects))
    except (ValueError, TypeError, NotImplementedError) as e:
        warnings.warn(f"The model could not be compiled from its saved compile_config ({e}); it is loaded "
                      "uncompiled. Call `compile()` to train it.", stacklevel=3)
        return False
    return True


def model_from_entry(entry: Dict[str, Any], custom_objects=None, top: bool = True):
    """A new (untrained) model from its entry (`{"class_name", "config", ...}`), as rustkeras or
    Keras 3 writes it; built from `build_config` when its config leaves it unbuilt. (`top`:
    the entry is a whole model's, not one nested in another's config.)"""
    from rustkeras.models.functional import Model
    from rustkeras.models.sequential import Sequential
    from rustkeras.saving import get_registered_object

    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ValueError(f"A model config must be a dict with a `class_name`. Received: {type(entry).__name__}")
    entry = clean(entry)
    config = entry.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"A model config's `config` must be a dict. Received: {type(config).__name__}")
    if top and entry.get(WRITER_KEY) != WRITER and isinstance(config.get("layers"), list):
        config = strip_recorded_training(config)
    kind = entry["class_name"]
    if kind == "Sequential":
        model = Sequential.from_config(config, custom_objects=custom_objects)
    elif kind in ("Functional", "Model") and "layers" in config:
        model = Model.from_config(config, custom_objects=custom_objects)
    else:
        cls = None
        for name in (entry.get("registered_name"), kind):
            if isinstance(name, str):
                cls = get_registered_object(name, custom_objects)
                if cls is not None:
                    break
        if cls is None or not isinstance(cls, type) or not issubclass(cls, Model):
            raise ValueError(f"Unknown model class: {kind!r}. A subclassed model must be passed in "
                             "`custom_objects` or registered with `register_keras_serializable`.")
        model = cls.from_config(config)
    build_config = entry.get("build_config") or {}
    if not isinstance(build_config, dict):
        raise ValueError(f"A model's `build_config` must be a dict. Received: {type(build_config).__name__}")
    shape = build_config.get("input_shape")
    if not model.built and shape is not None:
        model.build(_build_shape(shape))
    return model


def _build_shape(shape):
    """`build_config`'s `input_shape`: one shape (a list of ints and None) or a list of them."""
    def one(s):
        if not isinstance(s, list) or not all(d is None or (isinstance(d, int) and not isinstance(d, bool))
                                              for d in s):
            raise ValueError(f"A model's `build_config` input shape must be a list of integers and None. Received: "
                             f"{reprlib.repr(s)}")
        return tuple(s)

    if isinstance(shape, list) and shape and all(isinstance(s, list) for s in shape):
        return [one(s) for s in shape]
    return one(shape)
