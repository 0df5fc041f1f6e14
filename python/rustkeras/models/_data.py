"""Argument checking and data preparation shared by every model: x, y and sample weights as
one array, a list (in the model's input or output order) or a dict keyed by name, turned into
one C-contiguous float32 array per model input and per output."""

from typing import Any, List, Optional, Sequence

import numpy as np

from rustkeras import losses as _losses


def numeric(name: str, data) -> np.ndarray:
    """`data` as a numpy array of numbers with a batch axis; errors name the argument."""
    if data is None:
        raise ValueError(f"`{name}` must be an array, received None")
    try:
        arr = np.asarray(data)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"`{name}` must be array-like numeric data. Received: {type(data).__name__} ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold numeric data (int, float or bool). Received an array of dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"`{name}` must have a batch axis. Received a scalar")
    return arr


def batch_size(value, default: int = 32) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(
            f"Invalid value received for argument `batch_size`. Expected an integer > 0. Received: batch_size={value!r}"
        )
    # A batch larger than the data is the whole data (as in Keras); clamped so that it crosses
    # into the engine as a machine integer.
    return min(int(value), 2**62)


def verbose(v) -> int:
    if v == "auto":
        return 1
    if v not in (0, 1, 2):
        raise ValueError(f"Invalid value received for argument `verbose`. Expected 0, 1, 2 or 'auto'. Received: verbose={v!r}")
    return int(v)


def by_name(arg: str, data, names: Sequence[str], kind: str, missing_ok: bool = False) -> List[Any]:
    """One entry per name (model input or output) from one array, a list or a dict.

    Args:
        arg: the argument's name, for errors ("x", "y", "sample_weight").
        data: the argument's value.
        names: the model's input (or output) names, in order.
        kind: "input" or "output", for errors.
        missing_ok: whether a dict may leave names out (their entries are None).
    """
    n = len(names)
    if isinstance(data, dict):
        unknown = [k for k in data if k not in names]
        if unknown:
            raise ValueError(
                f"`{arg}` has the key {unknown[0]!r}, which is not the name of one of the model's {kind}s. "
                f"Expected keys: {list(names)}"
            )
        missing = [k for k in names if k not in data]
        if missing and not missing_ok:
            raise ValueError(
                f"`{arg}` has no data for the model's {kind} {missing[0]!r}. Expected keys: {list(names)}. "
                f"Received keys: {list(data)}"
            )
        return [data.get(k) for k in names]
    if n == 1:
        if isinstance(data, (list, tuple)) and len(data) == 1 and (data[0] is None or isinstance(data[0], np.ndarray)):
            return [data[0]]
        return [data]
    if isinstance(data, (list, tuple)):
        if len(data) != n:
            raise ValueError(
                f"`{arg}`: the model has {n} {kind}s {list(names)}, but received a list of {len(data)} entries."
            )
        return list(data)
    raise ValueError(
        f"`{arg}`: the model has {n} {kind}s {list(names)}; pass a list of {n} arrays or a dict keyed by these "
        f"names. Received: a single {type(data).__name__}"
    )


def entry_name(arg: str, names: Sequence[str], i: int) -> str:
    """`x` for a model with one input, else `x['name']`."""
    return arg if len(names) == 1 else f"{arg}[{names[i]!r}]"


def check_cardinality(xs: Sequence[np.ndarray]) -> int:
    """The number of samples every x array has; a ValueError when they disagree."""
    sizes = [int(a.shape[0]) for a in xs]
    if len(set(sizes)) > 1:
        raise ValueError(
            f"Data cardinality is ambiguous: x sizes: {', '.join(str(k) for k in sizes)}. "
            "Make sure all arrays contain the same number of samples."
        )
    return sizes[0]


def prep_y(arr, name: str, n: int, label: tuple, out: tuple, loss: Optional[str]) -> np.ndarray:
    """Targets of one output: `label` dims per sample (integer classes for a sparse loss)."""
    arr = numeric(name, arr)
    if arr.shape[0] != n:
        raise ValueError(
            f"Data cardinality is ambiguous: x sizes: {n}, y sizes: {arr.shape[0]}. "
            "Make sure all arrays contain the same number of samples."
        )
    if loss is not None and _losses.is_sparse(loss):
        if tuple(arr.shape[1:]) not in (label, label + (1,)):
            raise ValueError(
                f"sparse labels must have shape {(n,) + label} (integer class indices) for output "
                f"shape {(None,) + out}. Received: {name}.shape={arr.shape}"
            )
        arr = arr.reshape((n,) + label)
        bad = (arr < 0) | (arr >= out[-1]) | (arr != np.floor(arr))
        if bad.any():
            raise ValueError(
                f"sparse labels must be integers in [0, {out[-1]}) for an output of {out[-1]} classes. "
                f"Received: {arr[bad].ravel()[0]!r}"
            )
    elif tuple(arr.shape[1:]) != label:
        if int(np.prod(arr.shape[1:])) == int(np.prod(label)):
            arr = arr.reshape((n,) + label)
        else:
            raise ValueError(
                f"`{name}` has shape {arr.shape} but the model's output has shape {(None,) + out}: "
                f"expected targets of shape {(n,) + label}"
                + (" (use to_categorical for class labels, or loss='sparse_categorical_crossentropy')"
                   if loss == "categorical_crossentropy" and arr.ndim == 1 else "")
            )
    return np.ascontiguousarray(arr, dtype=np.float32)


def prep_sample_weight(value, name: str, n: int) -> np.ndarray:
    sw = numeric(name, value).astype(np.float32)
    if sw.shape != (n,):
        if sw.size != n:
            raise ValueError(f"`{name}` must have shape ({n},). Received: {np.shape(value)}")
        sw = sw.reshape(-1)
    return np.ascontiguousarray(sw, dtype=np.float32)


def class_weights(class_weight, y: np.ndarray, n: int, loss: Optional[str]) -> np.ndarray:
    """Per-sample weights from a `{class index: weight}` dict and one output's targets."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"`class_weight` must be a dict mapping class indices to weights. Received: {type(class_weight).__name__}")
    if loss is not None and _losses.is_sparse(loss):
        cls = y.reshape(n, -1)[:, 0].astype(np.int64)
    elif y.ndim > 1 and y.shape[-1] > 1:
        cls = y.reshape(n, -1, y.shape[-1])[:, 0, :].argmax(-1)
    else:
        cls = np.round(y.reshape(n, -1)[:, 0]).astype(np.int64)
    return np.array([float(class_weight.get(int(c), 1.0)) for c in cls], dtype=np.float32)
