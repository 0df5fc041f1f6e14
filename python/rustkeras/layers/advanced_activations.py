"""Keras 1's `keras.layers.advanced_activations` path: `LeakyReLU`, `PReLU`, `ELU`."""

from rustkeras.layers.activation_layers import ELU, LeakyReLU, PReLU

__all__ = ["ELU", "LeakyReLU", "PReLU"]
