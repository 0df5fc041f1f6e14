"""Keras 1's `keras.layers.embeddings` path: `Embedding`."""

from rustkeras.layers.embedding import Embedding

__all__ = ["Embedding"]
