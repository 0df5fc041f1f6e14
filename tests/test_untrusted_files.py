"""Files rustkeras did not write, or that were damaged on the way. Every loader (`load_model` on
a `.keras` zip, its unzipped directory and Keras 2's `.h5`; `load_weights` on `.weights.h5`,
`.keras` and legacy `.h5`; file objects) answers a missing, empty, truncated, corrupted,
foreign, hostile or absurd file with a ValueError or an OSError whose message names the file
and what was wrong; it allocates nothing a file merely claims, follows no link out of a saved
directory, never unpickles, and runs nothing a file names (a Lambda's saved bytecode needs
`safe_mode=False`)."""

import ast
import codecs
import io
import json
import marshal
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
import zlib

import h5py
import numpy as np
import pytest

import rustkeras
from rustkeras import Input, Sequential, layers, ops
from rustkeras.models import load_model, model_from_json

ROOT = pathlib.Path(__file__).resolve().parent.parent
ERRORS = (ValueError, OSError)


def _model():
    m = Sequential([Input((3,)), layers.Dense(2, name="out"), layers.Dropout(0.5, name="drop")])
    m.compile(optimizer="adam", loss="mse")
    return m


def _legacy_h5(path, function=None):
    """A Keras 2 `.h5` model file (config attribute, per-layer weight groups); with `function`,
    a Lambda after the Dense layer, saved as Keras 2 saves it."""
    lam = [] if function is None else [{"class_name": "Lambda", "config": {
        "name": "lambda", "function": function, "function_type": "lambda", "module": "__main__",
        "output_shape": None, "output_shape_type": "raw", "output_shape_module": None, "arguments": {}}}]
    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "Dense", "config": {"name": "dense", "units": 2, "batch_input_shape": [None, 3]}}] + lam}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"dense"] + [b"lambda"] * bool(lam)
        if lam:
            g.create_group("lambda").attrs["weight_names"] = np.array([], dtype="S1")
        lg = g.create_group("dense")
        lg.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        lg["dense/kernel:0"] = np.arange(6, dtype="float32").reshape(3, 2)
        lg["dense/bias:0"] = np.ones(2, "float32")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A trained model (so that the files hold optimizer slots and mask seeds) and a valid file
    of every format: `{kind: path}`."""
    d = tmp_path_factory.mktemp("untrusted")
    m = _model()
    m.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)
    m.save(d / "good.keras")
    m.save(d / "good_dir", zipped=False)
    m.save_weights(d / "good.weights.h5")
    _legacy_h5(d / "good.h5")
    return m, d


# The loaders, by the kind of file each reads: (name of the valid file, how it is loaded).
LOADERS = {
    "keras": ("good.keras", lambda m, p: load_model(p)),
    "h5": ("good.h5", lambda m, p: load_model(p)),
    "weights.h5": ("good.weights.h5", lambda m, p: m.load_weights(p)),
    "keras->load_weights": ("good.keras", lambda m, p: m.load_weights(p)),
    "h5->load_weights": ("good.h5", lambda m, p: _model_for_legacy().load_weights(p)),
}


def _model_for_legacy():
    return Sequential([Input((3,)), layers.Dense(2)])


def _refused(fn, path, *patterns, kinds=ERRORS):
    """Runs `fn`, which must raise one of `kinds` naming `path` and matching each pattern."""
    with pytest.raises(kinds) as info:
        fn()
    message = str(info.value)
    assert str(path) in message, message
    for pattern in patterns:
        assert re.search(pattern, message, re.S), (pattern, message)
    return message


def _suffix(name):
    return name[name.index("."):]


# -- missing, empty, foreign, truncated ----------------------------------------------------


@pytest.mark.parametrize("kind", list(LOADERS))
def test_missing_empty_directory_and_garbage_files(files, kind, tmp_path):
    m, d = files
    good, load = LOADERS[kind]
    ext = _suffix(good)
    missing = tmp_path / f"missing{ext}"
    _refused(lambda: load(m, missing), missing, "(?i)not found|no such file")
    (tmp_path / f"empty{ext}").write_bytes(b"")
    _refused(lambda: load(m, tmp_path / f"empty{ext}"), tmp_path / f"empty{ext}", "received an empty file")
    (tmp_path / f"garbage{ext}").write_bytes(np.random.default_rng(0).bytes(5000))
    _refused(lambda: load(m, tmp_path / f"garbage{ext}"), tmp_path / f"garbage{ext}",
             "expected .*received 5000 bytes of an unknown format")
    if kind != "keras":  # a directory named .keras is the unzipped form (below)
        (tmp_path / f"adir{ext}").mkdir()
        _refused(lambda: load(m, tmp_path / f"adir{ext}"), tmp_path / f"adir{ext}", "received a directory")


@pytest.mark.parametrize("kind", list(LOADERS))
def test_files_cut_short_anywhere(files, kind, tmp_path):
    m, d = files
    good, load = LOADERS[kind]
    data = (d / good).read_bytes()
    n = len(data)
    # The HDF5 superblock and root group, the zip's first local header, the middle of the data,
    # and the zip's central directory and end record.
    offsets = sorted({1, 7, 8, 20, 47, 96, 300, n // 4, n // 2, 3 * n // 4, n - 300, n - 100, n - 40, n - 22, n - 1})
    cut = tmp_path / f"cut{_suffix(good)}"
    for offset in offsets:
        cut.write_bytes(data[:offset])
        _refused(lambda: load(m, cut), cut, "expected|truncated|damaged")


def test_corrupted_bytes_are_an_error_or_a_load_never_a_crash(files, tmp_path):
    """Bytes overwritten at offsets across each file (headers, HDF5 object headers, B-trees,
    data, the zip directory). Run in a process of its own, so that a crash of the HDF5 library
    would fail this test instead of ending the run."""
    _, d = files
    script = tmp_path / "sweep.py"
    script.write_text(_SWEEP)
    # The child imports rustkeras from where this process did (the source tree after
    # `maturin develop`, site-packages after `pip install .`).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, str(script), str(d), str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) > 50
    for case, (kind, message) in results.items():
        assert kind in ("ok", "ValueError", "OSError", "FileNotFoundError"), (case, kind, message)
        if kind != "ok":
            assert "corrupt" in message, (case, message)


_SWEEP = r'''
import json, os, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from rustkeras import Input, Sequential, layers
from rustkeras.models import load_model

d, out = sys.argv[1], sys.argv[2]
def model():
    m = Sequential([Input((3,)), layers.Dense(2, name="out"), layers.Dropout(0.5)])
    m.compile(optimizer="adam", loss="mse")
    return m
loaders = {"good.keras": lambda p: load_model(p), "good.weights.h5": lambda p: model().load_weights(p),
           "good.h5": lambda p: load_model(p)}
rng = np.random.default_rng(1)
results = {}
for name, load in loaders.items():
    data = open(os.path.join(d, name), "rb").read()
    for offset in list(range(0, 1024, 64)) + list(range(1024, len(data), max(1, len(data) // 24))):
        bad = bytearray(data)
        bad[offset:offset + 8] = rng.bytes(len(bad[offset:offset + 8]))
        path = os.path.join(out, "corrupt" + name[name.index("."):])
        with open(path, "wb") as f:
            f.write(bytes(bad))
        try:
            load(path)
            results[f"{name}@{offset}"] = ["ok", ""]
        except Exception as e:
            results[f"{name}@{offset}"] = [type(e).__name__, str(e)]
print(json.dumps(results))
'''


def test_files_of_another_format(files, tmp_path):
    m, d = files
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    for ext in (".keras", ".h5", ".weights.h5"):
        (tmp_path / f"image{ext}").write_bytes(png)
        (tmp_path / f"text{ext}").write_text('{"class_name": "Sequential"}')
    _refused(lambda: load_model(tmp_path / "image.keras"), tmp_path / "image.keras",
             r"not a zip archive.*expected a \.keras file.*received a PNG image")
    _refused(lambda: load_model(tmp_path / "text.keras"), tmp_path / "text.keras", "received JSON text")
    _refused(lambda: load_model(tmp_path / "image.h5"), tmp_path / "image.h5",
             "not a readable HDF5 file.*received a PNG image")
    _refused(lambda: load_model(tmp_path / "text.h5"), tmp_path / "text.h5", "received JSON text")
    _refused(lambda: m.load_weights(tmp_path / "image.weights.h5"), tmp_path / "image.weights.h5",
             "received a PNG image")
    # A weights file where a model is expected, and a .keras archive where weights are.
    shutil.copy(d / "good.weights.h5", tmp_path / "w.keras")
    _refused(lambda: load_model(tmp_path / "w.keras"), tmp_path / "w.keras", "received an HDF5 file")
    _refused(lambda: load_model(d / "good.weights.h5"), d / "good.weights.h5", "weights only.*load_weights")
    shutil.copy(d / "good.keras", tmp_path / "k.weights.h5")
    _refused(lambda: m.load_weights(tmp_path / "k.weights.h5"), tmp_path / "k.weights.h5", "received a zip archive")
    # Zips that are not .keras files, and a .keras whose weights member is something else.
    with zipfile.ZipFile(tmp_path / "noconfig.keras", "w") as z:
        z.writestr("model.weights.h5", (d / "good.weights.h5").read_bytes())
    _refused(lambda: load_model(tmp_path / "noconfig.keras"), tmp_path / "noconfig.keras",
             r"no config\.json.*received a zip archive of \['model.weights.h5'\]")
    _refused(lambda: m.load_weights(tmp_path / "noconfig.keras"), tmp_path / "noconfig.keras", "no config.json")
    _rezip(d / "good.keras", tmp_path / "pngweights.keras", {"model.weights.h5": png})
    _refused(lambda: load_model(tmp_path / "pngweights.keras"), tmp_path / "pngweights.keras",
             r"expected model\.weights\.h5 to be an HDF5 file.*received a PNG image")
    # File objects: named by their name, or their type.
    _refused(lambda: load_model(io.BytesIO(b"garbage" * 10)), "the file object BytesIO", "not a zip archive")
    _refused(lambda: load_model(io.BytesIO((d / "good.keras").read_bytes()[:-30])), "the file object BytesIO",
             "not a zip archive")
    with open(d / "good.weights.h5", "rb") as f:
        _refused(lambda: load_model(f), d / "good.weights.h5", "received an HDF5 file")
    with pytest.raises(TypeError, match="binary"):
        load_model(io.StringIO("{}"))


def _rezip(src, dst, replace):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, replace.get(name, zin.read(name)))
    return dst


# -- hostile configs ----------------------------------------------------------------------


def _with_config(d, tmp_path, edit, name="c.keras"):
    """A copy of good.keras whose config.json went through `edit(config)` (or is `edit`, text)."""
    config = json.loads(zipfile.ZipFile(d / "good.keras").read("config.json"))
    if callable(edit):
        edit(config)
        text = json.dumps(config)
    else:
        text = edit
    return _rezip(d / "good.keras", tmp_path / name, {"config.json": text})


def _layer(config, i=1):
    return config["config"]["layers"][i]


BAD_CONFIGS = {
    "a list": ("[1, 2]", "config.json must hold a JSON object.*received a JSON list"),
    "not JSON": ("{nope", "not valid JSON"),
    "not UTF-8": (b"\xff\xfe{}", "not valid JSON"),
    "no class_name": (lambda c: c.pop("class_name"), "must be a dict with a `class_name`"),
    "config a string": (lambda c: c.__setitem__("config", "x"), "`config` must be a dict. Received: str"),
    "layers a string": (lambda c: c["config"].__setitem__("layers", "abc"), "`layers` must be a list"),
    "a layer a number": (lambda c: c["config"]["layers"].append(5), "`layers` must be a list of layer configs"),
    "a layer's config a list": (lambda c: _layer(c).__setitem__("config", [1]), "must be a dict. Received: list"),
    "units a string": (lambda c: _layer(c)["config"].__setitem__("units", "abc"), "units='abc'"),
    "units negative": (lambda c: _layer(c)["config"].__setitem__("units", -3), "units=-3"),
    "units missing": (lambda c: _layer(c)["config"].pop("units"), "units=None"),
    "a negative input shape": (lambda c: _layer(c, 0)["config"].__setitem__("batch_shape", [None, -3]),
                               r"input_shape=\(-3,\)"),
    "an unknown class": (lambda c: _layer(c).__setitem__("class_name", "Frobnicate"),
                         "Unknown layer class: 'Frobnicate'"),
    "an unknown argument": (lambda c: _layer(c)["config"].__setitem__("frob", 1), "frob"),
    "a name of the wrong type": (lambda c: _layer(c)["config"].__setitem__("name", {"a": 1}), "wrong type"),
    "build_config a number": (lambda c: c.__setitem__("build_config", 5), "`build_config` must be a dict"),
    "nested too deeply": ("[" * 100000 + "]" * 100000, "nested too deeply"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_configs_of_wrong_types_missing_keys_and_unknown_classes(files, tmp_path, case):
    _, d = files
    edit, pattern = BAD_CONFIGS[case]
    path = _with_config(d, tmp_path, edit)
    _refused(lambda: load_model(path), path, pattern, kinds=ValueError)


def test_absurd_sizes_in_a_config_allocate_nothing(files, tmp_path):
    """A layer no machine can hold is refused before anything is allocated: as everywhere in
    rustkeras, a size beyond the memory available is a MemoryError (naming the layer and what
    it needs), here also naming the file."""
    _, d = files
    for edit in (lambda c: _layer(c)["config"].__setitem__("units", 10 ** 12),
                 lambda c: _layer(c, 0)["config"].__setitem__("batch_shape", [None, 10 ** 12]),
                 lambda c: _layer(c)["config"].__setitem__("units", 10 ** 30)):
        path = _with_config(d, tmp_path, edit)
        peak = _peak(lambda: _refused(lambda: load_model(path), path, r'Layer "out" \(Dense\).*needs .* of memory',
                                      kinds=MemoryError))
        assert peak < 64 << 20


def _peak(fn):
    """The peak of Python's allocations (numpy's arrays included) while `fn` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _max_rss_growth(fn):
    """How much the process' peak resident memory grew while `fn` ran (0 where unknown)."""
    try:
        import resource
    except ImportError:
        fn()
        return 0
    scale = 1 if sys.platform == "darwin" else 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * scale


def test_nothing_a_config_names_is_imported_or_called(files, tmp_path):
    """Modules and functions named in a config (`module`, `registered_name`, `function`
    entries, a `__reduce__`-like entry) are only ever looked up among rustkeras' own objects,
    registered ones and custom objects: naming `subprocess.run` with a command that would
    create a marker file is refused, and the marker never appears."""
    _, d = files
    marker = tmp_path / "marker"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    run = {"module": "subprocess", "class_name": "run", "config": {"args": command}, "registered_name": "run"}
    system = {"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}
    layer_edits = [
        lambda c: _layer(c).update(run),
        lambda c: _layer(c).update({"module": "builtins", "class_name": "exec", "registered_name": "builtins>exec",
                                    "config": {"source": f"open({str(marker)!r}, 'w')"}}),
        lambda c: _layer(c)["config"].__setitem__("activation", system),
        lambda c: _layer(c)["config"].__setitem__("activation", "os.system"),
        lambda c: _layer(c)["config"].__setitem__("kernel_initializer", run),
        lambda c: _layer(c)["config"].__setitem__("kernel_regularizer", run),
        lambda c: _layer(c)["config"].__setitem__("activation", {"__reduce__": ["os.system", [" ".join(command)]]}),
        lambda c: _layer(c).update({"class_name": "Lambda", "config": {"name": "l", "function": system}}),
        lambda c: _layer(c).update({"class_name": "Lambda", "config": {"name": "l", "function": "eval"}}),
        lambda c: c.update({**run, "registered_name": "subprocess>run"}),
    ]
    for i, edit in enumerate(layer_edits):
        path = _with_config(d, tmp_path, edit, name=f"hostile{i}.keras")
        _refused(lambda: load_model(path), path, kinds=ValueError)
    # In compile_config, what cannot be found leaves the model uncompiled (as in Keras).
    compile_edits = [
        lambda c: c["compile_config"].__setitem__("loss", system),
        lambda c: c["compile_config"].__setitem__("optimizer", run),
        lambda c: c["compile_config"].__setitem__("metrics", [system]),
        lambda c: c["compile_config"]["optimizer"]["config"].__setitem__("learning_rate", run),
    ]
    for i, edit in enumerate(compile_edits):
        path = _with_config(d, tmp_path, edit, name=f"compile{i}.keras")
        with pytest.warns(UserWarning, match="uncompiled"):
            model = load_model(path)
        assert model.optimizer is None
    assert not marker.exists()


# -- a Lambda's bytecode -------------------------------------------------------------------


def _dump(fn):
    """A function as Keras' `func_dump` saves it: the base64 of its marshalled code, its
    defaults and its closure's values."""
    code = codecs.encode(marshal.dumps(fn.__code__), "base64").decode("ascii")
    closure = [c.cell_contents for c in fn.__closure__] if fn.__closure__ else None
    return code, list(fn.__defaults__ or []) or None, closure


def _scaled(k):
    return lambda x: ops.square(x) * k + 1.0


def test_a_lambda_saved_as_bytecode_needs_safe_mode_false(files, tmp_path):
    _, d = files
    marker = tmp_path / "marker"
    code, defaults, closure = _dump(_scaled(3.0))
    lam = {"name": "lam", "function": {"class_name": "__lambda__", "config": {
        "code": code, "defaults": defaults, "closure": closure}}, "arguments": {}}

    def edit(c):
        c["config"]["layers"] = c["config"]["layers"][:1] + [{"module": "keras.layers", "class_name": "Lambda",
                                                              "config": lam, "registered_name": None}]
        c.pop("compile_config")

    path = _with_config(d, tmp_path, edit)
    _refused(lambda: load_model(path), path, r'Lambda "lam".*bytecode.*pass `safe_mode=False`', kinds=ValueError)
    x = np.array([[1.0, -2.0, 0.5]], "float32")
    np.testing.assert_allclose(load_model(path, safe_mode=False).predict(x, verbose=0), x * x * 3.0 + 1.0)
    # model_from_json follows the scope (or `rustkeras.config.enable_unsafe_deserialization()`).
    entry = json.loads(zipfile.ZipFile(path).read("config.json"))
    with pytest.raises(ValueError, match="safe_mode=False"):
        model_from_json(json.dumps(entry))
    with rustkeras.saving.SafeModeScope(False):
        np.testing.assert_allclose(model_from_json(json.dumps(entry)).predict(x, verbose=0), x * x * 3.0 + 1.0)
    # An output_shape saved as bytecode is refused alike; code that would act is never run.
    where = str(marker)
    act = _dump(lambda x: open(where, "w") and x)
    lam["function"]["config"] = dict(zip(("code", "defaults", "closure"), act))
    path = _with_config(d, tmp_path, edit, name="acts.keras")
    _refused(lambda: load_model(path), path, "safe_mode=False", kinds=ValueError)
    lam["function"] = {"class_name": "function", "config": "double", "module": "os"}
    lam["output_shape"] = {"class_name": "__lambda__", "config": dict(zip(("code", "defaults", "closure"), act))}
    path = _with_config(d, tmp_path, edit, name="shape.keras")
    _refused(lambda: load_model(path, custom_objects={"double": lambda x: x * 2}), path,
             r"`output_shape` was saved as Python bytecode", kinds=ValueError)
    assert not marker.exists()
    # Keras 2's form in a legacy .h5 file: [code, defaults, closure] with function_type "lambda".
    _legacy_h5(tmp_path / "lambda.h5", function=list(_dump(_scaled(2.0))))
    _refused(lambda: load_model(tmp_path / "lambda.h5"), tmp_path / "lambda.h5", "safe_mode=False", kinds=ValueError)
    legacy = load_model(tmp_path / "lambda.h5", safe_mode=False)
    h = x @ np.arange(6, dtype="float32").reshape(3, 2) + 1.0
    np.testing.assert_allclose(legacy.predict(x, verbose=0), h * h * 2.0 + 1.0, rtol=1e-6)
    # Bytecode this Python cannot read is a ValueError, with safe_mode=False too.
    lam["function"]["config"] = {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None}
    lam.pop("output_shape")
    lam["function"]["class_name"] = "__lambda__"
    path = _with_config(d, tmp_path, edit, name="cut.keras")
    _refused(lambda: load_model(path, safe_mode=False), path, "cannot be rebuilt", kinds=ValueError)


def test_no_loader_unpickles_evaluates_or_imports():
    """The loaders' source imports no pickle or importlib and calls none of eval, exec,
    compile, __import__, np.load (so numpy's allow_pickle never comes up) or an unpickler;
    marshal is called in one function only, the Lambda's rebuild that safe_mode=False alone
    reaches. (h5py object references, vlen and opaque data are refused by their dtype: see
    test_weights_that_are_not_numbers.)"""
    package = ROOT / "python" / "rustkeras"
    sources = sorted((package / "_saving").glob("*.py")) + [package / "saving.py",
                                                           package / "layers" / "lambda_layer.py"]
    marshal_calls = []
    for source in sources:
        tree = ast.parse(source.read_text())
        for function in [tree] + [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                    assert not any(n.split(".")[0] in ("pickle", "importlib", "dill", "cloudpickle", "shelve")
                                   for n in names), (source.name, names)
                if isinstance(node, ast.keyword):
                    assert node.arg != "allow_pickle", source.name
                if not isinstance(node, ast.Call):
                    continue
                f = node.func
                if isinstance(f, ast.Name):
                    assert f.id not in ("eval", "exec", "compile", "__import__"), (source.name, node.lineno)
                elif isinstance(f, ast.Attribute):
                    owner = f.value.id if isinstance(f.value, ast.Name) else None
                    assert f.attr not in ("import_module", "Unpickler"), (source.name, node.lineno)
                    assert not (f.attr == "load" and owner in ("np", "numpy", "pickle")), (source.name, node.lineno)
                    assert not (f.attr == "loads" and owner not in ("json", "marshal")), (source.name, node.lineno)
                    if owner == "marshal" and function is not tree:
                        marshal_calls.append((source.name, function.name))
    assert set(marshal_calls) == {("lambda_layer.py", "_function_from_bytecode")}, marshal_calls


# -- hostile HDF5 contents ----------------------------------------------------------------


def _patched_weights(d, tmp_path, edit, kind="weights.h5"):
    """A copy of the weights (as a `.weights.h5`, or inside a `.keras`) edited by `edit(h5py.File)`."""
    h5 = tmp_path / "edit.weights.h5"
    if kind == "keras":
        h5.write_bytes(zipfile.ZipFile(d / "good.keras").read("model.weights.h5"))
    else:
        shutil.copy(d / "good.weights.h5", h5)
    with h5py.File(h5, "a") as f:
        edit(f)
    if kind == "keras":
        return _rezip(d / "good.keras", tmp_path / "edit.keras", {"model.weights.h5": h5.read_bytes()})
    return h5


def _replace(path, dataset_kwargs):
    def edit(f):
        group, name = path.rsplit("/", 1)
        del f[path]
        f[group].create_dataset(name, **dataset_kwargs)

    return edit


# About 128 GB that the file does not hold (chunked, never written): reading it would allocate it.
HUGE = {"shape": (1 << 17, 1 << 18), "dtype": "float32", "chunks": (1, 64)}


@pytest.mark.parametrize("kind", ["keras", "weights.h5"])
def test_datasets_claiming_huge_shapes_are_refused_before_allocating(files, tmp_path, kind):
    m, d = files
    path = _patched_weights(d, tmp_path, _replace("layers/dense/vars/0", HUGE), kind)
    assert path.stat().st_size < 1 << 20
    load = (lambda: load_model(path)) if kind == "keras" else (lambda: m.load_weights(path))
    grew = _max_rss_growth(lambda: _peak_checked(lambda: _refused(
        load, path, r'layer "out".*variable 0 \(kernel\) has shape \(3, 2\); the file has \(131072, 262144\)')))
    assert grew < 256 << 20


def _peak_checked(fn):
    assert _peak(fn) < 16 << 20


def test_optimizer_and_legacy_datasets_claiming_huge_shapes(files, tmp_path):
    m, d = files
    # An optimizer slot of 128 GB, and one whose int64 element count wraps around to the
    # kernel's 6 (18 * 3074457345618258603 = 3 * 2**64 + 6): skipped with a warning, unread.
    for shape in (HUGE["shape"], (18, 3074457345618258603)):
        path = _patched_weights(d, tmp_path, _replace("optimizer/vars/2", {**HUGE, "shape": shape}))
        with pytest.warns(UserWarning, match=r"Skipping the optimizer's state: variable 2 has shape"):
            assert _peak(lambda: m.load_weights(path)) < 16 << 20
    # A learning rate no float32 holds is skipped alike.
    path = _patched_weights(d, tmp_path, _replace("optimizer/vars/1", {"data": np.float64(1e300)}))
    with pytest.warns(UserWarning, match="learning rate is 1e\\+300"):
        m.load_weights(path)
    # A Keras 2 file's kernel.
    shutil.copy(d / "good.h5", tmp_path / "huge.h5")
    with h5py.File(tmp_path / "huge.h5", "a") as f:
        _replace("model_weights/dense/dense/kernel:0", HUGE)(f)
    for load in (lambda: load_model(tmp_path / "huge.h5"), lambda: _model_for_legacy().load_weights(tmp_path / "huge.h5")):
        assert _peak(lambda: _refused(load, tmp_path / "huge.h5", r"\(131072, 262144\)")) < 16 << 20


def test_compressed_datasets_are_refused_before_inflating(files, tmp_path):
    """HDF5's deflate filter inflates a chunk's whole stream, whatever the dataset's size: a
    6-float kernel whose chunk inflates to 1 GB is refused by its filter, before any read. A
    filter that expands nothing (shuffle, fletcher32) is read."""
    m, d = files
    stream = _zeros_deflate(1024, zlib_format=True)

    def bomb(f):
        _replace("layers/dense/vars/0", {"shape": (3, 2), "dtype": "float32", "chunks": (3, 2),
                                         "compression": "gzip"})(f)
        f["layers/dense/vars/0"].id.write_direct_chunk((0, 0), stream)

    path = _patched_weights(d, tmp_path, bomb)
    grew = _max_rss_growth(lambda: _refused(lambda: m.load_weights(path), path,
                                            r"variable 0 is stored through the HDF5 filter 1 \(deflate\)"))
    assert grew < 256 << 20
    kernel = np.arange(6, dtype="float32").reshape(3, 2)
    path = _patched_weights(d, tmp_path, _replace("layers/dense/vars/0", {"data": kernel, "shuffle": True,
                                                                           "fletcher32": True}))
    twin = _model()
    twin.load_weights(path)
    np.testing.assert_array_equal(twin.get_weights()[0], kernel)


@pytest.mark.parametrize("dtype", ["string", "vlen", "compound", "complex", "bytes", "reference", "opaque"])
def test_weights_that_are_not_numbers(files, tmp_path, dtype):
    m, d = files
    dt = {"string": h5py.string_dtype(), "vlen": h5py.vlen_dtype("float32"),
          "compound": np.dtype([("a", "f4"), ("b", "i4")]), "complex": np.complex64, "bytes": "S4",
          "reference": h5py.ref_dtype, "opaque": np.dtype("V4")}[dtype]
    path = _patched_weights(d, tmp_path, _replace("layers/dense/vars/1", {"shape": (2,), "dtype": dt}))
    _refused(lambda: m.load_weights(path), path, r'layer "out".*variable 1 has dtype .*expected numbers')


def test_hdf5_structures_that_lie(files, tmp_path):
    m, d = files
    cases = [
        # A mask seed attribute that is an array, or text.
        (lambda f: f["layers/dropout/vars"].attrs.__setitem__("rustkeras_key", np.arange(10, dtype="uint64")),
         r'mask seed of layer "drop" must be an integer scalar; .*shape \(10,\)'),
        (lambda f: f["layers/dropout/vars"].attrs.__setitem__("rustkeras_key", "abc"), "integer scalar"),
        # A group where a dataset should be, a dataset where a group should be.
        (_group_for("layers/dense/vars/0"), "variable 0 is not a dataset"),
        (lambda f: (f.__delitem__("layers/dense/vars"), f["layers/dense"].create_dataset("vars", data=[1.0])),
         "is not a group"),
        # Links: to elsewhere in the file, to another file.
        (lambda f: (f.__delitem__("layers/dense/vars/0"),
                    f["layers/dense/vars"].__setitem__("0", h5py.SoftLink("/optimizer/vars/2"))), "SoftLink"),
        (lambda f: (f.__delitem__("layers/dense/vars/0"),
                    f["layers/dense/vars"].__setitem__("0", h5py.ExternalLink("/etc/hostname", "/x"))),
         "ExternalLink"),
        # Counters out of range.
        (_replace("rustkeras_engine/seed", {"data": np.int64(-5)}), "non-negative integer, the file has -5"),
        (_replace("optimizer/vars/0", {"data": np.float64(2.5)}), "expected an integer, the file has 2.5"),
    ]
    for edit, pattern in cases:
        path = _patched_weights(d, tmp_path, edit)
        _refused(lambda: m.load_weights(path), path, pattern, kinds=ValueError)


def _group_for(path):
    def edit(f):
        group, name = path.rsplit("/", 1)
        del f[path]
        f[group].create_group(name)

    return edit


# -- hostile archives ---------------------------------------------------------------------


def _zip(path, entries):
    """A zip written byte by byte: `entries` of (name, method, raw bytes, crc, uncompressed
    size, flags), so that members may lie about their sizes."""
    out, directory = bytearray(), bytearray()
    for name, method, raw, crc, size, flags in entries:
        encoded = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0, crc, len(raw), size, len(encoded), 0)
        out += encoded + raw
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0, 0, crc, len(raw), size,
                                 len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    out += directory + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory),
                                   len(out), 0)
    path.write_bytes(bytes(out))
    return path


def _stored(name, data):
    return (name, zipfile.ZIP_STORED, data, zlib.crc32(data), len(data), 0)


def _zeros_deflate(mib, zlib_format=False):
    """A raw deflate stream (or, `zlib_format`, a zlib one, as HDF5 stores) of `mib` MiB of
    zeros, built from one compressed MiB repeated (each ends in a full flush, so they join):
    about 1 KB a MiB, made in milliseconds."""
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = z.compress(bytes(1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)
    raw = block * mib + z.flush()
    if not zlib_format:
        return raw
    adler = ((mib << 20) % 65521) << 16 | 1  # Adler-32 of zeros: A stays 1, B counts the bytes
    return b"\x78\xda" + raw + struct.pack(">I", adler)


def _zeros_crc(mib):
    crc, block = 0, bytes(1 << 20)
    for _ in range(mib):
        crc = zlib.crc32(block, crc)
    return crc


def test_zip_bombs_are_refused_by_what_they_declare_and_never_read_further(files, tmp_path):
    _, d = files
    members = {n: zipfile.ZipFile(d / "good.keras").read(n) for n in zipfile.ZipFile(d / "good.keras").namelist()}
    bomb = _zeros_deflate(1024)  # 1 GiB of zeros in about 1 MB
    crc = _zeros_crc(1024)
    for target in ("config.json", "model.weights.h5"):
        entries = [_stored(n, v) for n, v in members.items() if n != target]
        path = _zip(tmp_path / "bomb.keras", entries + [(target, zipfile.ZIP_DEFLATED, bomb, crc, 1 << 30, 0)])
        assert path.stat().st_size < 2 << 20
        grew = _max_rss_growth(lambda: _refused(
            lambda: load_model(path), path, f"member {target} would expand from {len(bomb)} to 1073741824 bytes.*"
            "zip bomb"))
        assert grew < 256 << 20
        # The same stream declaring the size of the real member: reading stops there (and
        # fails its CRC), never inflating the rest.
        entries.append((target, zipfile.ZIP_DEFLATED, bomb, zlib.crc32(members[target]), len(members[target]), 0))
        path = _zip(tmp_path / "liar.keras", entries)
        grew = _max_rss_growth(lambda: _refused(lambda: load_model(path), path, "CRC"))
        assert grew < 256 << 20
    # A config larger than any config is refused by its declared size, unread.
    entries = [_stored(n, v) for n, v in members.items() if n != "config.json"]
    path = _zip(tmp_path / "big.keras", entries + [_stored("config.json", b" " * ((64 << 20) + 1))])
    peak = _peak(lambda: _refused(lambda: load_model(path), path,
                                  "config.json claims 67108865 bytes; expected a config of at most 64 MiB"))
    assert peak < 16 << 20


def test_members_that_lie_about_their_place_size_or_kind(files, tmp_path):
    _, d = files
    members = {n: zipfile.ZipFile(d / "good.keras").read(n) for n in zipfile.ZipFile(d / "good.keras").namelist()}
    good = [_stored(n, v) for n, v in members.items()]
    config = good[[e[0] for e in good].index("config.json")]
    others = [e for e in good if e[0] != "config.json"]
    cases = [
        ([(*config[:3], config[3], 0xFFFFFFF0, 0)] + others, "stored uncompressed but claims 4294967280 bytes"),
        ([(*config[:3], 12345, config[4], 0)] + others, "CRC"),
        ([(*config[:2], config[2] + bytes(4000), *config[3:])] + others, "stored uncompressed but claims"),
        ([(config[0], 99, *config[2:])] + others, "compression method 99"),
        ([(*config[:5], 0x1)] + others, "encrypted"),
    ]
    for entries, pattern in cases:
        path = _zip(tmp_path / "liar.keras", entries)
        _refused(lambda: load_model(path), path, pattern)
    # A member whose data would run past the central directory (its offset shifted).
    path = _zip(tmp_path / "past.keras", good)
    data = bytearray(path.read_bytes())
    directory = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, directory + 20, len(data))  # compressed size
    struct.pack_into("<I", data, directory + 24, len(data))  # uncompressed size
    path.write_bytes(bytes(data))
    _refused(lambda: load_model(path), path, "past the end of its data|damaged")


@pytest.mark.parametrize("name", ["../evil.json", "/etc/evil", "a/../../b", "dir\\file", "C:/x", "c:x",
                                  "..\\config.json", "config.json"])
def test_unsafe_and_repeated_member_names_are_refused(files, tmp_path, name):
    m, d = files
    members = {n: zipfile.ZipFile(d / "good.keras").read(n) for n in zipfile.ZipFile(d / "good.keras").namelist()}
    path = _zip(tmp_path / "names.keras", [_stored(n, v) for n, v in members.items()] + [_stored(name, b"{}")])
    pattern = "two members named 'config.json'" if name == "config.json" else "unsafe path"
    _refused(lambda: load_model(path), path, pattern, kinds=ValueError)
    _refused(lambda: m.load_weights(path), path, pattern, kinds=ValueError)


# -- the unzipped directory, links and special files ---------------------------------------


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="POSIX links")
def test_links_out_of_an_unzipped_directory_are_refused(files, tmp_path):
    m, d = files
    saved = tmp_path / "saved.keras"
    shutil.copytree(d / "good_dir", saved)
    outside = tmp_path / "outside"
    outside.mkdir()
    for member in ("config.json", "model.weights.h5"):
        shutil.copy(saved / member, outside / member)
        (saved / member).unlink()
        (saved / member).symlink_to(outside / member)
        _refused(lambda: load_model(saved), saved, f"{member} is a link to .*outside the directory",
                 kinds=ValueError)
        (saved / member).unlink()
        (saved / member).symlink_to(os.path.join("..", "outside", member))
        _refused(lambda: load_model(saved), saved, "outside the directory", kinds=ValueError)
        # A link that stays inside is followed.
        (saved / member).unlink()
        shutil.copy(outside / member, saved / f"real_{member}")
        (saved / member).symlink_to(f"real_{member}")
        load_model(saved)
    (saved / "config.json").unlink()
    _refused(lambda: load_model(saved), saved, "has no config.json", kinds=ValueError)
    (saved / "config.json").mkdir()
    _refused(lambda: load_model(saved), saved, "config.json to be a file; received a directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_fifos_and_devices_are_refused_without_blocking(files, tmp_path):
    m, d = files
    for name, load in [("pipe.keras", load_model), ("pipe.h5", load_model), ("pipe.weights.h5", m.load_weights),
                       ("pipe2.keras", m.load_weights)]:
        os.mkfifo(tmp_path / name)
        _refused(lambda: load(tmp_path / name), tmp_path / name, "received a FIFO", kinds=ValueError)
    saved = tmp_path / "saved.keras"
    shutil.copytree(d / "good_dir", saved)
    (saved / "model.weights.h5").unlink()
    os.mkfifo(saved / "model.weights.h5")
    _refused(lambda: load_model(saved), saved, "model.weights.h5 to be a file; received a FIFO", kinds=ValueError)
    if os.path.exists("/dev/zero"):
        (tmp_path / "zero.weights.h5").symlink_to("/dev/zero")
        _refused(lambda: m.load_weights(tmp_path / "zero.weights.h5"), tmp_path / "zero.weights.h5",
                 "received a device", kinds=ValueError)


def test_a_loaded_file_is_never_changed(files, tmp_path):
    """Loading opens files to read only: a hostile file is refused and left as it was, and a
    good one is byte for byte the same after it loaded."""
    m, d = files
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    load_model(d / "good.keras")
    load_model(d / "good_dir")
    load_model(d / "good.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.load_weights(d / "good.weights.h5")
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()} == before
