"""The scikit-learn estimators (imported by `rustkeras.wrappers` on first use; this module imports
scikit-learn).

Keras 3's constructor and calling convention: `model` is a compiled model (each fit trains a
fresh copy of it: its architecture and compile, new weights) or a function called as
`model(X=X, y=y, **model_kwargs)` that returns a compiled model; `fit_kwargs` go to
`model.fit` (the keyword arguments of the estimator's `fit` override them); `warm_start=True`
trains the fitted model further instead of a new one. A classifier's targets reach the model
one-hot encoded, one column per class of `classes_` (sorted), so a build function sizes the
last layer from `y.shape[1]`; `predict` returns the original labels. A regressor's or
transformer's 1-D targets reach the model as one column.

Where they go beyond Keras 3.15 (each a scikit-learn rule Keras' wrappers break):
- `model__<name>` parameters: `get_params(deep=True)` shows each `model_kwargs` entry as
  `model__<name>`, and `set_params(model__units=64)` sets it, so a search can tune the build
  function's arguments;
- a clone keeps `fit_kwargs`, `fit` leaves `fit_kwargs` as given;
- `predict_proba`; `decision_function` of a binary classifier is one score a sample (positive
  for `classes_[1]`), of a multiclass one the model's outputs;
- a regressor predicts float64.
An estimator pickles (the fitted model as its `.keras` bytes), so joblib ships it to workers.
"""

import os
from typing import Any, Dict

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:
    raise ImportError(
        "rustkeras.wrappers (SKLearnClassifier, SKLearnRegressor, SKLearnTransformer) needs scikit-learn 1.6 or "
        f"newer: install it with `pip install -U scikit-learn`. ({e})") from e

from rustkeras import _workers
from rustkeras.wrappers import _build

_NESTED = "model__"


class _SKLearnModel(BaseEstimator):
    """What the three estimators share: parameters, fit, the model's outputs, pickling."""

    _multi_output = True  # whether y may have several columns

    def __init__(self, model, warm_start: bool = False, model_kwargs: Dict[str, Any] = None,
                 fit_kwargs: Dict[str, Any] = None):
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        tags.target_tags.required = True
        return tags

    # -- parameters ------------------------------------------------------------------------

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """The constructor's parameters; with `deep`, also each `model_kwargs` entry as
        `model__<name>`."""
        params = super().get_params(deep=False)
        if deep:
            kwargs = self.model_kwargs if isinstance(self.model_kwargs, dict) else {}
            params.update({_NESTED + k: v for k, v in kwargs.items()})
        return params

    def set_params(self, **params):
        """Sets constructor parameters, and build-function arguments as `model__<name>` (into a
        new `model_kwargs` dict; the one given to the constructor is not changed)."""
        nested = {k[len(_NESTED):]: v for k, v in params.items() if k.startswith(_NESTED)}
        super().set_params(**{k: v for k, v in params.items() if not k.startswith(_NESTED)})
        if nested:
            self._check_build_arguments(sorted(nested))
            kwargs = self.model_kwargs if isinstance(self.model_kwargs, dict) else {}
            self.model_kwargs = {**kwargs, **nested}
        return self

    def _check_build_arguments(self, names) -> None:
        who = f"Invalid parameter(s) {[_NESTED + n for n in names]} for estimator {type(self).__name__}"
        if _build.is_model(self.model) or not callable(self.model):
            raise ValueError(f"{who}: `model` is {type(self.model).__name__}, not a build function, so it takes no "
                             "arguments; pass a function that builds the model to set its arguments.")
        accepted = _build.accepted_arguments(self.model)
        unknown = [n for n in names if accepted is not None and n not in accepted]
        if unknown:
            raise ValueError(f"{who}: the build function {getattr(self.model, '__name__', self.model)!r} takes no "
                             f"argument(s) {unknown}. It takes: {sorted(accepted - {'X', 'y'})}")

    # -- fit and outputs -------------------------------------------------------------------

    def fit(self, X, y=None, **kwargs):
        """Trains a model on `X` and `y` (a fresh one, unless `warm_start` and fitted).

        Args:
            X: array-like of shape (n_samples, n_features).
            y: array-like of shape (n_samples,) or (n_samples, n_outputs) (a classifier's: labels);
                required.
            **kwargs: arguments of `model.fit`, over those of `fit_kwargs`.

        Returns:
            self, with `model_` (the trained model), `history_` (`History.history` of this
            fit) and `epoch_` (epochs the model has trained, over warm-started fits).
        """
        X, y = validate_data(self, X, y, multi_output=self._multi_output)
        target = self._fit_target(y)
        if self.warm_start and hasattr(self, "model_"):
            model, epochs = self.model_, self.epoch_
        else:
            model, epochs = self._new_model(X, target), 0
        history = model.fit(X, target, **{**(self.fit_kwargs or {}), **kwargs})
        self.model_ = model
        self.history_ = dict(history.history)
        self.epoch_ = epochs + len(history.epoch)
        return self

    def _new_model(self, X, target):
        who = f"{type(self).__name__}: `model`"
        if _build.is_model(self.model):
            if self.model_kwargs:
                raise ValueError(f"{who} is a model instance, so `model_kwargs` have nothing to go to; pass a build "
                                 f"function to use them. Received: model_kwargs={self.model_kwargs!r}")
            return _build.fresh_copy(self.model, who)
        if not callable(self.model):
            raise TypeError(f"{who} must be a compiled rustkeras model or a function that builds one. "
                            f"Received: {self.model!r}")
        return _build.call_build_fn(self.model, X, target, self.model_kwargs, who)

    def _fit_target(self, y: np.ndarray) -> np.ndarray:
        """The targets the model trains on (a regressor's and transformer's: 2-D)."""
        type_of_target(y, input_name="y", raise_unknown=True)  # "Unknown label type" for strings
        self._target_ndim = y.ndim
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _outputs(self, X) -> np.ndarray:
        """The fitted model's outputs for `X` (quiet when `fit_kwargs` say `verbose=0`)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.model_.predict(X, verbose=(self.fit_kwargs or {}).get("verbose", "auto"))

    # -- pickling --------------------------------------------------------------------------

    def __getstate__(self):
        state = dict(super().__getstate__())  # (sklearn may hand back __dict__ itself)
        state["_pickled_by"] = os.getpid()
        return state

    def __setstate__(self, state):
        state = dict(state)
        # Arriving in another process than the one that pickled it: a worker of joblib, Dask or
        # Ray, about to fit. Size the engine's threads to the worker's share before that fit.
        if state.pop("_pickled_by", os.getpid()) != os.getpid():
            _workers.size_pool_in_worker()
        super().__setstate__(state)


class SKLearnClassifier(ClassifierMixin, _SKLearnModel):
    """A scikit-learn classifier around a rustkeras model (Keras 3's `keras.wrappers.SKLearnClassifier`).

    Args:
        model: a compiled rustkeras model (each fit trains a fresh copy: same architecture and
            compile, new weights), or a function returning one, called as
            `model(X=X, y=y, **model_kwargs)` with `y` one-hot (one column per class); a function
            that does not take `X` or `y` is called without them.
        warm_start: whether a fit trains the previously fitted model further.
        model_kwargs: keyword arguments for the build function; searchable as `model__<name>`.
        fit_kwargs: keyword arguments for `model.fit` (`epochs`, `batch_size`, `verbose`, ...).

    Attributes:
        classes_: the class labels, sorted; the model's output column i is `classes_[i]`.
        model_: the fitted rustkeras model.
        history_: `History.history` of the last fit.

    Example:

        def build(X, y, units=32):
            model = Sequential([Dense(units, activation="relu", input_shape=(X.shape[1],)),
                                Dense(y.shape[1], activation="softmax")])
            model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
            return model

        clf = SKLearnClassifier(build, model_kwargs={"units": 64}, fit_kwargs={"epochs": 10, "verbose": 0})
        clf.fit(x, y).predict(x[:5])           # labels, as y holds them
    """

    _multi_output = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags

    def _fit_target(self, y: np.ndarray) -> np.ndarray:
        check_classification_targets(y)  # "Unknown label type" for continuous targets
        kind = type_of_target(y, input_name="y")
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"{type(self).__name__} supports binary and multiclass targets only. "
                             f"Received: a target of type {kind!r}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__}: a classifier can't train when only one class is present; "
                             f"y holds only {self.classes_[0]!r}")
        return np.eye(len(self.classes_), dtype=np.float32)[codes.reshape(-1)]

    def _class_outputs(self, X) -> np.ndarray:
        out = self._outputs(X)
        if out.ndim != 2 or out.shape[1] != len(self.classes_):
            raise ValueError(
                f"{type(self).__name__}: the model's output has shape {out.shape}, but there are "
                f"{len(self.classes_)} classes; its last layer must have one unit per class (e.g. "
                "`Dense(y.shape[1], activation='softmax')`: the model's targets are one-hot)")
        return out

    def predict(self, X) -> np.ndarray:
        """The class of each sample: `classes_[argmax]` of the model's outputs."""
        out = self._class_outputs(X)
        return self.classes_[np.argmax(out, axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """The model's outputs, one column per class of `classes_` (probabilities when the model
        ends in a softmax)."""
        return self._class_outputs(X)

    def decision_function(self, X) -> np.ndarray:
        """Scores: with two classes, one a sample (output for `classes_[1]` minus that for
        `classes_[0]`, positive where `predict` says `classes_[1]`); else the model's outputs."""
        out = self._class_outputs(X)
        return out[:, 1] - out[:, 0] if len(self.classes_) == 2 else out


class SKLearnRegressor(RegressorMixin, _SKLearnModel):
    """A scikit-learn regressor around a rustkeras model (Keras 3's `keras.wrappers.SKLearnRegressor`).

    Args and attributes as `SKLearnClassifier`'s, without `classes_`; a 1-D `y` reaches the
    model as one column, and `predict` returns the shape `y` had, in float64.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X) -> np.ndarray:
        """The model's predictions, shaped as the `y` of fit (float64, as scikit-learn's regressors)."""
        out = self._outputs(X).astype(np.float64)
        return out.reshape(-1) if self._target_ndim == 1 and out.ndim == 2 and out.shape[1] == 1 else out


class SKLearnTransformer(TransformerMixin, _SKLearnModel):
    """A scikit-learn transformer around a rustkeras model (Keras 3's
    `keras.wrappers.SKLearnTransformer`): `fit` trains the model on `X` and `y`, `transform`
    returns the model's outputs (an embedding, an encoding). Args and attributes as
    `SKLearnClassifier`'s, without `classes_`.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.target_tags.multi_output = True
        return tags

    def transform(self, X) -> np.ndarray:
        """The model's outputs for `X` (float32)."""
        return self._outputs(X)
