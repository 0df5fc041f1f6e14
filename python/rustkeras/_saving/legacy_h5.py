"""Reading Keras 2's `.h5` files (also what Keras 3 writes to a `.h5` path).

Layout: the root's `model_config` attribute holds the model's JSON config and `training_config`
what `compile` was given; the weights sit in `model_weights` (or at the root, for a file of
`save_weights`), one group per layer named by the layer, whose `weight_names` attribute lists
its weights in the layer's order, each a dataset at that path inside the group. Layers are
matched in order, counting those with weights (or by name, with `by_name=True`).

Keras 2's configs differ from Keras 3's in a few places, translated here: a functional layer's
`inbound_nodes` are lists `[[layer, node, tensor, kwargs], ...]`, an old Sequential config is a
bare list of layers, and some arguments changed (`lr`, BatchNormalization's `axis` as a list).
"""

import json
import warnings
from typing import Any, Dict, List

import numpy as np

from rustkeras._saving import keras_config, reading, weights_h5

EXPECTED = "a Keras .h5 file (HDF5)"

# Keras 2 arguments that are Keras 3's at their defaults, or that change nothing in rustkeras.
_K2_OFF = {"time_major": False}
_K2_OPTIMIZER_EXTRA = ("is_legacy_optimizer", "jit_compile")

# Keras 2's VarianceScaling settings of the named initializers (scale, mode, distribution).
_VARIANCE_SCALING = {
    (1.0, "fan_avg", "uniform"): "GlorotUniform",
    (1.0, "fan_avg", "truncated_normal"): "GlorotNormal",
    (1.0, "fan_avg", "normal"): "GlorotNormal",
    (2.0, "fan_in", "uniform"): "HeUniform",
    (2.0, "fan_in", "truncated_normal"): "HeNormal",
    (2.0, "fan_in", "normal"): "HeNormal",
    (1.0, "fan_in", "uniform"): "LecunUniform",
    (1.0, "fan_in", "truncated_normal"): "LecunNormal",
    (1.0, "fan_in", "normal"): "LecunNormal",
}


def _attr_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _attr_text(value[()])
    if not isinstance(value, str):
        raise ValueError(f"Invalid .h5 file: expected a text attribute, found {type(value).__name__}")
    return value


def _names(group, attr: str) -> List[str]:
    """A list-of-names attribute (`layer_names`, `weight_names`), as text."""
    if attr not in group.attrs:
        raise ValueError(f"Invalid .h5 file: the group {group.name!r} has no {attr!r} attribute")
    value = group.attrs[attr]
    if isinstance(value, np.ndarray) and value.size == 0:
        return []
    if isinstance(value, (str, bytes)):
        value = [value]
    return [_attr_text(v) for v in np.asarray(value, dtype=object).reshape(-1)]


def _initializer(value):
    if isinstance(value, dict) and value.get("class_name") == "VarianceScaling":
        cfg = value.get("config") or {}
        key = (float(cfg.get("scale", 1.0)), cfg.get("mode", "fan_in"), cfg.get("distribution", "truncated_normal"))
        name = _VARIANCE_SCALING.get(key)
        if name is not None:
            return {"class_name": name, "config": {"seed": cfg.get("seed")}}
    return value


def _k2_value(value):
    if isinstance(value, dict):
        value = _initializer(value)
        return {k: _k2_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_k2_value(v) for v in value]
    return value


def _k2_layer_config(class_name: str, cfg: Dict[str, Any]) -> Dict[str, Any]:
    cfg = {k: v for k, v in _k2_value(cfg).items() if not (k in _K2_OFF and v == _K2_OFF[k])}
    if class_name == "BatchNormalization" and isinstance(cfg.get("axis"), list) and len(cfg["axis"]) == 1:
        cfg["axis"] = cfg["axis"][0]
    for key in ("layer", "backward_layer"):
        spec = cfg.get(key)
        if isinstance(spec, dict) and "class_name" in spec:
            cfg[key] = {**spec, "config": _k2_layer_config(spec["class_name"], spec.get("config") or {})}
    return cfg


def _k2_tensor(ref) -> Dict[str, Any]:
    if not isinstance(ref, (list, tuple)) or len(ref) < 3:
        raise ValueError(f"Invalid Keras 2 config: a call's input must be [layer, node, tensor, ...], found {ref!r}")
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [ref[0], int(ref[1]), int(ref[2])]}}


def _k2_nodes(nodes) -> list:
    """Keras 2's `inbound_nodes` (a list of calls, each a list of inputs) as Keras 3's."""
    out = []
    for node in nodes or []:
        if isinstance(node, dict):
            out.append(node)
            continue
        if not isinstance(node, list) or not node:
            raise ValueError(f"Invalid Keras 2 config: inbound node {node!r}")
        tensors = [_k2_tensor(ref) for ref in node]
        kwargs = node[0][3] if len(node[0]) > 3 and isinstance(node[0][3], dict) else {}
        out.append({"args": [tensors[0] if len(tensors) == 1 else tensors], "kwargs": kwargs})
    return out


def _k2_model_config(entry: Dict[str, Any]) -> Dict[str, Any]:
    """A Keras 2 model entry as a Keras 3 one."""
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ValueError("Invalid .h5 file: model_config must be a JSON object with a `class_name`")
    kind = entry["class_name"]
    config = entry.get("config")
    if kind == "Sequential" and isinstance(config, list):
        config = {"layers": config}
    if not isinstance(config, dict):
        raise ValueError("Invalid .h5 file: the model config's `config` must be a JSON object")
    layers = []
    for layer in config.get("layers", []):
        layer = dict(layer)
        if keras_config.is_model_entry(layer):
            inner = _k2_model_config(layer)
            layer["config"] = inner["config"]
        else:
            layer["config"] = _k2_layer_config(layer.get("class_name", ""), layer.get("config") or {})
        if "inbound_nodes" in layer:
            layer["inbound_nodes"] = _k2_nodes(layer["inbound_nodes"])
        layers.append(layer)
    config = {**config, "layers": layers}
    if kind == "Model":
        kind = "Functional"
    for key in ("input_layers", "output_layers"):
        refs = config.get(key)
        if isinstance(refs, list) and refs and isinstance(refs[0], list):
            config[key] = [list(r[:3]) for r in refs]
    return {**entry, "class_name": kind, "config": config}


def _compile_config(training: Dict[str, Any]) -> Dict[str, Any]:
    """Keras 2's `training_config` as Keras 3's `compile_config`."""
    optimizer = training.get("optimizer_config")
    if isinstance(optimizer, dict):
        cfg = {k: v for k, v in (optimizer.get("config") or {}).items() if k not in _K2_OPTIMIZER_EXTRA}
        if "lr" in cfg:
            cfg["learning_rate"] = cfg.pop("lr")
        optimizer = {"class_name": optimizer.get("class_name"), "config": cfg}

    def metric(m):
        if isinstance(m, dict) and m.get("class_name") == "MeanMetricWrapper":
            return (m.get("config") or {}).get("fn", (m.get("config") or {}).get("name"))
        if isinstance(m, list):
            return [metric(x) for x in m]
        if isinstance(m, dict) and "class_name" not in m:
            return {k: metric(v) for k, v in m.items()}
        return m

    metrics = metric(training.get("metrics"))
    if isinstance(metrics, list) and len(metrics) == 1 and isinstance(metrics[0], list):
        metrics = metrics[0]
    return {"optimizer": optimizer, "loss": training.get("loss"), "metrics": metrics,
            "loss_weights": training.get("loss_weights"), "weighted_metrics": training.get("weighted_metrics")}


def _weights_root(f):
    if "layer_names" not in f.attrs and "model_weights" in f:
        return weights_h5._group(f, "model_weights", "model_weights")
    return f


def _layer_group(root, name: str):
    group = weights_h5._group(root, name, f'the weights of layer "{name}"')
    if group is None:
        raise ValueError(f'Invalid .h5 file: layer "{name}" is listed but has no group')
    return group


def _layer_values(root, name: str) -> List[Any]:
    """The datasets of one layer's group, in its `weight_names` order (not read yet)."""
    group = _layer_group(root, name)
    out = []
    for wname in _names(group, "weight_names"):
        parts = [p for p in wname.split("/") if p]
        parent = weights_h5._group(group, "/".join(parts[:-1]), f'weight "{wname}"') if len(parts) > 1 else group
        if parent is None or not parts:
            raise ValueError(f'Invalid .h5 file: weight "{wname}" of layer "{name}" is missing')
        out.append(weights_h5._dataset(parent, parts[-1], f'weight "{wname}" of layer "{name}"'))
    return out


def _targets(model) -> list:
    """The model's layers that have weights, as Keras 2 saved them (a nested model is one layer)."""
    return [l for l in model.layers if (l.get_weights() if hasattr(l, "get_weights") else [])]


def load_weights(model, f, skip_mismatch: bool = False, by_name: bool = False) -> None:
    """The weights of an open Keras 2 `.h5` file into `model`, by layer order (or by name)."""
    root = _weights_root(f)
    names = _names(root, "layer_names")
    with_weights = [n for n in names if _names(_layer_group(root, n), "weight_names")]
    targets = _targets(model)
    if by_name:
        by = {l.name: l for l in targets}
        pairs = [(by[n], n) for n in with_weights if n in by]
    else:
        if len(with_weights) != len(targets):
            raise ValueError(
                f"Layer count mismatch when loading weights from file. Model expected {len(targets)} layers, "
                f"found {len(with_weights)} saved layers.")
        pairs = list(zip(targets, with_weights))
    updates = []
    for layer, name in pairs:
        datasets = _layer_values(root, name)
        expected = [np.shape(w) for w in layer.get_weights()]
        shapes = [tuple(d.shape) for d in datasets]
        if shapes != [tuple(s) for s in expected]:
            msg = (f'Layer "{layer.name}" expects weights of shapes {expected}; the file\'s layer "{name}" has '
                   f"{shapes}.")
            if skip_mismatch:
                warnings.warn(f"Skipping loading weights for layer #{targets.index(layer)}: {msg}", stacklevel=3)
                continue
            raise ValueError(msg)
        updates.append((layer, [np.asarray(d[()], dtype=np.float32) for d in datasets]))
    for layer, values in updates:
        layer.set_weights(values)


def load_model(source, custom_objects=None, compile: bool = True):
    """The model of a Keras 2 `.h5` file (a path or a binary file object)."""
    with reading.open_hdf5(source, EXPECTED) as f:
        if "model_config" not in f.attrs:
            raise ValueError("No model config found in the file: it holds weights only; build the model and call "
                             "`model.load_weights(filepath)`.")
        try:
            entry = json.loads(_attr_text(f.attrs["model_config"]))
            model = keras_config.model_from_entry(_k2_model_config(entry), custom_objects)
        except RecursionError:
            raise ValueError("Invalid .h5 file: model_config is nested too deeply") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"Invalid .h5 file: model_config is not valid JSON ({e})") from None
        load_weights(model, f)
        if compile and "training_config" in f.attrs:
            try:
                training = json.loads(_attr_text(f.attrs["training_config"]))
            except ValueError as e:
                raise ValueError(f"Invalid .h5 file: training_config is not valid JSON ({e})") from None
            if isinstance(training, dict) and keras_config.compile_from_config(model, _compile_config(training),
                                                                                 custom_objects):
                group = weights_h5._group(f, "optimizer_weights", "optimizer_weights")
                if group is not None and len(_names(group, "weight_names")) > 2:
                    warnings.warn("The optimizer's state in a legacy .h5 file is not restored: training resumes "
                                  "with fresh optimizer slots.", stacklevel=3)
    return model
