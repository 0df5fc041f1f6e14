"""Keras' `preprocessing` paths: `sequence.pad_sequences` (the Keras 1 tutorial's
`from keras.preprocessing import sequence`) and `timeseries_dataset_from_array`."""

from rustkeras.preprocessing import sequence
from rustkeras.utils.timeseries import timeseries_dataset_from_array

__all__ = ["sequence", "timeseries_dataset_from_array"]
