"""The backend module, as `from keras import backend as K`: `K.dot`, `K.epsilon()`, ...

`K.backend()` names the device models run on ("gpu" or "cpu", after any fallback) and
`K.devices()` lists the GPUs rustkeras can see:

    from rustkeras import backend as K
    K.dot(np.ones((2, 3), "float32"), np.ones((3, 4), "float32"))   # the engine's GEMM
    K.backend()    # "cpu", or "gpu" with RUSTKERAS_BACKEND=gpu and a usable GPU
    K.devices()    # [{"name": "NVIDIA H200", "type": "DiscreteGpu", "api": "Vulkan"}, ...]
"""

from typing import Dict, List

import numpy as np

from rustkeras import _core
from rustkeras.config import backend, epsilon, floatx, image_data_format, set_image_data_format

__all__ = [
    "backend",
    "clear_session",
    "devices",
    "dot",
    "epsilon",
    "floatx",
    "image_data_format",
    "set_image_data_format",
]


def dot(a, b) -> np.ndarray:
    """Matrix product of two 2-D arrays on the engine's GEMM (float32).

    Args:
        a: array of shape (m, k).
        b: array of shape (k, n).

    Returns:
        The (m, n) float32 product.

    Example:
        K.dot(np.ones((2, 3), "float32"), np.ones((3, 4), "float32"))   # all 3.0
    """
    return _core.dot(np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32))


def devices() -> List[Dict[str, str]]:
    """The GPU adapters rustkeras can see, best first.

    Returns:
        One dict per Vulkan adapter wgpu finds: `{"name": ..., "type": ..., "api": "Vulkan"}`,
        where type is "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu" (a software
        rasterizer such as Mesa's lavapipe) or "Other". Empty where there is none.

    Example:
        [d["name"] for d in K.devices()]   # e.g. ["NVIDIA H200", "llvmpipe (LLVM 15.0.7, 256 bits)"]
    """
    return _core.gpu_adapters()


def clear_session() -> None:
    """Resets layer name counters (as Keras' `clear_session` does for names)."""
    from rustkeras.layers import base

    base._name_counts.clear()
