"""Activation layers with their own parameters: LeakyReLU, PReLU (learned slope), ELU."""

import math
import numbers

from rustkeras import initializers as _initializers
from rustkeras import regularizers as _regularizers
from rustkeras.layers.base import Layer, invalid, not_supported


def _finite(v) -> bool:
    """Whether `v` is a finite real number (not a bool, NaN or an infinity)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


class LeakyReLU(Layer):
    """`x` for x >= 0, else `negative_slope * x` (Keras 3 default 0.3; Keras 1/2: `alpha`)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        if not _finite(negative_slope) or negative_slope < 0:
            raise invalid("negative_slope", "a finite float >= 0", negative_slope)
        self.negative_slope = float(negative_slope)

    def _graph_call(self, graph, x, in_dims):
        return graph.unary(x, "leaky_relu", self.negative_slope)

    def get_config(self):
        cfg = super().get_config()
        cfg["negative_slope"] = self.negative_slope
        return cfg


class ELU(Layer):
    """`x` for x > 0, else `alpha * (exp(x) - 1)`."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if not _finite(alpha):
            raise invalid("alpha", "a finite float", alpha)
        self.alpha = float(alpha)

    def _graph_call(self, graph, x, in_dims):
        return graph.unary(x, "elu", self.alpha)

    def get_config(self):
        cfg = super().get_config()
        cfg["alpha"] = self.alpha
        return cfg


class PReLU(Layer):
    """`x` for x >= 0, else `alpha * x` with a learned `alpha` per input element
    (shared along `shared_axes`): computed as `relu(x) - alpha * relu(-x)`."""

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        if "init" in kwargs:
            alpha_initializer = kwargs.pop("init")
        super().__init__(**kwargs)
        if alpha_constraint is not None:
            raise not_supported("PReLU", "alpha_constraint")
        self.alpha_initializer = _initializers.get(alpha_initializer)
        self.alpha_regularizer = _regularizers.get(alpha_regularizer)
        if shared_axes is None:
            self.shared_axes = None
        elif isinstance(shared_axes, int):
            self.shared_axes = (shared_axes,)
        else:
            self.shared_axes = tuple(shared_axes)

    def _graph_call(self, graph, x, in_dims):
        shape = list(in_dims)
        for ax in self.shared_axes or ():
            if not 1 <= ax <= len(shape):
                raise invalid("shared_axes", f"axes between 1 and {len(shape)}", self.shared_axes)
            shape[ax - 1] = 1
        alpha = self._graph_weight(graph, "alpha", tuple(shape), self.alpha_initializer, self.alpha_regularizer)
        pos = graph.unary(x, "relu", 0.0)
        neg = graph.unary(graph.unary(x, "neg", 0.0), "relu", 0.0)
        return graph.add(pos, graph.unary(graph.mul(neg, alpha), "neg", 0.0))

    def get_config(self):
        cfg = super().get_config()
        cfg.update({
            "alpha_initializer": _initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": _regularizers.serialize(self.alpha_regularizer) if self.alpha_regularizer else None,
            "alpha_constraint": None,
            "shared_axes": self.shared_axes,
        })
        return cfg
