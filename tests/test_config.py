"""The config file (like keras.json) and RUSTKERAS_BACKEND; the GPU fallback; the backend module's K.dot.
Each config case runs in a fresh interpreter, since the file is read at import; the GPU probe
(`_core.gpu_status`) is replaced by a stand-in, so no case needs a GPU or a GPU build."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest


def run(code: str, home: str, **env):
    e = dict(os.environ, RUSTKERAS_HOME=home)
    e.pop("RUSTKERAS_BACKEND", None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=120)


def test_config_file_sets_backend_and_epsilon(tmp_path):
    (tmp_path / "rustkeras.json").write_text(json.dumps({"backend": "cpu", "epsilon": 1e-5, "floatx": "float32",
                                                          "image_data_format": "channels_first"}))
    r = run("from rustkeras import backend as K; print(K.backend(), K.epsilon(), K.image_data_format())", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cpu", "1e-05", "channels_first"]


def test_defaults_without_a_file(tmp_path):
    r = run("from rustkeras import backend as K; print(K.backend(), K.floatx(), K.epsilon())", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cpu", "float32", "1e-07"]


# Stand in for the engine's GPU probe, so that these cases mean the same on every machine.
NO_GPU = "from rustkeras import _core; _core.gpu_status = lambda: (False, 'no Vulkan adapter found (test)');"
A_GPU = "from rustkeras import _core; _core.gpu_status = lambda: (True, 'Test GPU');"


def test_environment_overrides_the_file(tmp_path):
    (tmp_path / "rustkeras.json").write_text(json.dumps({"backend": "cpu"}))
    r = run(A_GPU + "from rustkeras import backend as K; print(K.backend())", str(tmp_path), RUSTKERAS_BACKEND="gpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "gpu"


def test_gpu_backend_without_a_gpu_warns_once_and_runs_on_the_cpu(tmp_path):
    code = NO_GPU + (
        "from rustkeras import backend as K; from rustkeras.models import Sequential; from rustkeras.layers import Dense;"
        "m = Sequential([Dense(2, input_shape=(3,))]); print(K.backend(), m._core.device(), K.backend())"
    )
    r = run(code, str(tmp_path), RUSTKERAS_BACKEND="gpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cpu", "cpu", "cpu"]
    assert r.stderr.count("RuntimeWarning") == 1
    assert "no Vulkan adapter found (test)" in r.stderr and "falls back to the CPU" in r.stderr


def test_gpu_fallback_in_process(monkeypatch):
    from rustkeras import _core, config

    monkeypatch.setattr(_core, "gpu_status", lambda: (False, "no Vulkan adapter found (test)"), raising=False)
    monkeypatch.setitem(config._config, "backend", "gpu")
    monkeypatch.setattr(config, "_effective", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert config.backend() == "cpu"
        assert config.backend() == "cpu"
    assert len(caught) == 1
    assert caught[0].category is RuntimeWarning
    assert "no Vulkan adapter found (test)" in str(caught[0].message)


def test_gpu_backend_with_a_gpu(monkeypatch):
    from rustkeras import _core, config

    monkeypatch.setattr(_core, "gpu_status", lambda: (True, "Test GPU"), raising=False)
    monkeypatch.setitem(config._config, "backend", "gpu")
    monkeypatch.setattr(config, "_effective", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert config.backend() == "gpu"


def test_set_backend(monkeypatch):
    from rustkeras import config

    monkeypatch.setitem(config._config, "backend", "cpu")
    monkeypatch.setattr(config, "_effective", None)
    config.set_backend("cpu")
    assert config.backend() == "cpu"
    with pytest.raises(ValueError, match="theano"):
        config.set_backend("theano")


def test_devices_lists_the_adapters(monkeypatch):
    from rustkeras import _core
    from rustkeras import backend as K

    adapters = [{"name": "llvmpipe (LLVM 15.0.7, 256 bits)", "type": "Cpu", "api": "Vulkan"}]
    monkeypatch.setattr(_core, "gpu_adapters", lambda: adapters, raising=False)
    assert K.devices() == adapters
    assert "devices" in K.__all__


def test_invalid_backend_and_keys_are_value_errors(tmp_path):
    r = run("import rustkeras", str(tmp_path), RUSTKERAS_BACKEND="theano")
    assert r.returncode == 1 and "ValueError" in r.stderr and "theano" in r.stderr
    (tmp_path / "rustkeras.json").write_text(json.dumps({"backnd": "cpu"}))
    r = run("import rustkeras", str(tmp_path))
    assert r.returncode == 1 and "ValueError" in r.stderr and "backnd" in r.stderr


def test_models_run_on_the_configured_device(tmp_path):
    code = (
        "from rustkeras.models import Sequential; from rustkeras.layers import Dense;"
        "m = Sequential([Dense(2, input_shape=(3,))]); print(m._core.device())"
    )
    r = run(code, str(tmp_path), RUSTKERAS_BACKEND="cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "cpu"


def test_backend_dot_matches_numpy():
    from rustkeras import backend as K

    rng = np.random.default_rng(0)
    for m, k, n in [(1, 1, 1), (3, 5, 7), (64, 33, 17), (200, 300, 100)]:
        a = rng.normal(size=(m, k)).astype(np.float32)
        b = rng.normal(size=(k, n)).astype(np.float32)
        np.testing.assert_allclose(K.dot(a, b), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
