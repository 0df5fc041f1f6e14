"""Learning-rate schedules with Keras 3's names, arguments and formulas
(`keras.optimizers.schedules`).

Pass one as an optimizer's `learning_rate`; the built-in schedules are evaluated in Rust at
every training step (from `optimizer.iterations`), so they cost no Python call. A schedule of
your own (a `LearningRateSchedule` subclass with `__call__(self, step)`), or any plain
callable, works too, at one Python call per training step: `fit` then runs batch by batch.

Example:
    >>> from rustkeras.optimizers import SGD
    >>> from rustkeras.optimizers.schedules import ExponentialDecay
    >>> schedule = ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96, staircase=True)
    >>> float(schedule(2500))  # 0.1 * 0.96 ** 2
    0.09216...
    >>> opt = SGD(learning_rate=schedule)
"""

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from rustkeras import _core
from rustkeras import saving as _saving

__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
    "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize",
]


class LearningRateSchedule:
    """Base class of learning-rate schedules: `__call__(step)` returns the rate at a step.

    Subclass it with `__call__(self, step)` (and `get_config` to make it serializable) for a
    schedule of your own; rustkeras calls it from Python once per training step.

    Example:
        >>> class InverseStep(LearningRateSchedule):
        ...     def __init__(self, initial):
        ...         self.initial = initial
        ...     def __call__(self, step):
        ...         return self.initial / (step + 1)
        ...     def get_config(self):
        ...         return {"initial": self.initial}
    """

    def __call__(self, step):
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self) -> Dict[str, Any]:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in order to be "
            "serializable."
        )

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "LearningRateSchedule":
        return cls(**config)


def _numbers(value) -> List[float]:
    return [float(v) for v in np.ravel(np.asarray(value, dtype=np.float64))]


class _RustSchedule(LearningRateSchedule):
    """A built-in schedule: its formula runs in Rust (`_spec` names it and its arguments)."""

    _kind = ""
    _args: Tuple[str, ...] = ()

    def _spec(self) -> Tuple[str, List[Tuple[str, List[float]]]]:
        params = []
        for name in self._args:
            value = getattr(self, name)
            if value is not None:
                params.append((name, _numbers(value)))
        return self._kind, params

    def _validate(self) -> None:
        _core.schedule_value(*self._spec(), 0)

    def __call__(self, step):
        step = int(np.asarray(step))
        if step < 0:
            raise ValueError(f"A learning rate schedule's step must be >= 0. Received: step={step}")
        return np.float32(_core.schedule_value(*self._spec(), step))

    def get_config(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in self._args + ("name",)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ExponentialDecay(_RustSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)`; with `staircase` the
    exponent is an integer division.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: a positive number of steps.
        decay_rate: the factor per `decay_steps` steps.
        staircase: decay at whole multiples of `decay_steps` only.
        name: the schedule's name.

    Example:
        >>> float(ExponentialDecay(1.0, decay_steps=10, decay_rate=0.5)(10))
        0.5
    """

    _kind = "exponential_decay"
    _args = ("initial_learning_rate", "decay_steps", "decay_rate", "staircase")

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        self._validate()


class InverseTimeDecay(_RustSchedule):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)`; with `staircase` the
    ratio is an integer division.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: a positive number of steps.
        decay_rate: the decay's factor.
        staircase: decay at whole multiples of `decay_steps` only.
        name: the schedule's name.

    Example:
        >>> float(InverseTimeDecay(1.0, decay_steps=1, decay_rate=0.5)(2))
        0.5
    """

    _kind = "inverse_time_decay"
    _args = ("initial_learning_rate", "decay_steps", "decay_rate", "staircase")

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        self._validate()


class PiecewiseConstantDecay(_RustSchedule):
    """`values[0]` while `step <= boundaries[0]`, `values[i]` while `boundaries[i-1] < step <=
    boundaries[i]`, and `values[-1]` after the last boundary.

    Args:
        boundaries: increasing step numbers.
        values: one more rate than there are boundaries.
        name: the schedule's name.

    Example:
        >>> s = PiecewiseConstantDecay([100, 110], [1.0, 0.5, 0.1])
        >>> [float(s(t)) for t in (100, 101, 111)]
        [1.0, 0.5, 0.1]
    """

    _kind = "piecewise_constant_decay"
    _args = ("boundaries", "values")

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of length {len(values)}."
            )
        self.boundaries = boundaries
        self.values = values
        self.name = name
        self._validate()


class PolynomialDecay(_RustSchedule):
    """`(initial - end) * (1 - step / decay_steps) ** power + end`, holding `end` after
    `decay_steps`; with `cycle`, the decay restarts over the next multiple of `decay_steps`.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: a positive number of steps.
        end_learning_rate: the final rate.
        power: the polynomial's power.
        cycle: restart the decay after `decay_steps`.
        name: the schedule's name.

    Example:
        >>> float(PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0)(5))
        0.5
    """

    _kind = "polynomial_decay"
    _args = ("initial_learning_rate", "decay_steps", "end_learning_rate", "power", "cycle")

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name
        self._validate()


class CosineDecay(_RustSchedule):
    """A linear warmup from `initial_learning_rate` to `warmup_target` over `warmup_steps`
    (when `warmup_target` is set), then a cosine decay over `decay_steps` to `alpha` times
    the rate it started from.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: a positive number of steps to decay over.
        alpha: the final rate as a fraction of the decay's starting rate.
        name: the schedule's name.
        warmup_target: the rate the warmup reaches (None: no warmup).
        warmup_steps: the warmup's length in steps.

    Example:
        >>> float(CosineDecay(1.0, decay_steps=10)(5))
        0.5
    """

    _kind = "cosine_decay"
    _args = ("initial_learning_rate", "decay_steps", "alpha", "warmup_target", "warmup_steps")

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target
        self._validate()

    def get_config(self) -> Dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(_RustSchedule):
    """Cosine decay with warm restarts (SGDR): the first period lasts `first_decay_steps`,
    each next one `t_mul` times longer and starting `m_mul` times lower.

    Args:
        initial_learning_rate: the rate at step 0.
        first_decay_steps: a positive length of the first period.
        t_mul: the factor on each period's length.
        m_mul: the factor on each period's starting rate.
        alpha: the final rate of a period as a fraction of its starting rate.
        name: the schedule's name.

    Example:
        >>> float(CosineDecayRestarts(1.0, first_decay_steps=10, m_mul=0.5)(10))
        0.5
    """

    _kind = "cosine_decay_restarts"
    _args = ("initial_learning_rate", "first_decay_steps", "t_mul", "m_mul", "alpha")

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self.t_mul = t_mul
        self.m_mul = m_mul
        self.alpha = alpha
        self.name = name
        self._validate()


_BUILTIN = {
    cls.__name__: cls
    for cls in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay, CosineDecay,
                CosineDecayRestarts)
}


def serialize(learning_rate_schedule: LearningRateSchedule) -> Dict[str, Any]:
    """A schedule as Keras 3 serializes it: `{"module", "class_name", "config",
    "registered_name"}`.

    Example:
        >>> serialize(ExponentialDecay(0.1, 100, 0.96))["class_name"]
        'ExponentialDecay'
    """
    cls = type(learning_rate_schedule)
    builtin = _BUILTIN.get(cls.__name__) is cls
    return {
        "module": "keras.optimizers.schedules" if builtin else cls.__module__,
        "class_name": cls.__name__,
        "config": learning_rate_schedule.get_config(),
        "registered_name": None if builtin else _saving.get_registered_name(cls),
    }


def deserialize(config: Dict[str, Any], custom_objects: Optional[Dict[str, Any]] = None) -> LearningRateSchedule:
    """Builds a schedule from `serialize`'s dict (a built-in one, or one named in
    `custom_objects`, a `custom_object_scope` or the registry).

    Example:
        >>> deserialize({"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 10}})
        CosineDecay(initial_learning_rate=0.1, decay_steps=10, alpha=0.0, name='CosineDecay', warmup_target=None, warmup_steps=0)
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret learning rate schedule config: {config!r}")
    name = config["class_name"]
    cls = None
    if config.get("registered_name"):
        cls = _saving.get_registered_object(config["registered_name"], custom_objects)
    if cls is None:
        cls = _saving.get_registered_object(name, custom_objects, _BUILTIN)
    if cls is None:
        raise ValueError(f"Unknown decay: '{name}'. Pass it in `custom_objects` or register it.")
    return cls.from_config(dict(config.get("config") or {}))
