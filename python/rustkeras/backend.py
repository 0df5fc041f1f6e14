"""The backend module, as `from keras import backend as K`: `K.dot`, `K.epsilon()`, ...

The Keras 1/2 backend functions (`K.sum`, `K.mean`, `K.dot`, `K.softmax`, ...) take Keras'
argument orders and run on the engine: inside a custom layer's `call`, a Lambda or a custom
loss they add nodes to the model's graph; on arrays they compute eagerly and return numpy
arrays. They share one implementation with `rustkeras.ops`.

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
from rustkeras import _symbolic as _S
from rustkeras import ops as _ops
from rustkeras.config import backend, epsilon, floatx, image_data_format, set_image_data_format
from rustkeras.config import image_dim_ordering, set_image_dim_ordering  # Keras 1

__all__ = [
    "abs", "argmax", "argmin", "backend", "batch_dot", "batch_flatten", "batch_get_value", "binary_crossentropy",
    "cast", "categorical_crossentropy", "clear_session", "clip", "concatenate", "constant", "cos", "devices",
    "dot", "elu", "epsilon", "equal", "eval", "exp", "expand_dims", "flatten", "floatx", "gather", "get_value",
    "greater", "greater_equal", "hard_sigmoid", "image_data_format", "int_shape", "is_keras_tensor", "less",
    "less_equal", "log", "max", "maximum", "mean", "min", "minimum", "ndim", "not_equal", "one_hot", "ones",
    "ones_like", "permute_dimensions", "placeholder", "pow", "prod", "relu", "repeat", "repeat_elements",
    "reshape", "round", "set_image_data_format", "set_value", "shape", "sigmoid", "sign", "sin", "softmax",
    "softplus", "softsign", "sqrt", "square", "squeeze", "stack", "std", "sum", "tanh", "tile", "transpose",
    "var", "variable", "zeros", "zeros_like",
    # Keras 1
    "image_dim_ordering", "set_image_dim_ordering",
]


def dot(x, y):
    """Matrix product (Keras' `K.dot`): for N-D operands, a sum product over the last axis of
    `x` and the second-to-last of `y`.

    Example:
        K.dot(np.ones((2, 3), "float32"), np.ones((3, 4), "float32"))   # all 3.0
    """
    return _ops.dot(x, y)


def batch_dot(x, y, axes=None):
    """The dot product of each pair of samples (Keras' `K.batch_dot`): x (b, .., n) and
    y (b, .., n) or (b, n, ..) contracted over `axes` (default: x's last and y's
    second-to-last, or y's last when it is 2-D). 2-D operands give (b, 1)."""
    nx, ny = _ops.ndim(x), _ops.ndim(y)
    if nx < 2 or ny < 2:
        raise ValueError(f"batch_dot: cannot do batch_dot on inputs with rank < 2. Received inputs of ranks {nx} "
                         f"and {ny}")
    if isinstance(axes, (int, np.integer)):
        axes = (int(axes), int(axes))
    if axes is None:
        axes = (nx - 1, ny - 1 if ny == 2 else ny - 2)
    ax, ay = _ops._axis(axes[0], nx), _ops._axis(axes[1], ny)
    if ax == 0 or ay == 0:
        raise ValueError(f"batch_dot: cannot contract the batch axis (axes={axes})")
    letters = iter("cdefghijklmnopqrstuvwxyz")
    sx = ["b"] + [next(letters) for _ in range(nx - 1)]
    sy = ["b"] + [next(letters) for _ in range(ny - 1)]
    sy[ay] = sx[ax]
    out = [c for c in sx if c != sx[ax]] + [c for c in sy[1:] if c != sx[ax]]
    result = _ops.einsum(f"{''.join(sx)},{''.join(sy)}->{''.join(out)}", x, y)
    if nx == 2 and ny == 2:
        result = _ops.expand_dims(result, 1)
    return result


def sum(x, axis=None, keepdims=False):  # noqa: A001 - Keras' name
    return _ops.sum(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return _ops.mean(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return _ops.max(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return _ops.min(x, axis=axis, keepdims=keepdims)


def prod(x, axis=None, keepdims=False):
    return _ops.prod(x, axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    return _ops.std(x, axis=axis, keepdims=keepdims)


def var(x, axis=None, keepdims=False):
    return _ops.var(x, axis=axis, keepdims=keepdims)


def argmax(x, axis=-1):
    return _ops.argmax(x, axis=axis)


def argmin(x, axis=-1):
    return _ops.argmin(x, axis=axis)


exp, log, sqrt, square, abs, sign = _ops.exp, _ops.log, _ops.sqrt, _ops.square, _ops.abs, _ops.sign  # noqa: A001
sin, cos, round = _ops.sin, _ops.cos, _ops.round  # noqa: A001
maximum, minimum, equal, not_equal = _ops.maximum, _ops.minimum, _ops.equal, _ops.not_equal
greater, greater_equal, less, less_equal = _ops.greater, _ops.greater_equal, _ops.less, _ops.less_equal
sigmoid, tanh, softplus, softsign = _ops.sigmoid, _ops.tanh, _ops.softplus, _ops.softsign
zeros_like, ones_like = _ops.zeros_like, _ops.ones_like


def pow(x, a):  # noqa: A001
    return _ops.power(x, a)


def clip(x, min_value, max_value):
    if max_value is not None and min_value is not None and max_value < min_value:
        max_value = min_value
    return _ops.clip(x, -np.inf if min_value is None else min_value, np.inf if max_value is None else max_value)


def cast(x, dtype):
    return _ops.cast(x, dtype)


def relu(x, alpha=0.0, max_value=None, threshold=0.0):
    """Keras 2's `K.relu`: `x` above `threshold`, `alpha * (x - threshold)` below, capped at
    `max_value`."""
    if alpha == 0.0 and max_value is None and threshold == 0.0:
        return _ops.relu(x)
    y = _ops.where(_ops.greater(x, threshold), x, _ops.multiply(alpha, _ops.subtract(x, threshold)))
    return y if max_value is None else _ops.minimum(y, max_value)


def hard_sigmoid(x):
    """Keras 2's `K.hard_sigmoid`: `clip(0.2 * x + 0.5, 0, 1)` (Keras 3's `ops.hard_sigmoid`
    is `relu6(x + 3) / 6`)."""
    return _ops.clip(_ops.add(_ops.multiply(x, 0.2), 0.5), 0.0, 1.0)


def softmax(x, axis=-1):
    return _ops.softmax(x, axis=axis)


def elu(x, alpha=1.0):
    return _ops.elu(x, alpha=alpha)


def concatenate(tensors, axis=-1):
    return _ops.concatenate(tensors, axis=axis)


def stack(x, axis=0):
    return _ops.stack(x, axis=axis)


def reshape(x, shape):
    return _ops.reshape(x, shape)


def permute_dimensions(x, pattern):
    return _ops.transpose(x, axes=pattern)


def transpose(x):
    return _ops.transpose(x)


def expand_dims(x, axis=-1):
    return _ops.expand_dims(x, axis)


def squeeze(x, axis):
    return _ops.squeeze(x, axis=axis)


def flatten(x):
    """Every value in one axis (a batched tensor keeps its batch axis: `batch_flatten`)."""
    if isinstance(x, _S.SymbolicTensor) and x.batched:
        return batch_flatten(x)
    return _ops.reshape(x, (-1,))


def batch_flatten(x):
    return _ops.reshape(x, (-1, int(np.prod(_ops.shape(x)[1:]))))


def repeat(x, n):
    """(batch, dim) -> (batch, n, dim), as RepeatVector."""
    return _ops.repeat(_ops.expand_dims(x, 1), n, axis=1)


def repeat_elements(x, rep, axis):
    return _ops.repeat(x, rep, axis=axis)


def tile(x, n):
    return _ops.tile(x, n)


def gather(reference, indices):
    """Rows of `reference` picked by integer `indices` (Keras' `K.gather`)."""
    return _ops.take(reference, indices, axis=0)


def one_hot(indices, num_classes):
    return _ops.one_hot(indices, num_classes)


def zeros(shape, dtype=None, name=None):
    return variable(np.zeros(shape, dtype=np.float32), dtype=dtype, name=name)


def ones(shape, dtype=None, name=None):
    return variable(np.ones(shape, dtype=np.float32), dtype=dtype, name=name)


def variable(value, dtype=None, name=None, constraint=None):
    """A standalone variable holding `value` (numpy); `K.eval`/`K.get_value` read it."""
    if constraint is not None:
        raise NotImplementedError("variable: `constraint` is not supported by rustkeras.")
    return _S.Variable(np.asarray(value), name=name, dtype=None if dtype in (None, "float32") else dtype)


def constant(value, dtype=None, shape=None, name=None):
    arr = np.asarray(value, dtype=_ops._np_dtype(dtype))
    if shape is not None:
        arr = np.broadcast_to(arr, tuple(shape)).copy()
    return arr


def placeholder(shape=None, ndim=None, dtype=None, sparse=False, name=None):
    """A functional-model input (Keras 1/2's placeholder): `shape` with the batch axis."""
    from rustkeras.layers.core import Input

    if sparse:
        raise NotImplementedError("placeholder: `sparse=True` is not supported by rustkeras.")
    if shape is None:
        raise ValueError("placeholder: rustkeras needs the `shape` (with the batch axis first, e.g. (None, 8)).")
    shape = tuple(shape)
    return Input(batch_shape=shape, name=name)


def eval(x):  # noqa: A001 - Keras' name
    """The numpy value of a variable or an array (a symbolic tensor has none)."""
    if isinstance(x, _S.Variable):
        return x.numpy()
    return _ops.convert_to_numpy(x)


def get_value(x):
    return eval(x)


def batch_get_value(xs):
    return [eval(x) for x in xs]


def set_value(x, value):
    if not isinstance(x, _S.Variable):
        raise TypeError(f"set_value: expected a variable, received {type(x).__name__}")
    x.assign(value)


def int_shape(x):
    return _ops.shape(x)


def shape(x):
    """The shape as a tuple (None for the batch axis of a symbolic tensor)."""
    return _ops.shape(x)


def ndim(x):
    return _ops.ndim(x)


def is_keras_tensor(x) -> bool:
    from rustkeras.layers.node import KerasTensor

    return isinstance(x, (KerasTensor, _S.SymbolicTensor))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Keras' `K.categorical_crossentropy(target, output)`: per-sample values."""
    from rustkeras import losses

    if from_logits or axis != -1:
        return losses.categorical_crossentropy_ext(target, output, from_logits=from_logits, axis=axis)
    return losses.categorical_crossentropy(target, output)


def binary_crossentropy(target, output, from_logits=False):
    """Keras 2's `K.binary_crossentropy`: elementwise (not averaged over the last axis)."""
    if from_logits:
        return _ops.add(_ops.subtract(_ops.relu(output), _ops.multiply(output, target)),
                        _ops.log1p(_ops.exp(_ops.negative(_ops.abs(output)))))
    p = _ops.clip(output, epsilon(), 1.0 - epsilon())
    return _ops.negative(_ops.add(_ops.multiply(target, _ops.log(p)),
                                  _ops.multiply(_ops.subtract(1.0, target), _ops.log(_ops.subtract(1.0, p)))))


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
