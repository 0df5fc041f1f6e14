"""Convolution layers: Conv1D, Conv2D, Conv3D (Keras 3) and Convolution1D/2D/3D (Keras 1).

Kernels keep Keras' layout `(k.., in, out)` in either data format, so weights move between
rustkeras and Keras unchanged. Keras 1 spellings are accepted: `Convolution2D(64, 3, 3)`
(nb_filter, nb_row, nb_col), `border_mode` (including 'full'), `subsample`,
`subsample_length`, `filter_length`, `nb_filter`, `dim_ordering` ('th'/'tf'), `init`,
`W_regularizer`, `b_regularizer`, `bias`.
"""

from typing import Any, Dict, Sequence, Tuple

import re

import numpy as np

from rustkeras import _core
from rustkeras import activations as _activations
from rustkeras import config as _config
from rustkeras import initializers as _initializers
from rustkeras import regularizers as _regularizers
from rustkeras.layers.base import Layer, check_addressable, invalid, not_supported, unique_name


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def default_name(layer: Layer, kwargs) -> None:
    """Keras' default name for a layer (`conv2d`, `max_pooling2d`: no underscore before a digit)."""
    if kwargs.get("name") is None:
        n = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)
        kwargs["name"] = unique_name(re.sub("([a-z])([A-Z])", r"\1_\2", n).lower())


# The largest kernel size, stride, dilation, pool size, upsampling factor or padding (Keras'
# backends hold them as int32); larger ones would overflow the engine's index arithmetic.
MAX_SIZE_ARG = 2**31 - 1


def normalize_tuple(value, n: int, arg: str, allow_zero: bool = False) -> Tuple[int, ...]:
    """An int or a sequence of `n` ints, as an `n`-tuple of positive (or non-negative) ints of
    at most MAX_SIZE_ARG."""
    if _is_int(value):
        value = (int(value),) * n
    try:
        t = tuple(value)
    except TypeError:
        raise invalid(arg, f"an int or a tuple of {n} ints", value) from None
    lo = 0 if allow_zero else 1
    if len(t) != n or not all(_is_int(v) and lo <= v <= MAX_SIZE_ARG for v in t):
        kind = "non-negative" if allow_zero else "positive"
        raise invalid(arg, f"an int or a tuple of {n} {kind} ints (at most {MAX_SIZE_ARG})", value)
    return tuple(int(v) for v in t)


def normalize_data_format(value, dim_ordering=None) -> str:
    """Keras 3 `data_format` or Keras 1 `dim_ordering` ('th', 'tf', 'default') to a format."""
    if dim_ordering is not None and dim_ordering != "default":
        if dim_ordering not in ("th", "tf"):
            raise invalid("dim_ordering", "'th', 'tf' or 'default'", dim_ordering)
        if value is not None:
            raise ValueError("Pass either `data_format` or the Keras 1 `dim_ordering`, not both.")
        return "channels_first" if dim_ordering == "th" else "channels_last"
    if value is None:
        return _config.image_data_format()
    if value not in ("channels_last", "channels_first"):
        raise invalid("data_format", "'channels_last' or 'channels_first'", value)
    return value


def normalize_padding(value, allowed: Sequence[str]) -> str:
    v = value.lower() if isinstance(value, str) else value
    if v not in allowed:
        raise invalid("padding", " or ".join(repr(a) for a in allowed), value)
    return v


def spatial_input(layer: Layer, in_dims, rank: int, data_format: str):
    """Checks a `rank`-D image input; returns (spatial dims, channels)."""
    if len(in_dims) != rank + 1:
        spatial = ("steps", "rows, cols", "dim1, dim2, dim3")[rank - 1]
        want = f"(batch, channels, {spatial})" if data_format == "channels_first" else f"(batch, {spatial}, channels)"
        raise ValueError(
            f'Input 0 of layer "{layer.name}" ({type(layer).__name__}) is incompatible with the layer: '
            f"expected ndim={rank + 2}, {want}, found ndim={len(in_dims) + 1}. Full shape received: {(None,) + tuple(in_dims)}"
        )
    if data_format == "channels_first":
        return tuple(in_dims[1:]), in_dims[0]
    return tuple(in_dims[:-1]), in_dims[-1]


# Keras 1 positional order after the kernel sizes, and Keras 3 order after kernel_size.
_K1_POSITIONAL = ("kernel_initializer", "activation", "weights", "padding", "strides")
_K3_POSITIONAL = ("strides", "padding", "data_format", "dilation_rate", "groups", "activation", "use_bias",
                  "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer")


class _Conv(Layer):
    rank = 2
    _aliases = {
        "nb_filter": "filters",
        "init": "kernel_initializer",
        "border_mode": "padding",
        "subsample": "strides",
        "subsample_length": "strides",
        "filter_length": "kernel_size",
        "atrous_rate": "dilation_rate",
        "W_regularizer": "kernel_regularizer",
        "b_regularizer": "bias_regularizer",
        "W_constraint": "kernel_constraint",
        "b_constraint": "bias_constraint",
        "bias": "use_bias",
    }

    def __init__(self, filters=None, kernel_size=None, *args, **kwargs):
        name = type(self).__name__
        kwargs = self._translate(kwargs)
        # Keras 1: Convolution2D(nb_filter, nb_row, nb_col, ...), Convolution3D(nb_filter, d1, d2, d3).
        for k1 in ("nb_row", "nb_col", "kernel_dim1", "kernel_dim2", "kernel_dim3"):
            if k1 in kwargs:
                raise ValueError(f"{name}: pass the kernel size positionally or as `kernel_size`, received `{k1}`")
        positional = _K3_POSITIONAL
        n_more = self.rank - 1
        if _is_int(kernel_size) and n_more and len(args) >= n_more and all(_is_int(a) for a in args[:n_more]):
            kernel_size = (kernel_size,) + tuple(args[:n_more])
            args = args[n_more:]
            positional = _K1_POSITIONAL
        if len(args) > len(positional):
            raise TypeError(f"{name} received too many positional arguments: {len(args) + 2}")
        for k, v in zip(positional, args):
            if k in kwargs:
                raise TypeError(f"{name} got multiple values for argument `{k}`")
            kwargs[k] = v
        if filters is None:
            filters = kwargs.pop("filters", None)
        if kernel_size is None:
            kernel_size = kwargs.pop("kernel_size", None)
        if self.rank == 1 and "input_length" in kwargs:
            length, dim = kwargs.pop("input_length"), kwargs.pop("input_dim", None)
            if dim is None:
                raise ValueError(f"{name}: `input_length` needs `input_dim` (the features per step)")
            kwargs["input_shape"] = (length, dim)
        elif self.rank == 1 and "input_dim" in kwargs:
            raise ValueError(f"{name}: `input_dim` needs `input_length` (or pass input_shape=(steps, features))")
        strides = kwargs.pop("strides", 1)
        padding = kwargs.pop("padding", "valid")
        data_format = kwargs.pop("data_format", None)
        dim_ordering = kwargs.pop("dim_ordering", None)
        dilation_rate = kwargs.pop("dilation_rate", 1)
        groups = kwargs.pop("groups", 1)
        activation = kwargs.pop("activation", None)
        use_bias = kwargs.pop("use_bias", True)
        kernel_initializer = kwargs.pop("kernel_initializer", "glorot_uniform")
        bias_initializer = kwargs.pop("bias_initializer", "zeros")
        kernel_regularizer = kwargs.pop("kernel_regularizer", None)
        bias_regularizer = kwargs.pop("bias_regularizer", None)
        for arg in ("activity_regularizer", "kernel_constraint", "bias_constraint", "weights", "lora_rank"):
            if kwargs.pop(arg, None) is not None:
                raise not_supported(name, arg)
        default_name(self, kwargs)
        super().__init__(**kwargs)
        if not _is_int(filters) or filters <= 0:
            raise invalid("filters", "a strictly positive integer", filters)
        if kernel_size is None:
            raise invalid("kernel_size", f"an int or a tuple of {self.rank} ints", kernel_size)
        if not _is_int(groups) or groups != 1:
            raise not_supported(name, f"groups={groups!r} (only 1)")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = normalize_tuple(strides, self.rank, "strides")
        self.dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate")
        allowed = ("valid", "same", "full") + (("causal",) if self.rank == 1 else ())
        self.padding = normalize_padding(padding, allowed)
        if self.rank == 1 and data_format is None and dim_ordering is None:
            data_format = "channels_last"
        self.data_format = normalize_data_format(data_format, dim_ordering)
        if self.padding == "causal" and self.data_format != "channels_last":
            raise not_supported(name, "padding='causal' with data_format='channels_first'")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{name}: `strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)

    def _graph_call(self, graph, x, in_dims):
        spatial, channels = spatial_input(self, in_dims, self.rank, self.data_format)
        kernel = self._graph_weight(graph, "kernel", self._kernel_shape(channels), self.kernel_initializer,
                                 self.kernel_regularizer)
        bias = None
        if self.use_bias:
            bias = self._graph_weight(graph, "bias", (self.filters,), self.bias_initializer, self.bias_regularizer)
        if self.activation == "relu" and type(self)._convolve is _Conv._convolve:
            # One op: the ReLU is applied as the convolution stores its output.
            return self._convolve(graph, x, kernel, bias, spatial, in_dims, relu=True)
        return graph.activation(self._convolve(graph, x, kernel, bias, spatial, in_dims), self.activation)

    def _kernel_shape(self, channels):
        return self.kernel_size + (channels, self.filters)

    def _convolve(self, graph, x, kernel, bias, spatial, in_dims, relu=False):
        padding = self.padding
        if padding == "causal":
            left = self.dilation_rate[0] * (self.kernel_size[0] - 1)
            x = _core.pad(graph, x, 1, "channels_last", [left], [0])
            padding = "valid"
        for n, k, d in zip(spatial, self.kernel_size, self.dilation_rate):
            if self.padding == "valid" and n < (k - 1) * d + 1:
                raise ValueError(
                    f'Layer "{self.name}" ({type(self).__name__}): the kernel size {self.kernel_size} '
                    f"(dilation_rate {self.dilation_rate}) is larger than the input's spatial shape "
                    f"{spatial} with padding='valid'. Received input shape {(None,) + tuple(in_dims)}"
                )
        # The bias is fused into the convolution (the output starts as the bias).
        return _core.conv(graph, x, kernel, self.rank, self.data_format, list(self.kernel_size),
                          list(self.strides), list(self.dilation_rate), padding, bias, relu)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": 1,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer) if self.kernel_regularizer else None,
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer) if self.bias_regularizer else None,
        })
        return cfg


class Conv1D(_Conv):
    """1-D convolution over steps: input `(batch, steps, channels)`.

    Example:
        model.add(Conv1D(64, 3, activation="relu", input_shape=(10, 32)))
        model.add(Convolution1D(64, 3, border_mode="same", input_shape=(10, 32)))  # Keras 1
    """

    rank = 1


class Conv2D(_Conv):
    """2-D convolution: input `(batch, rows, cols, channels)` or channels_first.

    Three integers are Keras 1's `(nb_filter, nb_row, nb_col)`.

    Example:
        model.add(Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
        model.add(Convolution2D(64, 3, 3, input_shape=(3, 256, 256), dim_ordering="th"))  # Keras 1
    """

    rank = 2


class Conv3D(_Conv):
    """3-D convolution: input `(batch, dim1, dim2, dim3, channels)` or channels_first."""

    rank = 3


Convolution1D = Conv1D
Convolution2D = Conv2D
Convolution3D = Conv3D


class _ConvTranspose(_Conv):
    """The transposed convolution (the gradient of a convolution with respect to its input).

    The kernel is `(k.., filters, in_channels)` as in Keras; each spatial length becomes
    `in * stride + max(k_dilated - stride, 0)` ('valid') or `in * stride` ('same').
    """

    def __init__(self, filters=None, kernel_size=None, *args, output_padding=None, **kwargs):
        super().__init__(filters, kernel_size, *args, **kwargs)
        if output_padding is not None:
            raise not_supported(type(self).__name__, "output_padding")
        if self.padding not in ("valid", "same"):
            raise invalid("padding", "'valid' or 'same'", self.padding)

    def _kernel_shape(self, channels):
        return self.kernel_size + (self.filters, channels)

    def _convolve(self, graph, x, kernel, bias, spatial, in_dims):
        out = []
        for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate):
            dk = (k - 1) * d + 1
            out.append(n * s + max(dk - s, 0) if self.padding == "valid" else n * s)
        out_dims = [self.filters] + out if self.data_format == "channels_first" else out + [self.filters]
        check_addressable(self, out_dims)
        y = _core.conv_transpose(graph, x, kernel, self.rank, self.data_format, list(self.kernel_size),
                                 list(self.strides), list(self.dilation_rate), self.padding, out_dims)
        if bias is None:
            return y
        if self.data_format == "channels_first":
            bias = graph.reshape(bias, [self.filters] + [1] * self.rank)
        return graph.add(y, bias)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.pop("groups", None)
        cfg["output_padding"] = None
        return cfg


class Conv1DTranspose(_ConvTranspose):
    """Transposed 1-D convolution: `Conv1DTranspose(16, 3, strides=2)`."""

    rank = 1


class Conv2DTranspose(_ConvTranspose):
    """Transposed 2-D convolution: `Conv2DTranspose(16, (3, 3), strides=(2, 2), padding='same')`."""

    rank = 2


class Conv3DTranspose(_ConvTranspose):
    """Transposed 3-D convolution."""

    rank = 3
