"""Keras layers on the rustkeras engine (Keras 3 names; Keras 1 spellings accepted)."""

import reprlib

from rustkeras.layers.activation_layers import ELU, LeakyReLU, PReLU
from rustkeras.layers.base import Layer
from rustkeras.layers.core import Activation, Dense, Dropout, Flatten, Input, InputLayer, KerasTensor, Reshape
from rustkeras.layers.convolutional import (
    Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose, Convolution1D, Convolution2D,
    Convolution3D,
)
from rustkeras.layers.normalization import BatchNormalization
from rustkeras.layers.pooling import (
    AveragePooling1D, AveragePooling2D, AveragePooling3D, AvgPool1D, AvgPool2D, AvgPool3D, GlobalAveragePooling1D,
    GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D,
    GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D, GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D,
    MaxPool1D, MaxPool2D, MaxPool3D, MaxPooling1D, MaxPooling2D, MaxPooling3D,
)
from rustkeras.layers.reshaping import (
    Cropping1D, Cropping2D, Cropping3D, UpSampling1D, UpSampling2D, UpSampling3D, ZeroPadding1D, ZeroPadding2D,
    ZeroPadding3D,
)
from rustkeras.layers.embedding import Embedding
from rustkeras.layers.lambda_layer import Lambda
from rustkeras.layers.merging import (
    Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average, concatenate, maximum, minimum,
    multiply, subtract,
)
from rustkeras.layers.merge_v1 import Merge, merge
from rustkeras.layers.recurrent import GRU, LSTM, SimpleRNN
from rustkeras.layers.wrappers import Bidirectional, Masking, RepeatVector, TimeDistributed

__all__ = [
    "Activation", "Dense", "Dropout", "ELU", "Flatten", "Input", "InputLayer", "KerasTensor", "Lambda", "Layer",
    "LeakyReLU", "PReLU", "Reshape",
    # convolution family
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "BatchNormalization", "Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose",
    "Convolution1D", "Convolution2D", "Convolution3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D",
    "GlobalMaxPool2D", "GlobalMaxPool3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "MaxPool1D", "MaxPool2D", "MaxPool3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "UpSampling1D",
    "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    # merging
    "Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract", "add", "average", "concatenate",
    "maximum", "minimum", "multiply", "subtract", "Merge", "merge",
    # recurrent family
    "Bidirectional", "Embedding", "GRU", "LSTM", "Masking", "RepeatVector", "SimpleRNN", "TimeDistributed",
]


def get(class_name: str, custom_objects=None):
    """The layer class of a name (for `from_config`): a class in `custom_objects`, in a
    `custom_object_scope` or registered with `register_keras_serializable`, else rustkeras' own."""
    from rustkeras.saving import get_registered_object

    cls = get_registered_object(class_name, custom_objects) or globals().get(class_name)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"Unknown layer class: '{class_name}'")
    return cls


def layer_from_config(entry, custom_objects=None):
    """A layer from a config entry `{"class_name", "config", ["registered_name"]}` (as rustkeras
    or Keras 3 writes it): the class is found by `get` (custom objects first); a Lambda also
    looks its function up there; a model entry (`Functional`, `Sequential`) gives the model,
    which acts as a layer."""
    from rustkeras._saving import keras_config

    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ValueError(f"A layer config must be a dict with a `class_name`. Received: {reprlib.repr(entry)}")
    if not isinstance(entry.get("config", {}), dict):
        raise ValueError(f"The config of layer class {reprlib.repr(entry['class_name'])} must be a dict. Received: "
                         f"{type(entry['config']).__name__}")
    entry = keras_config.layer_entry_from_keras(entry)
    if keras_config.is_model_entry(entry) or _names_model_class(entry, custom_objects):
        return keras_config.model_from_entry(entry, custom_objects, top=False)
    name = entry.get("registered_name") or entry["class_name"]
    try:
        cls = get(name, custom_objects)
    except ValueError:
        cls = get(entry["class_name"], custom_objects)
    cfg = dict(entry.get("config", {}))
    if cls is Lambda:
        return Lambda.from_config(cfg, custom_objects=custom_objects)
    return cls.from_config(cfg)


def _names_model_class(entry, custom_objects) -> bool:
    """Whether the entry names a (subclassed) model class known by name."""
    from rustkeras.models.training import Trainer
    from rustkeras.saving import get_registered_object

    for name in (entry.get("registered_name"), entry.get("class_name")):
        cls = get_registered_object(name, custom_objects) if isinstance(name, str) else None
        if cls is not None:
            return isinstance(cls, type) and issubclass(cls, Trainer)
    return False
