"""Losses with Keras 3's formulas. Each function takes `(y_true, y_pred)` numpy arrays and
returns the per-sample loss (the last axis reduced), computed by the engine's own ops:

    from rustkeras import losses
    losses.mean_squared_error(np.zeros((2, 3)), np.ones((2, 3)))   # array([1., 1.])
"""

import functools
from typing import Any, Callable, Dict, Optional, Union

import numpy as np

from rustkeras import _core
from rustkeras import _symbolic

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
        mode, trace = _symbolic.find_trace((y_true, y_pred))
        if mode == "symbolic":
            with _symbolic.tracing(trace):
                yt, yp = _symbolic.to_tensor(y_true, trace), _symbolic.to_tensor(y_pred, trace)
                if name == "sparse_categorical_crossentropy" and yt.ndim == yp.ndim and yt.shape[-1] == 1:
                    from rustkeras import ops

                    yt = ops.squeeze(yt, axis=-1)
                return _symbolic.SymbolicTensor(trace, trace.graph.loss(name, yt.node, yp.node))
        if mode == "keras":
            from rustkeras.layers.lambda_layer import functional_op

            return functional_op(fn, (y_true, y_pred), {})
        yt = np.ascontiguousarray(y_true, dtype=np.float32)
        yp = np.ascontiguousarray(y_pred, dtype=np.float32)
        if yt.ndim == 0 or yp.ndim == 0:
            raise ValueError(f"{name}: y_true and y_pred must have at least one axis")
        if name == "sparse_categorical_crossentropy":
            yt = check_sparse_labels(name, yt, yp)
        return _core.loss(name, yt, yp)

    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = f"Per-sample `{name}` (Keras 3 formula), on arrays or inside a traced function."
    return fn


for _alias in _CANONICAL:
    globals()[_alias] = _function(_CANONICAL[_alias])


class Loss:
    """A loss object. The built-in ones (`losses.MeanSquaredError()`) compute Keras 3's
    formula; a subclass defines `call(y_true, y_pred)` returning per-sample values, which a
    model traces into its graph. `loss(y_true, y_pred, sample_weight=None)` applies the
    reduction (`sum_over_batch_size`, `sum` or `none`)."""

    fn_name = ""
    # Keyword arguments a built-in loss class takes besides reduction and name.
    _options: Dict[str, Any] = {}

    def __init__(self, reduction: str = "sum_over_batch_size", name: Optional[str] = None, dtype=None, **kwargs):
        opts = dict(self._options)
        for k in list(kwargs):
            if k in opts:
                opts[k] = kwargs.pop(k)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected argument(s) {sorted(kwargs)}")
        if reduction not in ("sum_over_batch_size", "sum", "none", "mean", None):
            raise ValueError(f"Invalid value received for argument `reduction`. Received: reduction={reduction!r}")
        if dtype not in (None, "float32"):
            raise NotImplementedError(f"{type(self).__name__}: dtype={dtype!r} is not supported (float32 only).")
        self.reduction = reduction
        self.name = name or (self.fn_name or snake(type(self).__name__))
        self._opts = opts
        for k, v in opts.items():
            setattr(self, k, v)
        _check_options(type(self).__name__, opts)

    def call(self, y_true, y_pred):
        """Per-sample loss values (a subclass overrides this)."""
        fn = _option_function(self.fn_name, self._opts)
        return fn(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        per = np.asarray(self.call(y_true, y_pred), dtype=np.float32)
        if per.ndim == 0:
            per = per.reshape(1)
        if sample_weight is not None:
            per = per * np.asarray(sample_weight, dtype=np.float32).reshape(per.shape[:1] + (1,) * (per.ndim - 1))
        if self.reduction in ("none", None):
            return per
        if self.reduction == "sum":
            return np.float32(per.sum())
        return np.float32(per.sum() / max(per.size, 1))

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, **self._opts}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def snake(name: str) -> str:
    import re

    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _check_options(cls_name: str, opts: Dict[str, Any]) -> None:
    if "axis" in opts and opts["axis"] != -1:
        raise NotImplementedError(f"{cls_name}: only `axis=-1` is supported by rustkeras.")
    if "delta" in opts and float(opts["delta"]) != 1.0:
        raise NotImplementedError(f"{cls_name}: only `delta=1.0` is supported by rustkeras.")
    if opts.get("ignore_class") is not None:
        raise NotImplementedError(f"{cls_name}: `ignore_class` is not supported by rustkeras.")
    ls = opts.get("label_smoothing", 0.0)
    if not isinstance(ls, (int, float)) or not 0.0 <= float(ls) <= 1.0:
        raise ValueError(f"{cls_name}: `label_smoothing` must be a float in [0, 1]. Received: {ls!r}")


def _uses_options(fn_name: str, opts: Dict[str, Any]) -> bool:
    return bool(opts.get("from_logits")) or float(opts.get("label_smoothing", 0.0) or 0.0) > 0.0


def _option_function(fn_name: str, opts: Dict[str, Any]) -> Callable:
    """The per-sample function of a built-in loss with its options: the engine's named loss
    when there are none, else Keras 3's formula for logits or smoothed labels, traced."""
    if not _uses_options(fn_name, opts):
        return globals()[fn_name]
    from_logits = bool(opts.get("from_logits"))
    ls = float(opts.get("label_smoothing", 0.0) or 0.0)
    if fn_name == "categorical_crossentropy":
        return functools.partial(categorical_crossentropy_ext, from_logits=from_logits, label_smoothing=ls)
    if fn_name == "binary_crossentropy":
        return functools.partial(binary_crossentropy_ext, from_logits=from_logits, label_smoothing=ls)
    if fn_name == "sparse_categorical_crossentropy":
        if ls:
            raise NotImplementedError("SparseCategoricalCrossentropy: `label_smoothing` is not supported by Keras.")
        return functools.partial(sparse_categorical_crossentropy_ext, from_logits=from_logits)
    raise ValueError(f"{fn_name} takes no from_logits/label_smoothing")


def categorical_crossentropy_ext(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Keras 3's categorical crossentropy with `from_logits` and `label_smoothing`."""
    from rustkeras import ops

    if axis != -1:
        raise NotImplementedError("categorical_crossentropy: only axis=-1 is supported by rustkeras.")
    if label_smoothing:
        n = ops.shape(y_pred)[-1]
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), label_smoothing / n)
    if from_logits:
        return ops.negative(ops.sum(ops.multiply(y_true, ops.log_softmax(y_pred, axis=-1)), axis=-1))
    p = ops.divide(y_pred, ops.sum(y_pred, axis=-1, keepdims=True))
    p = ops.clip(p, 1e-7, 1.0 - 1e-7)
    return ops.negative(ops.sum(ops.multiply(y_true, ops.log(p)), axis=-1))


def binary_crossentropy_ext(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Keras 3's binary crossentropy (mean over the last axis) with `from_logits` and
    `label_smoothing`."""
    from rustkeras import ops

    if axis != -1:
        raise NotImplementedError("binary_crossentropy: only axis=-1 is supported by rustkeras.")
    if label_smoothing:
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    if from_logits:
        # max(x, 0) - x * z + log(1 + exp(-|x|)), stable for large |x|.
        x = y_pred
        per = ops.add(ops.subtract(ops.relu(x), ops.multiply(x, y_true)), ops.log1p(ops.exp(ops.negative(ops.abs(x)))))
    else:
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        per = ops.negative(ops.add(ops.multiply(y_true, ops.log(p)),
                                   ops.multiply(ops.subtract(1.0, y_true), ops.log(ops.subtract(1.0, p)))))
    return ops.mean(per, axis=-1)


def sparse_categorical_crossentropy_ext(y_true, y_pred, from_logits=False, axis=-1, ignore_class=None):
    """Keras 3's sparse categorical crossentropy with `from_logits`."""
    from rustkeras import ops

    if ignore_class is not None or axis != -1:
        raise NotImplementedError("sparse_categorical_crossentropy: `ignore_class` and axis != -1 are not supported.")
    if not from_logits:
        return sparse_categorical_crossentropy(y_true, y_pred)
    if ops.ndim(y_true) == ops.ndim(y_pred):
        y_true = ops.squeeze(y_true, axis=-1)
    logp = ops.log_softmax(y_pred, axis=-1)
    picked = ops.take_along_axis(logp, ops.expand_dims(y_true, -1), axis=-1)
    return ops.negative(ops.squeeze(picked, axis=-1))


def _cls(class_name: str, fn_name: str, **options):
    return type(class_name, (Loss,), {"fn_name": fn_name, "_options": options})


MeanSquaredError = _cls("MeanSquaredError", "mean_squared_error")
MeanAbsoluteError = _cls("MeanAbsoluteError", "mean_absolute_error")
MeanAbsolutePercentageError = _cls("MeanAbsolutePercentageError", "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _cls("MeanSquaredLogarithmicError", "mean_squared_logarithmic_error")
CategoricalCrossentropy = _cls("CategoricalCrossentropy", "categorical_crossentropy", from_logits=False,
                               label_smoothing=0.0, axis=-1)
SparseCategoricalCrossentropy = _cls("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy",
                                     from_logits=False, ignore_class=None, axis=-1)
BinaryCrossentropy = _cls("BinaryCrossentropy", "binary_crossentropy", from_logits=False, label_smoothing=0.0,
                          axis=-1)
KLDivergence = _cls("KLDivergence", "kl_divergence")
Hinge = _cls("Hinge", "hinge")
SquaredHinge = _cls("SquaredHinge", "squared_hinge")
CategoricalHinge = _cls("CategoricalHinge", "categorical_hinge")
Poisson = _cls("Poisson", "poisson")
CosineSimilarity = _cls("CosineSimilarity", "cosine_similarity")
Huber = _cls("Huber", "huber", delta=1.0)
LogCosh = _cls("LogCosh", "log_cosh")


def is_custom(identifier) -> bool:
    """Whether a loss is user code to trace: a function that is not one of this module's, a
    Loss subclass with its own `call`, or a built-in Loss with from_logits/label_smoothing."""
    if isinstance(identifier, Loss):
        return type(identifier).call is not Loss.call or _uses_options(identifier.fn_name, identifier._opts)
    if isinstance(identifier, str):
        return False
    if callable(identifier):
        return globals().get(getattr(identifier, "__name__", None)) is not identifier
    return False


def callable_of(identifier) -> Callable:
    """The per-sample function `(y_true, y_pred) -> values` of a custom loss."""
    if isinstance(identifier, Loss):
        return identifier.call
    return identifier


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
