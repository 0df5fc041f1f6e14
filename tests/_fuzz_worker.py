"""The child side of the fuzz tests (tests/test_fuzz.py): a long-lived interpreter that runs
fuzz cases sent as JSON lines on stdin and answers each with one JSON line.

Usage: python _fuzz_worker.py rustkeras|keras

A case runs in here, not in pytest, so that an abort, a segfault or a Rust panic kills (or is
caught in) this process only; the test then reports it and starts a new worker. The `keras`
mode builds the same model in Keras 3 (numpy backend), loads rustkeras' weights into it and
predicts: the reference for output shapes and values.

Every answer is `{"ok": true, ...results}` or `{"ok": false, "type", "mro" (the exception's
class names), "message", "stage", "traceback"}`; `stage` says which step raised (build,
predict, config, save, fit, ...). Arrays travel as nested lists, NaN and infinities as JSON's
NaN/Infinity. Cases and data are described, not pickled: `make_array` builds the same array
from a description in every process, and `decode` turns tagged values into Python objects:
`{"$array": ...}`, `{"$tuple": [...]}`, `{"$np": "int64", "v": 3}`, `{"$dict": [[key, value],
...]}`, `{"$obj": "optimizers.Adam", "args": {...}}` (a call) and `{"$fn": "ops.sum"}`.
"""

import json
import os
import sys
import tempfile
import traceback

import numpy as np


# -- case descriptions ---------------------------------------------------------------------


def make_array(d):
    """The array (or nested list, or scalar) a data description names.

    d: {"shape": [...], "dtype": "float32" | "float64" | "float16" | "int32" | "int64" | "bool",
        "fill": "normal" | "uniform" | "zeros" | "onehot" | "nan" | "inf" | "big" | "int:LO:HI",
        "seed": int, "form": "array" | "list" | "fortran" | "strided"}
    """
    rng = np.random.default_rng(d.get("seed", 0))
    shape = tuple(int(s) for s in d["shape"])
    fill = d.get("fill", "normal")
    if fill.startswith("int:"):
        lo, hi = (int(v) for v in fill[4:].split(":"))
        a = rng.integers(lo, max(hi, lo + 1), size=shape).astype(np.float64)
    elif fill == "onehot":
        a = np.zeros(shape)
        if a.size:
            hot = rng.integers(0, shape[-1], size=shape[:-1])
            np.put_along_axis(a, hot[..., None], 1.0, axis=-1)
    elif fill == "uniform":
        a = rng.uniform(0.0, 1.0, size=shape)
    elif fill == "zeros":
        a = np.zeros(shape)
    elif fill == "big":
        a = rng.standard_normal(shape) * 1e30
    else:
        a = rng.uniform(-2.0, 2.0, size=shape)
        if fill in ("nan", "inf") and a.size:
            bad = rng.random(shape) < 0.3
            bad.flat[rng.integers(0, a.size)] = True
            a[bad] = np.nan if fill == "nan" else np.inf * np.sign(rng.standard_normal(int(bad.sum())))
    dtype = d.get("dtype", "float32")
    if dtype == "bool":
        a = a > 0
    elif dtype.startswith("int"):
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0).round().astype(dtype)
    else:
        a = a.astype(dtype)
    form = d.get("form", "array")
    if form == "list":
        return a.tolist()
    if form == "fortran":
        return np.asfortranarray(a)
    if form == "strided" and a.ndim:
        return np.repeat(a, 2, axis=-1)[..., ::2]
    return a


def decode(v, lib=None):
    """A JSON value with its tagged parts made into Python objects (see the module doc)."""
    if isinstance(v, list):
        return [decode(x, lib) for x in v]
    if not isinstance(v, dict):
        return v
    if "$array" in v:
        return make_array(v["$array"])
    if "$dict" in v:
        return {decode(k, lib): decode(x, lib) for k, x in v["$dict"]}
    if "$tuple" in v:
        return tuple(decode(x, lib) for x in v["$tuple"])
    if "$np" in v:
        return getattr(np, v["$np"])(v["v"])
    if "$fn" in v:
        obj = lib
        for part in v["$fn"].split("."):
            obj = getattr(obj, part)
        return obj
    if "$obj" in v:
        obj = lib
        for part in v["$obj"].split("."):
            obj = getattr(obj, part)
        return obj(**decode(v.get("args", {}), lib))
    return {k: decode(x, lib) for k, x in v.items()}


def make_layer(lib, d):
    """A layer from {"cls", "args", ["wrap": inner layer]} (wrappers take the inner layer first)."""
    cls = getattr(lib.layers, d["cls"])
    args = decode(d.get("args", {}), lib)
    if "wrap" in d:
        return cls(make_layer(lib, d["wrap"]), **args)
    return cls(**args)


def build_model(lib, spec):
    """A model from a description.

    Sequential: {"kind": "sequential", "input": shape, "layers": [layer, ...]}.
    Functional: {"kind": "functional", "inputs": [shape, ...], "nodes": [{"layer": layer or
    {"reuse": node index}, "in": [tensor indices]}], "outputs": [tensor indices]}; tensors are
    numbered inputs first, then one per node.
    """
    if spec["kind"] == "sequential":
        layers = [lib.layers.Input(tuple(decode(spec["input"], lib)))]
        layers += [make_layer(lib, d) for d in spec["layers"]]
        return lib.Sequential(layers)
    tensors = [lib.layers.Input(tuple(decode(s, lib))) for s in spec["inputs"]]
    inputs = list(tensors)
    made = []
    for node in spec["nodes"]:
        if "reuse" in node["layer"]:
            layer = made[node["layer"]["reuse"]]
        else:
            layer = make_layer(lib, node["layer"])
        made.append(layer)
        args = [tensors[i] for i in node["in"]]
        out = layer(args if node.get("list") else args[0])
        if isinstance(out, (list, tuple)):
            out = out[0]
        tensors.append(out)
    outputs = [tensors[i] for i in spec["outputs"]]
    return lib.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0])


def as_list(v):
    return v if isinstance(v, list) else [v]


def to_json(v):
    """Arrays and numpy scalars as plain JSON values."""
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, np.ndarray):
        return {"dtype": v.dtype.str, "shape": list(v.shape), "values": v.astype(np.float64).tolist()
                if v.dtype.kind != "b" else v.tolist()}
    if isinstance(v, np.generic):
        return v.item()
    return v


class Invariant(Exception):
    """A result that breaks an invariant the fuzz test checks in the child (a wrong round trip)."""


# -- cases ----------------------------------------------------------------------------------


class Case:
    """Runs one case and remembers the stage it reached."""

    def __init__(self, lib, mode):
        self.lib, self.mode, self.stage = lib, mode, "start"

    def seed(self, case):
        if self.mode == "rustkeras":
            self.lib.backend.clear_session()
            self.lib.utils.set_random_seed(int(case.get("seed", 0)))
        else:
            self.lib.utils.set_random_seed(int(case.get("seed", 0)))

    def model(self, case):
        """Builds, predicts, round-trips the config and the file (rustkeras), or builds, loads
        the given weights and predicts (keras)."""
        lib = self.lib
        self.seed(case)
        self.stage = "build"
        model = build_model(lib, case["spec"])
        out = {"output_shape": to_json(model.output_shape)}
        self.stage = "weights"
        if self.mode == "keras" and case.get("weights") is not None:
            model.set_weights([np.asarray(w, dtype=np.float32) for w in case["weights"]])
        out["weights"] = [to_json(np.asarray(w)) for w in model.get_weights()]
        self.stage = "predict"
        x = decode(case["x"], lib)
        kwargs = decode(case.get("predict", {}), lib)
        pred = [np.asarray(p) for p in as_list(model.predict(x, verbose=0, **kwargs))]
        out["pred"] = [to_json(p) for p in pred]
        if self.mode == "keras":
            return out
        if case.get("config"):
            self.stage = "config"
            cfg = model.get_config()
            cls = type(model)
            again = cls.from_config(json.loads(json.dumps(cfg)))
            if again.get_config() != cfg:
                raise Invariant(f"from_config(get_config()) gives another config:\n{cfg}\n{again.get_config()}")
            again.set_weights(model.get_weights())
            self._same(pred, again.predict(x, verbose=0, **kwargs), "the model rebuilt from its config")
        if case.get("save"):
            self.stage = "save"
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "m.keras")
                model.save(path)
                loaded = lib.models.load_model(path)
            self._same(pred, loaded.predict(x, verbose=0, **kwargs), "the model saved and loaded")
        return out

    @staticmethod
    def _same(pred, other, what):
        other = [np.asarray(p) for p in as_list(other)]
        if len(other) != len(pred):
            raise Invariant(f"{what} has {len(other)} outputs, the original {len(pred)}")
        for a, b in zip(pred, other):
            if a.shape != b.shape or not np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True):
                raise Invariant(f"{what} predicts differently: {a.ravel()[:6]} vs {b.ravel()[:6]}")

    def train(self, case):
        """compile, fit, evaluate and predict with the given arguments."""
        lib = self.lib
        self.seed(case)
        self.stage = "build"
        model = build_model(lib, case["spec"])
        self.stage = "compile"
        model.compile(**decode(case["compile"], lib))
        self.stage = "fit"
        x, y = decode(case["x"], lib), decode(case["y"], lib)
        history = model.fit(x, y, verbose=0, **decode(case["fit"], lib))
        out = {"history": to_json(history.history), "epochs": to_json(history.epoch)}
        self.stage = "evaluate"
        out["evaluate"] = to_json(model.evaluate(x, y, verbose=0, **decode(case["evaluate"], lib)))
        self.stage = "predict"
        out["pred"] = [to_json(np.asarray(p)) for p in as_list(model.predict(x, verbose=0))]
        out["weights_finite"] = bool(all(np.isfinite(w).all() for w in model.get_weights()))
        return out

    def op(self, case):
        """One `ops` or `backend` function on decoded arguments."""
        lib = self.lib
        self.stage = "op"
        fn = getattr(getattr(lib, case["module"]), case["name"])
        result = fn(*decode(case.get("args", []), lib), **decode(case.get("kwargs", {}), lib))
        if isinstance(result, (list, tuple)):
            return {"result": [to_json(np.asarray(r)) for r in result], "sequence": True}
        return {"result": to_json(np.asarray(result)), "sequence": False}


def main():
    mode = sys.argv[1]
    # Answers go to the original stdout; anything the library prints goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if mode == "keras":
        os.environ["KERAS_BACKEND"] = "numpy"
        import keras as lib
    else:
        import rustkeras as lib
    for line in sys.stdin:
        case = json.loads(line)
        runner = Case(lib, mode)
        try:
            out = {"ok": True, **getattr(runner, case["op"])(case)}
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: B036 - a Rust panic (PanicException) is a BaseException
            out = {"ok": False, "type": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
                   "message": str(e), "stage": runner.stage, "traceback": traceback.format_exc()[-4000:]}
        try:
            text = json.dumps(out)
        except (TypeError, ValueError) as e:
            text = json.dumps({"ok": False, "type": "Unserializable", "mro": [], "message": str(e),
                               "stage": runner.stage, "traceback": ""})
        answers.write(text + "\n")
        answers.flush()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
