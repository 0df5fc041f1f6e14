"""BatchNormalization, on the engine's fused batch-normalization ops.

In training it normalizes with the batch's mean and (biased) variance over every axis but
`axis`, and moves the moving statistics toward them after each step
(`moving = momentum * moving + (1 - momentum) * batch`); at inference it uses the moving
statistics. Weights, in Keras' order: gamma, beta, moving_mean, moving_variance (the last
two are not trainable).
"""

import math

from typing import Any, Dict

from rustkeras import initializers as _initializers
from rustkeras import regularizers as _regularizers
from rustkeras.layers.base import Layer, invalid, not_supported


class BatchNormalization(Layer):
    """Normalizes each feature (channel) to zero mean and unit variance, then scales and shifts.

    Args:
        axis: the feature axis (default -1; 1 for channels_first images).
        momentum: of the moving statistics (default 0.99).
        epsilon: added to the variance (default 1e-3).
        center / scale: whether to learn beta / gamma.

    Example:
        model.add(Conv2D(32, (3, 3), input_shape=(28, 28, 1)))
        model.add(BatchNormalization())
    """

    _aliases = {"beta_init": "beta_initializer", "gamma_init": "gamma_initializer"}

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None, **kwargs):
        kwargs = self._translate(kwargs)
        beta_initializer = kwargs.pop("beta_initializer", beta_initializer)
        gamma_initializer = kwargs.pop("gamma_initializer", gamma_initializer)
        mode = kwargs.pop("mode", 0)
        if mode != 0:
            raise not_supported("BatchNormalization", f"mode={mode!r} (Keras 1's feature-wise mode 0 only)")
        for arg in ("beta_constraint", "gamma_constraint", "synchronized", "renorm", "virtual_batch_size",
                    "adjustment", "fused"):
            if kwargs.pop(arg, None) not in (None, False):
                raise not_supported("BatchNormalization", arg)
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise invalid("axis", "an int", axis)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise invalid("momentum", "a float between 0 and 1", momentum)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 < epsilon < math.inf:
            raise invalid("epsilon", "a positive, finite float", epsilon)
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer)
        self.beta_regularizer = _regularizers.get(beta_regularizer)
        self.gamma_regularizer = _regularizers.get(gamma_regularizer)

    _mode_dependent = True
    _accepts_forced = True

    def _graph_call(self, graph, x, in_dims):
        rank = len(in_dims) + 1
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(
                f'Layer "{self.name}" (BatchNormalization): axis {self.axis} is out of range for an input of '
                f"shape {(None,) + tuple(in_dims)} (the batch axis cannot be normalized over)"
            )
        c = in_dims[axis - 1]
        gamma = beta = None
        if self.scale:
            gamma = self._graph_weight(graph, "gamma", (c,), self.gamma_initializer, self.gamma_regularizer)
        if self.center:
            beta = self._graph_weight(graph, "beta", (c,), self.beta_initializer, self.beta_regularizer)
        moving_mean = self._graph_weight(graph, "moving_mean", (c,), self.moving_mean_initializer, trainable=False)
        moving_var = self._graph_weight(graph, "moving_variance", (c,), self.moving_variance_initializer,
                                     trainable=False)
        forced = self.__dict__.get("_forced_training")
        # `training=False` in a call (a frozen BatchNormalization) always uses the moving
        # statistics and never updates them; `training=True` always uses the batch's. Each
        # branch is one fused op (the engine's `BatchNorm`); a model's programs run only the
        # branch of their mode.
        if forced is not False:
            train, mean, var = graph.batch_norm_train(x, axis, self.epsilon, gamma, beta)
        if forced is not True:
            infer = graph.batch_norm(x, moving_mean, moving_var, axis, self.epsilon, gamma, beta)
        y = infer if forced is False else train if forced is True else graph.train_select(train, infer)
        if forced is not False:
            graph.add_update(self._weights[-2].var, mean, self.momentum)
            graph.add_update(self._weights[-1].var, var, self.momentum)
        return y

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update({
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": _initializers.serialize(self.beta_initializer),
            "gamma_initializer": _initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": _initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": _initializers.serialize(self.moving_variance_initializer),
            "beta_regularizer": _regularizers.serialize(self.beta_regularizer) if self.beta_regularizer else None,
            "gamma_regularizer": _regularizers.serialize(self.gamma_regularizer) if self.gamma_regularizer else None,
        })
        return cfg
