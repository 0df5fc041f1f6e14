"""Utilities with the Keras 3 names: `to_categorical`, `normalize`, `set_random_seed`, `PyDataset`
(Keras 2's `Sequence`), `pad_sequences`, `timeseries_dataset_from_array`, `plot_model`, `model_to_dot`
and `plot_history` (pictures of a model and of a training history), `Progbar`, the
serialization helpers of `rustkeras.saving`, and `cross_validate` (k-fold cross-validation of a
model-building function, folds in parallel through joblib).

Example:

    from rustkeras.utils import to_categorical
    y = to_categorical([0, 2, 1], num_classes=3)   # shape (3, 3), float32
"""

from rustkeras._progbar import Progbar
from rustkeras.saving import (
    CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name, get_registered_object,
    register_keras_serializable,
)
from rustkeras.utils.cross_validation import CrossValidationResult, cross_validate
from rustkeras.utils.numerical_utils import normalize, to_categorical
from rustkeras.utils.plotting import model_to_dot, plot_history, plot_model
from rustkeras.utils.py_dataset import PyDataset, Sequence
from rustkeras.utils.random_utils import set_random_seed
from rustkeras.utils.sequence_utils import pad_sequences
from rustkeras.utils.timeseries import timeseries_dataset_from_array

__all__ = ["CrossValidationResult", "CustomObjectScope", "Progbar", "PyDataset", "Sequence", "cross_validate",
           "custom_object_scope", "get_custom_objects", "get_registered_name", "get_registered_object",
           "model_to_dot", "normalize", "pad_sequences", "plot_history", "plot_model", "register_keras_serializable",
           "set_random_seed", "timeseries_dataset_from_array", "to_categorical"]
