"""Pooling layers: MaxPooling1D/2D/3D, AveragePooling1D/2D/3D and their global variants.

Keras 1 spellings are accepted: `pool_length` and `stride` (1-D), `border_mode`,
`dim_ordering` ('th'/'tf'). `strides=None` means the pool size, as in Keras.
"""

from typing import Any, Dict

from rustkeras import _core
from rustkeras.layers.base import Layer, invalid
from rustkeras.layers.convolutional import default_name, normalize_data_format, normalize_padding, normalize_tuple, spatial_input


class _Pooling(Layer):
    rank = 2
    kind = "max"
    _aliases = {"pool_length": "pool_size", "stride": "strides", "border_mode": "padding"}

    def __init__(self, pool_size=None, strides=None, padding="valid", data_format=None, **kwargs):
        kwargs = self._translate(kwargs)
        pool_size = kwargs.pop("pool_size", pool_size)
        strides = kwargs.pop("strides", strides)
        padding = kwargs.pop("padding", padding)
        data_format = kwargs.pop("data_format", data_format)
        dim_ordering = kwargs.pop("dim_ordering", None)
        default_name(self, kwargs)
        super().__init__(**kwargs)
        if pool_size is None:
            pool_size = 2
        self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size")
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, self.rank, "strides")
        self.padding = normalize_padding(padding, ("valid", "same"))
        if self.rank == 1 and data_format is None and dim_ordering is None:
            data_format = "channels_last"
        self.data_format = normalize_data_format(data_format, dim_ordering)

    def _graph_call(self, graph, x, in_dims):
        spatial, _ = spatial_input(self, in_dims, self.rank, self.data_format)
        if self.padding == "valid" and any(n < p for n, p in zip(spatial, self.pool_size)):
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}): pool_size {self.pool_size} is larger than the '
                f"input's spatial shape {spatial} with padding='valid'. Received input shape {(None,) + tuple(in_dims)}"
            )
        return _core.pool(graph, x, self.kind, self.rank, self.data_format, list(self.pool_size), list(self.strides),
                          self.padding)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                    "data_format": self.data_format})
        return cfg


class MaxPooling1D(_Pooling):
    """Max over windows of steps: `MaxPooling1D(pool_size=2)` (Keras 1: `pool_length`, `stride`)."""

    rank, kind = 1, "max"


class MaxPooling2D(_Pooling):
    """Max over 2-D windows: `MaxPooling2D(pool_size=(2, 2))`."""

    rank, kind = 2, "max"


class MaxPooling3D(_Pooling):
    """Max over 3-D windows."""

    rank, kind = 3, "max"


class AveragePooling1D(_Pooling):
    """Mean over windows of steps ('same' padding does not count padded positions)."""

    rank, kind = 1, "avg"


class AveragePooling2D(_Pooling):
    """Mean over 2-D windows ('same' padding does not count padded positions)."""

    rank, kind = 2, "avg"


class AveragePooling3D(_Pooling):
    """Mean over 3-D windows."""

    rank, kind = 3, "avg"


class _GlobalPooling(Layer):
    rank = 2
    kind = "max"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        dim_ordering = kwargs.pop("dim_ordering", None)
        default_name(self, kwargs)
        super().__init__(**kwargs)
        if self.rank == 1 and data_format is None and dim_ordering is None:
            data_format = "channels_last"
        self.data_format = normalize_data_format(data_format, dim_ordering)
        if not isinstance(keepdims, bool):
            raise invalid("keepdims", "a boolean", keepdims)
        self.keepdims = keepdims

    def _graph_call(self, graph, x, in_dims):
        spatial, _ = spatial_input(self, in_dims, self.rank, self.data_format)
        first = 2 if self.data_format == "channels_first" else 1
        axes = list(range(first, first + self.rank))
        mask = getattr(self, "_input_mask", None)
        if mask is not None and self.kind == "mean" and self.rank == 1:
            # Keras 3: the mean over the unmasked timesteps (NaN where all are masked, as in Keras).
            m = graph.reshape(mask, [1, spatial[0]] if first == 2 else [spatial[0], 1])
            total = graph.reduce(graph.mul(x, m), "sum", axes, self.keepdims)
            return graph.div(total, graph.reduce(m, "sum", axes, self.keepdims))
        return graph.reduce(x, self.kind, axes, self.keepdims)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return cfg


class GlobalMaxPooling1D(_GlobalPooling):
    rank, kind = 1, "max"


class GlobalMaxPooling2D(_GlobalPooling):
    rank, kind = 2, "max"


class GlobalMaxPooling3D(_GlobalPooling):
    rank, kind = 3, "max"


class GlobalAveragePooling1D(_GlobalPooling):
    rank, kind = 1, "mean"


class GlobalAveragePooling2D(_GlobalPooling):
    rank, kind = 2, "mean"


class GlobalAveragePooling3D(_GlobalPooling):
    rank, kind = 3, "mean"


MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (
    GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D)
