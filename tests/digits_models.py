"""What the scale-out tests share (test_sklearn, test_cross_validate, test_dask): scikit-learn's
digits (1797 8x8 images, 10 classes) and a seeded MLP build function, so that a fit gives the
same weights in any process."""

import numpy as np

from rustkeras.layers import Dense
from rustkeras.models import Sequential
from rustkeras.optimizers import Adam
from rustkeras.utils import set_random_seed

FIT = {"epochs": 10, "batch_size": 32, "verbose": 0}


def digits():
    """Digits as float32 in [0, 1], and the integer labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y


def build_mlp(X, y, units=32, lr=3e-3, seed=0):
    """Keras 3's convention: called with the training data (y one-hot) and `model_kwargs`."""
    set_random_seed(seed)
    model = Sequential([Dense(units, activation="relu", input_shape=(X.shape[1],)),
                        Dense(y.shape[1], activation="softmax")])
    model.compile(optimizer=Adam(learning_rate=lr), loss="categorical_crossentropy", metrics=["accuracy"])
    return model
