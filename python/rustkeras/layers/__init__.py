"""Keras layers on the rustkeras engine (Keras 3 names; Keras 1 spellings accepted)."""

from rustkeras.layers.activation_layers import ELU, LeakyReLU, PReLU
from rustkeras.layers.base import Layer
from rustkeras.layers.core import Activation, Dense, Dropout, Flatten, Input, InputLayer, KerasTensor, Reshape
from rustkeras.layers.embedding import Embedding
from rustkeras.layers.recurrent import GRU, LSTM, SimpleRNN
from rustkeras.layers.wrappers import Bidirectional, Masking, RepeatVector, TimeDistributed

__all__ = [
    "Activation", "Dense", "Dropout", "ELU", "Flatten", "Input", "InputLayer", "KerasTensor", "Layer",
    "LeakyReLU", "PReLU", "Reshape",
    # recurrent family
    "Bidirectional", "Embedding", "GRU", "LSTM", "Masking", "RepeatVector", "SimpleRNN", "TimeDistributed",
]


def get(class_name: str):
    """The layer class of a name (for `from_config`)."""
    cls = globals().get(class_name)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"Unknown layer class: '{class_name}'")
    return cls
