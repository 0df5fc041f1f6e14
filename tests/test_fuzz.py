"""Property-based fuzzing of the Python API (hypothesis): random layer stacks, functional graphs,
arguments, data, compile/fit/evaluate arguments, and `ops`/`backend` calls (strategies in
tests/fuzz_models.py and tests/fuzz_ops.py).

The invariant for every example: the calls succeed and give correct results, or raise a clean
exception (ValueError, TypeError, NotImplementedError, MemoryError or OSError, with a message);
never a crash, a hang, a Rust panic or an internal error (IndexError, KeyError, ...).

Correct results:
- models: Keras 3's output shape and predictions (numpy backend) for the same model with
  rustkeras' weights (when Keras is installed); finite predictions for finite data on a
  benign model; `from_config(get_config())` gives the same config and predictions, and so
  does a `.keras` file;
- training: one history entry per epoch, finite losses and weights for finite data and a
  benign optimizer, the predict shape, numbers from evaluate;
- ops and backend functions: numpy's shapes and values (and, counted only, kinds of dtype).

The cases run in long-lived worker interpreters (tests/_fuzz_worker.py, one for rustkeras and
one for Keras), so that a crash fails the example instead of killing pytest; a worker that
dies or hangs (no answer within CASE_TIMEOUT seconds) is restarted.

By default each test runs a fixed, derandomized set of examples (seconds, for CI). A long run:
RUSTKERAS_FUZZ_EXAMPLES=3000 runs that many random examples per test; RUSTKERAS_FUZZ_REPORT=file
writes the tally of outcomes there (per test: examples, successes, clean errors by type and
stage, and the cases where rustkeras and Keras or numpy disagree on raising).
"""

import atexit
import collections
import importlib.util
import json
import math
import os
import select
import subprocess
import sys
import tempfile

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fuzz_worker  # noqa: E402
from fuzz_models import (  # noqa: E402
    benign, contains, data_for, functional_spec, keras_differs, maybe, sequential_spec, shape_of_input, training_case,
    WILD_INT,
)
from fuzz_ops import kind_of, numpy_reference, op_case  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_fuzz_worker.py")
CASE_TIMEOUT = 120.0
ALLOWED = ("ValueError", "TypeError", "NotImplementedError", "MemoryError", "OSError")
# Text that shows an internal failure dressed as a clean exception.
INTERNAL = ("already borrowed", "already mutably borrowed", "unwrap()", "panicked at", "index out of bounds")

LONG = int(os.environ.get("RUSTKERAS_FUZZ_EXAMPLES", "0"))
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", deadline=None, derandomize=True, database=None, suppress_health_check=_HEALTH)
settings.register_profile("long", deadline=None, derandomize=False, database=None, suppress_health_check=_HEALTH,
                          print_blob=True)


def examples(ci: int):
    """The settings of one fuzz test: `ci` examples in CI, RUSTKERAS_FUZZ_EXAMPLES in a long run."""
    return settings(settings.get_profile("long" if LONG else "ci"), max_examples=LONG or ci)


# -- the workers ----------------------------------------------------------------------------


class Worker:
    """A long-lived child interpreter running cases (see tests/_fuzz_worker.py)."""

    def __init__(self, mode: str):
        self.mode, self.proc, self.err = mode, None, None

    def _start(self):
        self.close()
        self.err = tempfile.TemporaryFile()
        env = dict(os.environ, RUSTKERAS_BACKEND="cpu", PYTHONWARNINGS="ignore")
        env.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())
        self.proc = subprocess.Popen([sys.executable, WORKER, self.mode], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, env=env)

    def _stderr_tail(self) -> str:
        self.err.seek(0, os.SEEK_END)
        self.err.seek(max(0, self.err.tell() - 3000))
        return self.err.read().decode(errors="replace")

    def ask(self, case: dict) -> dict:
        """The worker's answer to `case`, or `{"crash": description}` if it died or hung."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        try:
            self.proc.stdin.write((json.dumps(case) + "\n").encode())
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], CASE_TIMEOUT)
            line = self.proc.stdout.readline() if ready else None
        except OSError:  # a broken pipe: the worker died before reading the case
            line = b""
        if line:
            return json.loads(line)
        if line is None:
            self.proc.kill()
            self.proc.wait()
            what = f"no answer within {CASE_TIMEOUT:.0f} s (a hang)"
        else:
            rc = self.proc.wait()
            what = f"the worker died (exit status {rc}{', a signal' if rc < 0 else ''})"
        tail = self._stderr_tail()
        self.proc = None
        return {"crash": f"{self.mode}: {what}\n--- stderr tail ---\n{tail}"}

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.err is not None:
            self.err.close()
            self.err = None


_WORKERS = {}
HAVE_KERAS = importlib.util.find_spec("keras") is not None


def worker(mode: str) -> Worker:
    if mode not in _WORKERS:
        _WORKERS[mode] = Worker(mode)
    return _WORKERS[mode]


@atexit.register
def _close_workers():
    for w in _WORKERS.values():
        w.close()


# -- the tally (written to RUSTKERAS_FUZZ_REPORT) ---------------------------------------------

TALLY = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
SAMPLES = collections.defaultdict(list)


def count(test: str, what: str, key: str = "", sample=None):
    TALLY[test][what][key] += 1
    if sample is not None and len(SAMPLES[(test, what, key)]) < 3:
        SAMPLES[(test, what, key)].append(sample)


@atexit.register
def _write_tally():
    path = os.environ.get("RUSTKERAS_FUZZ_REPORT")
    if not path or not TALLY:
        return
    report = {t: {w: dict(c) for w, c in d.items()} for t, d in TALLY.items()}
    report["samples"] = {" | ".join(k): v for k, v in SAMPLES.items()}
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=str)


# -- checks ---------------------------------------------------------------------------------


def fail(what: str, case: dict, answer: dict):
    detail = answer.get("crash") or answer.get("traceback") or ""
    pytest.fail(f"{what}\ncase: {json.dumps(case)[:3000]}\n{detail}", pytrace=False)


def check_clean(test: str, case: dict, answer: dict, strict_stages=()):
    """An answer that is not a success must be a clean, allowed exception, raised outside the
    stages that cannot fail once the model is built (`strict_stages`)."""
    if "crash" in answer:
        fail("crash", case, answer)
    typ, msg, stage = answer["type"], answer["message"], answer["stage"]
    if typ == "Invariant":
        fail(f"invariant broken at {stage}: {msg}", case, answer)
    if not any(a in answer["mro"] for a in ALLOWED):
        fail(f"{typ} leaked at {stage}: {msg}", case, answer)
    if not msg.strip():
        fail(f"{typ} at {stage} with an empty message", case, answer)
    if any(s in msg for s in INTERNAL):
        fail(f"{typ} at {stage} shows an internal failure: {msg}", case, answer)
    if stage in strict_stages:
        fail(f"{typ} at {stage}, a step that cannot fail once the model is built: {msg}", case, answer)
    count(test, "error", f"{typ}@{stage}")


def array_of(j) -> np.ndarray:
    """An array from the worker's JSON form."""
    a = np.asarray(j["values"], dtype=np.float64 if np.dtype(j["dtype"]).kind != "b" else bool)
    return a.reshape(j["shape"])


def close(a: np.ndarray, b: np.ndarray, rtol=2e-4, atol=2e-5) -> bool:
    """Whether `a` matches the reference `b` (NaN where `b` has NaN; atol scaled by |b|)."""
    if a.shape != b.shape:
        return False
    a, b = a.astype(np.float64), b.astype(np.float64)
    finite = np.isfinite(b)
    scale = max(1.0, float(np.abs(b[finite]).max())) if finite.any() else 1.0
    return bool(np.allclose(a, b, rtol=rtol, atol=atol * scale, equal_nan=True))


# -- models ---------------------------------------------------------------------------------


def run_model_case(test: str, spec, x, data_finite: bool, seed: int, save: bool, predict=None):
    """Builds and predicts with a model in rustkeras, round-trips its config (and sometimes a
    file), and compares with Keras."""
    lam = contains(spec, "Lambda")  # a Lambda's function is not in its config
    case = {"op": "model", "spec": spec, "x": x, "seed": seed, "config": not lam, "save": save and not lam,
            "predict": predict or {}}
    note(f"case: {json.dumps(case)}")
    count(test, "examples")
    answer = worker("rustkeras").ask(case)
    if not answer.get("ok"):
        check_clean(test, case, answer, strict_stages=("weights", "config", "save"))
        if HAVE_KERAS:
            _count_keras_accepts(test, case, answer)
        return
    count(test, "ok", "predict")
    pred = [array_of(p) for p in answer["pred"]]
    if data_finite and benign(spec) and not all(np.isfinite(p).all() for p in pred):
        fail("predictions on finite data are not finite", case, answer)
    if HAVE_KERAS:
        _check_against_keras(test, case, answer, pred, data_finite)


def _check_against_keras(test, case, answer, pred, data_finite):
    """Keras (numpy backend) builds the same model, takes rustkeras' weights and predicts: the
    output shape and predictions must match."""
    weights = [array_of(w).tolist() for w in answer["weights"]]
    ref = worker("keras").ask(dict(case, weights=weights))
    if "crash" in ref:  # Keras' own trouble, not rustkeras'
        count(test, "keras crashed", ref["crash"][:200])
        return
    if not ref.get("ok"):
        if ref["stage"] == "weights":
            fail(f"Keras cannot take rustkeras' weights: {ref['message']}", case, ref)
        count(test, "rustkeras accepts, Keras raises", f"{ref['type']}@{ref['stage']}",
              {"case": case, "keras": ref["message"][:300]})
        return
    if json.loads(json.dumps(answer["output_shape"])) != ref["output_shape"]:
        fail(f"output shape {answer['output_shape']}, Keras {ref['output_shape']}", case, answer)
    kpred = [array_of(p) for p in ref["pred"]]
    if [p.shape for p in pred] != [p.shape for p in kpred]:
        fail(f"predict shapes {[p.shape for p in pred]}, Keras {[p.shape for p in kpred]}", case, answer)
    if not data_finite or keras_differs(case["spec"]):
        return
    for i, (a, b) in enumerate(zip(pred, kpred)):
        if not close(a, b):
            at = np.unravel_index(np.argmax(np.abs(np.nan_to_num(a - b, nan=np.inf))), a.shape)
            fail(f"output {i} differs from Keras at {at}: {a[at]} vs {b[at]}", case, answer)
    count(test, "ok", "same as Keras")


def _count_keras_accepts(test, case, answer):
    """Counts the cases where rustkeras raised (cleanly) and Keras builds and predicts: what
    rustkeras leaves out, or checks more strictly."""
    ref = worker("keras").ask(dict(case, weights=None))
    if ref.get("ok"):
        count(test, "rustkeras raises, Keras accepts", f"{answer['type']}@{answer['stage']}",
              {"case": case, "rustkeras": answer["message"][:300]})


@examples(ci=250)
@given(st.data())
def test_fuzz_sequential(data):
    spec, shape, ints = data.draw(sequential_spec())
    x, finite = data.draw(data_for(tuple(spec["input"]) if ints else shape_of_input(spec), int_range=ints))
    predict = {}
    if data.draw(st.integers(0, 5)) == 0:
        predict["batch_size"] = maybe(data.draw, st.integers(1, 6), WILD_INT)
    run_model_case("sequential", spec, x, finite, data.draw(st.integers(0, 1000)),
                   save=data.draw(st.integers(0, 4)) == 0, predict=predict)


@examples(ci=200)
@given(st.data())
def test_fuzz_functional(data):
    spec, in_shapes, _ = data.draw(functional_spec())
    n = data.draw(st.integers(1, 4))
    drawn = [data.draw(data_for(shape, n=n)) for shape in in_shapes]
    xs, finite = [x for x, _ in drawn], all(ok for _, ok in drawn)
    if len(xs) > 1 and data.draw(st.integers(0, 11)) == 0:
        xs, finite = xs[:1], False
    run_model_case("functional", spec, xs if len(xs) > 1 else xs[0], finite, data.draw(st.integers(0, 1000)),
                   save=data.draw(st.integers(0, 4)) == 0)


# -- training -------------------------------------------------------------------------------


@examples(ci=250)
@given(training_case())
def test_fuzz_training(drawn):
    case, finite, epochs, n, k = drawn
    note(f"case: {json.dumps(case)}")
    count("training", "examples")
    answer = worker("rustkeras").ask(case)
    if not answer.get("ok"):
        check_clean("training", case, answer)
        return
    count("training", "ok", "fit")
    history, epoch_list = answer["history"], answer["epochs"]
    if epoch_list and "loss" not in history:
        fail(f"no loss in the history: {sorted(history)}", case, answer)
    freq = case["fit"].get("validation_freq", 1)
    for key, values in history.items():
        # With validation_freq, the validation logs come every freq-th epoch only (as in Keras).
        want = len(epoch_list) if not key.startswith("val_") or freq == 1 else \
            sum(e + 1 in freq if isinstance(freq, list) else (e + 1) % freq == 0 for e in epoch_list)
        if len(values) != want:
            fail(f"history[{key!r}] has {len(values)} entries for {len(epoch_list)} epochs", case, answer)
    if epochs is not None and len(epoch_list) != max(epochs, 0):
        fail(f"{len(epoch_list)} epochs run, {epochs} asked", case, answer)
    pred = [array_of(p) for p in answer["pred"]]
    if len(pred) != 1 or pred[0].shape != (n, k):
        fail(f"predict gives {[p.shape for p in pred]}, expected ({n}, {k})", case, answer)
    ev = answer["evaluate"]
    values = list(ev.values()) if isinstance(ev, dict) else ev if isinstance(ev, list) else [ev]
    if not all(isinstance(v, (int, float)) for v in values):
        fail(f"evaluate returned {ev!r}", case, answer)
    if finite:
        losses = [v for key, vs in history.items() if key.endswith("loss") for v in vs]
        if not all(math.isfinite(v) for v in losses) or not answer["weights_finite"]:
            fail(f"training on finite data with a benign optimizer gives losses {losses} "
                 f"(weights finite: {answer['weights_finite']})", case, answer)
        count("training", "ok", "finite")


# -- ops and backend functions ----------------------------------------------------------------


@examples(ci=1200)
@given(op_case())
def test_fuzz_ops(drawn):
    module, name, args, kwargs, reference = drawn
    case = {"op": "op", "module": module, "name": name, "args": args, "kwargs": kwargs}
    note(f"case: {json.dumps(case)}")
    count(module, "examples")
    answer = worker("rustkeras").ask(case)
    expected = numpy_reference(reference) if reference is not None else None
    if not answer.get("ok"):
        check_clean(module, case, answer)
        if expected is not None and not isinstance(expected, Exception):
            count(module, "rustkeras raises, numpy accepts", f"{name}: {answer['type']}",
                  {"case": case, "rustkeras": answer["message"][:300]})
        return
    count(module, "ok", name)
    if isinstance(expected, Exception):
        count(module, "rustkeras accepts, numpy raises", name, {"case": case, "numpy": str(expected)[:300]})
    elif expected is not None:
        _compare_with_numpy(module, case, answer, expected)


def _compare_with_numpy(module, case, answer, expected):
    name, args = case["name"], case["args"]
    if answer["sequence"] != isinstance(expected, (list, tuple)):
        fail(f"{name}: a {'sequence' if answer['sequence'] else 'single array'} where numpy gives "
             f"{type(expected).__name__}", case, answer)
    results = answer["result"] if answer["sequence"] else [answer["result"]]
    want = [np.asarray(e) for e in expected] if answer["sequence"] else [np.asarray(expected)]
    if len(results) != len(want):
        fail(f"{name}: {len(results)} arrays, numpy {len(want)}", case, answer)
    # Values must match for finite operands; with NaN or infinities they are counted (numpy's
    # NaN rules are not every backend's), except for the functions that test for them.
    finite = all(np.isfinite(np.asarray(_fuzz_worker.decode(a), dtype=np.float64)).all()
                 for a in args if isinstance(a, dict) and "$array" in a)
    strict = finite or name in ("isnan", "isinf", "isfinite")
    for r, w in zip(results, want):
        g = array_of(r)
        if g.shape != w.shape:
            fail(f"{name}: shape {g.shape}, numpy {w.shape}", case, answer)
        if kind_of(np.dtype(r["dtype"])) != kind_of(w.dtype):
            count(module, "dtype kind differs", f"{name}: {r['dtype']} vs {w.dtype}", {"case": case})
        # numpy computes float functions of booleans in float16.
        if not close(g, w, rtol=2e-3 if w.dtype == np.float16 else 1e-4, atol=1e-5):
            if strict:
                fail(f"{name}: values differ from numpy:\n{g.ravel()[:8]}\n{w.ravel()[:8]}", case, answer)
            count(module, "differs from numpy on non-finite operands", name, {"case": case})
    count(module, "ok", "same as numpy")
