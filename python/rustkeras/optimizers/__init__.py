"""Keras 3 optimizers whose update steps run in Rust.

The classes take Keras 3's constructor arguments and defaults, plus the Keras 1 spellings
``lr=`` (the learning rate) and ``decay=`` (``lr / (1 + decay * iterations)``), which
classic tutorials use. A model compiles an optimizer through ``_spec()``; users can also
step numpy arrays directly with ``apply_gradients``.

``learning_rate`` may also be a schedule from :mod:`rustkeras.optimizers.schedules`
(evaluated in Rust at every step), a ``LearningRateSchedule`` of your own, or a plain
callable (Keras 3 calls it with no argument; one that takes an argument receives the step).
The last two cost one Python call per training step.

Example:
    >>> import numpy as np
    >>> from rustkeras.optimizers import SGD
    >>> w = np.ones(3, dtype="float32")
    >>> opt = SGD(learning_rate=0.1)
    >>> opt.apply_gradients([(np.full(3, 0.5, dtype="float32"), w)])
    1
    >>> w
    array([0.95, 0.95, 0.95], dtype=float32)
"""

from __future__ import annotations

import collections
import inspect
import numbers
import re
from typing import Any, Iterable, Optional

import numpy as np

from rustkeras import _core
from rustkeras import saving as _saving
from rustkeras.optimizers import schedules
from rustkeras.optimizers.schedules import LearningRateSchedule

__all__ = [
    "Optimizer",
    "SGD",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adam",
    "Adamax",
    "Nadam",
    "AdamW",
    "get",
    "serialize",
    "deserialize",
    "schedules",
]

_name_uids: collections.defaultdict = collections.defaultdict(int)


def _auto_name(class_name: str) -> str:
    """Keras' ``auto_name``: snake case, then ``_1``, ``_2``... for later instances."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    unique = f"{name}_{_name_uids[name]}" if name in _name_uids else name
    _name_uids[name] += 1
    return unique


def _invalid(name: str, value: Any, expected: str) -> ValueError:
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise _invalid(name, value, "a float")
    return float(value)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, numbers.Integral) and value in (0, 1)
    ):
        return bool(value)
    raise _invalid(name, value, "a boolean")


def _as_optional_float(name: str, value: Any) -> Optional[float]:
    return None if value is None else _as_float(name, value)


def _as_optional_int(name: str, value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise _invalid(name, value, "an integer")
    return int(value)


class Optimizer:
    """Base class of the optimizers: the arguments every Keras 3 optimizer shares.

    Args:
        learning_rate: Float >= 0, the step size.
        weight_decay: Float or None. If set, ``w -= w * weight_decay * lr`` before each step.
        clipnorm: Float or None. Clip each gradient to this L2 norm.
        clipvalue: Float or None. Clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: Float or None. Clip all gradients together to this global norm.
        use_ema: Keep an exponential moving average of the weights.
        ema_momentum: Float in [0, 1], the average's momentum.
        ema_overwrite_frequency: Int or None. Every so many steps, overwrite the weights with
            their average.
        loss_scale_factor: Float or None. Gradients are divided by it before the step.
        gradient_accumulation_steps: Int >= 2 or None. Average gradients over this many
            calls and update on the last one.
        name: String; defaults to the snake-cased class name.
        lr: Keras 1 alias of ``learning_rate`` (wins when both are given, as in Keras 2).
        decay: Keras 1 time decay: the step's rate is ``lr / (1 + decay * iterations)``.
    """

    _kind = ""
    _hyper: tuple = ()

    def __init__(
        self,
        learning_rate: float,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        if not self._kind:
            raise NotImplementedError(
                "rustkeras runs the built-in optimizers only (SGD, RMSprop, Adagrad, "
                "Adadelta, Adam, Adamax, Nadam, AdamW); custom subclasses of `Optimizer` "
                "are not supported."
            )
        if "lr" in kwargs:
            learning_rate = kwargs.pop("lr")
        decay = kwargs.pop("decay", None)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if isinstance(learning_rate, dict):
            learning_rate = _deserialize_learning_rate(learning_rate)
        self._schedule = None
        if isinstance(learning_rate, LearningRateSchedule) or callable(learning_rate):
            if decay:
                raise ValueError(
                    "The Keras 1 argument `decay` cannot be combined with a learning rate schedule. "
                    f"Received: decay={decay!r}, learning_rate={learning_rate!r}"
                )
            self._schedule = learning_rate
            learning_rate = 0.0
        self.name = name if name is not None else _auto_name(type(self).__name__)
        self.weight_decay = _as_optional_float("weight_decay", weight_decay)
        self.clipnorm = _as_optional_float("clipnorm", clipnorm)
        self.clipvalue = _as_optional_float("clipvalue", clipvalue)
        self.global_clipnorm = _as_optional_float("global_clipnorm", global_clipnorm)
        self.use_ema = _as_bool("use_ema", use_ema)
        self.ema_momentum = _as_float("ema_momentum", ema_momentum)
        self.ema_overwrite_frequency = _as_optional_int(
            "ema_overwrite_frequency", ema_overwrite_frequency
        )
        self.loss_scale_factor = _as_optional_float("loss_scale_factor", loss_scale_factor)
        self.gradient_accumulation_steps = _as_optional_int(
            "gradient_accumulation_steps", gradient_accumulation_steps
        )
        self.decay = 0.0 if decay is None else _as_float("decay", decay)
        self._initial_learning_rate = _as_float("learning_rate", learning_rate)
        # Building the Rust optimizer validates every value once, with Keras' messages.
        self._core = _core.Optimizer(*self._spec())
        self._install_schedule()

    def _spec(self) -> tuple:
        """``(kind, [(Keras argument name, float), ...])`` for the Rust engine."""
        lr = self._core.learning_rate if hasattr(self, "_core") else self._initial_learning_rate
        params = [("learning_rate", float(lr))]
        for name in self._hyper:
            params.append((name, float(getattr(self, name))))
        optional = {
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }
        params += [(k, float(v)) for k, v in optional.items() if v is not None]
        params.append(("use_ema", float(self.use_ema)))
        params.append(("ema_momentum", self.ema_momentum))
        if self.decay:
            params.append(("decay", self.decay))
        return self._kind, params

    def _rust_schedule(self) -> Optional[tuple]:
        """``(kind, params)`` of a built-in schedule, which Rust evaluates at every step."""
        spec = getattr(self._schedule, "_spec", None)
        return spec() if spec is not None else None

    def _python_schedule(self):
        """The schedule or callable Python must evaluate before every step, or None."""
        if self._schedule is None or self._rust_schedule() is not None:
            return None
        return self._schedule

    def _install_schedule(self) -> None:
        """Hands a built-in schedule (or none) to the Rust optimizers (own and model's)."""
        spec = self._rust_schedule()
        kind, params = spec if spec is not None else (None, [])
        self._core.set_schedule(kind, params)
        model = getattr(self, "_model_core", None)
        if model is not None:
            model.set_learning_rate_schedule(kind, params)

    def _raw_iterations(self) -> int:
        model = getattr(self, "_model_core", None)
        return int(model.raw_iterations() if model is not None else self._core.raw_iterations)

    def _scheduled_value(self) -> float:
        """The Python schedule's (or callable's) rate for the next step."""
        fn = self._schedule
        if isinstance(fn, LearningRateSchedule):
            value = fn(self._raw_iterations())
        elif _takes_step(fn):
            value = fn(self._raw_iterations())
        else:
            value = fn()
        value = float(np.asarray(value))
        if not value >= 0 or value == float("inf"):
            raise _invalid("learning_rate", value, "a float >= 0 from the learning rate schedule")
        return value

    def _apply_python_schedule(self) -> None:
        """Before a step: sets the rate of a Python schedule or callable (one Python call)."""
        value = self._scheduled_value()
        self._core.learning_rate = value
        model = getattr(self, "_model_core", None)
        if model is not None:
            model.set_learning_rate(value)

    @property
    def learning_rate(self) -> float:
        """The learning rate (float32, as Keras stores it); settable. Once compiled into a
        model, this reads and sets the rate the model trains with. With a schedule, the rate
        of the next step (a schedule cannot be set to a float, as in Keras)."""
        model = getattr(self, "_model_core", None)
        if self._schedule is not None:
            if self._python_schedule() is not None:
                return self._scheduled_value()
            return float(model.current_learning_rate() if model is not None else self._core.current_learning_rate)
        if model is not None:
            return float(model.learning_rate())
        return float(self._core.learning_rate)

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if isinstance(value, dict):
            value = _deserialize_learning_rate(value)
        if isinstance(value, LearningRateSchedule) or callable(value):
            self._schedule = value
            self._install_schedule()
            return
        if isinstance(self._schedule, LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                "constructor argument, hence its learning rate is not settable. If you need the learning "
                "rate to be settable, you should instantiate the optimizer with a float `learning_rate` "
                "argument."
            )
        if self._schedule is not None:
            self._schedule = None
            self._install_schedule()
        value = _as_float("learning_rate", value)
        if not value >= 0 or value == float("inf"):
            raise _invalid("learning_rate", value, "a float >= 0")
        self._core.learning_rate = value
        model = getattr(self, "_model_core", None)
        if model is not None:
            model.set_learning_rate(value)

    lr = learning_rate  # Keras 1/2 spelling

    @property
    def iterations(self) -> int:
        """Number of update steps taken (by the model, once compiled into one)."""
        model = getattr(self, "_model_core", None)
        if model is not None:
            return int(model.iterations())
        return int(self._core.iterations)

    def apply_gradients(self, grads_and_vars: Iterable) -> int:
        """Applies one step to float32 numpy arrays, in place.

        Args:
            grads_and_vars: ``(gradient, variable)`` pairs. Each variable must be a writeable,
                contiguous float32 numpy array; the variables must be the same (in number,
                order and sizes) at every call. Gradients are converted to float32.

        Returns:
            The number of steps taken so far.
        """
        pairs = list(grads_and_vars)
        if not pairs:
            return self.iterations
        grads, variables = zip(*pairs)
        self.apply(grads, variables)
        return self.iterations

    def apply(self, grads: Iterable, trainable_variables: Iterable) -> None:
        """Keras' ``apply(grads, trainable_variables)``: see :meth:`apply_gradients`."""
        grads = list(grads)
        variables = list(trainable_variables)
        if any(g is None for g in grads):
            if all(g is None for g in grads):
                raise ValueError("No gradients provided for any variable.")
            missing = [i for i, g in enumerate(grads) if g is None]
            raise ValueError(
                f"Gradients are None for variables {missing}; rustkeras needs a gradient "
                "for every variable at every step."
            )
        grads = [np.ascontiguousarray(g, dtype=np.float32) for g in grads]
        if self._python_schedule() is not None:
            self._apply_python_schedule()
        self._core.apply(grads, variables)

    def finalize_variable_values(self, var_list: Iterable) -> None:
        """With ``use_ema``, overwrites the variables with their moving averages."""
        self._core.finalize_variable_values(list(var_list))

    def get_config(self) -> dict:
        """The constructor arguments, as Keras 3 lists them.

        Returns:
            A dict that ``from_config`` turns back into an equal optimizer.
        """
        config = {
            "name": self.name,
            "learning_rate": self._learning_rate_config(),
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }
        config.update({name: getattr(self, name) for name in self._hyper})
        if self.decay:
            config["decay"] = self.decay
        return config

    def _learning_rate_config(self):
        """The learning rate as Keras 3's ``get_config`` writes it: a float, a serialized
        schedule, or a serialized function."""
        if isinstance(self._schedule, LearningRateSchedule):
            return schedules.serialize(self._schedule)
        if self._schedule is not None:
            fn = self._schedule
            return {
                "module": getattr(fn, "__module__", None),
                "class_name": "function",
                "config": getattr(fn, "__name__", repr(fn)),
                "registered_name": _saving.get_registered_name(fn),
            }
        return self.learning_rate

    @classmethod
    def from_config(cls, config: dict, custom_objects: Optional[dict] = None) -> "Optimizer":
        """Builds an optimizer from ``get_config()``'s dict (no slot state is restored); a
        serialized schedule or function is looked up as Keras does (built-in schedules,
        ``custom_objects``, ``custom_object_scope``, registered objects)."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _deserialize_learning_rate(config["learning_rate"], custom_objects)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self.learning_rate:g}>"


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum.

    ``m = momentum * m - lr * g; w += m`` (Nesterov: ``w += momentum * m - lr * g``).

    Args:
        learning_rate: Float >= 0. Defaults to 0.01.
        momentum: Float in [0, 1]. Defaults to 0.
        nesterov: Whether to use Nesterov momentum.
        **kwargs: the arguments of :class:`Optimizer`.

    Example:
        >>> opt = SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    """

    _kind = "sgd"
    _hyper = ("momentum", "nesterov")

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        self.momentum = _as_float("momentum", momentum)
        self.nesterov = _as_bool("nesterov", nesterov)
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip


class RMSprop(Optimizer):
    """RMSprop: ``v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + epsilon)``.

    Args:
        learning_rate: Float >= 0. Defaults to 0.001.
        rho: Float in [0, 1], the decay of the squared-gradient average. Defaults to 0.9.
        momentum: Float in [0, 1]. If > 0, momentum is applied to the increments.
        epsilon: Float >= 0, added inside the square root. Defaults to 1e-7.
        centered: If True, gradients are normalised by their estimated variance.
        **kwargs: the arguments of :class:`Optimizer`.

    Example:
        >>> opt = RMSprop(learning_rate=0.01, centered=True)
    """

    _kind = "rmsprop"
    _hyper = ("rho", "momentum", "epsilon", "centered")

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        self.rho = _as_float("rho", rho)
        self.momentum = _as_float("momentum", momentum)
        self.epsilon = _as_float("epsilon", epsilon)
        self.centered = _as_bool("centered", centered)
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip


class Adagrad(Optimizer):
    """Adagrad: ``acc += g^2; w -= lr g / sqrt(acc + epsilon)``, ``acc`` starting at 0.1.

    Args:
        learning_rate: Float >= 0. Defaults to 0.001.
        initial_accumulator_value: Float >= 0, the accumulators' starting value.
        epsilon: Float >= 0. Defaults to 1e-7.
        **kwargs: the arguments of :class:`Optimizer`.

    Example:
        >>> opt = Adagrad(learning_rate=0.01)
    """

    _kind = "adagrad"
    _hyper = ("initial_accumulator_value", "epsilon")

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        self.initial_accumulator_value = _as_float(
            "initial_accumulator_value", initial_accumulator_value
        )
        self.epsilon = _as_float("epsilon", epsilon)
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip


class Adadelta(Optimizer):
    """Adadelta: per-dimension steps from running averages of squared gradients and updates.

    Args:
        learning_rate: Float >= 0. Defaults to 0.001 (Keras 3; Keras 1 used 1.0).
        rho: Float in [0, 1], the averages' decay. Defaults to 0.95.
        epsilon: Float >= 0. Defaults to 1e-7.
        **kwargs: the arguments of :class:`Optimizer`.

    Example:
        >>> opt = Adadelta(learning_rate=1.0)
    """

    _kind = "adadelta"
    _hyper = ("rho", "epsilon")

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.95,
        epsilon: float = 1e-7,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        self.rho = _as_float("rho", rho)
        self.epsilon = _as_float("epsilon", epsilon)
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip


class Adam(Optimizer):
    """Adam, optionally AMSGrad.

    ``m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2);
    w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``.

    Args:
        learning_rate: Float >= 0. Defaults to 0.001.
        beta_1: Float in [0, 1]. Defaults to 0.9.
        beta_2: Float in [0, 1]. Defaults to 0.999.
        epsilon: Float >= 0, added after the square root. Defaults to 1e-7.
        amsgrad: Whether to use the maximum of past ``v`` (AMSGrad).
        **kwargs: the arguments of :class:`Optimizer`.

    Example:
        >>> opt = Adam(learning_rate=1e-3, amsgrad=True)
    """

    _kind = "adam"
    _hyper = ("beta_1", "beta_2", "epsilon", "amsgrad")

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        self.beta_1 = _as_float("beta_1", beta_1)
        self.beta_2 = _as_float("beta_2", beta_2)
        self.epsilon = _as_float("epsilon", epsilon)
        self.amsgrad = _as_bool("amsgrad", amsgrad)
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip


class AdamW(Adam):
    """Adam with decoupled weight decay (``w -= w * weight_decay * lr`` each step).

    Args:
        learning_rate: Float >= 0. Defaults to 0.001.
        weight_decay: Float >= 0. Defaults to 0.004; None is an error, as in Keras.
        beta_1, beta_2, epsilon, amsgrad: as :class:`Adam`.
        **kwargs: the arguments of :class:`Optimizer`.

    Example:
        >>> opt = AdamW(learning_rate=1e-3, weight_decay=0.01)
    """

    _kind = "adamw"

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        if weight_decay is None:
            raise ValueError(
                "Argument `weight_decay` must be a float. Received: weight_decay=None"
            )
        super().__init__(
            learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm,
            clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
            loss_scale_factor, gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip


class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm: ``u = max(beta_2 u, |g|)``.

    Args:
        learning_rate: Float >= 0. Defaults to 0.001.
        beta_1: Float in [0, 1]. Defaults to 0.9.
        beta_2: Float in [0, 1], the infinity norm's decay. Defaults to 0.999.
        epsilon: Float >= 0. Defaults to 1e-7.
        **kwargs: the arguments of :class:`Optimizer`.

    Example:
        >>> opt = Adamax(learning_rate=2e-3)
    """

    _kind = "adamax"
    _hyper = ("beta_1", "beta_2", "epsilon")

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        self.beta_1 = _as_float("beta_1", beta_1)
        self.beta_2 = _as_float("beta_2", beta_2)
        self.epsilon = _as_float("epsilon", epsilon)
        super().__init__(
            learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name, **kwargs,
        )  # fmt: skip


class Nadam(Adamax):
    """Nadam: Adam with Nesterov momentum and Keras' momentum schedule
    ``u_t = beta_1 (1 - 0.5 * 0.96^t)``.

    Args:
        learning_rate: Float >= 0. Defaults to 0.001.
        beta_1: Float in [0, 1]. Defaults to 0.9.
        beta_2: Float in [0, 1]. Defaults to 0.999.
        epsilon: Float >= 0. Defaults to 1e-7.
        **kwargs: the arguments of :class:`Optimizer`.

    Example:
        >>> opt = Nadam(learning_rate=2e-3)
    """

    _kind = "nadam"


def _takes_step(fn) -> bool:
    """Whether a learning-rate callable takes an argument (the step); Keras 3 calls one
    with none."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _deserialize_learning_rate(config: dict, custom_objects: Optional[dict] = None):
    if config.get("class_name") == "function":
        names = [config.get("registered_name"), config.get("config")]
        for name in names:
            fn = _saving.get_registered_object(name, custom_objects) if name else None
            if fn is not None:
                return fn
        raise ValueError(
            f"Could not find the learning rate function {config.get('config')!r}: pass it in "
            "`custom_objects` or register it with `register_keras_serializable`."
        )
    return schedules.deserialize(config, custom_objects)


_ALL = {
    cls.__name__.lower(): cls
    for cls in (SGD, RMSprop, Adagrad, Adadelta, Adam, Adamax, Nadam, AdamW)
}


def serialize(optimizer: Optional[Optimizer]) -> Optional[dict]:
    """The optimizer as Keras 3 serializes it: ``{"class_name": ..., "config": ...}``.

    Args:
        optimizer: An :class:`Optimizer`, or None (a model compiled without one).

    Returns:
        A JSON-compatible dict that :func:`deserialize` reads back; None for None.
    """
    if optimizer is None:
        return None
    return {
        "module": "keras.optimizers",
        "class_name": type(optimizer).__name__,
        "config": optimizer.get_config(),
        "registered_name": None,
    }


def deserialize(config: dict, custom_objects: Optional[dict] = None) -> Optimizer:
    """Builds an optimizer from :func:`serialize`'s dict (class names are case-insensitive).

    Args:
        config: ``{"class_name": name, "config": {...}}``.
        custom_objects: Optional mapping of extra class names to classes.

    Returns:
        A new optimizer.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret optimizer identifier: {config}")
    class_name = config["class_name"]
    cls = (custom_objects or {}).get(class_name)
    if cls is None:
        cls = _ALL.get(str(class_name).lower())
    if cls is None:
        raise ValueError(f"Could not interpret optimizer identifier: {class_name}")
    if isinstance(cls, type) and issubclass(cls, Optimizer):
        return cls.from_config(dict(config.get("config") or {}), custom_objects)
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier: Any) -> Optional[Optimizer]:
    """Resolves an optimizer from a name ("adam", "SGD", ...), a config dict or an instance.

    Args:
        identifier: A string, a dict from :func:`serialize`, an :class:`Optimizer`, or None.

    Returns:
        An optimizer (a new one for names and dicts; the same object for an instance), or
        None for None.

    Example:
        >>> get("rmsprop").get_config()["rho"]
        0.9
    """
    if identifier is None:
        return None
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _ALL.get(identifier.lower())
        if cls is not None:
            return cls()
    raise ValueError(
        f"Could not interpret optimizer identifier: {identifier!r}. "
        f"Expected one of: {', '.join(sorted(set(_ALL)))}, an Optimizer instance or a config dict"
    )
