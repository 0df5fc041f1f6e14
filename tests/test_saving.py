"""Saving and loading in rustkeras' own hands: round trips of every layer type in both formats,
a resumed fit that equals an uninterrupted one, atomic saves under SIGKILL, malformed files,
custom objects, Keras 2 `.h5` files, the API's arguments. (Files of real Keras 3:
test_saving_keras.py; ModelCheckpoint and BackupAndRestore: test_checkpoints.py.)"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import h5py
import numpy as np
import pytest

import rustkeras
from rustkeras import Input, Model, Sequential, layers, ops
from rustkeras.layers import Dense, Dropout
from rustkeras.models import load_model, model_from_json
from rustkeras.utils import set_random_seed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import saving_catalog as catalog  # noqa: E402


def _outputs(model, x):
    out = model.predict(x, verbose=0)
    return out if isinstance(out, list) else [out]


def _catalog():
    """Every catalog model, built and trained briefly by rustkeras: `{name: (model, x,
    custom_objects)}`."""
    models = {}
    for name, (builder, spec) in catalog.SHARED.items():
        model = builder(rustkeras)
        catalog.randomize(model, 1)
        models[name] = (model, catalog.inputs(spec, 9, 1), {})
    models.update(catalog.rustkeras_only())
    for model, x, _ in models.values():
        catalog.compile_for_training(model)
        model.fit(x, catalog.targets(model, x), epochs=1, batch_size=4, verbose=0)
    return models


@pytest.fixture(scope="module")
def trained():
    return _catalog()


NAMES = list(catalog.SHARED) + ["lambda", "user_layer", "merge_v1", "subclassed"]


@pytest.mark.parametrize("name", NAMES)
def test_keras_file_round_trip_of_every_layer_type(trained, tmp_path, name):
    model, x, custom = trained[name]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_model(path, custom_objects=custom)
    for a, b in zip(_outputs(model, x), _outputs(loaded, x)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer is not None and loaded.optimizer.iterations == model.optimizer.iterations


@pytest.mark.parametrize("name", [n for n in NAMES if n != "subclassed"])
def test_json_and_weights_file_round_trip_of_every_layer_type(trained, tmp_path, name):
    model, x, custom = trained[name]
    model.save_weights(tmp_path / "m.weights.h5")
    rebuilt = model_from_json(model.to_json(), custom_objects=custom)
    rebuilt.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(_outputs(model, x), _outputs(rebuilt, x)):
        np.testing.assert_array_equal(a, b)


def test_subclassed_model_weights_file_round_trip(trained, tmp_path):
    model, x, custom = trained["subclassed"]
    model.save_weights(tmp_path / "m.weights.h5")
    twin = custom["Tower"].from_config(model.get_config())
    twin.build((None, 3))
    twin.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(model.predict(x, verbose=0), twin.predict(x, verbose=0))


def _layer_classes(model, out):
    from rustkeras.models.training import Trainer

    for layer in model.layers:
        if isinstance(layer, Trainer):
            _layer_classes(layer, out)
            continue
        out.add(type(layer))
        for inner in ("layer", "forward_layer", "backward_layer"):
            if isinstance(getattr(layer, inner, None), layers.Layer):
                out.add(type(getattr(layer, inner)))
        for branch in getattr(layer, "branches", []):
            _layer_classes(branch, out)


def test_the_catalog_covers_every_layer_type(trained):
    used = set()
    for model, _, _ in trained.values():
        _layer_classes(model, used)
    exported = {getattr(layers, n) for n in layers.__all__ if isinstance(getattr(layers, n), type)}
    exported = {c for c in exported if issubclass(c, layers.Layer) and c not in (layers.Layer, layers.InputLayer)}
    assert exported - used == set()


# -- the file layout ---------------------------------------------------------------------


def test_keras_file_holds_keras_3s_members_and_layout(trained, tmp_path):
    model, _, _ = trained["recurrent"]
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        config = json.loads(zf.read("config.json"))
        metadata = json.loads(zf.read("metadata.json"))
        (tmp_path / "w.h5").write_bytes(zf.read("model.weights.h5"))
    assert metadata["keras_version"].startswith("3") and "date_saved" in metadata
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    assert config["build_config"] == {"input_shape": [None, 6, 3]}
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    bi = config["config"]["layers"][3]
    assert bi["class_name"] == "Bidirectional" and bi["module"] == "keras.layers"
    assert bi["config"]["dtype"] == {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                                     "registered_name": None}
    with h5py.File(tmp_path / "w.h5") as f:
        assert f["layers/simple_rnn/cell/vars"].attrs["name"] == "simple_rnn_cell"
        assert len(f["layers/simple_rnn/vars"]) == 0
        assert f["layers/bidirectional/forward_layer/cell/vars/0"].shape == (4, 12)
        assert f["layers/bidirectional/backward_layer/cell/vars/1"].shape == (3, 12)
        assert f["layers/time_distributed/layer/vars/0"].shape == (6, 2)
        assert f["layers/gru/cell/vars/2"].shape == (2, 6)
        opt = f["optimizer/vars"]
        # iterations, learning rate, then Adam's momentums and velocities, variable by variable.
        assert int(opt["0"][()]) == model.optimizer.iterations and len(opt) == 2 + 2 * len(model.get_weights())
        assert opt["2"].shape == (3, 4) and opt["3"].shape == (3, 4)


def test_layers_are_named_by_class_and_order_not_by_name(tmp_path):
    m = Sequential([Input((3,)), Dense(4, name="first"), Dense(2, name="second")])
    m.save_weights(tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5") as f:
        assert f["layers/dense/vars"].attrs["name"] == "first"
        assert f["layers/dense_1/vars"].attrs["name"] == "second"
        assert f["vars"].attrs["name"] == m.name


def test_user_layer_paths_follow_their_attributes(trained, tmp_path):
    model, _, _ = trained["user_layer"]
    model.save_weights(tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5") as f:
        assert f["layers/scale/vars/0"].shape == (3,)  # its own weight
        assert f["layers/scale/proj/vars/0"].shape == (5, 3)
        assert f["layers/scale/extra/dense/vars/0"].shape == (3, 3)
        assert f["layers/scale/extra/dense_1/vars/1"].shape == (3,)


# -- resuming training -------------------------------------------------------------------


def _dropout_model(optimizer="adam"):
    m = Sequential([Input((5,)), Dense(8, activation="relu"), Dropout(0.3), layers.BatchNormalization(),
                    Dense(3, activation="softmax")])
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _data(n=40):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5)).astype("float32"), rng.integers(0, 3, size=n)


@pytest.mark.parametrize("optimizer", [
    "adam", "nadam", rustkeras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    rustkeras.optimizers.RMSprop(centered=True, momentum=0.5), rustkeras.optimizers.Adam(amsgrad=True, weight_decay=0.01),
    rustkeras.optimizers.Adagrad(gradient_accumulation_steps=2)])
def test_a_loaded_model_resumes_fit_as_if_never_interrupted(tmp_path, optimizer):
    x, y = _data()
    config = rustkeras.optimizers.serialize(rustkeras.optimizers.get(optimizer))
    fresh = lambda: rustkeras.optimizers.deserialize(config)  # noqa: E731
    set_random_seed(3)
    whole = _dropout_model(fresh())
    h_whole = whole.fit(x, y, epochs=4, batch_size=7, verbose=0).history
    # The same model (same initial weights and seeds), stopped after 2 epochs and saved.
    set_random_seed(3)
    part = _dropout_model(fresh())
    part.fit(x, y, epochs=2, batch_size=7, verbose=0)
    part.save(tmp_path / "half.keras")
    resumed = load_model(tmp_path / "half.keras")
    h_resumed = resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=7, verbose=0).history
    assert h_resumed["loss"] == h_whole["loss"][2:]
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert resumed.optimizer.iterations == whole.optimizer.iterations


@pytest.fixture
def gpu():
    from rustkeras import config

    config.set_backend("gpu")
    yield
    config.set_backend("cpu")


def test_on_the_gpu_a_loaded_model_resumes_fit_exactly(tmp_path, gpu):
    x, y = _data()
    set_random_seed(4)
    whole = _dropout_model()
    h_whole = whole.fit(x, y, epochs=3, batch_size=7, verbose=0).history
    set_random_seed(4)
    part = _dropout_model()
    part.fit(x, y, epochs=1, batch_size=7, verbose=0)
    part.save(tmp_path / "gpu.keras")
    resumed = load_model(tmp_path / "gpu.keras")
    assert resumed._core.device() == "gpu"
    h = resumed.fit(x, y, epochs=3, initial_epoch=1, batch_size=7, verbose=0).history
    assert h["loss"] == h_whole["loss"][1:]
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_model_saved_on_the_gpu_loads_on_the_cpu(tmp_path, gpu):
    from rustkeras import config

    x, y = _data()
    m = _dropout_model()
    m.fit(x, y, epochs=1, verbose=0)
    m.save(tmp_path / "gpu.keras")
    config.set_backend("cpu")
    loaded = load_model(tmp_path / "gpu.keras")
    assert loaded._core.device() == "cpu"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    m.save_weights(tmp_path / "a.weights.h5")
    loaded.save_weights(tmp_path / "b.weights.h5")
    for a, b in zip(_optimizer_datasets(tmp_path / "a.weights.h5"), _optimizer_datasets(tmp_path / "b.weights.h5")):
        np.testing.assert_array_equal(a, b)


def _optimizer_datasets(path):
    with h5py.File(path) as f:
        group = f["optimizer/vars"]
        return [group[str(i)][()] for i in range(len(group))]


def test_every_optimizer_variable_survives_a_round_trip(tmp_path):
    x, y = _data()
    # Moving averages of the weights, gradient sums between updates, Nadam's running product.
    optimizer = rustkeras.optimizers.Nadam(use_ema=True, gradient_accumulation_steps=3)
    m = _dropout_model(optimizer)
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    m.save_weights(tmp_path / "a.weights.h5")
    m.save(tmp_path / "a.keras")
    load_model(tmp_path / "a.keras").save_weights(tmp_path / "b.weights.h5")
    saved, again = _optimizer_datasets(tmp_path / "a.weights.h5"), _optimizer_datasets(tmp_path / "b.weights.h5")
    n = len(m.get_weights()) - 2  # BatchNormalization's moving statistics are not trained
    assert len(saved) == 2 + 4 * n + 1
    assert int(saved[0]) == 5  # raw iterations: every batch, accumulating ones too
    for a, b in zip(saved, again):
        np.testing.assert_array_equal(a, b)


def test_load_weights_into_a_fresh_model_resumes_fit_too(tmp_path):
    x, y = _data()
    set_random_seed(5)
    a = _dropout_model()
    a.fit(x, y, epochs=2, batch_size=8, verbose=0)
    a.save_weights(tmp_path / "a.weights.h5")
    b = _dropout_model()
    b.load_weights(tmp_path / "a.weights.h5")
    ha = a.fit(x, y, epochs=2, batch_size=8, verbose=0).history
    hb = b.fit(x, y, epochs=2, batch_size=8, verbose=0).history
    assert ha == hb
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_an_uncompiled_load_has_no_optimizer_and_compile_false_skips_it(tmp_path):
    x, y = _data()
    m = _dropout_model()
    m.fit(x, y, epochs=1, verbose=0)
    m.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", compile=False)
    assert loaded.optimizer is None
    with pytest.raises(ValueError, match="compile"):
        loaded.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), m.predict(x, verbose=0))


def test_compile_config_is_restored(tmp_path):
    x, y = _data()
    m = _dropout_model(rustkeras.optimizers.RMSprop(learning_rate=0.01, rho=0.8))
    m.fit(x, y, epochs=1, verbose=0)
    m.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer).__name__ == "RMSprop"
    assert loaded.optimizer.get_config()["rho"] == pytest.approx(0.8)
    assert loaded.optimizer.learning_rate == pytest.approx(0.01)
    assert loaded.metrics_names == m.metrics_names
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(m.evaluate(x, y, verbose=0))


# -- atomic saves ------------------------------------------------------------------------

_SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    from rustkeras import Input, Sequential
    from rustkeras.layers import Dense
    path = sys.argv[1]
    m = Sequential([Input((512,)), Dense(1024), Dense(1024), Dense(8)])
    version = 0
    while True:
        m.set_weights([np.full(w.shape, version, "float32") for w in m.get_weights()])
        m.{save}(path)
        print(version, flush=True)
        version += 1
""")


@pytest.mark.parametrize("save,suffix", [("save", ".keras"), ("save_weights", ".weights.h5")])
def test_a_save_killed_mid_write_leaves_the_previous_file(tmp_path, save, suffix):
    path = str(tmp_path / f"m{suffix}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    model = Sequential([Input((512,)), Dense(1024), Dense(1024), Dense(8)])
    for kill_after in (1, 2, 3, 5, 8):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER.format(save=save), path], stdout=subprocess.PIPE,
                                env=env, text=True)
        done = -1
        # Killed after its n-th completed save, while (most likely) the next one is being written.
        while done < kill_after:
            line = proc.stdout.readline()
            assert line, "the saving process died"
            done = int(line)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if save == "save":
            weights = load_model(path).get_weights()
        else:
            model.load_weights(path)
            weights = model.get_weights()
        version = weights[0].flat[0]
        assert version in (done, done + 1)
        assert all(np.all(w == version) for w in weights)


def test_a_failed_save_leaves_the_previous_file(tmp_path):
    m = Sequential([Input((3,)), Dense(2)])
    m.save(tmp_path / "m.keras")
    before = (tmp_path / "m.keras").read_bytes()

    class Unsaveable(layers.Layer):
        def call(self, x):
            return x

        def get_config(self):
            raise RuntimeError("no config")

    bad = Sequential([Input((3,)), Unsaveable()])
    with pytest.raises(RuntimeError, match="no config"):
        bad.save(tmp_path / "m.keras")
    assert (tmp_path / "m.keras").read_bytes() == before
    assert os.listdir(tmp_path) == ["m.keras"]


# -- malformed files ---------------------------------------------------------------------


@pytest.fixture
def small(tmp_path):
    m = Sequential([Input((3,)), Dense(2, name="out")])
    m.compile(optimizer="adam", loss="mse")
    m.save(tmp_path / "good.keras")
    return m, tmp_path


def _rezip(src, dst, replace=None, extra=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if replace and name in replace:
                if replace[name] is None:
                    continue
                data = replace[name]
            zout.writestr(name, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)


def _weights_of(path):
    with zipfile.ZipFile(path) as zf:
        return zf.read("model.weights.h5")


def test_malformed_keras_files_raise_clean_errors(small):
    _, d = small
    good = d / "good.keras"
    (d / "junk.keras").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a zip"):
        load_model(d / "junk.keras")
    (d / "cut.keras").write_bytes(good.read_bytes()[:300])
    with pytest.raises((ValueError, OSError)):
        load_model(d / "cut.keras")
    _rezip(good, d / "noconfig.keras", replace={"config.json": None})
    with pytest.raises(ValueError, match="config.json"):
        load_model(d / "noconfig.keras")
    _rezip(good, d / "badjson.keras", replace={"config.json": b"{nope"})
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(d / "badjson.keras")
    _rezip(good, d / "unknown.keras", replace={"config.json": json.dumps(
        {"class_name": "Sequential", "config": {"layers": [{"class_name": "Frobnicate", "config": {}}]}})})
    with pytest.raises(ValueError, match="Frobnicate"):
        load_model(d / "unknown.keras")
    _rezip(good, d / "deep.keras", replace={"config.json": b"[" * 100000 + b"]" * 100000})
    with pytest.raises(ValueError, match="nested too deeply"):
        load_model(d / "deep.keras")
    # Valid JSON, but models nested in models deeper than any loader recurses.
    n = 300
    deep = '{"class_name": "Sequential", "config": {"layers": [' * n + '{"class_name": "Dense"}' + "]}}" * n
    _rezip(good, d / "deep2.keras", replace={"config.json": deep})
    with pytest.raises(ValueError, match="nested too deeply"):
        load_model(d / "deep2.keras")
    _rezip(good, d / "noweights.keras", replace={"model.weights.h5": None})
    with pytest.raises(ValueError, match="model.weights.h5"):
        load_model(d / "noweights.keras")
    _rezip(good, d / "garbage.keras", replace={"model.weights.h5": b"\x89HDF\r\n garbage"})
    with pytest.raises(OSError):
        load_model(d / "garbage.keras")


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/path", "a/../../b", "dir\\file", "C:/x"])
def test_archives_with_unsafe_member_names_are_refused(small, name):
    _, d = small
    _rezip(d / "good.keras", d / "trav.keras", extra={name: b"x"})
    with pytest.raises(ValueError, match="unsafe path"):
        load_model(d / "trav.keras")


def _patch_weights(d, edit):
    """A copy of good.keras whose weights file went through `edit(h5py.File)`."""
    h5 = d / "w.h5"
    h5.write_bytes(_weights_of(d / "good.keras"))
    with h5py.File(h5, "a") as f:
        edit(f)
    _rezip(d / "good.keras", d / "patched.keras", replace={"model.weights.h5": h5.read_bytes()})
    return d / "patched.keras"


def test_a_dataset_claiming_a_huge_shape_is_refused_before_reading(small):
    _, d = small

    def huge(f):
        del f["layers/dense/vars/0"]
        # A terabyte-sized array that stores nothing: reading it would allocate it all.
        f["layers/dense/vars"].create_dataset("0", shape=(1 << 20, 1 << 18), dtype="float32", chunks=(1, 8))

    with pytest.raises(ValueError, match=r"shape \(3, 2\).*\(1048576, 262144\)"):
        load_model(_patch_weights(d, huge))


def test_links_out_of_the_file_are_refused(small, tmp_path):
    _, d = small
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other["k"] = np.ones((3, 2), "float32")

    def external(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "k")

    with pytest.raises(ValueError, match="ExternalLink"):
        load_model(_patch_weights(d, external))

    def soft(f):
        f["elsewhere"] = np.ones((3, 2), "float32")
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.SoftLink("/elsewhere")

    with pytest.raises(ValueError, match="SoftLink"):
        load_model(_patch_weights(d, soft))


def test_wrong_counts_shapes_and_types_name_the_layer(small):
    m, d = small

    def drop(f):
        del f["layers/dense/vars/1"]

    with pytest.raises(ValueError, match=r'2 variables were expected for layer "out".*has 1'):
        load_model(_patch_weights(d, drop))

    def strings(f):
        del f["layers/dense/vars/1"]
        f["layers/dense/vars"].create_dataset("1", data=np.array(["a", "b"], dtype=object),
                                              dtype=h5py.string_dtype())

    with pytest.raises(ValueError, match="dtype"):
        load_model(_patch_weights(d, strings))
    other = Sequential([Input((3,)), Dense(5)])
    m.save_weights(d / "m.weights.h5")
    with pytest.raises(ValueError, match=r"shape \(3, 5\).*\(3, 2\)"):
        other.load_weights(d / "m.weights.h5")
    with pytest.warns(UserWarning, match="Skipping"):
        other.load_weights(d / "m.weights.h5", skip_mismatch=True)
    (d / "junk.weights.h5").write_bytes(b"junk" * 100)
    with pytest.raises(OSError):
        m.load_weights(d / "junk.weights.h5")


def test_a_lambdas_bytecode_needs_safe_mode_false(tmp_path):
    m = Sequential([Input((2,)), layers.Lambda(catalog.double_plus_one)])
    m.save(tmp_path / "m.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))
    config["config"]["layers"][1]["config"]["function"] = {
        "class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}
    _rezip(tmp_path / "m.keras", tmp_path / "code.keras", replace={"config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="safe_mode=False"):
        load_model(tmp_path / "code.keras")
    # Bytecode this Python cannot read (here: cut short) is a ValueError too.
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        load_model(tmp_path / "code.keras", safe_mode=False)
    with pytest.raises(ValueError, match="custom_objects"):
        load_model(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", custom_objects={"double_plus_one": catalog.double_plus_one})
    np.testing.assert_allclose(loaded.predict(np.ones((1, 2), "float32"), verbose=0), [[3.0, 3.0]])


# -- custom objects ----------------------------------------------------------------------


def test_custom_objects_for_layers_losses_and_metrics(tmp_path):
    class Doubler(layers.Layer):
        def call(self, x):
            return x * 2.0

    def my_loss(y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)

    def my_metric(y_true, y_pred):
        return ops.max(ops.abs(y_true - y_pred), axis=-1)

    x = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    m = Sequential([Input((3,)), Dense(3), Doubler()])
    m.compile(optimizer="sgd", loss=my_loss, metrics=[my_metric])
    m.fit(x, x, epochs=1, verbose=0)
    m.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="Doubler"):
        load_model(tmp_path / "m.keras")
    objects = {"Doubler": Doubler, "my_loss": my_loss, "my_metric": my_metric}
    loaded = load_model(tmp_path / "m.keras", custom_objects=objects)
    assert loaded.metrics_names == ["loss", "my_metric"]
    assert loaded.evaluate(x, x, verbose=0) == pytest.approx(m.evaluate(x, x, verbose=0))
    with rustkeras.saving.custom_object_scope(objects):
        scoped = load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(scoped.predict(x, verbose=0), m.predict(x, verbose=0))
    # Without the loss function, the model loads uncompiled, with a warning.
    with pytest.warns(UserWarning, match="uncompiled"):
        uncompiled = load_model(tmp_path / "m.keras", custom_objects={"Doubler": Doubler})
    assert uncompiled.optimizer is None


# -- formats and arguments ---------------------------------------------------------------


def test_file_objects_and_unzipped_directories(tmp_path):
    import io

    m = Sequential([Input((3,)), Dense(2)])
    m.compile(optimizer="adam", loss="mse")
    buf = io.BytesIO()
    m.save(buf)
    buf.seek(0)
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(load_model(buf).predict(x, verbose=0), m.predict(x, verbose=0))
    m.save(tmp_path / "saved", zipped=False)
    assert sorted(os.listdir(tmp_path / "saved")) == ["config.json", "metadata.json", "model.weights.h5"]
    m.save(tmp_path / "saved", zipped=False)
    np.testing.assert_array_equal(load_model(tmp_path / "saved").predict(x, verbose=0), m.predict(x, verbose=0))


def test_argument_errors(tmp_path):
    m = Sequential([Input((3,)), Dense(2)])
    with pytest.raises(ValueError, match="extension"):
        m.save(tmp_path / "m.txt")
    with pytest.raises(NotImplementedError, match="legacy"):
        m.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="zipped=False"):
        m.save(tmp_path / "m.keras", zipped=False)
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        m.save_weights(tmp_path / "m.h5")
    with pytest.raises(NotImplementedError, match="max_shard_size"):
        m.save_weights(tmp_path / "m.weights.h5", max_shard_size=1)
    with pytest.raises(ValueError, match="not supported"):
        load_model(tmp_path / "m.txt")
    m.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError):
        m.save(tmp_path / "m.keras", overwrite=False)
    with pytest.raises(ValueError, match="by_name"):
        m.load_weights(tmp_path / "m.keras", by_name=True)
    with pytest.raises(ValueError, match="Invalid keyword"):
        m.load_weights(tmp_path / "m.keras", frobnicate=1)
    with pytest.raises(ValueError, match="not yet been built"):
        Sequential([Dense(2)]).save_weights(tmp_path / "x.weights.h5")
    with pytest.raises(ValueError, match="extension"):
        rustkeras.saving.save_model(m, tmp_path / "m.keras.zip")


def test_load_weights_from_a_keras_file(tmp_path):
    m = Sequential([Input((3,)), Dense(2)])
    m.save(tmp_path / "m.keras")
    twin = Sequential([Input((3,)), Dense(2)])
    twin.load_weights(tmp_path / "m.keras")
    for a, b in zip(m.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- integer inputs ----------------------------------------------------------------------


def test_integer_inputs_take_data_as_keras_casts_it():
    i = Input((3,), dtype="int32")
    assert i.dtype == "int32"
    m = Model(i, Dense(1, use_bias=False, kernel_initializer="ones")(i))
    np.testing.assert_allclose(m.predict(np.array([[1.7, -2.9, 3.2]], "float32"), verbose=0), [[1 - 2 + 3]])
    entry = m.get_config()["layers"][0]
    assert entry["class_name"] == "InputLayer" and entry["config"]["dtype"] == "int32"
    with pytest.raises(ValueError, match="dtype"):
        Input((3,), dtype="complex64")
    with pytest.raises(NotImplementedError, match="float16"):
        Dense(2, dtype="float16")


def test_configs_with_numpy_numbers_save():
    m = Sequential([Input((3,)), Dense(np.int64(2))])
    assert json.loads(m.to_json())["config"]["layers"][1]["config"]["units"] == 2


def test_keras_3_json_is_what_model_from_json_reads():
    m = Sequential([Input((4,), dtype="int32"), layers.Embedding(5, 2), layers.Flatten(), Dense(1)])
    entry = json.loads(m.to_json())
    assert entry["module"] == "keras" and entry["class_name"] == "Sequential"
    emb = entry["config"]["layers"][1]
    assert emb["registered_name"] is None and emb["config"]["dtype"]["class_name"] == "DTypePolicy"
    again = model_from_json(m.to_json())
    assert json.loads(again.to_json())["config"]["layers"][1:] == entry["config"]["layers"][1:]


# -- Keras 2's .h5 files -----------------------------------------------------------------


def _keras2_file(path, weights):
    """A functional model as Keras 2.x saved it: a Keras 2 config (lists for inbound nodes, a
    VarianceScaling initializer, BatchNormalization's axis as a list) and per-layer groups."""
    k, b, gamma, beta, mean, var, k2, b2 = weights
    config = {"class_name": "Functional", "config": {
        "name": "model", "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 4], "dtype": "float32", "sparse": False, "ragged": False,
                        "name": "input_1"}},
            {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["input_1", 0, 0, {}]]],
             "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 3, "activation": "relu",
                        "use_bias": True,
                        "kernel_initializer": {"class_name": "VarianceScaling", "config": {
                            "scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}},
                        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
                        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                        "bias_constraint": None}},
            {"class_name": "BatchNormalization", "name": "batch_normalization",
             "inbound_nodes": [[["dense", 0, 0, {}]]],
             "config": {"name": "batch_normalization", "trainable": True, "dtype": "float32", "axis": [1],
                        "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True,
                        "beta_initializer": {"class_name": "Zeros", "config": {}},
                        "gamma_initializer": {"class_name": "Ones", "config": {}},
                        "moving_mean_initializer": {"class_name": "Zeros", "config": {}},
                        "moving_variance_initializer": {"class_name": "Ones", "config": {}},
                        "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                        "gamma_constraint": None}},
            {"class_name": "Concatenate", "name": "concatenate",
             "inbound_nodes": [[["batch_normalization", 0, 0, {}], ["input_1", 0, 0, {}]]],
             "config": {"name": "concatenate", "trainable": True, "dtype": "float32", "axis": -1}},
            {"class_name": "Dense", "name": "dense_1", "inbound_nodes": [[["concatenate", 0, 0, {}]]],
             "config": {"name": "dense_1", "trainable": True, "dtype": "float32", "units": 2,
                        "activation": "linear", "use_bias": True,
                        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
                        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                        "bias_constraint": None}}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense_1", 0, 0]]}}
    training = {"loss": "mse", "metrics": [[{"class_name": "MeanMetricWrapper", "config": {
        "name": "mae", "dtype": "float32", "fn": "mean_absolute_error"}}]], "weighted_metrics": None,
        "loss_weights": None, "optimizer_config": {"class_name": "Adam", "config": {
            "name": "Adam", "learning_rate": 0.002, "decay": 0.0, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07,
            "amsgrad": False}}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.11.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["training_config"] = json.dumps(training)
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [n.encode() for n in ("input_1", "dense", "batch_normalization", "concatenate",
                                                       "dense_1")]
        for name, ws in [("input_1", []), ("concatenate", []),
                         ("dense", [("kernel:0", k), ("bias:0", b)]),
                         ("batch_normalization", [("gamma:0", gamma), ("beta:0", beta), ("moving_mean:0", mean),
                                                  ("moving_variance:0", var)]),
                         ("dense_1", [("kernel:0", k2), ("bias:0", b2)])]:
            lg = g.create_group(name)
            lg.attrs["weight_names"] = [f"{name}/{w}".encode() for w, _ in ws]
            for w, value in ws:
                lg[f"{name}/{w}"] = value


def test_keras_2_h5_files_load_with_their_weights_and_compile_config(tmp_path):
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s).astype("float32") for s in [(4, 3), (3,), (3,), (3,), (3,), (3,), (7, 2), (2,)]]
    weights[5] = np.abs(weights[5]) + 0.5
    _keras2_file(tmp_path / "k2.h5", weights)
    model = load_model(tmp_path / "k2.h5")
    x = rng.normal(size=(6, 4)).astype("float32")
    k, b, gamma, beta, mean, var, k2, b2 = weights
    h = np.maximum(x @ k + b, 0)
    h = gamma * (h - mean) / np.sqrt(var + 1e-3) + beta
    np.testing.assert_allclose(model.predict(x, verbose=0), np.concatenate([h, x], 1) @ k2 + b2, rtol=1e-5,
                               atol=1e-6)
    assert type(model.optimizer).__name__ == "Adam" and model.optimizer.learning_rate == pytest.approx(0.002)
    assert model.metrics_names == ["loss", "mean_absolute_error"]
    twin = load_model(tmp_path / "k2.h5", compile=False)
    twin.set_weights([np.zeros_like(w) for w in twin.get_weights()])
    twin.load_weights(tmp_path / "k2.h5")
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    twin.set_weights([np.zeros_like(w) for w in twin.get_weights()])
    twin.load_weights(tmp_path / "k2.h5", by_name=True)
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    smaller = Sequential([Input((4,)), Dense(3)])
    with pytest.raises(ValueError, match="Layer count mismatch"):
        smaller.load_weights(tmp_path / "k2.h5")


def test_a_weights_only_h5_file_is_not_a_model(tmp_path):
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        f.create_group("dense").attrs["weight_names"] = []
    with pytest.raises(ValueError, match="load_weights"):
        load_model(tmp_path / "w.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.attrs["model_config"] = "{not json"
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(tmp_path / "bad.h5")


def test_a_model_compiled_without_an_optimizer_reloads_without_one(tmp_path):
    m = Sequential([Input((3,)), Dense(2)])
    m.compile(optimizer=None, loss="mse")
    m.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")
    assert back.optimizer is None
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    assert np.isfinite(back.evaluate(x, np.zeros((2, 2)), verbose=0))
