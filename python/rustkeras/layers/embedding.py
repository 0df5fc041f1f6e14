"""Embedding: integer indices to dense vectors, and the mask for padded sequences.

    model = Sequential()
    model.add(Embedding(1000, 64, input_length=10, mask_zero=True))
    model.add(LSTM(32))

Model inputs travel as float32, which holds every integer below 2**24 exactly; the indices are
checked before anything runs, and an index outside [0, input_dim) is a ValueError.
"""

from typing import Any, Dict

import numpy as np

from rustkeras import _core, _seed
from rustkeras import initializers as _initializers
from rustkeras import regularizers as _regularizers
from rustkeras.layers.base import Layer, invalid, not_supported

_MAX_EXACT = 1 << 24


class Embedding(Layer):
    """Turns indices `(batch, n)` into vectors `(batch, n, output_dim)`.

    Args:
        input_dim: vocabulary size (indices run from 0 to input_dim - 1).
        output_dim: size of each vector.
        embeddings_initializer: default `uniform` (-0.05, 0.05); Keras 1: `init`.
        embeddings_regularizer: Keras 1: `W_regularizer`.
        mask_zero: index 0 is padding; the following recurrent layers skip those timesteps.
        input_length: the number of indices per sample (sets the input shape).
        weights: a list holding an initial `(input_dim, output_dim)` table.
        dropout: Keras 1: in training, the fraction of the vocabulary dropped per batch (whole
            rows of the table are zeroed, the rest scaled by 1 / (1 - dropout)).
    """

    _aliases = {"init": "embeddings_initializer", "W_regularizer": "embeddings_regularizer",
                "W_constraint": "embeddings_constraint"}

    def __init__(self, input_dim=None, output_dim=None, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, input_length=None,
                 **kwargs):
        kwargs = self._translate(kwargs)
        embeddings_initializer = kwargs.pop("embeddings_initializer", embeddings_initializer)
        embeddings_regularizer = kwargs.pop("embeddings_regularizer", embeddings_regularizer)
        embeddings_constraint = kwargs.pop("embeddings_constraint", embeddings_constraint)
        for arg, value in (("embeddings_constraint", embeddings_constraint), ("lora_rank", lora_rank),
                           ("activity_regularizer", kwargs.pop("activity_regularizer", None))):
            if value is not None:
                raise not_supported("Embedding", arg)
        dropout = kwargs.pop("dropout", 0.0)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise invalid("dropout", "a float between 0 and 1 (1 excluded)", dropout)
        seed = kwargs.pop("seed", None)
        kwargs.pop("sparse", None)
        if input_length is not None and not any(k in kwargs for k in ("input_shape", "batch_input_shape")):
            if isinstance(input_length, bool) or not isinstance(input_length, (int, np.integer)) or input_length <= 0:
                raise ValueError(
                    f"Invalid value received for argument `input_length`. Expected a positive integer. "
                    f"Received: input_length={input_length!r}"
                )
            kwargs["input_shape"] = (int(input_length),)
        super().__init__(**kwargs)
        for arg, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(
                    f"Invalid value received for argument `{arg}`. Expected a positive integer. "
                    f"Received: {arg}={value!r}"
                )
        if input_dim > _MAX_EXACT:
            raise NotImplementedError(
                f"Embedding: `input_dim` above {_MAX_EXACT} is not supported (indices travel as float32). "
                f"Received: input_dim={input_dim}"
            )
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.input_length = input_length
        self.embeddings_initializer = _initializers.get(embeddings_initializer)
        self.embeddings_regularizer = _regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self._initial_weights = weights
        self.dropout = float(dropout)
        self.seed = seed
        self._key = (int(seed) if seed is not None else _seed.next_seed()) & ((1 << 63) - 1)

    def _graph_call(self, graph, x, in_dims):
        table = self._graph_weight(graph, "embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer,
                                self.embeddings_regularizer)
        if self.dropout > 0:
            # One draw per vocabulary row and batch: a dropped index reads zeros everywhere.
            keep = graph.dropout(graph.constant([self.input_dim, 1], 1.0), self.dropout, self._key)
            table = graph.mul(table, keep)
        return _core.gather(graph, table, x)

    def compute_mask(self, graph, x, mask):
        if not self.mask_zero:
            return None
        return _core.index_mask(graph, x, 0.0)

    def _attach(self, core) -> None:
        super()._attach(core)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def _validate_input(self, x: np.ndarray) -> None:
        """Raises ValueError unless every entry of `x` is an integer in [0, input_dim)."""
        arr = np.asarray(x)
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr) | (arr != np.floor(arr))
            if bad.any():
                raise ValueError(
                    f'Layer "{self.name}" (Embedding): input indices must be integers. '
                    f"Received: {arr[bad].ravel()[0]!r}"
                )
        bad = (arr < 0) | (arr >= self.input_dim)
        if bad.any():
            raise ValueError(
                f'Layer "{self.name}" (Embedding): input indices must be in [0, {self.input_dim}) '
                f"(input_dim={self.input_dim}). Received: {arr[bad].ravel()[0]!r}"
            )

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update({
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": _initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": (_regularizers.serialize(self.embeddings_regularizer)
                                       if self.embeddings_regularizer else None),
            "mask_zero": self.mask_zero,
        })
        if self.dropout:
            cfg["dropout"] = self.dropout
        return cfg
