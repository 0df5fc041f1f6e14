"""Weight regularizers: L1, L2, L1L2 (Keras 3 defaults: l1=0.01, l2=0.01), added to the loss."""

from typing import Any, Dict


class Regularizer:
    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        for name, v in (("l1", l1), ("l2", l2)):
            if not isinstance(v, (int, float)) or v < 0:
                raise ValueError(
                    f"Invalid value received for argument `{name}`. Expected a float >= 0. Received: {name}={v!r}"
                )
        self.l1 = float(l1)
        self.l2 = float(l2)

    def get_config(self) -> Dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}

    @classmethod
    def from_config(cls, config):
        return L1L2(**config)

    def __call__(self, x):
        import numpy as np

        x = np.asarray(x, dtype=np.float64)
        return self.l1 * np.abs(x).sum() + self.l2 * np.square(x).sum()


class L1L2(Regularizer):
    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        super().__init__(l1, l2)


class L1(Regularizer):
    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


def l1(l1: float = 0.01) -> L1:  # noqa: E743 - Keras' spelling
    return L1(l1)


def l2(l2: float = 0.01) -> L2:
    return L2(l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    return L1L2(l1, l2)


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": lambda: L1L2(0.01, 0.01), "l1l2": lambda: L1L2(0.01, 0.01)}
_BY_CLASS = {"L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_CLASS:
        return _BY_CLASS[identifier["class_name"]](**identifier.get("config", {}))
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")


def serialize(reg: Regularizer) -> Dict[str, Any]:
    return {"module": "keras.regularizers", "class_name": type(reg).__name__, "config": reg.get_config()}
