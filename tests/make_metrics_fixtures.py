"""Writes tests/metrics_keras_fixtures.json: data, and the values real Keras 3 computes for the
metric classes on it, which tests/test_metrics.py compares rustkeras with.

Run by hand with Keras 3 installed (it is not a test, and CI does not need Keras):

    KERAS_BACKEND=numpy python tests/make_metrics_fixtures.py

For each metric configuration the file holds its value after `update_state` on the batches of
16 rows of its data set, without sample weights ("plain") and with them ("weighted"), and the
logs of one `model.evaluate` of an identity model compiled with several metrics (for the log
names). The data are stored too, rounded, so that the tests do not depend on a random generator.
"""

import json
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "numpy")
import keras  # noqa: E402

BATCH = 16
N = 50


def datasets():
    rng = np.random.default_rng(2024)
    r3 = lambda a: np.round(a, 3)  # noqa: E731
    sw = np.round(rng.uniform(0.1, 2.0, size=N), 2)
    binary_y = (rng.random((N, 1)) < 0.45).astype(float)
    # Predictions related to the labels, so that the areas are far from 0.5.
    binary_p = r3(np.clip(0.35 * binary_y + rng.uniform(0, 0.7, size=(N, 1)), 0, 1))
    logits = r3(rng.normal(size=(N, 1)) * 2 + (binary_y - 0.5) * 2)
    labels = rng.integers(0, 4, size=N)
    onehot = np.eye(4)[labels]
    raw = rng.random((N, 4)) + 0.8 * onehot
    multiclass_p = r3(raw / raw.sum(1, keepdims=True))
    ml_y = (rng.random((N, 3)) < 0.4).astype(float)
    ml_p = r3(np.clip(0.3 * ml_y + rng.uniform(0, 0.75, size=(N, 3)), 0, 1))
    reg_y = r3(rng.normal(size=(N, 2)) + 2)
    reg_p = r3(reg_y + rng.normal(size=(N, 2)) * 0.5)
    return {
        "binary": {"y": binary_y, "p": binary_p},
        "logits": {"y": binary_y, "p": logits},
        "multiclass": {"y": onehot, "p": multiclass_p},
        "sparse": {"y": labels.astype(float), "p": multiclass_p},
        "multilabel": {"y": ml_y, "p": ml_p},
        "regression": {"y": reg_y, "p": reg_p},
    }, sw


# (dataset, class name, constructor arguments)
CONFIGS = [
    ("binary", "AUC", {}),
    ("binary", "AUC", {"curve": "PR"}),
    ("binary", "AUC", {"summation_method": "minoring"}),
    ("binary", "AUC", {"summation_method": "majoring"}),
    ("binary", "AUC", {"curve": "PRGAIN"}),
    ("binary", "AUC", {"num_thresholds": 50}),
    ("binary", "AUC", {"thresholds": [0.1, 0.25, 0.5, 0.8]}),
    ("binary", "AUC", {"curve": "PR", "thresholds": [0.1, 0.25, 0.5, 0.8]}),
    ("binary", "Precision", {}),
    ("binary", "Precision", {"thresholds": [0.2, 0.5, 0.7]}),
    ("binary", "Recall", {}),
    ("binary", "Recall", {"thresholds": [0.0, 0.5, 1.0]}),
    ("binary", "TruePositives", {}),
    ("binary", "FalsePositives", {"thresholds": [0.3, 0.6]}),
    ("binary", "TrueNegatives", {}),
    ("binary", "FalseNegatives", {"thresholds": [0.25, 0.5, 0.75]}),
    ("binary", "BinaryAccuracy", {}),
    ("binary", "BinaryAccuracy", {"threshold": 0.7}),
    ("binary", "RootMeanSquaredError", {}),
    ("binary", "MeanSquaredError", {}),
    ("binary", "MeanAbsoluteError", {}),
    ("binary", "F1Score", {"threshold": 0.5}),
    ("logits", "AUC", {"from_logits": True}),
    ("logits", "Precision", {"thresholds": 0.0}),
    ("multiclass", "CategoricalAccuracy", {}),
    ("multiclass", "TopKCategoricalAccuracy", {"k": 2}),
    ("multiclass", "Precision", {"top_k": 2}),
    ("multiclass", "Recall", {"top_k": 1}),
    ("multiclass", "Precision", {"class_id": 2}),
    ("multiclass", "Recall", {"class_id": 1, "thresholds": [0.2, 0.4]}),
    ("multiclass", "Precision", {"top_k": 2, "class_id": 0}),
    ("multiclass", "F1Score", {}),
    ("multiclass", "F1Score", {"average": "macro"}),
    ("multiclass", "F1Score", {"average": "micro"}),
    ("multiclass", "F1Score", {"average": "weighted", "threshold": 0.3}),
    ("multiclass", "FBetaScore", {"beta": 2.0, "average": "macro"}),
    ("multiclass", "AUC", {}),
    ("multiclass", "AUC", {"multi_label": True}),
    ("multiclass", "AUC", {"multi_label": True, "curve": "PR"}),
    ("multiclass", "AUC", {"multi_label": True, "label_weights": [1.0, 2.0, 0.5, 1.0]}),
    ("multiclass", "AUC", {"label_weights": [1.0, 2.0, 0.5, 1.0]}),
    ("multiclass", "AUC", {"label_weights": [1.0, 2.0, 0.5, 1.0], "thresholds": [0.2, 0.5]}),
    ("sparse", "SparseCategoricalAccuracy", {}),
    ("sparse", "SparseTopKCategoricalAccuracy", {"k": 2}),
    ("multilabel", "AUC", {"multi_label": True, "num_labels": 3}),
    ("multilabel", "AUC", {"multi_label": True, "thresholds": [0.3, 0.6]}),
    ("multilabel", "Precision", {}),
    ("multilabel", "Recall", {}),
    ("multilabel", "F1Score", {"threshold": 0.5, "average": "macro"}),
    ("multilabel", "BinaryAccuracy", {}),
    ("regression", "MeanSquaredError", {}),
    ("regression", "MeanAbsoluteError", {}),
    ("regression", "RootMeanSquaredError", {}),
    ("regression", "MeanAbsolutePercentageError", {}),
]

# One compile with several metrics: its log names and values (from `model.evaluate`).
EVALUATE = {
    "dataset": "binary",
    "metrics": [["AUC", {"name": "auc"}], ["Precision", {"name": "prec"}], ["AUC", {"curve": "PR", "name": "auc"}],
                ["Recall", {"thresholds": [0.3, 0.6], "name": "rec"}]],
    "weighted_metrics": [["AUC", {"name": "auc"}], ["F1Score", {"threshold": 0.5}], ["Precision", {"name": "prec"}],
                         ["Precision", {"name": "prec", "thresholds": 0.7}]],
}


def value(m):
    r = np.asarray(m.result(), dtype=np.float64)
    return float(r) if r.ndim == 0 else r.tolist()


def run(cls_name, kwargs, data, sw):
    out = {}
    for key, weights in (("plain", None), ("weighted", sw)):
        m = getattr(keras.metrics, cls_name)(**kwargs)
        for lo in range(0, N, BATCH):
            w = None if weights is None else weights[lo:lo + BATCH]
            m.update_state(data["y"][lo:lo + BATCH], data["p"][lo:lo + BATCH], sample_weight=w)
        out[key] = value(m)
    return out


def evaluate(data, sw):
    make = lambda entries: [getattr(keras.metrics, c)(**kw) for c, kw in entries]  # noqa: E731
    d = data["p"].shape[1]
    model = keras.Sequential([keras.Input((d,)), keras.layers.Identity()])
    model.compile(loss="mse", metrics=make(EVALUATE["metrics"]),
                  weighted_metrics=make(EVALUATE["weighted_metrics"]))
    logs = model.evaluate(data["p"], data["y"], sample_weight=sw, batch_size=BATCH, verbose=0, return_dict=True)
    # Pairs in the order Keras returns them.
    return [[k, float(v) if np.ndim(v) == 0 else np.asarray(v).tolist()] for k, v in logs.items()]


def main():
    data, sw = datasets()
    cases = [{"dataset": ds, "class": c, "kwargs": kw, **run(c, kw, data[ds], sw)} for ds, c, kw in CONFIGS]
    fixture = {
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "batch_size": BATCH,
        "sample_weight": sw.tolist(),
        "datasets": {k: {"y": v["y"].tolist(), "p": v["p"].tolist()} for k, v in data.items()},
        "cases": cases,
        "evaluate": {**EVALUATE, "logs": evaluate(data[EVALUATE["dataset"]], sw)},
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics_keras_fixtures.json")
    with open(path, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
