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
    def fn(y_true, y_pred):
        yt = np.ascontiguousarray(y_true, dtype=np.float32)
        yp = np.ascontiguousarray(y_pred, dtype=np.float32)
        if name.startswith("sparse") and yp.ndim > 0:
            yt = _losses.check_sparse_labels(name, yt, yp)
        return _core.metric(name, yt, yp)

    fn.__name__ = name
    fn.__qualname__ = name
    return fn


binary_accuracy = _function("binary_accuracy")
categorical_accuracy = _function("categorical_accuracy")
sparse_categorical_accuracy = _function("sparse_categorical_accuracy")


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    if k != 5:
        raise NotImplementedError("top_k_categorical_accuracy: only k=5 (the Keras default) is supported")
    return _function("top_k_categorical_accuracy")(y_true, y_pred)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    if k != 5:
        raise NotImplementedError("sparse_top_k_categorical_accuracy: only k=5 (the Keras default) is supported")
    return _function("sparse_top_k_categorical_accuracy")(y_true, y_pred)


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
