"""On a real Dask cluster (a `LocalCluster` of 2 worker processes started here): scikit-learn's
`cross_val_score` and `GridSearchCV` over the estimators, and `cross_validate`, under
`joblib.parallel_backend("dask")` give the scores of the same runs done here one after the other;
the workers' engine threads are their share of the cores; and the README's way of training on
data that lives in Dask (a generator over the partitions) trains."""

import os
import re
import signal
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
distributed = pytest.importorskip("dask.distributed")
da = pytest.importorskip("dask.array")

import joblib  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402

from rustkeras.utils import cross_validate, to_categorical  # noqa: E402
from rustkeras.wrappers import SKLearnClassifier  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from digits_models import FIT, build_mlp, digits  # noqa: E402

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
LIMIT_S = 120  # per test, and for starting the cluster: a hang fails instead of stalling CI


class _Deadline:
    """SIGALRM after `seconds` raises TimeoutError in the main thread (where pytest waits)."""

    def __init__(self, seconds: int, what: str):
        self.seconds, self.what = seconds, what

    def _expire(self, *_):
        raise TimeoutError(f"{self.what} took more than {self.seconds} s")

    def __enter__(self):
        if hasattr(signal, "SIGALRM"):
            self.previous = signal.signal(signal.SIGALRM, self._expire)
            signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc):
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


@pytest.fixture(scope="module")
def client():
    with _Deadline(LIMIT_S, "starting the Dask cluster"):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
        c = distributed.Client(cluster)
    try:
        yield c
    finally:
        with _Deadline(LIMIT_S, "closing the Dask cluster"):
            c.close()
            cluster.close()


@pytest.fixture(autouse=True)
def deadline(request):
    with _Deadline(LIMIT_S, request.node.name):
        yield


@pytest.fixture(scope="module")
def data():
    return digits()


# The build function seeds (digits_models.build_mlp), so each fit starts from the same weights in
# any process, and the engine's results do not depend on its number of threads (1 in a worker
# here, 2 in this process: test_determinism.py): the Dask runs give the sequential scores to the bit.


def test_cross_val_score_on_the_cluster_gives_the_sequential_scores(client, data):
    x, y = data
    clf = SKLearnClassifier(build_mlp, fit_kwargs=FIT)
    sequential = cross_val_score(clf, x, y, cv=5)
    with joblib.parallel_backend("dask"):
        on_dask = cross_val_score(clf, x, y, cv=5, n_jobs=-1)
    np.testing.assert_array_equal(on_dask, sequential)
    assert sequential.mean() > 0.9
    # The workers trained with their share of the cores (Dask gives each 1 thread here).
    assert set(client.run(lambda: os.environ.get("RAYON_NUM_THREADS")).values()) == {"1"}


def test_grid_search_on_the_cluster_finds_what_the_sequential_search_finds(client, data):
    x, y = data
    grid = {"model__units": [16, 32], "model__lr": [1e-3, 3e-3]}
    sequential = GridSearchCV(SKLearnClassifier(build_mlp, fit_kwargs=FIT), grid, cv=3).fit(x, y)
    with joblib.parallel_backend("dask"):
        on_dask = GridSearchCV(SKLearnClassifier(build_mlp, fit_kwargs=FIT), grid, cv=3, n_jobs=-1).fit(x, y)
    np.testing.assert_array_equal(on_dask.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"])
    assert on_dask.best_params_ == sequential.best_params_ and on_dask.best_score_ > 0.9
    np.testing.assert_array_equal(on_dask.predict(x), sequential.predict(x))


def test_cross_validate_on_the_cluster_gives_the_sequential_scores(client, data):
    x, labels = data
    y = to_categorical(labels, 10)
    sequential = cross_validate(build_mlp, x, y, n_splits=4, seed=0, stratify=True, **FIT)
    with joblib.parallel_backend("dask"):
        on_dask = cross_validate(build_mlp, x, y, n_splits=4, seed=0, stratify=True, n_jobs=-1, **FIT)
    assert on_dask.scores == sequential.scores and on_dask.mean["accuracy"] > 0.9


def test_the_readmes_generator_over_dask_partitions_trains(client, data):
    x, labels = data
    blocks = re.findall(r"```python\n(.*?)```", open(README, encoding="utf-8").read(), flags=re.S)
    snippet = next(b for b in blocks if "def partition_batches" in b)
    # The snippet's data: Dask arrays in partitions of rows (here 6 of 300 rows), on the cluster.
    x_dask = da.from_array(x, chunks=(300, -1)).persist()
    y_dask = da.from_array(to_categorical(labels, 10), chunks=(300, -1)).persist()
    model = build_mlp(x, to_categorical(labels, 10))
    scope = {"x": x_dask, "y": y_dask, "model": model}
    exec(snippet, scope)  # noqa: S102 - the README's own code
    assert scope["steps"] == sum(-(-rows // 64) for rows in x_dask.chunks[0]) == 30
    assert model.optimizer.iterations == 5 * scope["steps"]
    assert model.evaluate(x, to_categorical(labels, 10), verbose=0, return_dict=True)["accuracy"] > 0.9
