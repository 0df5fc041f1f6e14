"""Global seeding: Python's `random`, numpy's global generator and the engine."""

import random
from typing import Any

import numpy as np


def set_random_seed(seed: Any) -> None:
    """Sets every random seed rustkeras and a training script depend on.

    Seeds Python's `random`, numpy's global generator and the rustkeras engine
    (weight initializers, shuffling in `fit`, dropout masks), so that a script
    run twice gives the same numbers.

    Args:
        seed: An integer in `[0, 2**32)` (the range numpy's global generator
            accepts).

    Raises:
        TypeError: If `seed` is not an integer.
        ValueError: If `seed` is negative or not below `2**32`.

    Example:

    >>> set_random_seed(1337)
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            "Invalid value received for argument `seed`. Expected an integer. "
            f"Received: seed={seed!r} of type {type(seed).__name__}"
        )
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(
            "Invalid value received for argument `seed`. Expected an integer "
            f"in [0, 2**32). Received: seed={seed}"
        )
    random.seed(seed)
    np.random.seed(seed)

    # Imported here so that `rustkeras.utils` loads without the compiled engine.
    from rustkeras import _core

    _core.set_seed(seed)
