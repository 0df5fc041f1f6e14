"""Models: the functional `Model(inputs, outputs)` and `Sequential`, with Keras' training API.

    from rustkeras import Input, Model
    from rustkeras.layers import Dense, concatenate
    a, b = Input(shape=(8,)), Input(shape=(4,))
    out = Dense(1)(concatenate([a, b]))
    model = Model(inputs=[a, b], outputs=out)
"""

import json
from typing import Any, Dict

from rustkeras.models.functional import Model
from rustkeras.models.sequential import Sequential

__all__ = ["Model", "Sequential", "load_model", "model_from_config", "model_from_json", "save_model"]


def model_from_config(config: Dict[str, Any], custom_objects=None) -> Model:
    """A new (untrained) model from `{"class_name": ..., "config": ...}` (a model's entry, as
    rustkeras' or Keras 3's `to_json()` writes it)."""
    from rustkeras._saving import keras_config

    return keras_config.model_from_entry(config, custom_objects)


def model_from_json(json_string: str, custom_objects=None) -> Model:
    """A new (untrained) model from `model.to_json()` (rustkeras' or Keras 3's)."""
    try:
        config = json.loads(json_string)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model_from_json: the string is not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError("model_from_json: the JSON is nested too deeply") from None
    try:
        return model_from_config(config, custom_objects)
    except RecursionError:
        raise ValueError("model_from_json: the config is nested too deeply") from None


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):  # noqa: A002 - Keras' name
    """A model from a `.keras` file (or Keras 2's legacy `.h5`); see `rustkeras.saving.load_model`."""
    from rustkeras import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs) -> None:
    """`model.save(filepath)`; see `rustkeras.saving.save_model`."""
    from rustkeras import saving

    saving.save_model(model, filepath, overwrite=overwrite, zipped=zipped, **kwargs)
