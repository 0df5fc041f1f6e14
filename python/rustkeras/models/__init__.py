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

__all__ = ["Model", "Sequential", "model_from_config", "model_from_json"]


def model_from_config(config: Dict[str, Any], custom_objects=None) -> Model:
    """A new (untrained) model from `{"class_name": ..., "config": ...}`."""
    kind = config.get("class_name")
    if kind == "Sequential":
        return Sequential.from_config(config["config"], custom_objects=custom_objects)
    if kind in ("Functional", "Model"):
        return Model.from_config(config["config"], custom_objects=custom_objects)
    from rustkeras.saving import get_registered_object

    cls = get_registered_object(config.get("registered_name") or kind, custom_objects)
    if cls is not None and hasattr(cls, "from_config"):
        return cls.from_config(config["config"])
    raise ValueError(f"Unknown model class: {kind!r} (rustkeras builds Sequential and functional models)")


def model_from_json(json_string: str, custom_objects=None) -> Model:
    """A new (untrained) model from `model.to_json()`."""
    return model_from_config(json.loads(json_string), custom_objects)
