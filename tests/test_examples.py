"""Every example runs on the 'gpu' backend (Mesa's lavapipe in CI), at sizes small enough for a
software GPU: it exits cleanly and reports its test figures. (The full runs, and their accuracy
beside the CPU's, are in the closing notes and bench/RESULTS.md.) `timeseries_sunspots.py`
needs statsmodels, which CI does not install; it runs where statsmodels is present.
"""

import math
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EXAMPLES = [
    ("tutorial_mlp.py", ["--epochs", "1", "--samples", "600"]),
    ("tutorial_merge.py", ["--epochs", "1", "--samples", "600"]),
    ("fashion_mnist_mlp.py", ["--epochs", "1", "--subset", "600", "--seed", "1"]),
    ("fashion_mnist_cnn.py", ["--epochs", "1", "--samples", "64", "--test-samples", "64", "--batch-size", "32"]),
    ("tutorial_conv.py", ["--epochs", "1", "--samples", "64", "--test-samples", "64"]),
    ("stacked_lstm.py", ["--epochs", "1", "--samples", "320"]),
    ("stacked_lstm.py", ["--epochs", "1", "--samples", "320", "--stateful"]),
    ("embedding_lstm_classifier.py", ["--epochs", "1", "--samples", "200"]),
    ("seq2seq_reverse.py", ["--epochs", "1", "--samples", "200", "--units", "8"]),
]
try:
    import statsmodels  # noqa: F401

    EXAMPLES.append(("timeseries_sunspots.py", ["--epochs", "2"]))
except ImportError:
    pass


@pytest.mark.parametrize("script,args", EXAMPLES, ids=[f"{s}{' '.join(a[-1:])}" for s, a in EXAMPLES])
def test_an_example_runs_on_the_gpu(script, args):
    env = dict(os.environ, RUSTKERAS_BACKEND="gpu", PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script)] + args, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{script} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    assert "falls back to the CPU" not in r.stderr, r.stderr
    figures = re.findall(r"(?:accuracy|loss|rmse|RMSE|exact)[^0-9\n]*([0-9]+\.[0-9]+)", r.stdout)
    assert figures, f"{script} printed no test figures:\n{r.stdout[-2000:]}"
    assert all(math.isfinite(float(f)) for f in figures)
