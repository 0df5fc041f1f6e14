"""Array helpers on numpy arrays: one-hot encoding and L-p normalization."""

from typing import Any, Optional

import numpy as np


def to_categorical(
    y: Any, num_classes: Optional[int] = None, dtype: Any = "float32"
) -> np.ndarray:
    """Converts a class vector (integers) to a one-hot class matrix.

    The class axis is appended last. A trailing axis of size 1 (labels shaped
    `(n, 1)`, as many loaders return them) is dropped first, so `(n, 1)` and
    `(n,)` both give `(n, num_classes)`.

    Args:
        y: Array-like of integer class labels in `[0, num_classes)`.
        num_classes: Total number of classes. If `None`, it is `max(y) + 1`.
        dtype: Data type of the result. Defaults to `"float32"`.

    Returns:
        A numpy array of shape `y.shape + (num_classes,)` (after dropping a
        trailing axis of size 1) holding 1 at each label's position.

    Raises:
        ValueError: For non-integer labels, negative labels, labels that do not
            fit `num_classes`, or an invalid `num_classes`.

    Example:

    >>> to_categorical([0, 1, 2, 3], num_classes=4)
    array([[1., 0., 0., 0.],
           [0., 1., 0., 0.],
           [0., 0., 1., 0.],
           [0., 0., 0., 1.]], dtype=float32)
    """
    labels = np.asarray(y)
    if labels.size and not (
        np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)
    ):
        # Floats such as 3.0 are accepted (Keras casts them); 2.5 is not a class.
        if not np.issubdtype(labels.dtype, np.floating) or np.any(
            labels != np.floor(labels)
        ):
            raise ValueError(
                "Invalid value received for argument `y`. Expected integer class "
                f"labels. Received: y with dtype={labels.dtype}"
            )
    labels = labels.astype("int64")

    input_shape = labels.shape
    if len(input_shape) > 1 and input_shape[-1] == 1:
        input_shape = input_shape[:-1]
    flat = labels.reshape(-1)

    if flat.size and flat.min() < 0:
        raise ValueError(
            "Invalid value received for argument `y`. Expected class labels "
            f">= 0. Received: a label of {int(flat.min())}"
        )
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    else:
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1
        ):
            raise ValueError(
                "Invalid value received for argument `num_classes`. Expected a "
                f"positive integer. Received: num_classes={num_classes}"
            )
        num_classes = int(num_classes)
        if flat.size and flat.max() >= num_classes:
            raise ValueError(
                "Invalid value received for argument `num_classes`. Expected it "
                f"to exceed every label. Received: num_classes={num_classes} "
                f"with a label of {int(flat.max())}"
            )

    categorical = np.zeros((flat.shape[0], num_classes), dtype=dtype)
    categorical[np.arange(flat.shape[0]), flat] = 1
    return categorical.reshape(input_shape + (num_classes,))


def normalize(x: Any, axis: int = -1, order: int = 2) -> np.ndarray:
    """Normalizes an array to unit L-`order` norm along `axis`.

    Slices whose norm is zero are left as they are (all zeros), rather than
    divided by zero.

    Args:
        x: Array to normalize.
        axis: Axis along which to normalize. Defaults to the last.
        order: Norm order, as `numpy.linalg.norm` takes it for vectors
            (`2` for L2, `1` for L1, `np.inf` for the max norm).

    Returns:
        A normalized copy of `x`, of the same shape.

    Example:

    >>> normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    x = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(x, ord=order, axis=axis, keepdims=True))
    norm[norm == 0] = 1
    return x / norm
