"""k-fold cross-validation of a model-building function: `cross_validate`.

The tutorial's "Final accuracy = Average(Round 1, Round 2, ...)": the data is cut into
`n_splits` folds, each fold in turn is held out while a fresh model trains on the others, and
the held-out scores are averaged.

    result = cross_validate(build, x, y, n_splits=5, seed=0, epochs=10, batch_size=32)
    result.mean["accuracy"], result.std["accuracy"], result["accuracy"]   # mean, std, per fold

Folds run one after the other in this process, or in parallel through joblib (`n_jobs` other
than 1), on whatever joblib backend is active: loky processes on this machine by default, a
Dask or Ray cluster under `joblib.parallel_backend("dask")` / `("ray")`. Needs neither
scikit-learn nor joblib for `n_jobs=1`.
"""

import dataclasses
import gc
import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from rustkeras import _workers

Indices = Tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class CrossValidationResult:
    """The held-out scores of a cross-validation.

    Attributes:
        scores: per name of `model.evaluate(..., return_dict=True)` ("loss", then each compiled
            metric), the score of every fold, in fold order.
        mean: per name, the mean over the folds.
        std: per name, the standard deviation over the folds (numpy's `std`, ddof=0, as
            scikit-learn reports `scores.std()`).

    `result["accuracy"]` is `result.scores["accuracy"]`. A metric with one value per class or
    threshold (F1Score) has an array per fold, and its mean and std are arrays.
    """

    scores: Dict[str, List[Any]]
    mean: Dict[str, Any]
    std: Dict[str, Any]

    def __getitem__(self, name: str) -> List[Any]:
        if name not in self.scores:
            raise KeyError(f"cross_validate has no score {name!r}; it has {sorted(self.scores)}")
        return self.scores[name]

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={_short(self.mean[k])} +/- {_short(self.std[k])}" for k in self.scores)
        return f"CrossValidationResult({len(next(iter(self.scores.values()), []))} folds: {body})"


def _short(value) -> str:
    return f"{value:.4f}" if np.ndim(value) == 0 else np.array2string(np.asarray(value), precision=4)


def cross_validate(build_fn: Callable, x, y, n_splits: int = 5, shuffle: bool = True, seed: Optional[int] = None,
                   stratify: Union[None, bool, Sequence] = None, n_jobs: Optional[int] = 1,
                   **fit_kwargs) -> CrossValidationResult:
    """k-fold cross-validation: for each fold, a new model from `build_fn` trains on the other
    folds and is evaluated on this one.

    Args:
        build_fn: returns a compiled model; called as the scikit-learn wrappers call it,
            `build_fn(X=x_train, y=y_train)`, or without the arguments it does not take (e.g. `build_fn()`).
        x: the inputs: an array, or a list or dict of arrays (a model with several inputs).
        y: the targets: an array, or a list or dict of arrays.
        n_splits: the number of folds (at least 2, at most the number of samples).
        shuffle: whether to shuffle the samples before cutting the folds (as scikit-learn's
            `KFold(shuffle=True)`); without, the folds are consecutive.
        seed: seeds the shuffle, and `rustkeras.utils.set_random_seed(seed)` runs before each
            fold's model is built (so every fold starts from the same weights, wherever it runs,
            and a run repeats exactly). None: unseeded.
        stratify: True to keep the class proportions of `y` in every fold (labels, or one-hot
            rows, as scikit-learn's `StratifiedKFold`), or an array of labels to stratify by.
        n_jobs: 1 runs the folds here, one after the other; any other value (-1: all cores, None:
            joblib's default) runs them through `joblib.Parallel(n_jobs)` on the active joblib
            backend. A worker process sizes the engine's thread pool to its share of the cores
            (see `rustkeras._workers`), unless `RAYON_NUM_THREADS` is set.
        **fit_kwargs: arguments of `model.fit` (`epochs`, `batch_size`, `callbacks`, ...);
            `verbose` defaults to 0. `batch_size` also sizes the evaluation's batches.

    Returns:
        A `CrossValidationResult`: per-fold `scores`, their `mean` and `std`, by metric name.

    Raises:
        ValueError: on a bad `n_splits`, inconsistent lengths, or a stratification no fold
            allocation can give.
        TypeError: when `build_fn` is not callable or does not return a compiled model.

    Example:

        def build(X, y):
            model = Sequential([Dense(32, activation="relu", input_shape=(X.shape[1],)),
                                Dense(y.shape[1], activation="softmax")])
            model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
            return model

        result = cross_validate(build, x, to_categorical(labels), n_splits=5, seed=0, stratify=True,
                                epochs=10)
        print(result.mean["accuracy"], result.std["accuracy"])
    """
    if not callable(build_fn):
        raise TypeError(f"cross_validate: `build_fn` must be a function that returns a compiled model. "
                        f"Received: {build_fn!r}")
    if y is None:
        raise ValueError("cross_validate: `y` is required (the targets each fold's model trains and is scored on). "
                         "Received: y=None")
    valid_seed = isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and 0 <= seed < 2**32
    if seed is not None and not valid_seed:
        raise ValueError(f"cross_validate: `seed` must be None or an integer in [0, 2**32). Received: seed={seed!r}")
    for taken in ("x", "y", "validation_data"):
        if taken in fit_kwargs:
            raise TypeError(f"cross_validate: `{taken}` is not a fit argument here (each fold's data comes from x "
                            "and y)")
    x, y = _arrays(x, "x"), _arrays(y, "y")
    n = _length(x, "x")
    if _length(y, "y") != n:
        raise ValueError(f"cross_validate: x and y must have the same number of samples. Received: {n} and "
                         f"{_length(y, 'y')}")
    labels = _stratify_labels(stratify, y, n)
    folds = kfold(n, n_splits, shuffle=shuffle, seed=seed, labels=labels)
    fit_kwargs = {"verbose": 0, **fit_kwargs}
    caller = os.getpid()
    if n_jobs == 1:
        logs = [_run_fold(build_fn, x, y, train, test, seed, fit_kwargs, caller) for train, test in folds]
    else:
        try:
            import joblib
        except ImportError as e:
            raise ImportError(f"cross_validate(n_jobs={n_jobs!r}) runs the folds through joblib, which is not "
                              "installed: `pip install joblib` (or n_jobs=1)") from e
        logs = joblib.Parallel(n_jobs=n_jobs)(
            joblib.delayed(_run_fold)(build_fn, x, y, train, test, seed, fit_kwargs, caller) for train, test in folds)
    return _result(logs)


def _run_fold(build_fn, x, y, train: np.ndarray, test: np.ndarray, seed, fit_kwargs, caller: int) -> Dict[str, Any]:
    """Trains a new model on `train` and returns its evaluation on `test`; runs in this process
    or in a joblib worker, and keeps nothing of the model."""
    from rustkeras.utils.random_utils import set_random_seed
    from rustkeras.wrappers import _build

    if os.getpid() != caller:
        _workers.size_pool_in_worker()  # before this process's first fit builds the thread pool
    if seed is not None:
        set_random_seed(int(seed))
    x_train, y_train = _take(x, train), _take(y, train)
    model = _build.call_build_fn(build_fn, x_train, y_train, None, "cross_validate: `build_fn`")
    model.fit(x_train, y_train, **fit_kwargs)
    logs = model.evaluate(_take(x, test), _take(y, test), batch_size=fit_kwargs.get("batch_size"), verbose=0,
                          return_dict=True)
    # A model sits in reference cycles (its layers, optimizer and engine refer to each other): without
    # a collection here its memory would stay until Python's next full one, several folds later.
    del model
    gc.collect()
    return {k: (float(v) if np.ndim(v) == 0 else np.asarray(v)) for k, v in logs.items()}


def _result(logs: List[Dict[str, Any]]) -> CrossValidationResult:
    scores = {k: [fold[k] for fold in logs] for k in logs[0]}
    mean = {k: _reduce(np.mean, v) for k, v in scores.items()}
    std = {k: _reduce(np.std, v) for k, v in scores.items()}
    return CrossValidationResult(scores=scores, mean=mean, std=std)


def _reduce(f, values):
    r = f(np.stack([np.asarray(v, dtype=np.float64) for v in values]), axis=0)
    return float(r) if np.ndim(r) == 0 else r


# -- data ----------------------------------------------------------------------------------


def _arrays(data, name: str):
    """An array, or a list / dict of arrays (several inputs or outputs)."""
    if isinstance(data, dict):
        return {k: np.asarray(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)) and data and all(hasattr(v, "shape") for v in data):
        return [np.asarray(v) for v in data]
    if hasattr(data, "__next__") or (hasattr(data, "__getitem__") and hasattr(data, "on_epoch_end")):
        raise TypeError(f"cross_validate: `{name}` must be an array (or a list or dict of arrays) that can be cut "
                        f"into folds. Received: {type(data).__name__}")
    return np.asarray(data)


def _length(data, name: str) -> int:
    parts = list(data.values()) if isinstance(data, dict) else data if isinstance(data, list) else [data]
    lengths = {len(p) if np.ndim(p) else -1 for p in parts}
    if len(lengths) != 1 or -1 in lengths:
        raise ValueError(f"cross_validate: the arrays of `{name}` must have the same number of samples (first "
                         f"axis). Received: shapes {[np.shape(p) for p in parts]}")
    return lengths.pop()


def _take(data, index: np.ndarray):
    if isinstance(data, dict):
        return {k: v[index] for k, v in data.items()}
    if isinstance(data, list):
        return [v[index] for v in data]
    return data[index]


def _stratify_labels(stratify, y, n: int) -> Optional[np.ndarray]:
    if stratify is None or stratify is False:
        return None
    if stratify is True:
        if not isinstance(y, np.ndarray):
            raise ValueError("cross_validate: stratify=True takes the classes from `y`, which must then be one "
                             "array; pass the labels to stratify by as `stratify=`.")
        if y.ndim == 2 and y.shape[1] > 1:
            labels = y.argmax(axis=1)  # one-hot rows
        elif y.ndim in (1, 2):
            labels = y.reshape(n)
        else:
            raise ValueError(f"cross_validate: stratify=True needs labels or one-hot rows in `y`. Received: y of shape "
                             f"{y.shape}")
    else:
        labels = np.asarray(stratify)
        if labels.ndim != 1 or len(labels) != n:
            raise ValueError(f"cross_validate: `stratify` must be True or one label per sample (shape ({n},)). "
                             f"Received: shape {labels.shape}")
    return labels


# -- folds ---------------------------------------------------------------------------------


def kfold(n: int, n_splits: int, shuffle: bool = True, seed: Optional[int] = None,
          labels: Optional[np.ndarray] = None) -> List[Indices]:
    """The (train, test) indices of each fold, as scikit-learn's `KFold` (or `StratifiedKFold`
    with `labels`) cuts them with `random_state=seed`.

    KFold: the samples (shuffled with `seed`, or in order) are cut into `n_splits` consecutive
    runs, the first `n % n_splits` one sample longer. Stratified: the samples of each class are
    dealt to the folds so that every fold holds each class in proportion (fold counts of a class
    differ by at most one), in data order within a class, the folds of a class shuffled with
    `seed`.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError("cross_validate: `n_splits` must be an integer of at least 2. "
                         f"Received: n_splits={n_splits!r}")
    if n_splits > n:
        raise ValueError(f"cross_validate: cannot have n_splits={n_splits} greater than the number of samples: "
                         f"n_samples={n}")
    rng = np.random.RandomState(seed) if shuffle else None
    if labels is None:
        order = np.arange(n)
        if rng is not None:
            rng.shuffle(order)
        sizes = np.full(n_splits, n // n_splits)
        sizes[:n % n_splits] += 1
        test_fold = np.empty(n, dtype=np.int64)
        test_fold[order] = np.repeat(np.arange(n_splits), sizes)
    else:
        test_fold = _stratified_folds(labels, n_splits, rng)
    everything = np.arange(n)
    return [(everything[test_fold != k], everything[test_fold == k]) for k in range(n_splits)]


def _stratified_folds(labels: np.ndarray, n_splits: int, rng) -> np.ndarray:
    """The test fold of each sample: each class's count per fold is what dealing the samples,
    sorted by class, round-robin to the folds gives."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    # Classes numbered in order of first appearance.
    code = np.argsort(np.argsort(first))[inverse.reshape(-1)]
    counts = np.bincount(code)
    if np.all(counts < n_splits):
        raise ValueError(f"cross_validate: n_splits={n_splits} cannot be greater than the number of members in each "
                         f"class (the largest class has {counts.max()}).")
    if counts.min() < n_splits:
        warnings.warn(f"cross_validate: the least populated class has only {counts.min()} members, which is less "
                      f"than n_splits={n_splits}.", UserWarning, stacklevel=4)
    dealt = np.sort(code)
    per_fold = np.stack([np.bincount(dealt[k::n_splits], minlength=len(counts)) for k in range(n_splits)])
    test_fold = np.empty(len(code), dtype=np.int64)
    for c in range(len(counts)):
        folds = np.repeat(np.arange(n_splits), per_fold[:, c])
        if rng is not None:
            rng.shuffle(folds)
        test_fold[code == c] = folds
    return test_fold
