"""Files shared with real Keras 3, both ways: a model of every layer type the two libraries share
saved by Keras loads in rustkeras and predicts the same, and one saved by rustkeras (after
training, so that its optimizer has slots) loads in Keras, predicts the same and restores the
same optimizer variables. Keras runs in a process of its own (`_keras_worker.py`, with
KERAS_BACKEND=numpy), so that its import cannot interfere with rustkeras."""

import importlib.util
import json
import os
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

import rustkeras
from rustkeras.models import load_model, model_from_json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import saving_catalog as catalog  # noqa: E402

if importlib.util.find_spec("keras") is None:
    pytest.skip("keras is not installed (CI installs it: see .ci/run)", allow_module_level=True)

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_keras_worker.py")
NAMES = list(catalog.SHARED)


def _run_keras(tmp, jobs):
    path = os.path.join(tmp, "jobs.json")
    with open(path, "w") as f:
        json.dump(jobs, f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["KERAS_BACKEND"] = "numpy"
    proc = subprocess.run([sys.executable, WORKER, path], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _x(name, tmp):
    _, spec = catalog.SHARED[name]
    x = catalog.inputs(spec, 9, 11)
    path = os.path.join(tmp, f"{name}_x.npz")
    np.savez(path, **{f"x{i}": a for i, a in enumerate(x if isinstance(x, list) else [x])})
    return x, path


def _arrays(path, prefix):
    with np.load(path) as d:
        keys = sorted((k for k in d.files if k.startswith(prefix) and k[len(prefix):].isdigit()),
                      key=lambda k: int(k[len(prefix):]))
        return [d[k] for k in keys]


def _outputs(model, x):
    out = model.predict(x, verbose=0)
    return out if isinstance(out, list) else [out]


@pytest.fixture(scope="module")
def keras_saved(tmp_path_factory):
    """Every shared model, built, randomized and saved by Keras in each of its formats."""
    tmp = str(tmp_path_factory.mktemp("from_keras"))
    jobs, data = [], {}
    for name in NAMES:
        x, xpath = _x(name, tmp)
        stem = os.path.join(tmp, name)
        data[name] = (x, stem)
        jobs.append({"op": "save", "name": name, "x": xpath, "stem": stem, "out": stem + "_y.npz", "seed": 5})
    x = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    xpath, stem = os.path.join(tmp, "lambda_x.npz"), os.path.join(tmp, "lambda")
    np.savez(xpath, x0=x)
    data["lambda"] = (x, stem)
    jobs.append({"op": "lambda", "name": "lambda", "x": xpath, "path": stem + ".keras", "out": stem + "_y.npz"})
    failures = _run_keras(tmp, jobs)
    return data, failures


def test_a_keras_lambda_saved_as_bytecode_loads_only_with_safe_mode_false(keras_saved):
    data, failures = keras_saved
    assert "lambda" not in failures, failures["lambda"]
    x, stem = data["lambda"]
    with pytest.raises(ValueError, match=r"lambda\.keras: .*bytecode.*safe_mode=False"):
        load_model(stem + ".keras")
    model = load_model(stem + ".keras", safe_mode=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), _arrays(stem + "_y.npz", "y")[0], rtol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), x * x * 3.0 + 1.0, rtol=1e-6)


@pytest.mark.parametrize("fmt", ["keras", "json+weights", "legacy_h5"])
@pytest.mark.parametrize("name", NAMES)
def test_a_keras_file_loads_in_rustkeras_and_predicts_the_same(keras_saved, name, fmt):
    data, failures = keras_saved
    assert name not in failures, failures.get(name)
    x, stem = data[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if fmt == "keras":
            model = load_model(stem + ".keras")
        elif fmt == "json+weights":
            with open(stem + ".json") as f:
                model = model_from_json(f.read())
            model.load_weights(stem + ".weights.h5")
        else:
            model = load_model(stem + ".h5")
    expected = _arrays(stem + "_y.npz", "y")
    for got, want in zip(_outputs(model, x), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    if fmt == "keras":
        # Keras' compile_config: Adam and the mse loss, ready to train.
        assert type(model.optimizer).__name__ == "Adam"
        model.fit(x, catalog.targets(model, x), epochs=1, verbose=0)


@pytest.fixture(scope="module")
def rustkeras_saved(tmp_path_factory):
    """Every shared model, built and trained by rustkeras, saved, and loaded back by Keras."""
    tmp = str(tmp_path_factory.mktemp("from_rustkeras"))
    jobs, data = [], {}
    for name in NAMES:
        builder, spec = catalog.SHARED[name]
        model = builder(rustkeras)
        catalog.randomize(model, 2)
        catalog.compile_for_training(model)
        train = catalog.inputs(spec, 12, 3)
        model.fit(train, catalog.targets(model, train), epochs=2, batch_size=5, verbose=0)
        x, xpath = _x(name, tmp)
        stem = os.path.join(tmp, name)
        model.save(stem + ".keras")
        model.save_weights(stem + ".weights.h5")
        with open(stem + ".json", "w") as f:
            f.write(model.to_json())
        data[name] = (model, x, stem)
        jobs.append({"op": "load", "name": name, "path": stem + ".keras", "x": xpath, "out": stem + "_k.npz"})
        jobs.append({"op": "json", "name": name + ":json", "json": stem + ".json", "weights": stem + ".weights.h5",
                     "x": xpath, "out": stem + "_kj.npz"})
    failures = _run_keras(tmp, jobs)
    return data, failures


@pytest.mark.parametrize("name", NAMES)
def test_a_rustkeras_file_loads_in_keras_and_predicts_the_same(rustkeras_saved, name):
    data, failures = rustkeras_saved
    assert name not in failures and f"{name}:json" not in failures, failures
    model, x, stem = data[name]
    expected = _outputs(model, x)
    for out in ("_k.npz", "_kj.npz"):
        for got, want in zip(_arrays(stem + out, "y"), expected):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    for got, want in zip(_arrays(stem + "_k.npz", "w"), model.get_weights()):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", NAMES)
def test_keras_restores_the_optimizer_state_rustkeras_saved(rustkeras_saved, name):
    data, _ = rustkeras_saved
    model, _, stem = data[name]
    restored = _arrays(stem + "_k.npz", "opt")
    with h5py.File(stem + ".weights.h5") as f:
        saved = [f["optimizer/vars"][str(i)][()] for i in range(len(f["optimizer/vars"]))]
    # Keras built its optimizer for its own variables and took rustkeras' values in that order:
    # the counts and every shape agree, and so do the values.
    assert len(restored) == len(saved) == 2 + 2 * len(model._core.trainable_vars())  # Adam: 2 slots a variable
    assert int(restored[0]) == int(saved[0]) == model.optimizer.iterations
    for got, want in zip(restored[1:], saved[1:]):
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)



def _targets_for_variant(tmp_path, name):
    rng = np.random.default_rng(4)
    if name == "dense":
        y = [np.eye(3, dtype="float32")[rng.integers(0, 3, size=9)]]
    else:
        y = [rng.normal(size=(9, 3)).astype("float32"), rng.normal(size=(9, 1)).astype("float32")]
    ypath = str(tmp_path / "y.npz")
    np.savez(ypath, **{f"y{i}": a for i, a in enumerate(y)})
    return y, ypath


@pytest.mark.parametrize("name", ["dense", "merging"])
def test_keras_compile_configs_with_objects_and_dicts_evaluate_the_same(tmp_path, name):
    x, xpath = _x(name, str(tmp_path))
    y, ypath = _targets_for_variant(tmp_path, name)
    path, out = str(tmp_path / "m.keras"), str(tmp_path / "logs.json")
    failures = _run_keras(str(tmp_path), [{"op": "compiled", "name": name, "x": xpath, "y": ypath, "path": path,
                                           "out": out}])
    assert not failures, failures
    with open(out) as f:
        expected = json.load(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_model(path)
    logs = model.evaluate(x, y if len(y) > 1 else y[0], batch_size=9, verbose=0, return_dict=True)
    assert set(logs) == set(expected)
    for k, v in expected.items():
        assert logs[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k


@pytest.mark.parametrize("name", ["dense", "merging"])
def test_rustkeras_compile_configs_evaluate_the_same_in_keras(tmp_path, name):
    x, xpath = _x(name, str(tmp_path))
    y, ypath = _targets_for_variant(tmp_path, name)
    model = catalog.SHARED[name][0](rustkeras)
    catalog.randomize(model, 3)
    catalog.keras_compile_variant(rustkeras, model, name)
    path, out = str(tmp_path / "m.keras"), str(tmp_path / "logs.json")
    model.save(path)
    failures = _run_keras(str(tmp_path), [{"op": "evaluate", "name": name, "x": xpath, "y": ypath, "path": path,
                                           "out": out}])
    assert not failures, failures
    with open(out) as f:
        keras_logs = json.load(f)
    logs = model.evaluate(x, y if len(y) > 1 else y[0], batch_size=9, verbose=0, return_dict=True)
    assert set(logs) == set(keras_logs)
    for k, v in keras_logs.items():
        assert logs[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
