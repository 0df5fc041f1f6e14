"""Utilities with the Keras 3 names: `to_categorical`, `normalize`, `set_random_seed`,
`Progbar`.

Example:

    from rustkeras.utils import to_categorical
    y = to_categorical([0, 2, 1], num_classes=3)   # shape (3, 3), float32
"""

from rustkeras._progbar import Progbar
from rustkeras.utils.numerical_utils import normalize, to_categorical
from rustkeras.utils.random_utils import set_random_seed

__all__ = ["Progbar", "normalize", "set_random_seed", "to_categorical"]
