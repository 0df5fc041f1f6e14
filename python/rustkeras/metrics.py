"""Metric functions on numpy arrays (per-sample values, as Keras' metric functions return),
and the names `compile(metrics=[...])` accepts."""

from typing import Callable, Union

import numpy as np

from rustkeras import _core
from rustkeras import losses as _losses

_METRICS = (
    "accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
)


def _function(name: str) -> Callable:
    def fn(y_true, y_pred, k: int = 5):
        yt = np.ascontiguousarray(y_true, dtype=np.float32)
        yp = np.ascontiguousarray(y_pred, dtype=np.float32)
        if name.startswith("sparse") and yp.ndim > 0:
            yt = _losses.check_sparse_labels(name, yt, yp)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"Invalid value received for argument `k`. Expected an integer > 0. Received: k={k!r}")
        return _core.metric(name, yt, yp, int(k))

    fn.__name__ = name
    fn.__qualname__ = name
    return fn


def _fixed(name: str) -> Callable:
    f = _function(name)

    def fn(y_true, y_pred):
        return f(y_true, y_pred)

    fn.__name__ = fn.__qualname__ = name
    return fn


binary_accuracy = _fixed("binary_accuracy")
categorical_accuracy = _fixed("categorical_accuracy")
sparse_categorical_accuracy = _fixed("sparse_categorical_accuracy")
top_k_categorical_accuracy = _function("top_k_categorical_accuracy")
top_k_categorical_accuracy.__doc__ = "1.0 where the true class (argmax of y_true) is among the k largest predictions."
sparse_top_k_categorical_accuracy = _function("sparse_top_k_categorical_accuracy")
sparse_top_k_categorical_accuracy.__doc__ = "1.0 where the integer label is among the k largest predictions."


mean_squared_error = mse = _losses.mean_squared_error
mean_absolute_error = mae = _losses.mean_absolute_error


def resolve_name(identifier: Union[str, Callable]) -> str:
    """The name a metric is computed and logged under (the string the user passed)."""
    if isinstance(identifier, str):
        if identifier in _METRICS or identifier in _losses._CANONICAL:
            return identifier
    elif callable(identifier):
        name = getattr(identifier, "__name__", None)
        if name in _METRICS or name in _losses._CANONICAL:
            return name
    raise ValueError(
        f"Could not interpret metric identifier: {identifier!r}. Expected one of: "
        f"{', '.join(_METRICS)} or a loss name"
    )
