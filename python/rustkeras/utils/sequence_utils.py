"""`pad_sequences`: lists of sequences of different lengths as one padded array (Keras 3's
`keras.utils.pad_sequences`, Keras 1's `keras.preprocessing.sequence.pad_sequences`)."""

from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["pad_sequences"]


def pad_sequences(sequences: Sequence, maxlen: Optional[int] = None, dtype: Any = "int32", padding: str = "pre",
                  truncating: str = "pre", value: Any = 0.0) -> np.ndarray:
    """Pads (or truncates) each sequence to `maxlen` steps.

    Args:
        sequences: a list of sequences (each a list or array of steps; a step may itself be
            an array, all of one shape).
        maxlen: the length of the result; by default the longest sequence's.
        dtype: the result's dtype (`object` for strings).
        padding: "pre" or "post": where the padding goes.
        truncating: "pre" or "post": which end of a longer sequence is cut off.
        value: the padding value.

    Returns:
        An array of shape `(len(sequences), maxlen) + step_shape`.

    Example:

    >>> pad_sequences([[1], [2, 3], [4, 5, 6]])
    array([[0, 0, 1],
           [0, 2, 3],
           [4, 5, 6]], dtype=int32)
    >>> pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2, padding="post")
    array([[1, 0],
           [2, 3],
           [5, 6]], dtype=int32)
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError(f"`sequences` must be iterable. Received: {type(sequences).__name__}")
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood')
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood')
    lengths = []
    step_shape = None
    for s in sequences:
        try:
            lengths.append(len(s))
        except TypeError:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: {s!r}") from None
        if step_shape is None and len(s):
            step_shape = np.asarray(s).shape[1:]
    step_shape = step_shape or ()
    if maxlen is None:
        maxlen = max(lengths) if lengths else 0
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"Invalid value received for argument `maxlen`. Expected an integer >= 0 or None. "
                         f"Received: maxlen={maxlen!r}")
    text = np.issubdtype(np.dtype(dtype), np.str_) or np.issubdtype(np.dtype(dtype), np.bytes_)
    if isinstance(value, str) and dtype is not object and not text:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
                         "You should set `dtype=object` for variable length strings.")
    out = np.full((len(lengths), int(maxlen)) + tuple(step_shape), value, dtype=dtype)
    if maxlen == 0:
        return out
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        kept = np.asarray(s[-maxlen:] if truncating == "pre" else s[:maxlen], dtype=dtype)
        if kept.shape[1:] != tuple(step_shape):
            raise ValueError(f"Shape of sample {kept.shape[1:]} of sequence at position {i} is different from "
                             f"expected shape {tuple(step_shape)}")
        if padding == "pre":
            out[i, maxlen - len(kept):] = kept
        else:
            out[i, :len(kept)] = kept
    return out
