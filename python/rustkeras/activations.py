"""Activations by name, as Keras 3 names them (plus the classic tutorial's
`identity`, `binary_step` and `arctan`). Each function also works on numpy arrays:

    from rustkeras import activations
    activations.relu(np.array([-1.0, 2.0], dtype="float32"))   # array([0., 2.])
"""

from typing import Callable, Union

import numpy as np

from rustkeras import _core
from rustkeras import _symbolic

NAMES = (
    "linear", "identity", "relu", "relu6", "sigmoid", "hard_sigmoid", "tanh", "softmax", "softplus",
    "softsign", "elu", "selu", "exponential", "swish", "silu", "gelu", "leaky_relu", "binary_step", "arctan",
)


def _make(name: str) -> Callable:
    def fn(x):
        mode, trace = _symbolic.find_trace((x,))
        if mode == "eager":
            return _core.activation(name, np.ascontiguousarray(x, dtype=np.float32))
        if mode == "keras":
            from rustkeras.layers.lambda_layer import functional_op

            return functional_op(fn, (x,), {})
        t = _symbolic.to_tensor(x, trace)
        return _symbolic.SymbolicTensor(trace, trace.graph.activation(t.node, name))

    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = f"The `{name}` activation, applied elementwise (softmax: over the last axis), on arrays or as an op inside a traced function."
    return fn


for _n in NAMES:
    globals()[_n] = _make(_n)


def get(identifier: Union[str, Callable, None]) -> str:
    """The canonical activation name for a name, one of this module's functions, or None."""
    if identifier is None:
        return "linear"
    if callable(identifier):
        name = getattr(identifier, "__name__", None)
        if name in NAMES:
            return name
        raise ValueError(
            f"Could not interpret activation function identifier: {identifier!r}. "
            "Only the named activations of rustkeras.activations are supported."
        )
    if isinstance(identifier, str):
        name = identifier.lower()
        if name in NAMES:
            return name
        raise ValueError(
            f"Could not interpret activation function identifier: '{identifier}'. "
            f"Expected one of: {', '.join(NAMES)}"
        )
    raise TypeError(
        f"Could not interpret activation function identifier: {identifier!r}. "
        "Expected a string or an activation function."
    )


def serialize(activation) -> str:
    return get(activation)


def deserialize(name: str) -> Callable:
    return globals()[get(name)]
