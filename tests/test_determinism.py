"""With `rustkeras.utils.set_random_seed`, the same fit gives bit-identical weights, run after
run and whatever the number of rayon threads: every parallel kernel splits its work by data
shape, never by thread count, and reduces in a fixed order.

Each run is a fresh interpreter (the thread pool's size is fixed at its start), with
`RAYON_NUM_THREADS` 1, 2 and 3 (more threads than this machine kind's cores)."""

import hashlib
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    from rustkeras import layers as L
    from rustkeras.models import Sequential
    from rustkeras.utils import set_random_seed

    kind = sys.argv[1]
    set_random_seed(42)
    rng = np.random.default_rng(0)
    if kind == "mlp":
        x = rng.normal(size=(768, 96)).astype("float32")
        y = np.eye(10, dtype="float32")[rng.integers(0, 10, 768)]
        m = Sequential([L.Input((96,)), L.Dense(512, activation="relu"), L.Dropout(0.3), L.BatchNormalization(),
                        L.Dense(128, activation="tanh"), L.Dense(10, activation="softmax")])
        loss = "categorical_crossentropy"
    elif kind == "cnn":
        x = rng.normal(size=(128, 14, 14, 4)).astype("float32")
        y = np.eye(4, dtype="float32")[rng.integers(0, 4, 128)]
        m = Sequential([L.Input((14, 14, 4)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                        L.Conv2D(32, 3, padding="same"), L.GlobalAveragePooling2D(), L.Dropout(0.2),
                        L.Dense(4, activation="softmax")])
        loss = "categorical_crossentropy"
    else:
        x = rng.integers(1, 50, size=(256, 12))
        y = rng.integers(0, 3, size=256)
        m = Sequential([L.Input((12,)), L.Embedding(50, 32), L.LSTM(64, return_sequences=True, dropout=0.1),
                        L.GRU(16), L.Dense(3, activation="softmax")])
        loss = "sparse_categorical_crossentropy"
    m.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    # Batches large enough that the matrix products and convolutions take their parallel paths.
    h = m.fit(x, y, epochs=2, batch_size=64, validation_split=0.25, verbose=0)
    digest = hashlib.sha256()
    for w in m.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    digest.update(np.asarray(m.predict(x[:16], verbose=0)).tobytes())
    print(digest.hexdigest(), repr(h.history["loss"]), flush=True)
""")


def _run(kind, threads):
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads), "RUSTKERAS_BACKEND": "cpu",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-c", SCRIPT, kind], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


@pytest.mark.parametrize("kind", ["mlp", "cnn", "rnn"])
def test_a_seeded_fit_is_bit_identical_across_runs_and_thread_counts(kind):
    runs = {t: _run(kind, t) for t in (1, 2, 3)}
    again = _run(kind, 2)
    assert runs[2] == again, "two runs with the same seed and threads differ"
    assert runs[1] == runs[2] == runs[3], runs
