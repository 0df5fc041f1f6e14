"""Core layers: Dense, Activation, Dropout, Flatten, Reshape, and the model's input."""

from typing import Any, Dict

import numpy as np

from rustkeras import _seed
from rustkeras import activations as _activations
from rustkeras import initializers as _initializers
from rustkeras import regularizers as _regularizers
from rustkeras.layers.base import Layer, dtype_name, invalid, not_supported
from rustkeras.layers.node import KerasTensor, Node


class Dense(Layer):
    """`output = activation(dot(input, kernel) + bias)` over the last axis.

    Args:
        units: output size (Keras 1: `output_dim`).
        activation: an activation name or function (default linear).
        use_bias: whether to add a bias (Keras 1: `bias`).
        kernel_initializer / bias_initializer: Keras 1 `init` names the kernel's.
        kernel_regularizer / bias_regularizer: Keras 1 `W_regularizer` / `b_regularizer`.

    Example:
        model.add(Dense(32, input_dim=784, activation="relu"))
    """

    supports_masking = True
    _aliases = {
        "output_dim": "units",
        "init": "kernel_initializer",
        "W_regularizer": "kernel_regularizer",
        "b_regularizer": "bias_regularizer",
        "bias": "use_bias",
        "W_constraint": "kernel_constraint",
        "b_constraint": "bias_constraint",
    }

    def __init__(self, units=None, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        kwargs = self._translate(kwargs)
        units = kwargs.pop("units", units)
        use_bias = kwargs.pop("use_bias", use_bias)
        kernel_initializer = kwargs.pop("kernel_initializer", kernel_initializer)
        kernel_regularizer = kwargs.pop("kernel_regularizer", kernel_regularizer)
        bias_regularizer = kwargs.pop("bias_regularizer", bias_regularizer)
        for arg in ("activity_regularizer", "kernel_constraint", "bias_constraint", "lora_rank"):
            if kwargs.pop(arg, None) is not None:
                raise not_supported("Dense", arg)
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                f"Received an invalid value for `units`, expected a positive integer. Received: units={units!r}"
            )
        self.units = int(units)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)

    def _graph_call(self, graph, x, in_dims):
        if not in_dims:
            raise ValueError(f'Layer "{self.name}" (Dense) needs an input with a feature axis, received shape (None,)')
        kernel = self._graph_weight(graph, "kernel", (in_dims[-1], self.units), self.kernel_initializer,
                                 self.kernel_regularizer)
        y = graph.matmul(x, kernel)
        if self.use_bias:
            bias = self._graph_weight(graph, "bias", (self.units,), self.bias_initializer, self.bias_regularizer)
            y = graph.add(y, bias)
        return graph.activation(y, self.activation)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update({
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer) if self.kernel_regularizer else None,
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer) if self.bias_regularizer else None,
        })
        return cfg


class Activation(Layer):
    """Applies an activation by name: `Activation('relu')`."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activations.get(activation)

    def _graph_call(self, graph, x, in_dims):
        return graph.activation(x, self.activation)

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg


class Dropout(Layer):
    """Inverted dropout: in training, zeroes a fraction `rate` (Keras 1: `p`) of the inputs and
    scales the rest by 1 / (1 - rate); at inference, the identity."""

    supports_masking = True

    def __init__(self, rate=None, noise_shape=None, seed=None, **kwargs):
        if "p" in kwargs:
            rate = kwargs.pop("p")
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise invalid("rate", "a float value between 0 and 1 (1 excluded)", rate)
        if noise_shape is not None:
            raise not_supported("Dropout", "noise_shape")
        self.rate = float(rate)
        self.seed = seed
        self._key = int(seed) if seed is not None else _seed.next_seed()

    _mode_dependent = True
    _accepts_forced = True

    def _graph_call(self, graph, x, in_dims):
        forced = self.__dict__.get("_forced_training")
        if forced is False:
            return x
        if forced is True:
            raise NotImplementedError(
                f'Layer "{self.name}" (Dropout): `training=True` outside of fit (dropout at inference, e.g. Monte Carlo '
                "dropout) is not supported by rustkeras yet.")
        return graph.dropout(x, self.rate, self._key & ((1 << 63) - 1))

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"rate": self.rate, "seed": self.seed, "noise_shape": None})
        return cfg


class Flatten(Layer):
    """Flattens each sample to one axis. With channels-first data (`data_format`, or the
    config's `image_data_format` when it is None), the channels move last first, as Keras
    does, so the flattened order is the same in either format."""

    supports_masking = True

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise invalid("data_format", "'channels_last' or 'channels_first'", data_format)
        self.data_format = data_format

    def _graph_call(self, graph, x, in_dims):
        from rustkeras import config

        fmt = self.data_format or config.image_data_format()
        if fmt == "channels_first" and len(in_dims) > 1:
            x = graph.transpose(x, list(range(1, len(in_dims))) + [0])
        return graph.reshape(x, [int(np.prod(in_dims))])

    def get_config(self):
        cfg = super().get_config()
        cfg["data_format"] = self.data_format or "channels_last"
        return cfg


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        if "dims" in kwargs:
            target_shape = kwargs.pop("dims")
        super().__init__(**kwargs)
        expected = "a tuple of positive integers and at most one -1 (or None)"
        if _is_int(target_shape):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (list, tuple)) or not all(d is None or _is_int(d) for d in target_shape):
            raise invalid("target_shape", expected, target_shape)
        # None is an unknown dimension, as -1 (Keras accepts both).
        target_shape = tuple(-1 if d is None else int(d) for d in target_shape)
        if sum(d == -1 for d in target_shape) > 1 or any(d == 0 or d < -1 for d in target_shape):
            raise invalid("target_shape", expected, target_shape)
        self.target_shape = target_shape

    def _graph_call(self, graph, x, in_dims):
        total = int(np.prod(in_dims, dtype=object))
        known = int(np.prod([d for d in self.target_shape if d != -1], dtype=object))
        dims = list(self.target_shape)
        if -1 in dims:
            if known == 0 or total % known:
                raise ValueError(
                    f'Layer "{self.name}": cannot reshape input of shape {(None,) + tuple(in_dims)} '
                    f"to {self.target_shape}"
                )
            dims[dims.index(-1)] = total // known
        if int(np.prod(dims, dtype=object)) != total:
            raise ValueError(
                f'Layer "{self.name}": total size of the new shape {self.target_shape} must be unchanged: '
                f"input shape {(None,) + tuple(in_dims)} has {total} values per sample"
            )
        return graph.reshape(x, dims)

    def get_config(self):
        cfg = super().get_config()
        cfg["target_shape"] = self.target_shape
        return cfg


# The dtypes a model input may declare. The engine computes in float32: an integer input's
# values (an Embedding's indices) are truncated to integers first, as Keras' cast does.
INPUT_DTYPES = ("float32", "float16", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8",
                "uint16", "uint32", "bool")


class InputLayer(Layer):
    """The model's input: `InputLayer(input_shape=(784,))` or `InputLayer(shape=(784,))`.
    Its `output` is the KerasTensor a functional model starts from.

    Args:
        dtype: the input's dtype (default float32); `"int32"` in front of an Embedding.
    """

    def __init__(self, shape=None, batch_size=None, name=None, dtype=None, **kwargs):
        if shape is not None:
            kwargs["input_shape"] = shape
        if kwargs.get("batch_shape") is not None:
            batch_shape = tuple(kwargs.pop("batch_shape"))
            kwargs["input_shape"] = batch_shape[1:]
            batch_size = batch_shape[0] if batch_size is None else batch_size
        name_of = dtype_name(dtype) or "float32"
        if name_of not in INPUT_DTYPES:
            raise invalid("dtype", f"one of {INPUT_DTYPES}", dtype)
        super().__init__(name=name, batch_size=batch_size, **kwargs)
        self.dtype = name_of
        if self._input_shape_arg is None:
            raise ValueError("InputLayer needs `shape` (or `input_shape`). Received: shape=None")
        self.batch_size = self._batch_size_arg
        self.input_shape = self.output_shape = (None,) + self._input_shape_arg
        self.built = True
        node = Node(self, [], {})
        node.outputs = [KerasTensor((self.batch_size,) + self._input_shape_arg, (self, 0, 0), name=self.name,
                                    dtype=self.dtype)]
        self._inbound_nodes.append(node)

    def _graph_call(self, graph, x, in_dims):
        return x

    def get_config(self):
        return {"name": self.name, "batch_shape": (self.batch_size,) + self._input_shape_arg, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        batch_shape = config.pop("batch_shape", None)
        if batch_shape is not None:
            config["shape"] = tuple(batch_shape)[1:]
            config.setdefault("batch_size", tuple(batch_shape)[0])
        for key in ("sparse", "ragged", "optional"):
            if config.pop(key, False):
                raise NotImplementedError(f"InputLayer: the argument `{key}` is not supported by rustkeras.")
        return cls(**config)


def Input(shape=None, batch_size=None, name=None, dtype=None, **kwargs) -> KerasTensor:  # noqa: N802 - Keras' name
    """A model input of per-sample `shape`: the tensor a functional model starts from.

    Example:
        x = Input(shape=(784,), name="pixels")
        y = Dense(10, activation="softmax")(x)
        model = Model(x, y)
    """
    if kwargs.get("batch_shape") is not None:
        batch_shape = tuple(kwargs.pop("batch_shape"))
        shape = batch_shape[1:]
        batch_size = batch_shape[0] if batch_size is None else batch_size
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments passed to Input: {kwargs}")
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype).output
