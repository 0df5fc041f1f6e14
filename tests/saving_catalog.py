"""Models covering every layer type rustkeras has, for the saving tests.

`SHARED` models are written once against the Keras API and built with either library (`K` is
the `keras` or the `rustkeras` module), so the same model is saved by one and loaded by the
other. `rustkeras_only()` adds what Keras 3 has no equivalent for (Keras 1's Merge) and the
user code that a load needs `custom_objects` for. Nothing here imports either library at
import time: the Keras side runs in a process of its own.
"""

import numpy as np


def dense(K):
    L = K.layers
    return K.Sequential([K.Input(shape=(6,)), L.Dense(5, activation="relu"), L.Dropout(0.25),
                         L.Activation("tanh"), L.Dense(3, activation="softmax")], name="dense_stack")


def activations(K):
    L = K.layers
    return K.Sequential([K.Input(shape=(6,)), L.Dense(4), L.ELU(), L.LeakyReLU(negative_slope=0.2), L.PReLU(),
                         L.Reshape((2, 2)), L.Flatten(), L.Dense(2)])


def conv1d(K):
    L = K.layers
    return K.Sequential([K.Input(shape=(12, 3)), L.Conv1D(4, 3, padding="same", activation="relu"),
                         L.MaxPooling1D(2), L.ZeroPadding1D(1), L.Cropping1D((1, 1)), L.UpSampling1D(2),
                         L.AveragePooling1D(2), L.Conv1DTranspose(2, 3), L.GlobalMaxPooling1D()])


def conv2d(K):
    L = K.layers
    return K.Sequential([K.Input(shape=(8, 8, 2)), L.Conv2D(3, 3, padding="same"), L.BatchNormalization(),
                         L.MaxPooling2D(), L.ZeroPadding2D(1), L.Cropping2D(1), L.UpSampling2D(),
                         L.AveragePooling2D(2), L.Conv2DTranspose(2, 2, strides=2), L.GlobalAveragePooling2D(),
                         L.Dense(2)])


def conv3d(K):
    L = K.layers
    return K.Sequential([K.Input(shape=(4, 4, 4, 1)), L.Conv3D(2, 2, padding="same"), L.MaxPooling3D(2),
                         L.ZeroPadding3D(1), L.Cropping3D(1), L.UpSampling3D(2), L.AveragePooling3D(2),
                         L.Conv3DTranspose(2, 2), L.GlobalMaxPooling3D()])


def global_pools(K):
    L = K.layers
    a = K.Input(shape=(6, 6, 2), name="image")
    b = K.Input(shape=(5, 3), name="sequence")
    c = K.Input(shape=(3, 3, 3, 2), name="volume")
    h = L.Concatenate()([L.GlobalMaxPooling2D()(a), L.GlobalAveragePooling1D()(b), L.GlobalAveragePooling3D()(c)])
    return K.Model([a, b, c], L.Dense(2)(h))


def embedding(K):
    L = K.layers
    return K.Sequential([K.Input(shape=(7,), dtype="int32"), L.Embedding(10, 4, mask_zero=True),
                         L.LSTM(5, return_sequences=True), L.GRU(3), L.Dense(2)])


def recurrent(K):
    L = K.layers
    return K.Sequential([K.Input(shape=(6, 3)), L.Masking(0.0), L.SimpleRNN(4, return_sequences=True),
                         L.Bidirectional(L.LSTM(3, return_sequences=True)), L.TimeDistributed(L.Dense(2)),
                         L.GRU(2), L.RepeatVector(2), L.Flatten()])


def merging(K):
    L = K.layers
    a = K.Input(shape=(4,), name="a")
    b = K.Input(shape=(4,), name="b")
    parts = [L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]), L.Average()([a, b]),
             L.Maximum()([a, b]), L.Minimum()([a, b])]
    score = L.Dense(3, name="score")(L.Concatenate()(parts))
    return K.Model([a, b], [score, L.Dense(1, name="side")(a)])


def nested(K):
    L = K.layers
    inner = K.Sequential([K.Input(shape=(5,)), L.Dense(4, activation="relu"), L.Dense(3)], name="inner")
    x = K.Input(shape=(5,))
    branch_in = K.Input(shape=(3,))
    branch = K.Model(branch_in, L.Dense(2)(branch_in), name="branch")
    return K.Model(x, branch(inner(x)))


# name -> (builder, per input: (per-sample shape, "float" or an integer bound for indices))
SHARED = {
    "dense": (dense, [((6,), "float")]),
    "activations": (activations, [((6,), "float")]),
    "conv1d": (conv1d, [((12, 3), "float")]),
    "conv2d": (conv2d, [((8, 8, 2), "float")]),
    "conv3d": (conv3d, [((4, 4, 4, 1), "float")]),
    "global_pools": (global_pools, [((6, 6, 2), "float"), ((5, 3), "float"), ((3, 3, 3, 2), "float")]),
    "embedding": (embedding, [((7,), 10)]),
    "recurrent": (recurrent, [((6, 3), "float")]),
    "merging": (merging, [((4,), "float"), ((4,), "float")]),
    "nested": (nested, [((5,), "float")]),
}


def inputs(spec, n: int, seed: int):
    """Data for a model's inputs (a list for several): normal floats, or indices with a few
    zeros (an Embedding's mask); float sequences end with a zero step in some samples."""
    rng = np.random.default_rng(seed)
    out = []
    for shape, kind in spec:
        if kind == "float":
            a = rng.normal(size=(n,) + shape).astype("float32")
            if len(shape) == 2:
                a[::3, -1, :] = 0.0
        else:
            a = rng.integers(0, kind, size=(n,) + shape).astype("int32")
            a[::2, -2:] = 0
        out.append(a)
    return out if len(out) > 1 else out[0]


def randomize(model, seed: int) -> None:
    """Random weights (a positive moving variance for BatchNormalization), so that nothing is
    at its initial value."""
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        weights = layer.get_weights()
        if not weights:
            continue
        new = [(0.3 * rng.normal(size=w.shape)).astype("float32") for w in weights]
        if type(layer).__name__ == "BatchNormalization":
            new[-1] = np.abs(new[-1]) + 0.5
        layer.set_weights(new)


def _is_model(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "compile")


def _all_layers(model):
    """The layers that hold weights, in weight order (a nested model's layers in place)."""
    out = []
    for layer in model.layers:
        if _is_model(layer):
            out.extend(_all_layers(layer))
        else:
            out.append(layer)
    return out


def compile_for_training(model) -> None:
    outputs = model.outputs if hasattr(model, "outputs") else [None]
    model.compile(optimizer="adam", loss=["mse"] * len(outputs) if len(outputs) > 1 else "mse")


def keras_compile_variant(keras, model, name: str) -> None:
    """Keras' compile with objects and dicts rather than names (for "dense" and "merging")."""
    if name == "dense":
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                      metrics=["accuracy", keras.metrics.CategoricalAccuracy(), "mae", keras.metrics.AUC(),
                               keras.metrics.Precision(name="prec")],
                      weighted_metrics=[keras.metrics.MeanSquaredError(name="wmse")])
    else:
        model.compile(optimizer="rmsprop", loss={"score": "mse", "side": keras.losses.MeanAbsoluteError()},
                      loss_weights={"score": 1.0, "side": 0.5}, metrics={"score": ["mae"]})


def targets(model, x):
    """Targets of the model's output shapes (for a short fit that fills the optimizer's slots)."""
    outs = model.predict(x, verbose=0)
    rng = np.random.default_rng(7)
    if isinstance(outs, list):
        return [rng.normal(size=o.shape).astype("float32") for o in outs]
    return rng.normal(size=outs.shape).astype("float32")


def double_plus_one(x):
    return x * 2.0 + 1.0


def rustkeras_only():
    """Models of rustkeras' own layer types and user code; returns `{name: (model, x,
    custom_objects)}`."""
    import rustkeras
    from rustkeras import layers as L

    @rustkeras.saving.register_keras_serializable(package="catalog")
    class Scale(L.Layer):
        """A user layer: one weight of its own, a sublayer, a list of sublayers."""

        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.proj = L.Dense(units)
            self.extra = [L.Dense(units), L.Dense(units, activation="tanh")]

        def build(self, input_shape):
            self.gain = self.add_weight(shape=(self.units,), initializer="ones", name="gain")

        def call(self, x):
            h = self.proj(x) * self.gain
            return self.extra[1](self.extra[0](h)) + h

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class Tower(rustkeras.Model):
        """A subclassed model with get_config."""

        def __init__(self, width=4, **kwargs):
            super().__init__(**kwargs)
            self.width = width
            self.hidden = L.Dense(width, activation="relu")
            self.out = L.Dense(2)

        def call(self, x):
            return self.out(self.hidden(x))

        def get_config(self):
            return {"width": self.width, "name": self.name}

    rng = np.random.default_rng(3)
    models = {}
    m = rustkeras.Sequential([L.Input((4,)), L.Lambda(double_plus_one), L.Dense(2)])
    models["lambda"] = (m, rng.normal(size=(9, 4)).astype("float32"), {"double_plus_one": double_plus_one})
    m = rustkeras.Sequential([L.Input((5,)), Scale(3), L.Dense(2)])
    models["user_layer"] = (m, rng.normal(size=(9, 5)).astype("float32"), {})
    left = rustkeras.Sequential([L.Dense(3, input_dim=4)])
    right = rustkeras.Sequential([L.Dense(3, input_dim=2)])
    m = rustkeras.Sequential([L.Merge([left, right], mode="concat"), L.Dense(2)])
    models["merge_v1"] = (m, [rng.normal(size=(9, 4)).astype("float32"), rng.normal(size=(9, 2)).astype("float32")],
                          {})
    m = Tower(4)
    m.build((None, 3))
    models["subclassed"] = (m, rng.normal(size=(9, 3)).astype("float32"), {"Tower": Tower})
    return models
