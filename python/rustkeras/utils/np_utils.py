"""Keras 1's `keras.utils.np_utils`: `to_categorical` (with Keras 1's `nb_classes`),
`normalize`, `probas_to_classes` and `categorical_probas_to_classes`.

Example:

    from rustkeras.utils import np_utils
    Y_train = np_utils.to_categorical(y_train, nb_classes=10)
"""

from typing import Any, Optional

import numpy as np

from rustkeras.utils.numerical_utils import normalize
from rustkeras.utils.numerical_utils import to_categorical as _to_categorical

__all__ = ["categorical_probas_to_classes", "normalize", "probas_to_classes", "to_categorical"]


def to_categorical(y: Any, nb_classes: Optional[int] = None, dtype: Any = "float32", num_classes: Optional[int] = None
                   ) -> np.ndarray:
    """One-hot rows for class labels; `nb_classes` is Keras 1's name of Keras 3's `num_classes`."""
    if nb_classes is not None and num_classes is not None and nb_classes != num_classes:
        raise ValueError(f"Pass either `nb_classes` (Keras 1) or `num_classes`, not both. Received: "
                         f"nb_classes={nb_classes}, num_classes={num_classes}")
    return _to_categorical(y, nb_classes if nb_classes is not None else num_classes, dtype)


def categorical_probas_to_classes(p: Any) -> np.ndarray:
    """The most probable class of each row of probabilities."""
    return np.argmax(np.asarray(p), axis=1)


def probas_to_classes(y_pred: Any) -> np.ndarray:
    """Classes from predictions: the argmax of each row of several probabilities, or a single
    probability rounded to 0 or 1 (as Keras 1 did)."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim > 1 and y_pred.shape[1] > 1:
        return categorical_probas_to_classes(y_pred)
    return np.array([1 if p > 0.5 else 0 for p in y_pred.reshape(-1)])
