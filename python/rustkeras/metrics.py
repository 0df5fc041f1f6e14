"""Metric functions on numpy arrays (per-sample values, as Keras' metric functions return),
and the names `compile(metrics=[...])` accepts."""

from typing import Callable, Optional, Union

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


class Metric:
    """Base of metric objects. rustkeras computes a metric as the mean over the epoch of
    per-sample values, inside the model's graph: a subclass of `MeanMetricWrapper` (or a
    function given to `compile(metrics=[...])`) does that. A stateful metric with its own
    `update_state`/`result` over variables is not supported yet."""

    def __init__(self, name: Optional[str] = None, dtype=None, **kwargs):
        if dtype not in (None, "float32"):
            raise NotImplementedError(f"{type(self).__name__}: dtype={dtype!r} is not supported (float32 only).")
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected argument(s) {sorted(kwargs)}")
        self.name = name or _snake(type(self).__name__)

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MeanMetricWrapper(Metric):
    """The mean over the epoch of `fn(y_true, y_pred, **kwargs)` (Keras 3's class for
    stateless metrics):

        model.compile(..., metrics=[MeanMetricWrapper(my_fn, name="my_metric")])
    """

    def __init__(self, fn: Callable, name: Optional[str] = None, dtype=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self._fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        return {"name": self.name, **self._fn_kwargs}


def _snake(name: str) -> str:
    import re

    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def is_custom(identifier) -> bool:
    """Whether a metric is user code to trace (a function that is not a built-in metric or
    loss name, or a metric object)."""
    if isinstance(identifier, Metric):
        return True
    if isinstance(identifier, str) or not callable(identifier):
        return False
    if isinstance(identifier, type):
        return False
    from rustkeras import losses as _l

    name = getattr(identifier, "__name__", None)
    builtin = globals().get(name) is identifier or getattr(_l, str(name), None) is identifier
    return not builtin


def callable_of(identifier) -> Callable:
    if isinstance(identifier, MeanMetricWrapper):
        return identifier.call
    if isinstance(identifier, Metric):
        raise NotImplementedError(
            f"Metric {type(identifier).__name__}: metric objects with their own update_state()/result() are not "
            "supported by rustkeras yet; pass a function (y_true, y_pred) -> per-sample values, or a "
            "MeanMetricWrapper.")
    return identifier
