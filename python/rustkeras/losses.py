"""Losses with Keras 3's formulas. Each function takes `(y_true, y_pred)` numpy arrays and
returns the per-sample loss (the last axis reduced), computed by the engine's own ops:

    from rustkeras import losses
    losses.mean_squared_error(np.zeros((2, 3)), np.ones((2, 3)))   # array([1., 1.])
"""

from typing import Callable, Optional, Union

import numpy as np

from rustkeras import _core

_CANONICAL = {
    "mean_squared_error": "mean_squared_error", "mse": "mean_squared_error",
    "mean_absolute_error": "mean_absolute_error", "mae": "mean_absolute_error",
    "mean_absolute_percentage_error": "mean_absolute_percentage_error", "mape": "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error": "mean_squared_logarithmic_error", "msle": "mean_squared_logarithmic_error",
    "categorical_crossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "binary_crossentropy": "binary_crossentropy",
    "kullback_leibler_divergence": "kl_divergence", "kl_divergence": "kl_divergence", "kld": "kl_divergence",
    "hinge": "hinge", "squared_hinge": "squared_hinge", "categorical_hinge": "categorical_hinge",
    "poisson": "poisson", "cosine_similarity": "cosine_similarity", "cosine_proximity": "cosine_similarity",
    "huber": "huber", "log_cosh": "log_cosh", "logcosh": "log_cosh",
}


def check_sparse_labels(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Integer class indices in range, with a trailing axis of 1 dropped (as Keras does)."""
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = np.ascontiguousarray(y_true[..., 0])
    classes = y_pred.shape[-1]
    bad = (y_true < 0) | (y_true >= classes) | (y_true != np.floor(y_true))
    if bad.any():
        raise ValueError(
            f"{name}: labels must be integers in [0, {classes}) for {classes} classes. "
            f"Received: {y_true[bad].ravel()[0]!r}"
        )
    return y_true


def _function(name: str) -> Callable:
    def fn(y_true, y_pred):
        yt = np.ascontiguousarray(y_true, dtype=np.float32)
        yp = np.ascontiguousarray(y_pred, dtype=np.float32)
        if yt.ndim == 0 or yp.ndim == 0:
            raise ValueError(f"{name}: y_true and y_pred must have at least one axis")
        if name == "sparse_categorical_crossentropy":
            yt = check_sparse_labels(name, yt, yp)
        return _core.loss(name, yt, yp)

    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = f"Per-sample `{name}` (Keras 3 formula)."
    return fn


for _alias in _CANONICAL:
    globals()[_alias] = _function(_CANONICAL[_alias])


class Loss:
    """A loss object (`losses.MeanSquaredError()`): `loss(y_true, y_pred, sample_weight=None)`
    applies Keras' `sum_over_batch_size` reduction."""

    fn_name = ""

    def __init__(self, reduction: str = "sum_over_batch_size", name: Optional[str] = None, **kwargs):
        for k in ("from_logits", "label_smoothing"):
            if kwargs.pop(k, False):
                raise NotImplementedError(f"{type(self).__name__}: `{k}` is not supported by rustkeras yet.")
        kwargs.pop("axis", None) if kwargs.get("axis", -1) == -1 else None
        kwargs.pop("delta", None) if kwargs.get("delta", 1.0) == 1.0 else None
        if kwargs:
            raise NotImplementedError(f"{type(self).__name__}: unsupported argument(s) {sorted(kwargs)}")
        if reduction not in ("sum_over_batch_size", "sum", "none", None):
            raise ValueError(f"Invalid value received for argument `reduction`. Received: reduction={reduction!r}")
        self.reduction = reduction
        self.name = name or self.fn_name

    def __call__(self, y_true, y_pred, sample_weight=None):
        per = globals()[self.fn_name](y_true, y_pred)
        if sample_weight is not None:
            per = per * np.asarray(sample_weight, dtype=np.float32).reshape(per.shape[:1] + (1,) * (per.ndim - 1))
        if self.reduction in ("none", None):
            return per
        if self.reduction == "sum":
            return np.float32(per.sum())
        return np.float32(per.sum() / max(per.size, 1))

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


def _cls(class_name: str, fn_name: str):
    return type(class_name, (Loss,), {"fn_name": fn_name})


MeanSquaredError = _cls("MeanSquaredError", "mean_squared_error")
MeanAbsoluteError = _cls("MeanAbsoluteError", "mean_absolute_error")
MeanAbsolutePercentageError = _cls("MeanAbsolutePercentageError", "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _cls("MeanSquaredLogarithmicError", "mean_squared_logarithmic_error")
CategoricalCrossentropy = _cls("CategoricalCrossentropy", "categorical_crossentropy")
SparseCategoricalCrossentropy = _cls("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy")
BinaryCrossentropy = _cls("BinaryCrossentropy", "binary_crossentropy")
KLDivergence = _cls("KLDivergence", "kl_divergence")
Hinge = _cls("Hinge", "hinge")
SquaredHinge = _cls("SquaredHinge", "squared_hinge")
CategoricalHinge = _cls("CategoricalHinge", "categorical_hinge")
Poisson = _cls("Poisson", "poisson")
CosineSimilarity = _cls("CosineSimilarity", "cosine_similarity")
Huber = _cls("Huber", "huber")
LogCosh = _cls("LogCosh", "log_cosh")


def resolve_name(identifier: Union[str, Callable, Loss]) -> str:
    """The canonical loss name for a string, one of this module's functions, or a Loss object."""
    if isinstance(identifier, Loss):
        return _CANONICAL[identifier.fn_name]
    if callable(identifier) and getattr(identifier, "__name__", None) in _CANONICAL:
        return _CANONICAL[identifier.__name__]
    if isinstance(identifier, str) and identifier in _CANONICAL:
        return _CANONICAL[identifier]
    raise ValueError(
        f"Could not interpret loss identifier: {identifier!r}. Expected one of: {', '.join(sorted(_CANONICAL))}"
    )


def is_sparse(name: str) -> bool:
    return name == "sparse_categorical_crossentropy"


def get(identifier) -> Callable:
    return globals()[resolve_name(identifier)]
