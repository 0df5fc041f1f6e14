"""The backend module, as `from keras import backend as K`: `K.dot`, `K.epsilon()`, ...

    from rustkeras import backend as K
    K.dot(np.ones((2, 3), "float32"), np.ones((3, 4), "float32"))   # the engine's GEMM
"""

import numpy as np

from rustkeras import _core
from rustkeras.config import backend, epsilon, floatx, image_data_format, set_image_data_format

__all__ = ["backend", "clear_session", "dot", "epsilon", "floatx", "image_data_format", "set_image_data_format"]


def dot(a, b) -> np.ndarray:
    """Matrix product of two 2-D arrays on the engine's GEMM (float32)."""
    return _core.dot(np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32))


def clear_session() -> None:
    """Resets layer name counters (as Keras' `clear_session` does for names)."""
    from rustkeras.layers import base

    base._name_counts.clear()
