"""The Keras 3 side of the cross-library saving tests, run in a process of its own (with
KERAS_BACKEND=numpy set before keras is imported, so that Keras' import cannot interfere with
rustkeras in the test process).

Usage: python _keras_worker.py jobs.json — each job is a dict with an `op`:
- "save": builds a catalog model in Keras, randomizes its weights, compiles it, writes
  `<stem>.keras`, `<stem>.weights.h5`, `<stem>.json` and `<stem>.h5` (the legacy format), and its
  predictions on `x` (an .npz of arrays x0, x1, ...) to `out`.
- "load": loads a `.keras` file and writes its predictions on `x`, its weights and its
  optimizer's variables to `out`.
- "json": rebuilds a model from a JSON file and a `.weights.h5` file, writes predictions.
- "compiled": saves a model compiled with loss and metric objects (catalog.keras_compile_variant)
  and writes its evaluation on `x` and `y` (JSON).
- "evaluate": loads a compiled `.keras` file and writes its evaluation on `x` and `y` (JSON).
- "lambda": saves a model whose Lambda wraps a Python lambda (Keras writes its bytecode) to
  `path`, and its predictions on `x` to `out`.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "numpy"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import keras  # noqa: E402
import saving_catalog as catalog  # noqa: E402


def _x(path):
    with np.load(path) as d:
        xs = [d[f"x{i}"] for i in range(len(d.files))]
    return xs if len(xs) > 1 else xs[0]


def _predictions(model, x):
    out = model.predict(x, verbose=0)
    return out if isinstance(out, list) else [out]


def _save_arrays(path, predictions, extra=None):
    arrays = {f"y{i}": np.asarray(p) for i, p in enumerate(predictions)}
    arrays.update(extra or {})
    np.savez(path, **arrays)


def run(job):
    op = job["op"]
    x = _x(job["x"])
    if op == "save":
        builder, _ = catalog.SHARED[job["name"]]
        model = builder(keras)
        catalog.randomize(model, job.get("seed", 0))
        catalog.compile_for_training(model)
        stem = job["stem"]
        model.save(stem + ".keras")
        model.save_weights(stem + ".weights.h5")
        with open(stem + ".json", "w") as f:
            f.write(model.to_json())
        model.save(stem + ".h5")
        _save_arrays(job["out"], _predictions(model, x))
    elif op == "load":
        model = keras.saving.load_model(job["path"])
        optimizer = {}
        if getattr(model, "optimizer", None) is not None:
            for i, v in enumerate(model.optimizer.variables):
                optimizer[f"opt{i}"] = np.asarray(v.numpy())
        weights = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
        _save_arrays(job["out"], _predictions(model, x), {**optimizer, **weights})
    elif op == "compiled":
        # Models compiled with loss and metric objects, per-output dicts and loss weights;
        # their evaluation on (x, y) goes to `out` as JSON.
        model = catalog.SHARED[job["name"]][0](keras)
        catalog.randomize(model, 3)
        catalog.keras_compile_variant(keras, model, job["name"])
        model.save(job["path"])
        with np.load(job["y"]) as d:
            y = [d[f"y{i}"] for i in range(len(d.files))]
        logs = model.evaluate(x, y if len(y) > 1 else y[0], batch_size=len(y[0]), verbose=0, return_dict=True)
        with open(job["out"], "w") as f:
            json.dump({k: float(v) for k, v in logs.items()}, f)
    elif op == "evaluate":
        model = keras.saving.load_model(job["path"])
        with np.load(job["y"]) as d:
            y = [d[f"y{i}"] for i in range(len(d.files))]
        logs = model.evaluate(x, y if len(y) > 1 else y[0], batch_size=len(y[0]), verbose=0, return_dict=True)
        with open(job["out"], "w") as f:
            json.dump({k: float(v) for k, v in logs.items()}, f)
    elif op == "lambda":
        # A Lambda of a Python lambda, which Keras saves as bytecode (rebuilt only with
        # safe_mode=False), with a closure and a default.
        scale = 3.0
        model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda t, b=1.0: t * t * scale + b)])
        model.save(job["path"])
        _save_arrays(job["out"], _predictions(model, x))
    elif op == "json":
        with open(job["json"]) as f:
            model = keras.models.model_from_json(f.read())
        model.load_weights(job["weights"])
        _save_arrays(job["out"], _predictions(model, x))
    else:
        raise ValueError(f"unknown op {op!r}")


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    failures = {}
    for job in jobs:
        try:
            run(job)
        except Exception as e:  # noqa: BLE001 - reported to the test, job by job
            failures[job.get("name", job.get("path"))] = f"{type(e).__name__}: {e}"
    print(json.dumps(failures))


if __name__ == "__main__":
    main()
