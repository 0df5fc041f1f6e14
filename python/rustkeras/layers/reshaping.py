"""Spatial reshaping layers: ZeroPadding1D/2D/3D, Cropping1D/2D/3D, UpSampling1D/2D/3D.

Padding and cropping take an int (the same on every side), one int per axis (symmetric), or
one `(before, after)` pair per axis, as Keras. `UpSampling1D(length=2)` is Keras 1's spelling.
"""

from typing import Any, Dict, Tuple

from rustkeras import _core
from rustkeras.layers.base import Layer, check_addressable, invalid, not_supported
from rustkeras.layers.convolutional import (
    MAX_SIZE_ARG, _is_int, default_name, normalize_data_format, normalize_tuple, spatial_input,
)


def normalize_pairs(value, rank: int, arg: str) -> Tuple[Tuple[int, int], ...]:
    """Keras' padding/cropping forms to one non-negative `(before, after)` pair per axis."""
    expected = f"an int, a tuple of {rank} ints, or a tuple of {rank} (before, after) tuples of ints"
    if _is_int(value):
        pairs = ((int(value), int(value)),) * rank
    else:
        try:
            t = tuple(value)
        except TypeError:
            raise invalid(arg, expected, value) from None
        if rank == 1 and len(t) == 2 and all(_is_int(v) for v in t):
            pairs = ((int(t[0]), int(t[1])),)
        elif len(t) == rank and all(_is_int(v) for v in t):
            pairs = tuple((int(v), int(v)) for v in t)
        elif len(t) == rank:
            try:
                pairs = tuple(tuple(normalize_tuple(p, 2, arg, allow_zero=True)) for p in t)
            except (ValueError, TypeError):
                raise invalid(arg, expected, value) from None
        else:
            raise invalid(arg, expected, value)
    if any(not 0 <= v <= MAX_SIZE_ARG for p in pairs for v in p):
        raise invalid(arg, expected + f" (non-negative, at most {MAX_SIZE_ARG})", value)
    return pairs


def join_spatial(spatial, in_dims, data_format):
    """Per-sample dims with the spatial axes `spatial` and the channels of `in_dims`."""
    if data_format == "channels_first":
        return [in_dims[0]] + list(spatial)
    return list(spatial) + [in_dims[-1]]


class _Pad(Layer):
    rank = 2
    arg = "padding"
    sign = 1

    def __init__(self, amount=None, data_format=None, **kwargs):
        amount = kwargs.pop(self.arg, amount)
        dim_ordering = kwargs.pop("dim_ordering", None)
        default_name(self, kwargs)
        super().__init__(**kwargs)
        if amount is None:
            amount = 1 if self.sign > 0 else 0
        self.pairs = normalize_pairs(amount, self.rank, self.arg)
        if self.rank == 1 and data_format is None and dim_ordering is None:
            data_format = "channels_last"
        self.data_format = normalize_data_format(data_format, dim_ordering)

    def _graph_call(self, graph, x, in_dims):
        spatial, _ = spatial_input(self, in_dims, self.rank, self.data_format)
        if self.sign < 0 and any(n - a - b <= 0 for n, (a, b) in zip(spatial, self.pairs)):
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}): cropping {self.pairs} leaves nothing of an input '
                f"of shape {(None,) + tuple(in_dims)}"
            )
        if self.sign > 0:
            out = [n + a + b for n, (a, b) in zip(spatial, self.pairs)]
            check_addressable(self, join_spatial(out, in_dims, self.data_format))
        before = [self.sign * a for a, _ in self.pairs]
        after = [self.sign * b for _, b in self.pairs]
        return _core.pad(graph, x, self.rank, self.data_format, before, after)

    def get_config(self) -> Dict[str, Any]:
        # Keras' forms: one (before, after) pair for the 1D layers; Cropping1D has no data_format.
        cfg = super().get_config()
        cfg[self.arg] = self.pairs[0] if self.rank == 1 else self.pairs
        if not (self.rank == 1 and self.sign < 0):
            cfg["data_format"] = self.data_format
        return cfg


class ZeroPadding1D(_Pad):
    """Zeros before and after the steps: `ZeroPadding1D(padding=1)` or `(1, 2)`."""

    rank = 1


class ZeroPadding2D(_Pad):
    """Zeros around rows and columns: `ZeroPadding2D(padding=(1, 1))` or `((1, 0), (2, 2))`."""

    rank = 2


class ZeroPadding3D(_Pad):
    """Zeros around the three spatial axes."""

    rank = 3


class Cropping1D(_Pad):
    """Removes steps at the start and end: `Cropping1D(cropping=(1, 1))`."""

    rank, arg, sign = 1, "cropping", -1


class Cropping2D(_Pad):
    """Removes rows and columns: `Cropping2D(cropping=((2, 2), (4, 4)))`."""

    rank, arg, sign = 2, "cropping", -1


class Cropping3D(_Pad):
    """Removes positions on the three spatial axes."""

    rank, arg, sign = 3, "cropping", -1


class _UpSampling(Layer):
    rank = 2

    def __init__(self, size=2, data_format=None, interpolation="nearest", **kwargs):
        if "length" in kwargs:
            size = kwargs.pop("length")
        dim_ordering = kwargs.pop("dim_ordering", None)
        default_name(self, kwargs)
        super().__init__(**kwargs)
        if interpolation != "nearest":
            raise not_supported(type(self).__name__, f"interpolation={interpolation!r} (only 'nearest')")
        self.size = normalize_tuple(size, self.rank, "size")
        if self.rank == 1 and data_format is None and dim_ordering is None:
            data_format = "channels_last"
        self.data_format = normalize_data_format(data_format, dim_ordering)

    def _graph_call(self, graph, x, in_dims):
        spatial, _ = spatial_input(self, in_dims, self.rank, self.data_format)
        out = [n * s for n, s in zip(spatial, self.size)]
        check_addressable(self, join_spatial(out, in_dims, self.data_format))
        return _core.upsample(graph, x, self.rank, self.data_format, list(self.size))

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg["size"] = self.size[0] if self.rank == 1 else self.size
        if self.rank > 1:  # Keras' UpSampling1D has no data_format (it is always channels-last)
            cfg["data_format"] = self.data_format
        if self.rank == 2:
            cfg["interpolation"] = "nearest"
        return cfg


class UpSampling1D(_UpSampling):
    """Repeats each step `size` times (Keras 1: `length`)."""

    rank = 1


class UpSampling2D(_UpSampling):
    """Repeats rows and columns: `UpSampling2D(size=(2, 2))`."""

    rank = 2


class UpSampling3D(_UpSampling):
    """Repeats positions along the three spatial axes."""

    rank = 3
