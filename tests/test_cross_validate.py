"""`rustkeras.utils.cross_validate`: folds as scikit-learn cuts them, scores per fold with their
mean and std, the same scores with folds in parallel (joblib's loky processes), each worker's
engine threads sized to its share of the cores, memory flat across folds, and no scikit-learn or
joblib needed for a sequential run. (Folds on a Dask cluster: test_dask.py.)"""

import importlib.util
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rustkeras import Input, Model, Sequential
from rustkeras.layers import Concatenate, Dense
from rustkeras.optimizers import Adam
from rustkeras.utils import cross_validate, to_categorical
from rustkeras.utils.cross_validation import kfold

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
needs_sklearn = pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn is not installed")
LINUX = sys.platform.startswith("linux")


def blobs(n=300, d=8, classes=3, seed=0):
    """Three separable clusters, labels and one-hot targets."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centers = rng.normal(scale=3.0, size=(classes, d))
    return (centers[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def build(X, y):
    model = Sequential([Dense(16, activation="relu", input_shape=(X.shape[1],)),
                        Dense(y.shape[1], activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


# -- folds ---------------------------------------------------------------------------------


@needs_sklearn
@pytest.mark.parametrize("n,n_splits,seed", [(1797, 5, 0), (100, 3, 7), (31, 7, 123), (30, 10, 1)])
def test_folds_are_scikit_learns_kfold_and_stratified_kfold(n, n_splits, seed):
    from sklearn.model_selection import KFold, StratifiedKFold

    labels = np.random.default_rng(seed).choice([3, 1, 2], size=n, p=[0.5, 0.3, 0.2])
    labels[:n_splits * 3] = np.repeat([3, 1, 2], n_splits)  # every class in every fold
    x = np.zeros((n, 1))
    cases = [(kfold(n, n_splits, True, seed), KFold(n_splits, shuffle=True, random_state=seed).split(x)),
             (kfold(n, n_splits, False), KFold(n_splits).split(x)),
             (kfold(n, n_splits, True, seed, labels), StratifiedKFold(n_splits, shuffle=True, random_state=seed)
              .split(x, labels)),
             (kfold(n, n_splits, False, None, labels), StratifiedKFold(n_splits).split(x, labels))]
    for ours, theirs in cases:
        theirs = list(theirs)
        assert len(ours) == len(theirs) == n_splits
        for (train, test), (train_sk, test_sk) in zip(ours, theirs):
            np.testing.assert_array_equal(train, train_sk)
            np.testing.assert_array_equal(test, test_sk)


def test_every_sample_is_held_out_once_and_strata_are_balanced():
    labels = np.random.default_rng(0).integers(0, 4, 203)
    for folds in (kfold(203, 5, True, 3), kfold(203, 5, True, 3, labels)):
        held_out = np.concatenate([test for _, test in folds])
        np.testing.assert_array_equal(np.sort(held_out), np.arange(203))
        sizes = [len(test) for _, test in folds]
        assert max(sizes) - min(sizes) <= 1
        assert all(len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 203 for train, test in folds)
    per_class = np.array([np.bincount(labels[test], minlength=4) for _, test in kfold(203, 5, True, 3, labels)])
    assert np.all(per_class.max(axis=0) - per_class.min(axis=0) <= 1)
    # Another seed, other folds; the same seed, the same folds.
    assert not np.array_equal(kfold(203, 5, True, 3)[0][1], kfold(203, 5, True, 4)[0][1])
    np.testing.assert_array_equal(kfold(203, 5, True, 3)[0][1], kfold(203, 5, True, 3)[0][1])


# -- scores --------------------------------------------------------------------------------


def test_scores_per_fold_for_the_loss_and_every_metric_with_mean_and_std():
    x, labels = blobs()
    result = cross_validate(build, x, to_categorical(labels), n_splits=4, seed=0, stratify=True, epochs=15)
    assert set(result.scores) == {"loss", "accuracy"} and all(len(v) == 4 for v in result.scores.values())
    assert result["accuracy"] is result.scores["accuracy"]
    for name, values in result.scores.items():
        assert result.mean[name] == pytest.approx(np.mean(values)) and result.std[name] == pytest.approx(np.std(values))
    assert result.mean["accuracy"] > 0.9 and all(0 <= a <= 1 for a in result["accuracy"])
    assert re.fullmatch(r"CrossValidationResult\(4 folds: loss=\d\.\d{4} \+/- \d\.\d{4}, accuracy=\d\.\d{4} "
                        r"\+/- \d\.\d{4}\)", repr(result))
    with pytest.raises(KeyError, match="no score 'mae'; it has \\['accuracy', 'loss'\\]"):
        result["mae"]  # noqa: B018
    again = cross_validate(build, x, to_categorical(labels), n_splits=4, seed=0, stratify=True, epochs=15)
    assert again.scores == result.scores  # a seed repeats the run exactly


def test_the_build_function_gets_the_training_fold_or_no_arguments():
    x, labels = blobs(n=100)
    y = to_categorical(labels)
    shapes = []

    def with_data(X, y):
        shapes.append((X.shape, y.shape))
        return build(X, y)

    cross_validate(with_data, x, y, n_splits=5, seed=0, epochs=1)
    assert shapes == [((80, 8), (80, 3))] * 5

    def no_arguments():
        return build(x, y)

    result = cross_validate(no_arguments, x, y, n_splits=2, seed=0, epochs=1)
    assert len(result["loss"]) == 2


def test_several_inputs_and_labels_to_stratify_by():
    x, labels = blobs(n=120)

    def two_inputs():
        a, b = Input(shape=(5,)), Input(shape=(3,))
        # (named: an unnamed one would take a name test_functional.py expects its own model to get)
        joined = Concatenate(name="joined")([Dense(8, activation="relu")(a), b])
        model = Model([a, b], Dense(3, activation="softmax")(joined))
        model.compile(optimizer=Adam(learning_rate=0.02), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    result = cross_validate(two_inputs, [x[:, :5], x[:, 5:]], labels, n_splits=3, seed=1, stratify=labels, epochs=20)
    assert len(result["accuracy"]) == 3 and result.mean["accuracy"] > 0.8


def test_folds_in_parallel_give_the_sequential_scores():
    # Seeded, each fold's model starts from the same weights and batches wherever it runs, and
    # the engine's results do not depend on its number of threads (test_determinism.py): the
    # scores are the same to the bit.
    x, labels = blobs()
    y = to_categorical(labels)
    sequential = cross_validate(build, x, y, n_splits=4, seed=3, epochs=5, batch_size=32)
    parallel = cross_validate(build, x, y, n_splits=4, seed=3, epochs=5, batch_size=32, n_jobs=2)
    assert parallel.scores == sequential.scores


def _engine_in_a_worker():
    """Runs in a loky worker: the worker's share, then a first fit, and the threads it started."""
    from rustkeras import _workers

    def threads():
        with open("/proc/self/status") as f:
            return int(re.search(r"Threads:\s+(\d+)", f.read()).group(1))

    rayon = _workers.size_pool_in_worker()
    model = Sequential([Dense(256, activation="relu", input_shape=(256,)), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    before = threads()
    model.fit(np.ones((512, 256), np.float32), np.ones((512, 1), np.float32), batch_size=256, verbose=0)
    return os.environ.get("OMP_NUM_THREADS"), rayon, threads() - before, float(model.evaluate(
        np.ones((4, 256), np.float32), np.ones((4, 1), np.float32), verbose=0))


@pytest.mark.skipif(not LINUX, reason="counts threads in /proc")
def test_a_loky_worker_runs_the_engine_on_its_share_of_the_cores():
    joblib = pytest.importorskip("joblib")
    from joblib.externals.loky import get_reusable_executor

    # joblib's loky workers get cores // n_jobs in OMP_NUM_THREADS, and the engine takes that.
    share = max(joblib.cpu_count() // 2, 1)
    for omp, rayon, started, loss in joblib.Parallel(n_jobs=2)(joblib.delayed(_engine_in_a_worker)() for _ in range(2)):
        assert (omp, rayon) == (str(share), share) and started <= share and np.isfinite(loss)
    # In new worker processes (a reused one has its pool already), the first fit starts the pool:
    # one thread for a share of one.
    executor = get_reusable_executor(max_workers=2, reuse=False, env={"OMP_NUM_THREADS": "1"})
    runs = [f.result(timeout=120) for f in [executor.submit(_engine_in_a_worker) for _ in range(2)]]
    assert all((omp, rayon) == ("1", 1) and started <= 1 for omp, rayon, started, _ in runs)
    assert any(started == 1 for _, _, started, _ in runs)
    executor.shutdown(wait=True)


@pytest.mark.skipif(not LINUX, reason="reads the resident set size in /proc")
def test_memory_stays_flat_across_folds():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 64)).astype(np.float32)
    y = to_categorical(rng.integers(0, 10, 500), 10)
    resident = []

    def big(X, y):  # 2.2M weights, ~35 MB with Adam's slots and gradients
        with open("/proc/self/statm") as f:
            resident.append(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)
        model = Sequential([Dense(1024, activation="relu", input_shape=(64,)), Dense(1024, activation="relu"),
                            Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    cross_validate(big, x, y, n_splits=10, seed=0, epochs=1, batch_size=250)
    # A model kept per fold would add ~35 MB a fold; after the first two folds, none is kept.
    assert max(resident[2:]) - resident[2] < 30, f"resident MB at each fold's start: {resident}"


# -- errors and dependencies ---------------------------------------------------------------


def test_errors_name_the_argument():
    x, labels = blobs(n=20)
    y = to_categorical(labels)
    with pytest.raises(ValueError, match="`n_splits` must be an integer of at least 2. Received: n_splits=1"):
        cross_validate(build, x, y, n_splits=1)
    with pytest.raises(ValueError, match="n_splits=21 greater than the number of samples: n_samples=20"):
        cross_validate(build, x, y, n_splits=21)
    with pytest.raises(ValueError, match="x and y must have the same number of samples. Received: 20 and 19"):
        cross_validate(build, x, y[:19])
    with pytest.raises(ValueError, match=r"`stratify` must be True or one label per sample \(shape \(20,\)\)"):
        cross_validate(build, x, y, stratify=labels[:5])
    with pytest.raises(ValueError, match=r"n_splits=5 cannot be greater than the number of members in each class"):
        cross_validate(build, x, y, stratify=np.arange(20))
    with pytest.raises(ValueError, match="`seed` must be None or an integer"):
        cross_validate(build, x, y, seed=-1)
    with pytest.raises(TypeError, match="`build_fn` must be a function"):
        cross_validate("build", x, y)
    with pytest.raises(TypeError, match="`validation_data` is not a fit argument here"):
        cross_validate(build, x, y, validation_data=(x, y))
    with pytest.raises(ValueError, match="`build_fn`.*not compiled"):
        cross_validate(lambda: Sequential([Dense(3, input_shape=(8,))]), x, y)
    with pytest.raises(TypeError, match="`x` must be an array .* Received: generator"):
        cross_validate(build, (row for row in x), y)


def test_rustkeras_needs_neither_scikit_learn_nor_joblib_and_the_wrappers_name_scikit_learn():
    code = textwrap.dedent("""
        import sys
        sys.modules["sklearn"] = None  # as if not installed
        sys.modules["joblib"] = None
        import numpy as np
        import rustkeras
        from rustkeras.layers import Dense
        from rustkeras.models import Sequential
        from rustkeras.utils import cross_validate, to_categorical

        def build():
            m = Sequential([Dense(2, activation="softmax", input_shape=(3,))])
            m.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
            return m

        x = np.random.default_rng(0).normal(size=(30, 3)).astype("float32")
        print(len(cross_validate(build, x, to_categorical(x[:, 0] > 0, 2), n_splits=3, stratify=True)["accuracy"]))
        try:
            from rustkeras.wrappers import SKLearnClassifier
        except ImportError as e:
            print("ImportError:", e)
        try:
            cross_validate(build, x, to_categorical(x[:, 0] > 0, 2), n_splits=3, n_jobs=2)
        except ImportError as e:
            print("ImportError:", e)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "3"
    assert lines[1].startswith("ImportError: rustkeras.wrappers (SKLearnClassifier") and "scikit-learn" in lines[1]
    assert "pip install -U scikit-learn" in lines[1]
    assert lines[2] == ("ImportError: cross_validate(n_jobs=2) runs the folds through joblib, which is not installed: "
                        "`pip install joblib` (or n_jobs=1)")
    r = subprocess.run([sys.executable, "-c", "import sys, rustkeras, rustkeras.wrappers; "
                        "print(sorted(m for m in ('sklearn', 'joblib', 'dask', 'ray') if m in sys.modules))"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
