"""Per-variable and per-layer seeds derived from the global seed (`utils.set_random_seed`).

Without a global seed every call draws fresh entropy, as Keras does; with one, the n-th
seed after `set_random_seed(s)` is a fixed function of (s, n), so a run is reproducible.
"""

import random as _random

from rustkeras import _core

_state = {"seed": None, "counter": 0}
_MASK = (1 << 63) - 1


def next_seed() -> int:
    state = _core.default_seed()
    if state is None:
        return _random.SystemRandom().getrandbits(63)
    s = state[0]
    if state != _state["seed"]:
        _state["seed"] = state
        _state["counter"] = 0
    _state["counter"] += 1
    x = (s * 0x9E3779B97F4A7C15 + _state["counter"] * 0xBF58476D1CE4E5B9) & _MASK
    return x ^ (x >> 29)
