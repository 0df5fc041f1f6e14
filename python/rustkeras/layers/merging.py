"""Merge layers: combine several tensors into one (Keras 3 names and semantics).

    a, b = Input(shape=(8,)), Input(shape=(8,))
    s = Add()([a, b])                  # or add([a, b])
    c = Concatenate(axis=-1)([a, b])   # (None, 16)

Elementwise merges (Add, Subtract, Multiply, Average, Maximum, Minimum) broadcast as Keras
does: per-sample shapes align at the end, and a 1 matches any size. Masks (from
Embedding(mask_zero=True) or Masking) combine with a logical and.
"""

from functools import reduce
from typing import List, Optional, Tuple

from rustkeras.layers.base import Layer

__all__ = [
    "Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract",
    "add", "average", "concatenate", "maximum", "minimum", "multiply", "subtract",
]


class _Merge(Layer):
    """Base class: checks the inputs, then the subclass's `_merge(graph, inputs, shapes)`
    combines their nodes into one."""

    supports_masking = True
    _min_inputs = 2

    def _graph_call(self, graph, x, in_dims):
        raise ValueError(
            f'Layer "{self.name}" ({type(self).__name__}): a merge layer should be called on a list of inputs, '
            f"received one tensor of shape {(None,) + tuple(in_dims)}."
        )

    def _check_count(self, n: int) -> None:
        if n < self._min_inputs:
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}): a merge layer should be called on a list of at least '
                f"{self._min_inputs} inputs. Received: {n} input(s)."
            )

    def build_graph_multi(self, graph, inputs: List[int], masks: List[Optional[int]], **kwargs):
        if kwargs:
            raise self._unexpected_kwarg(next(iter(kwargs)))
        self._check_count(len(inputs))
        self._begin_graph(graph)
        shapes = [(None,) + tuple(graph.dims(x)) for x in inputs]
        self.input_shape = shapes
        y = self._merge(graph, inputs, shapes)
        self._output_mask = self._merge_masks(graph, masks)
        self.output_shape = (None,) + tuple(graph.dims(y))
        self.built = True
        return y

    def _merge_masks(self, graph, masks: List[Optional[int]]) -> Optional[int]:
        present = [m for m in masks if m is not None]
        if not present:
            return None
        dims = {tuple(graph.dims(m)) for m in present}
        if len(dims) > 1:
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}): the masks of its inputs have different shapes '
                f"{sorted(dims)}"
            )
        return reduce(graph.mul, present)


class _Elementwise(_Merge):
    """Merges with a binary op, broadcasting per-sample shapes as Keras does."""

    def _aligned(self, graph, inputs: List[int], shapes: List[Tuple]) -> List[int]:
        rank = max(len(s) for s in shapes)
        out = list(shapes[0][1:])
        out = [1] * (rank - len(shapes[0])) + out
        for s in shapes[1:]:
            dims = [1] * (rank - len(s)) + list(s[1:])
            for i, (a, b) in enumerate(zip(out, dims)):
                if a != b and 1 not in (a, b):
                    raise ValueError(
                        f'Layer "{self.name}" ({type(self).__name__}): Inputs have incompatible shapes. '
                        f"Received shapes {tuple(shapes[0][1:])} and {tuple(s[1:])}"
                    )
                out[i] = max(a, b)
        # A lower-rank input gains axes of size 1 after the batch axis (Keras expands at axis 1).
        return [x if len(s) == rank else graph.reshape(x, [1] * (rank - len(s)) + list(s[1:]))
                for x, s in zip(inputs, shapes)]

    def _combine(self, graph, a: int, b: int) -> int:
        raise NotImplementedError

    def _merge(self, graph, inputs, shapes):
        return reduce(lambda a, b: self._combine(graph, a, b), self._aligned(graph, inputs, shapes))


class Add(_Elementwise):
    """The sum of its inputs: `Add()([a, b, c])`."""

    def _combine(self, graph, a, b):
        return graph.add(a, b)


class Subtract(_Elementwise):
    """`a - b` for exactly two inputs: `Subtract()([a, b])`."""

    def _check_count(self, n):
        if n != 2:
            raise ValueError(
                f'Layer "{self.name}" (Subtract): a `Subtract` layer should be called on exactly 2 inputs. '
                f"Received: {n} input(s)."
            )

    def _combine(self, graph, a, b):
        return graph.sub(a, b)


class Multiply(_Elementwise):
    """The elementwise product of its inputs."""

    def _combine(self, graph, a, b):
        return graph.mul(a, b)


class Average(_Elementwise):
    """The elementwise mean of its inputs."""

    def _merge(self, graph, inputs, shapes):
        total = reduce(graph.add, self._aligned(graph, inputs, shapes))
        return graph.unary(total, "scale", 1.0 / len(inputs))


class Maximum(_Elementwise):
    """The elementwise maximum of its inputs."""

    def _combine(self, graph, a, b):
        return graph.binary(a, b, "maximum")


class Minimum(_Elementwise):
    """The elementwise minimum of its inputs."""

    def _combine(self, graph, a, b):
        return graph.binary(a, b, "minimum")


class Concatenate(_Merge):
    """Joins its inputs along `axis` (default -1, the last); the other axes must match.

    Args:
        axis: the axis to join along, counted with the batch axis as 0 (negative from the end).
    """

    _min_inputs = 2

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"Invalid value received for argument `axis`. Expected an integer. Received: axis={axis!r}")
        self.axis = axis

    def _merge(self, graph, inputs, shapes):
        rank = len(shapes[0])
        axis = self.axis + rank if self.axis < 0 else self.axis
        mismatch = any(len(s) != rank for s in shapes) or not 0 < axis < rank or any(
            any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != axis) for s in shapes
        )
        if mismatch:
            raise ValueError(
                f'Layer "{self.name}" (Concatenate): a `Concatenate` layer requires inputs with matching shapes '
                f"except for the concatenation axis. Received: input_shape={shapes}, axis={self.axis}"
            )
        self._axis = axis
        return graph.concat(list(inputs), axis)

    def _merge_masks(self, graph, masks):
        if all(m is None for m in masks):
            return None
        rank = len(self.input_shape[0])
        if self._axis != rank - 1 or rank < 3:
            raise NotImplementedError(
                f'Layer "{self.name}" (Concatenate): concatenating masked inputs along an axis other than the '
                "feature axis of a sequence is not supported by rustkeras."
            )
        return super()._merge_masks(graph, masks)

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


def add(inputs, **kwargs):
    """`Add(**kwargs)(inputs)`."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """`Subtract(**kwargs)(inputs)`."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """`Multiply(**kwargs)(inputs)`."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """`Average(**kwargs)(inputs)`."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """`Maximum(**kwargs)(inputs)`."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """`Minimum(**kwargs)(inputs)`."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """`Concatenate(axis=axis, **kwargs)(inputs)`."""
    return Concatenate(axis=axis, **kwargs)(inputs)
