"""rustkeras: the Keras API on a Rust engine.

Change `import keras` to `import rustkeras` and the same Sequential or functional code trains
in Rust:

    from rustkeras.models import Sequential
    from rustkeras.layers import Dense
    model = Sequential([Dense(10, activation="softmax", input_shape=(784,))])
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
"""

from rustkeras import config  # noqa: F401  (reads the config file first)
from rustkeras import (  # noqa: F401
    activations,
    backend,
    callbacks,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    preprocessing,
    regularizers,
    saving,
    utils,
)
from rustkeras._symbolic import Variable  # noqa: F401
from rustkeras.initializers import Initializer  # noqa: F401
from rustkeras.layers import Input, KerasTensor, Layer  # noqa: F401
from rustkeras.losses import Loss  # noqa: F401
from rustkeras.metrics import Metric  # noqa: F401
from rustkeras.models import Model, Sequential  # noqa: F401
from rustkeras.optimizers import Optimizer  # noqa: F401
from rustkeras.regularizers import Regularizer  # noqa: F401

__version__ = "0.1.0"


def version() -> str:
    """The rustkeras version (Keras 3's `keras.version()`)."""
    return __version__

from rustkeras import _api  # noqa: E402  (last: every public module is imported by now)

_api.publish()
