"""Keras 3's metrics: the functions (per-sample values on arrays) and the metric classes.

A metric class keeps sums over the batches it sees (Keras' metric variables) and reads its value
from them: inside `fit`/`evaluate` the engine sums them over the epoch on the model's device,
and on its own a metric runs the same computation on the CPU:

    m = metrics.AUC()
    m.update_state(y_true, y_pred)
    m.result()          # the area under the ROC curve of everything seen since the last reset
    m.reset_state()

`compile(metrics=[...])` takes names ("accuracy", "auc", "precision", ...), classes
(`metrics.AUC`, instantiated with defaults), instances (`metrics.AUC(curve="PR")`), functions
`(y_true, y_pred) -> per-sample values` and `MeanMetricWrapper(fn)`. Logs use each metric's `name`.
"""

from typing import Callable, List, Optional, Union

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
        if identifier in _METRICS or identifier in _losses._CANONICAL or _core.is_metric_name(identifier):
            return identifier
    elif callable(identifier):
        name = getattr(identifier, "__name__", None)
        if name in _METRICS or name in _losses._CANONICAL:
            return name
    raise ValueError(
        f"Could not interpret metric identifier: {identifier!r}. Expected a metric class or its name "
        f"(e.g. 'auc', 'precision', 'recall', 'f1_score', 'root_mean_squared_error'), one of: "
        f"{', '.join(_METRICS)}, or a loss name"
    )


def _snake(name: str) -> str:
    import re

    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _auto_name(cls_name: str) -> str:
    """Keras' `auto_name`: the class name in snake case, numbered when taken (`auc`, `auc_1`);
    the counter is the one layer names use (reset by `backend.clear_session()`)."""
    from rustkeras.layers import base

    return base.unique_name(_snake(cls_name))


class Metric:
    """Base of metric objects: `update_state(y_true, y_pred, sample_weight=None)` adds a batch,
    `result()` reads the value, `reset_state()` starts over, and calling the metric updates it
    and returns the result.

    The built-in classes are computed by the engine. A user subclass that keeps its own state in
    Python can be used on its own but not in `compile`; give `compile` a function returning
    per-sample values, or a `MeanMetricWrapper`, instead.
    """

    def __init__(self, name: Optional[str] = None, dtype=None, **kwargs):
        if dtype not in (None, "float32"):
            raise NotImplementedError(f"{type(self).__name__}: dtype={dtype!r} is not supported (float32 only).")
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected argument(s) {sorted(kwargs)}")
        self.name = name or _auto_name(type(self).__name__)

    @property
    def dtype(self) -> str:
        return "float32"

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state().")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result().")

    def reset_state(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement reset_state().")

    def __call__(self, *args, **kwargs):
        """Updates the state with one batch and returns the result."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _as_array(value, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(f"update_state: `{what}` must be numeric array-like. Received: {type(value).__name__}") from e
    return arr.reshape(1) if arr.ndim == 0 else arr


def _same_rank(y_true: np.ndarray, y_pred: np.ndarray):
    """Keras' `squeeze_or_expand_to_same_rank` on the targets: a trailing axis of 1 dropped or
    added when the ranks differ by one."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    return y_true


class _EngineMetric(Metric):
    """A metric the engine computes: `_kind` and `_config()` describe it to the engine."""

    _kind = ""
    # Inputs of one axis are one sample (Keras' functions that reduce the last axis see them so).
    _one_axis_is_a_sample = False
    # Takes integer class labels rather than targets shaped like the predictions.
    _sparse = False

    def __init__(self, name: Optional[str] = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        # Created now, so that the engine checks the arguments when the metric is built.
        self._state = _core.MetricState(self._kind, self._config())

    def _config(self) -> dict:
        return {}

    def _engine_entry(self):
        """What `compile` hands the engine: (name, kind, config)."""
        return (self.name, self._kind, self._config())

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Adds a batch. `sample_weight`: None, a number, or one weight per sample."""
        yt, yp = _as_array(y_true, "y_true"), _as_array(y_pred, "y_pred")
        if not self._sparse:
            yt = _same_rank(yt, yp)
        one_row = self._one_axis_is_a_sample and yp.ndim == 1 and yt.ndim == 1
        if one_row:
            yt, yp = yt[None], yp[None]
        n = yp.shape[0]
        if yt.shape[0] != n:
            raise ValueError(f"update_state: y_true and y_pred must have the same number of samples, "
                             f"received shapes {yt.shape} and {yp.shape}")
        sw = None
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float32)
            if one_row and sw.ndim == 1 and sw.shape[0] > 1:
                raise ValueError(f"{type(self).__name__}: a 1-D y_pred is one sample; received "
                                 f"{sw.shape[0]} sample weights")
            if sw.ndim == 0 or sw.size == 1:
                sw = np.full((n,), float(sw.reshape(-1)[0]), dtype=np.float32)
            elif sw.ndim == 2 and sw.shape[1] == 1:
                sw = sw[:, 0]
            if sw.shape != (n,):
                raise NotImplementedError(
                    f"{type(self).__name__}: sample_weight must be one weight per sample (shape ({n},)); "
                    f"per-element weights of shape {sw.shape} are not supported by rustkeras.")
            sw = np.ascontiguousarray(sw)
        self._state.update_state(np.ascontiguousarray(yt), np.ascontiguousarray(yp), sw)

    def result(self):
        """The value: a float32 scalar, or an array (one value per threshold or per class)."""
        r = self._state.result()
        return np.float32(r) if r.ndim == 0 else r.astype(np.float32)

    def reset_state(self) -> None:
        self._state.reset_state()

    def __getstate__(self):
        # The engine's state does not pickle; a copy starts from zero sums.
        d = dict(self.__dict__)
        d.pop("_state", None)
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._state = _core.MetricState(self._kind, self._config())


def _thresholds(value):
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return [float(v) for v in np.asarray(value, dtype=np.float64).ravel()]
    return float(value)


class _ConfusionCount(_EngineMetric):
    def __init__(self, thresholds=None, name: Optional[str] = None, dtype=None):
        self.init_thresholds = thresholds
        super().__init__(name=name, dtype=dtype)

    @property
    def thresholds(self) -> List[float]:
        t = _thresholds(self.init_thresholds)
        return [0.5] if t is None else (t if isinstance(t, list) else [t])

    def _config(self):
        return {"thresholds": _thresholds(self.init_thresholds)}

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionCount):
    """The (weighted) number of true positives: `y_pred > threshold` where `y_true` is not 0.
    One value per threshold (default 0.5)."""

    _kind = "true_positives"


class FalsePositives(_ConfusionCount):
    """The (weighted) number of false positives, one per threshold (default 0.5)."""

    _kind = "false_positives"


class TrueNegatives(_ConfusionCount):
    """The (weighted) number of true negatives, one per threshold (default 0.5)."""

    _kind = "true_negatives"


class FalseNegatives(_ConfusionCount):
    """The (weighted) number of false negatives, one per threshold (default 0.5)."""

    _kind = "false_negatives"


class _PrecisionRecall(_EngineMetric):
    def __init__(self, thresholds=None, top_k: Optional[int] = None, class_id: Optional[int] = None,
                 name: Optional[str] = None, dtype=None):
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        self._one_axis_is_a_sample = top_k is not None
        super().__init__(name=name, dtype=dtype)

    @property
    def thresholds(self) -> List[float]:
        t = _thresholds(self.init_thresholds)
        if t is None:
            return [0.5 if self.top_k is None else -1e10]
        return t if isinstance(t, list) else [t]

    def _config(self):
        return {"thresholds": _thresholds(self.init_thresholds), "top_k": self.top_k, "class_id": self.class_id}

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """`tp / (tp + fp)` over the batches seen, at each threshold (default 0.5), among the `top_k`
    predictions of each sample, or for one class (`class_id`).

        m = metrics.Precision()
        m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        m.result()   # 0.6666667
    """

    _kind = "precision"


class Recall(_PrecisionRecall):
    """`tp / (tp + fn)` over the batches seen, at each threshold (default 0.5), among the `top_k`
    predictions of each sample, or for one class (`class_id`).

        m = metrics.Recall()
        m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        m.result()   # 0.6666667
    """

    _kind = "recall"


class AUC(_EngineMetric):
    """The area under the ROC (or precision-recall) curve, from true/false positives and negatives
    counted at `num_thresholds` thresholds over the batches seen (Keras 3's interpolation).

        m = metrics.AUC(num_thresholds=3)
        m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
        m.result()   # 0.75

    Args:
        num_thresholds: thresholds spread evenly over [0, 1] (default 200).
        curve: "ROC", "PR" or "PRGAIN".
        summation_method: "interpolation", "minoring" or "majoring".
        thresholds: explicit thresholds in place of `num_thresholds`.
        multi_label: one curve per label (the last axis), averaged.
        num_labels: the number of labels (with `multi_label`).
        label_weights: weights of the labels.
        from_logits: predictions are logits (a sigmoid is applied first).
    """

    _kind = "auc"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: Optional[str] = None, dtype=None, thresholds=None, multi_label: bool = False,
                 num_labels: Optional[int] = None, label_weights=None, from_logits: bool = False):
        self.num_thresholds = len(thresholds) + 2 if thresholds is not None else num_thresholds
        self._init_thresholds = None if thresholds is None else sorted(float(t) for t in thresholds)
        self._num_thresholds_arg = num_thresholds
        self.curve = curve
        self.summation_method = summation_method
        self.multi_label = multi_label
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else [float(w) for w in label_weights]
        self._from_logits = from_logits
        super().__init__(name=name, dtype=dtype)

    @property
    def thresholds(self) -> List[float]:
        eps = 1e-7
        if self._init_thresholds is not None:
            inner = list(self._init_thresholds)
        else:
            n = self.num_thresholds
            inner = [(i + 1) * 1.0 / (n - 1) for i in range(n - 2)]
        return [0.0 - eps] + inner + [1.0 + eps]

    def _config(self):
        return {"num_thresholds": self._num_thresholds_arg, "curve": str(self.curve),
                "summation_method": str(self.summation_method), "thresholds": self._init_thresholds,
                "multi_label": bool(self.multi_label), "num_labels": self.num_labels,
                "label_weights": self.label_weights, "from_logits": bool(self._from_logits)}

    def get_config(self):
        cfg = {"num_thresholds": self.num_thresholds, "curve": self.curve,
               "summation_method": self.summation_method, "multi_label": self.multi_label,
               "num_labels": self.num_labels, "label_weights": self.label_weights,
               "from_logits": self._from_logits}
        # Keras: the thresholds without their end points, only when they were given.
        if self._init_thresholds is not None:
            cfg["thresholds"] = self.thresholds[1:-1]
        return {**super().get_config(), **cfg}


class FBetaScore(_EngineMetric):
    """The F-beta score over the batches seen: `(1 + beta^2) * p * r / (beta^2 * p + r)`.

    Args:
        average: None (one score per class), "micro", "macro" or "weighted".
        beta: a float > 0.
        threshold: predictions above it are positive; None: each sample's largest one.
    """

    _kind = "fbeta_score"

    def __init__(self, average: Optional[str] = None, beta: float = 1.0, threshold: Optional[float] = None,
                 name: str = "fbeta_score", dtype=None):
        self.average = average
        self.beta = beta
        self.threshold = threshold
        super().__init__(name=name, dtype=dtype)

    def _config(self):
        return {"average": self.average, "beta": self.beta, "threshold": self.threshold}

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """The F1 score (the harmonic mean of precision and recall) over the batches seen.

        m = metrics.F1Score(threshold=0.5)
        m.update_state(np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]]),
                       np.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]]))
        m.result()   # array([0.5, 0.8, 0.6666667])
    """

    _kind = "f1_score"

    def __init__(self, average: Optional[str] = None, threshold: Optional[float] = None, name: str = "f1_score",
                 dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def _config(self):
        return {"average": self.average, "threshold": self.threshold}

    def get_config(self):
        cfg = super().get_config()
        del cfg["beta"]
        return cfg


class RootMeanSquaredError(_EngineMetric):
    """`sqrt(mean((y_pred - y_true) ** 2))` over the samples seen (sample-weighted)."""

    _kind = "root_mean_squared_error"

    def __init__(self, name: str = "root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)


class _Mean(_EngineMetric):
    """The (sample-weighted) mean over the samples seen of a built-in per-sample function."""

    _kind = "mean"
    _fn = ""
    _one_axis_is_a_sample = True

    def _config(self):
        return {"fn": self._fn}


def _mean_class(cls_name: str, fn: str, doc: str, sparse: bool = False):
    def __init__(self, name: str = fn, dtype=None):
        _Mean.__init__(self, name=name, dtype=dtype)

    return type(cls_name, (_Mean,), {"__init__": __init__, "_fn": fn, "_sparse": sparse, "__doc__": doc})


MeanSquaredError = _mean_class("MeanSquaredError", "mean_squared_error",
                               "`mean(square(y_true - y_pred))` over the last axis, averaged over the samples seen.")
MeanAbsoluteError = _mean_class("MeanAbsoluteError", "mean_absolute_error",
                                "`mean(abs(y_true - y_pred))` over the last axis, averaged over the samples seen.")
MeanAbsolutePercentageError = _mean_class(
    "MeanAbsolutePercentageError", "mean_absolute_percentage_error",
    "`100 * mean(abs((y_true - y_pred) / y_true))` over the last axis, averaged over the samples seen.")
MeanSquaredLogarithmicError = _mean_class(
    "MeanSquaredLogarithmicError", "mean_squared_logarithmic_error",
    "`mean(square(log(y_true + 1) - log(y_pred + 1)))` over the last axis, averaged over the samples seen.")
CategoricalAccuracy = _mean_class("CategoricalAccuracy", "categorical_accuracy",
                                  "How often the argmax of `y_pred` matches that of one-hot `y_true`.")
SparseCategoricalAccuracy = _mean_class("SparseCategoricalAccuracy", "sparse_categorical_accuracy",
                                        "How often the argmax of `y_pred` matches the integer label.",
                                        sparse=True)


class BinaryAccuracy(_Mean):
    """How often `y_pred > threshold` matches the binary `y_true`, over every value seen."""

    _kind = "binary_accuracy"
    _one_axis_is_a_sample = False

    def __init__(self, name: str = "binary_accuracy", dtype=None, threshold: float = 0.5):
        self.threshold = threshold
        super().__init__(name=name, dtype=dtype)

    def _config(self):
        return {"threshold": float(self.threshold)}

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class TopKCategoricalAccuracy(_Mean):
    """How often the class of one-hot `y_true` is among the `k` largest predictions."""

    _kind = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype=None):
        self.k = k
        super().__init__(name=name, dtype=dtype)

    def _config(self):
        return {"k": self.k}

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """How often the integer label is among the `k` largest predictions."""

    _kind = "sparse_top_k_categorical_accuracy"
    _sparse = True

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids: bool = False):
        if from_sorted_ids:
            raise NotImplementedError("SparseTopKCategoricalAccuracy: from_sorted_ids=True is not supported by "
                                      "rustkeras.")
        super().__init__(k=k, name=name, dtype=dtype)


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


# Keras' names for the classes in `metrics.get` and `compile(metrics=["..."])`.
_CLASSES = {c.__name__: c for c in (
    AUC, Precision, Recall, TruePositives, FalsePositives, TrueNegatives, FalseNegatives, RootMeanSquaredError,
    F1Score, FBetaScore, MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanMetricWrapper)}


def get(identifier):
    """A metric by name (a class's name, in either case style: "AUC", "auc", "f1_score"), a
    metric class (instantiated with its defaults), an instance or a function, as Keras'
    `metrics.get` returns it."""
    if isinstance(identifier, Metric) or (callable(identifier) and not isinstance(identifier, type)):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        for cls in _CLASSES.values():
            if identifier in (cls.__name__, _snake(cls.__name__)) and cls is not MeanMetricWrapper:
                return cls()
        fn = globals().get(identifier)
        if callable(fn) and not isinstance(fn, type):
            return fn
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


def is_engine_metric(identifier) -> bool:
    """Whether a metric object is one the engine computes (a built-in class)."""
    return isinstance(identifier, _EngineMetric)


def is_sparse(identifier) -> bool:
    """Whether a compile metric entry takes integer class labels."""
    if isinstance(identifier, str):
        return identifier.startswith("sparse_")
    return bool(getattr(identifier, "_sparse", False))


def is_custom(identifier) -> bool:
    """Whether a metric is user code to trace (a function that is not a built-in metric or
    loss name, or a metric object the engine does not compute)."""
    if isinstance(identifier, Metric):
        return not is_engine_metric(identifier)
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
            "supported in compile() by rustkeras; pass a function (y_true, y_pred) -> per-sample values, a "
            "MeanMetricWrapper, or a built-in metric class.")
    return identifier

