"""The configuration file, as keras.json chose Theano or TensorFlow:
`~/.rustkeras/rustkeras.json` (or `$RUSTKERAS_HOME/rustkeras.json`), e.g.

    {"backend": "cpu", "floatx": "float32", "epsilon": 1e-07, "image_data_format": "channels_last"}

The environment variable `RUSTKERAS_BACKEND` overrides the file's backend.
"""

import json
import os
from typing import Any, Dict

DEFAULTS: Dict[str, Any] = {
    "backend": "cpu",
    "floatx": "float32",
    "epsilon": 1e-07,
    "image_data_format": "channels_last",
}
BACKENDS = ("cpu", "gpu")


def home() -> str:
    return os.environ.get("RUSTKERAS_HOME") or os.path.join(os.path.expanduser("~"), ".rustkeras")


def config_path() -> str:
    return os.path.join(home(), "rustkeras.json")


def load() -> Dict[str, Any]:
    """The effective configuration: defaults, then the file, then the environment."""
    cfg = dict(DEFAULTS)
    path = config_path()
    if os.path.exists(path):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"Could not read the rustkeras config file {path}: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"The rustkeras config file {path} must hold a JSON object")
        unknown = set(data) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"Unknown keys in {path}: {sorted(unknown)}. Expected: {sorted(DEFAULTS)}")
        cfg.update(data)
    env = os.environ.get("RUSTKERAS_BACKEND")
    if env:
        cfg["backend"] = env
    if cfg["backend"] not in BACKENDS:
        raise ValueError(f"Invalid backend {cfg['backend']!r} (from {path} or RUSTKERAS_BACKEND). Expected one of {BACKENDS}")
    if cfg["floatx"] != "float32":
        raise NotImplementedError(f"floatx={cfg['floatx']!r}: rustkeras computes in float32 only")
    if cfg["image_data_format"] not in ("channels_last", "channels_first"):
        raise ValueError(f"Invalid image_data_format {cfg['image_data_format']!r}")
    if cfg["backend"] == "gpu":
        raise NotImplementedError(
            "The 'gpu' backend (wgpu) is not available in this build of rustkeras yet; "
            "set \"backend\": \"cpu\" in the config file or RUSTKERAS_BACKEND=cpu"
        )
    return cfg


_config = load()


def backend() -> str:
    return _config["backend"]


def floatx() -> str:
    return _config["floatx"]


def epsilon() -> float:
    return float(_config["epsilon"])


def image_data_format() -> str:
    return _config["image_data_format"]


def set_image_data_format(fmt: str) -> None:
    if fmt not in ("channels_last", "channels_first"):
        raise ValueError(f"Invalid value received for argument `data_format`. Expected 'channels_last' or 'channels_first'. Received: data_format={fmt!r}")
    _config["image_data_format"] = fmt
