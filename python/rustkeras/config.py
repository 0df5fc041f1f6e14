"""The configuration file, as keras.json chose Theano or TensorFlow:
`~/.rustkeras/rustkeras.json` (or `$RUSTKERAS_HOME/rustkeras.json`), e.g.

    {"backend": "cpu", "floatx": "float32", "epsilon": 1e-07, "image_data_format": "channels_last"}

The environment variable `RUSTKERAS_BACKEND` overrides the file's backend. Keras 1's
`"image_dim_ordering": "th"` (Theano's channels-first order, so that `input_shape=(3, 256, 256)`
is 3 channels of 256x256) or `"tf"` is accepted in place of `image_data_format`.

The "gpu" backend runs models on a Vulkan GPU through wgpu. It is resolved when first
needed (the first model built, or `backend()`): where no GPU context can be created,
rustkeras warns once (RuntimeWarning, saying what it looked for) and runs on the CPU,
and `backend()` says "cpu" from then on.
"""

import json
import os
import warnings
from typing import Any, Dict, Optional

from rustkeras import _core

DEFAULTS: Dict[str, Any] = {
    "backend": "cpu",
    "floatx": "float32",
    "epsilon": 1e-07,
    "image_data_format": "channels_last",
}
BACKENDS = ("cpu", "gpu")
# Keras 1's keras.json key and values, and the image_data_format each stands for.
DIM_ORDERINGS = {"th": "channels_first", "tf": "channels_last"}


def home() -> str:
    return os.environ.get("RUSTKERAS_HOME") or os.path.join(os.path.expanduser("~"), ".rustkeras")


def config_path() -> str:
    return os.path.join(home(), "rustkeras.json")


def load() -> Dict[str, Any]:
    """The configuration: defaults, then the file, then the environment (the backend as
    requested; `backend()` says whether a "gpu" request could be met)."""
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
        unknown = set(data) - set(DEFAULTS) - {"image_dim_ordering"}
        if unknown:
            raise ValueError(f"Unknown keys in {path}: {sorted(unknown)}. Expected: {sorted(DEFAULTS)} "
                             "(or Keras 1's 'image_dim_ordering')")
        data = dict(data)
        if "image_dim_ordering" in data:
            ordering = data.pop("image_dim_ordering")
            if ordering not in DIM_ORDERINGS:
                raise ValueError(f"Invalid image_dim_ordering {ordering!r} in {path}. Expected 'th' (channels first) "
                                 "or 'tf' (channels last)")
            fmt = data.setdefault("image_data_format", DIM_ORDERINGS[ordering])
            if fmt != DIM_ORDERINGS[ordering]:
                raise ValueError(f"{path} sets image_dim_ordering={ordering!r} (that is, {DIM_ORDERINGS[ordering]!r}) "
                                 f"but image_data_format={fmt!r}: keep one of them")
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
    return cfg


_config = load()
# The backend models run on: the requested one, or "cpu" after a GPU request that
# could not be met. None until first asked for, so that importing rustkeras never
# opens a GPU context.
_effective: Optional[str] = None


def _resolve(requested: str) -> str:
    if requested != "gpu":
        return requested
    available, detail = _core.gpu_status()
    if available:
        return "gpu"
    warnings.warn(
        f"The 'gpu' backend was requested but no GPU context could be created ({detail}); "
        "rustkeras falls back to the CPU",
        RuntimeWarning,
        stacklevel=3,
    )
    return "cpu"


def backend() -> str:
    """The backend models run on: "gpu" or "cpu".

    Returns:
        "gpu" where it was requested (config file or `RUSTKERAS_BACKEND`) and a GPU context
        could be created; otherwise "cpu". The first call resolves a "gpu" request, warning
        once if it falls back to the CPU.

    Example:
        from rustkeras import config
        config.backend()   # "gpu" with RUSTKERAS_BACKEND=gpu and a usable GPU, else "cpu"
    """
    global _effective
    if _effective is None:
        _effective = _resolve(_config["backend"])
    return _effective


def set_backend(name: str) -> None:
    """Chooses the backend for models built from now on (those built before keep theirs).

    Args:
        name: "cpu" or "gpu". A "gpu" request is resolved (and may fall back to the CPU,
            with a warning) the next time `backend()` is asked.

    Example:
        from rustkeras import config
        config.set_backend("gpu")
        model = Sequential([Dense(10, input_shape=(784,))])   # built on the GPU where there is one
    """
    global _effective
    if name not in BACKENDS:
        raise ValueError(f"Invalid value received for argument `name`. Expected one of {BACKENDS}. Received: name={name!r}")
    _config["backend"] = name
    _effective = None


def floatx() -> str:
    return _config["floatx"]


def epsilon() -> float:
    return float(_config["epsilon"])


def image_data_format() -> str:
    return _config["image_data_format"]


def image_dim_ordering() -> str:
    """Keras 1's name of the image data format: "th" (channels first) or "tf" (channels last)."""
    return "th" if image_data_format() == "channels_first" else "tf"


def set_image_dim_ordering(dim_ordering: str) -> None:
    """Keras 1's `K.set_image_dim_ordering("th")`: sets the image data format of layers built from now on."""
    if dim_ordering not in DIM_ORDERINGS:
        raise ValueError(f"Invalid value received for argument `dim_ordering`. Expected 'th' or 'tf'. "
                         f"Received: dim_ordering={dim_ordering!r}")
    set_image_data_format(DIM_ORDERINGS[dim_ordering])


def set_image_data_format(fmt: str) -> None:
    if fmt not in ("channels_last", "channels_first"):
        raise ValueError(f"Invalid value received for argument `data_format`. Expected 'channels_last' or 'channels_first'. Received: data_format={fmt!r}")
    _config["image_data_format"] = fmt


def enable_unsafe_deserialization() -> None:
    """Lets configs read outside `load_model` (`model_from_json`, `from_config`) rebuild a
    `Lambda`'s function from its saved bytecode, as Keras' function of that name. Only for
    configs you trust: rebuilding them runs their code. (`load_model` follows its own
    `safe_mode` argument.)"""
    from rustkeras import saving

    saving.enable_unsafe_deserialization()
