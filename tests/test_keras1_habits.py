"""The tutorial's Keras 1 habits: `image_dim_ordering` in the config file, Keras 1's module paths,
`Sequential.predict_classes`/`predict_proba`, and `fit(..., show_accuracy=True)`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import rustkeras
from rustkeras import backend as K
from rustkeras import config, layers
from rustkeras.layers import Dense, Input
from rustkeras.models import Sequential


def run(code: str, home, **env):
    e = dict(os.environ, RUSTKERAS_HOME=str(home))
    e.pop("RUSTKERAS_BACKEND", None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=120)


THEANO_CNN = """
from rustkeras import backend as K
from rustkeras.models import Sequential
from rustkeras.layers.core import Dense, Flatten
from rustkeras.layers.convolutional import Convolution2D, MaxPooling2D
model = Sequential()
model.add(Convolution2D(4, 3, 3, input_shape=(3, 16, 16), activation="relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(2))
print(K.image_dim_ordering(), K.image_data_format(), model.layers[0].output_shape, model.layers[1].output_shape)
"""


def test_image_dim_ordering_th_makes_theano_input_shapes_channels_first(tmp_path):
    (tmp_path / "rustkeras.json").write_text(json.dumps({"image_dim_ordering": "th", "backend": "cpu"}))
    r = run(THEANO_CNN, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().split(maxsplit=2) == ["th", "channels_first", "(None, 4, 14, 14) (None, 4, 7, 7)"]


def test_image_dim_ordering_tf_and_the_errors(tmp_path):
    (tmp_path / "rustkeras.json").write_text(json.dumps({"image_dim_ordering": "tf"}))
    r = run("from rustkeras import backend as K; print(K.image_dim_ordering(), K.image_data_format())", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["tf", "channels_last"]
    for data, needles in (({"image_dim_ordering": "theano"}, ["image_dim_ordering", "'theano'", "'th'"]),
                          ({"image_dim_ordering": "th", "image_data_format": "channels_last"},
                           ["image_dim_ordering='th'", "channels_last"])):
        (tmp_path / "rustkeras.json").write_text(json.dumps(data))
        r = run("import rustkeras", tmp_path)
        assert r.returncode != 0 and "ValueError" in r.stderr
        for needle in needles:
            assert needle in r.stderr, r.stderr


def test_set_image_dim_ordering_in_process():
    try:
        K.set_image_dim_ordering("th")
        assert (K.image_dim_ordering(), config.image_data_format()) == ("th", "channels_first")
        with pytest.raises(ValueError, match="dim_ordering"):
            K.set_image_dim_ordering("channels_first")
    finally:
        config.set_image_data_format("channels_last")
    assert K.image_dim_ordering() == "tf"


KERAS1_IMPORTS = {
    "core": ["Dense", "Dropout", "Activation", "Flatten", "Reshape", "Lambda", "Merge", "RepeatVector", "Masking"],
    "convolutional": ["Convolution1D", "Convolution2D", "Convolution3D", "MaxPooling1D", "MaxPooling2D",
                      "AveragePooling2D", "ZeroPadding2D", "UpSampling2D", "Cropping2D"],
    "recurrent": ["SimpleRNN", "GRU", "LSTM"],
    "embeddings": ["Embedding"],
    "advanced_activations": ["LeakyReLU", "PReLU", "ELU"],
    "normalization": ["BatchNormalization"],
    "pooling": ["MaxPooling2D", "GlobalAveragePooling1D", "GlobalMaxPooling2D"],
    "wrappers": ["TimeDistributed", "Bidirectional"],
}


@pytest.mark.parametrize("module", sorted(KERAS1_IMPORTS))
def test_keras1_layer_module_paths(module):
    names = KERAS1_IMPORTS[module]
    env = {}
    exec(f"from rustkeras.layers.{module} import {', '.join(names)}", env)
    for name in names:
        assert env[name] is getattr(layers, name), name


@pytest.mark.parametrize("path,name", [("layers.core", "Highway"), ("layers.core", "TimeDistributedDense"),
                                       ("layers.convolutional", "AtrousConvolution2D"),
                                       ("layers.advanced_activations", "ThresholdedReLU"),
                                       ("layers.recurrent", "Recurrent"), ("utils.np_utils", "convert_kernel")])
def test_keras1_names_rustkeras_lacks_raise_not_implemented(path, name):
    with pytest.raises(NotImplementedError, match=f"rustkeras.{path}.{name}.*Keras 1's keras.{path}.{name}"):
        exec(f"from rustkeras.{path} import {name}", {})


def test_np_utils():
    from rustkeras.utils import np_utils

    y = np.array([0, 2, 1, 2])
    np.testing.assert_array_equal(np_utils.to_categorical(y, 3), np.eye(3)[y])
    np.testing.assert_array_equal(np_utils.to_categorical(y, nb_classes=4), np.eye(4)[y])
    with pytest.raises(ValueError, match="nb_classes"):
        np_utils.to_categorical(y, nb_classes=3, num_classes=4)
    p = np.array([[0.1, 0.9], [0.8, 0.2]])
    np.testing.assert_array_equal(np_utils.categorical_probas_to_classes(p), [1, 0])
    np.testing.assert_array_equal(np_utils.probas_to_classes(p), [1, 0])
    np.testing.assert_array_equal(np_utils.probas_to_classes(np.array([[0.7], [0.2]])), [1, 0])
    np.testing.assert_allclose(np_utils.normalize(np.array([[3.0, 4.0]])), [[0.6, 0.8]])


def test_predict_classes_and_predict_proba():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4)).astype("float32")
    soft = Sequential([Input((4,)), Dense(3, activation="softmax")])
    np.testing.assert_array_equal(soft.predict_classes(x), soft.predict(x, verbose=0).argmax(-1))
    np.testing.assert_array_equal(soft.predict_proba(x), soft.predict(x, verbose=0))
    binary = Sequential([Input((4,)), Dense(1, activation="sigmoid")])
    classes = binary.predict_classes(x, batch_size=8)
    assert classes.dtype == np.int32 and classes.shape == (20, 1)
    np.testing.assert_array_equal(classes, (binary.predict(x, verbose=0) > 0.5).astype("int32"))
    linear = Sequential([Input((4,)), Dense(2)])
    linear.set_weights([np.full((4, 2), 3.0, "float32"), np.zeros(2, "float32")])
    with pytest.warns(UserWarning, match="invalid probability values"):
        linear.predict_proba(x)


def test_show_accuracy_is_accepted_with_a_deprecation_warning():
    x = np.random.default_rng(1).normal(size=(16, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = Sequential([Input((4,)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    with pytest.warns(DeprecationWarning, match="show_accuracy.*metrics=\\[\"accuracy\"\\]"):
        h = model.fit(x, y, nb_epoch=2, show_accuracy=True, verbose=0)
    assert len(h.history["accuracy"]) == 2
    with pytest.warns(DeprecationWarning, match="show_accuracy"):
        model.evaluate(x, y, show_accuracy=True, verbose=0)


def test_top_level_keras_classes():
    assert rustkeras.Layer is layers.Layer and rustkeras.Optimizer is rustkeras.optimizers.Optimizer
    assert rustkeras.version() == rustkeras.__version__
