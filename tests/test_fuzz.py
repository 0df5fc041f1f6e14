"""Property-based fuzzing of the Python API (hypothesis): random layer stacks, functional graphs,
arguments, data, compile/fit arguments and `ops`/`backend` calls.

The invariant for every example: the calls succeed and give correct results, or raise a clean
exception (ValueError, TypeError, NotImplementedError, MemoryError or OSError, with a message);
never a crash, a hang, a Rust panic or an internal error (IndexError, KeyError, ...).

Correct results:
- models: the output shape and the predictions of Keras 3 (numpy backend) for the same model
  with rustkeras' weights (when Keras is installed); finite predictions for finite data on a
  benign model; `from_config(get_config())` gives the same config and predictions, and so
  does a `.keras` file;
- training: one history entry per epoch, finite losses and weights for finite data and a
  benign optimizer, the evaluate and predict shapes;
- ops and backend functions: numpy's values, shapes and kinds of dtype.

The cases run in long-lived worker interpreters (tests/_fuzz_worker.py, one for rustkeras and
one for Keras), so that a crash fails the example instead of killing pytest; a worker that
dies or hangs (no answer within CASE_TIMEOUT seconds) is restarted.

Profiles: by default each test runs a few dozen derandomized examples (seconds, for CI). A
long run: RUSTKERAS_FUZZ_EXAMPLES=3000 (examples per test, random), and with
RUSTKERAS_FUZZ_REPORT=file the tally of outcomes (per test: examples, clean errors by type,
differences from Keras where rustkeras raises or accepts more) is written to that file.
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
import warnings

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _fuzz_worker  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_fuzz_worker.py")
CASE_TIMEOUT = 120.0
ALLOWED = ("ValueError", "TypeError", "NotImplementedError", "MemoryError", "OSError")
# Text that shows an internal failure dressed as a clean exception.
INTERNAL = ("already borrowed", "already mutably borrowed", "unwrap()", "panicked at", "index out of bounds")

LONG = int(os.environ.get("RUSTKERAS_FUZZ_EXAMPLES", "0"))
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.function_scoped_fixture]
settings.register_profile("ci", deadline=None, derandomize=True, database=None, suppress_health_check=_HEALTH,
                          print_blob=False)
settings.register_profile("long", deadline=None, derandomize=False, database=None, suppress_health_check=_HEALTH,
                          max_examples=max(LONG, 1), print_blob=True)
PROFILE = "long" if LONG else "ci"


def examples(ci: int):
    """The settings of one fuzz test: `ci` examples in CI, RUSTKERAS_FUZZ_EXAMPLES in a long run."""
    return settings(settings.get_profile(PROFILE), max_examples=LONG or ci)


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
        except (BrokenPipeError, OSError):
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


# -- the tally (written to RUSTKERAS_FUZZ_REPORT after a long run) ---------------------------

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
    if os.environ.get("FUZZ_KNOWN") and typ in os.environ["FUZZ_KNOWN"].split(","):
        count(test, "known", typ, {"case": case, "msg": msg})
        return
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
    if a.shape != b.shape:
        return False
    a, b = a.astype(np.float64), b.astype(np.float64)
    finite = np.isfinite(b)
    scale = max(1.0, float(np.abs(b[finite]).max())) if finite.any() else 1.0
    return bool(np.allclose(a, b, rtol=rtol, atol=atol * scale, equal_nan=True))


def shape_json(shape):
    """A Keras shape (tuple or list of tuples) in JSON form."""
    return json.loads(json.dumps(shape))


# -- strategies: arguments ------------------------------------------------------------------

WILD_INT = [0, -1, -7, 2.5, "3", None, True, 10**13, 2**64, [], [2, 2, 2, 2], float("nan")]
WILD_FLOAT = [-0.5, 1.0, 1.5, float("nan"), float("inf"), "0.1", None, [], True, -1e30]
WILD_STR = ["", "relux", "VALID", 3, None, ["relu"], "channels_middle", "full"]
ACTIVATIONS = ["relu", "sigmoid", "tanh", "softmax", "linear", "elu", "selu", "softplus", "softsign", "swish",
               "gelu", "hard_sigmoid", "relu6", "leaky_relu", "silu", None]


def maybe(draw, valid, wild):
    """Mostly a value from `valid`, one time in 16 one of `wild` (shrinks towards valid)."""
    if draw(st.integers(0, 15)) == 15:
        return draw(st.sampled_from(wild))
    return draw(valid)


def is_count(v, hi=10**6) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= hi


def tuple_arg(draw, values, wild=WILD_INT):
    """An int, or one int per axis from `values` (a list of strategies), sometimes wild.
    Returns (argument, per-axis ints or None if invalid)."""
    if draw(st.integers(0, 15)) == 15:
        return draw(st.sampled_from(wild)), None
    per_axis = [draw(v) for v in values]
    if len(set(per_axis)) == 1 and draw(st.booleans()):
        return per_axis[0], per_axis
    return per_axis, per_axis


def layer(cls, **args):
    return {"cls": cls, "args": args}


# A shape is a tuple of per-sample dims; None means "not known" (an invalid argument came in).


def conv_out(n, k, s, d, padding):
    if padding in ("same", "causal"):
        return -(-n // s)
    return (n - d * (k - 1) - 1) // s + 1


def split_channels(shape, data_format):
    if data_format == "channels_first":
        return shape[1:], shape[0]
    return shape[:-1], shape[-1]


def join_channels(spatial, ch, data_format):
    return (ch,) + tuple(spatial) if data_format == "channels_first" else tuple(spatial) + (ch,)


def data_format_arg(draw, args):
    fmt = maybe(draw, st.sampled_from(["channels_last"] * 4 + ["channels_first"]), WILD_STR)
    if fmt != "channels_last" or draw(st.booleans()):
        args["data_format"] = fmt
    return fmt if fmt in ("channels_last", "channels_first") else None


def draw_conv(draw, shape, rank, transpose=False):
    name = f"Conv{rank}D" + ("Transpose" if transpose else "")
    args = {"filters": maybe(draw, st.integers(1, 4), WILD_INT)}
    fmt = data_format_arg(draw, args)
    spatial, ch = split_channels(shape, fmt or "channels_last")
    kernel, ks = tuple_arg(draw, [st.integers(1, max(1, min(n, 3))) for n in spatial])
    args["kernel_size"] = kernel
    padding = maybe(draw, st.sampled_from(["valid", "same"] + (["causal"] if rank == 1 and not transpose else [])),
                    WILD_STR)
    if padding != "valid" or draw(st.booleans()):
        args["padding"] = padding
    strides, ss = [1] * rank, [1] * rank
    dil = [1] * rank
    if draw(st.integers(0, 3)) == 0:
        strides, ss = tuple_arg(draw, [st.integers(1, 2)] * rank)
        args["strides"] = strides
    elif draw(st.integers(0, 4)) == 0:
        d, dil = tuple_arg(draw, [st.integers(1, 2)] * rank)
        args["dilation_rate"] = d
    if draw(st.booleans()):
        args["activation"] = maybe(draw, st.sampled_from(ACTIVATIONS), WILD_STR)
    if draw(st.integers(0, 4)) == 0:
        args["use_bias"] = False
    if fmt is None or ks is None or ss is None or dil is None or not is_count(args["filters"]) or \
            padding not in ("valid", "same", "causal"):
        return layer(name, **args), None
    if transpose:
        out = [(n - 1) * s + d * (k - 1) + 1 if padding == "valid" else n * s
               for n, k, s, d in zip(spatial, ks, ss, dil)]
    else:
        out = [conv_out(n, k, s, d, padding) for n, k, s, d in zip(spatial, ks, ss, dil)]
    return layer(name, **args), join_channels(out, args["filters"], fmt)


def draw_pool(draw, shape, rank):
    kind = draw(st.sampled_from(["Max", "Average"]))
    args = {}
    fmt = data_format_arg(draw, args)
    spatial, ch = split_channels(shape, fmt or "channels_last")
    pool, ps = tuple_arg(draw, [st.integers(1, max(1, min(n, 3))) for n in spatial])
    args["pool_size"] = pool
    ss = ps
    if draw(st.integers(0, 2)) == 0:
        strides, ss = tuple_arg(draw, [st.integers(1, 2)] * rank)
        args["strides"] = strides
    padding = maybe(draw, st.sampled_from(["valid", "same"]), WILD_STR)
    if padding != "valid" or draw(st.booleans()):
        args["padding"] = padding
    name = f"{kind}Pooling{rank}D"
    if fmt is None or ps is None or ss is None or padding not in ("valid", "same"):
        return layer(name, **args), None
    out = [conv_out(n, k, s, 1, padding) for n, k, s in zip(spatial, ps, ss)]
    return layer(name, **args), join_channels(out, ch, fmt)


def draw_global_pool(draw, shape, rank):
    args = {}
    fmt = data_format_arg(draw, args)
    keep = draw(st.booleans())
    if keep:
        args["keepdims"] = True
    name = f"Global{draw(st.sampled_from(['Max', 'Average']))}Pooling{rank}D"
    if fmt is None:
        return layer(name, **args), None
    spatial, ch = split_channels(shape, fmt)
    return layer(name, **args), (join_channels([1] * rank, ch, fmt) if keep else (ch,))


def draw_padding(draw, shape, rank, crop):
    args = {}
    fmt = "channels_last"
    if rank > 1 or not crop:
        fmt = data_format_arg(draw, args) if rank > 1 else "channels_last"
    spatial, ch = split_channels(shape, fmt or "channels_last")
    if crop:
        pairs = []
        for n in spatial:
            a = draw(st.integers(0, max(0, (n - 1) // 2)))
            pairs.append((a, draw(st.integers(0, max(0, n - 1 - a)))))
    else:
        pairs = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in spatial]
    form = draw(st.integers(0, 2))
    if form == 0 and len({p for pair in pairs for p in pair}) == 1:
        amount = pairs[0][0]
    elif form == 1 and all(a == b for a, b in pairs):
        amount = [a for a, _ in pairs]
    else:
        amount = pairs[0] if rank == 1 else [list(p) for p in pairs]
    amount = maybe(draw, st.just(amount), WILD_INT + [[[1, 2, 3]], [[-1, 0]] * rank])
    args["cropping" if crop else "padding"] = amount
    name = f"{'Cropping' if crop else 'ZeroPadding'}{rank}D"
    if fmt is None or isinstance(amount, (float, str, bool)) or amount in WILD_INT or \
            amount in ([[1, 2, 3]], [[-1, 0]] * rank):
        return layer(name, **args), None
    sign = -1 if crop else 1
    out = [n + sign * (a + b) for n, (a, b) in zip(spatial, pairs)]
    return layer(name, **args), join_channels(out, ch, fmt)


def draw_upsampling(draw, shape, rank):
    args = {}
    fmt = data_format_arg(draw, args) if rank > 1 else "channels_last"
    size, sz = tuple_arg(draw, [st.integers(1, 3)] * rank)
    args["size"] = size
    name = f"UpSampling{rank}D"
    if fmt is None or sz is None:
        return layer(name, **args), None
    spatial, ch = split_channels(shape, fmt)
    return layer(name, **args), join_channels([n * s for n, s in zip(spatial, sz)], ch, fmt)


def draw_rnn(draw, shape, bidirectional=False):
    cls = draw(st.sampled_from(["SimpleRNN", "LSTM", "GRU"]))
    units = maybe(draw, st.integers(1, 4), WILD_INT)
    args = {"units": units}
    seq = draw(st.booleans())
    if seq:
        args["return_sequences"] = True
    if draw(st.integers(0, 3)) == 0:
        args["go_backwards"] = True
    if draw(st.integers(0, 3)) == 0:
        args["activation"] = maybe(draw, st.sampled_from(["tanh", "relu", "sigmoid", "linear"]), WILD_STR)
    if draw(st.integers(0, 4)) == 0:
        args["dropout"] = maybe(draw, st.sampled_from([0.0, 0.25]), WILD_FLOAT)
    if draw(st.integers(0, 4)) == 0:
        args["recurrent_dropout"] = maybe(draw, st.sampled_from([0.0, 0.25]), WILD_FLOAT)
    if draw(st.integers(0, 4)) == 0:
        args["use_bias"] = False
    if cls == "GRU" and draw(st.integers(0, 4)) == 0:
        args["reset_after"] = draw(st.booleans())
    out_units = units if is_count(units) else None
    inner = layer(cls, **args)
    if bidirectional:
        mode = maybe(draw, st.sampled_from(["concat", "sum", "mul", "ave"]), WILD_STR)
        outer = {"cls": "Bidirectional", "args": {"merge_mode": mode}, "wrap": inner}
        if out_units is not None and mode == "concat":
            out_units *= 2
        elif mode not in ("sum", "mul", "ave"):
            out_units = None
        inner = outer
    if out_units is None or len(shape) != 2:
        return inner, None
    return inner, ((shape[0], out_units) if seq else (out_units,))


def draw_reshape(draw, shape):
    total = int(np.prod(shape))
    dims = []
    rest = total
    for _ in range(draw(st.integers(0, 2))):
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = draw(st.sampled_from(divisors))
        dims.append(d)
        rest //= d
    dims.append(rest)
    target = list(dims)
    if draw(st.integers(0, 3)) == 0:
        target[draw(st.integers(0, len(target) - 1))] = -1
    target = maybe(draw, st.just(target), [[total + 1], [0], [-1, -1], [-2, total], [], 2.5, "3", [None]])
    ok = isinstance(target, list) and target == [d if t != -1 else -1 for d, t in zip(dims, target)] and \
        len(target) == len(dims)
    return layer("Reshape", target_shape=target), (tuple(dims) if ok else None)


def draw_any_rank(draw, shape):
    """A layer for an input of any rank."""
    kind = draw(st.sampled_from(["Dense", "Activation", "Dropout", "BatchNormalization", "LeakyReLU", "ELU",
                                 "PReLU", "Flatten", "Reshape", "Masking", "Lambda"]
                                + (["TimeDistributed"] if len(shape) >= 2 else [])))
    if kind == "Dense":
        units = maybe(draw, st.integers(1, 6), WILD_INT)
        args = {"units": units}
        if draw(st.booleans()):
            args["activation"] = maybe(draw, st.sampled_from(ACTIVATIONS), WILD_STR)
        if draw(st.integers(0, 3)) == 0:
            args["use_bias"] = False
        return layer("Dense", **args), (shape[:-1] + (units,) if is_count(units, 64) else None)
    if kind == "Activation":
        act = maybe(draw, st.sampled_from(ACTIVATIONS), WILD_STR)
        return layer("Activation", activation=act), (shape if act in ACTIVATIONS else None)
    if kind == "Dropout":
        rate = maybe(draw, st.sampled_from([0.0, 0.1, 0.5, 0.9]), WILD_FLOAT)
        return layer("Dropout", rate=rate), (shape if rate in (0.0, 0.1, 0.5, 0.9) else None)
    if kind == "BatchNormalization":
        args = {}
        if draw(st.integers(0, 3)) == 0:
            args["axis"] = maybe(draw, st.integers(-len(shape), len(shape)), WILD_INT)
        if draw(st.integers(0, 3)) == 0:
            args["momentum"] = maybe(draw, st.sampled_from([0.0, 0.5, 0.99]), WILD_FLOAT)
        if draw(st.integers(0, 3)) == 0:
            args["epsilon"] = maybe(draw, st.sampled_from([1e-3, 1e-5, 0.5]), WILD_FLOAT)
        for flag in ("center", "scale"):
            if draw(st.integers(0, 4)) == 0:
                args[flag] = False
        ok = args.get("axis", -1) in range(-len(shape), len(shape)) and all(
            isinstance(args.get(k, 0.5), float) and 0 <= args.get(k, 0.5) <= 1 for k in ("momentum", "epsilon"))
        return layer("BatchNormalization", **args), (shape if ok else None)
    if kind == "LeakyReLU":
        slope = maybe(draw, st.sampled_from([0.0, 0.1, 0.3, 1.0]), WILD_FLOAT)
        return layer("LeakyReLU", negative_slope=slope), shape
    if kind == "ELU":
        return layer("ELU", alpha=maybe(draw, st.sampled_from([0.5, 1.0, 2.0]), WILD_FLOAT)), shape
    if kind == "PReLU":
        return layer("PReLU"), shape
    if kind == "Flatten":
        return layer("Flatten"), (int(np.prod(shape)),)
    if kind == "Reshape":
        return draw_reshape(draw, shape)
    if kind == "Masking":
        return layer("Masking", mask_value=maybe(draw, st.sampled_from([0.0, 1.0]), WILD_FLOAT)), shape
    if kind == "Lambda":
        fn, arguments, keep = draw(st.sampled_from([
            ("abs", {}, True), ("square", {}, True), ("tanh", {}, True), ("negative", {}, True),
            ("sigmoid", {}, True), ("relu", {}, True), ("sin", {}, True), ("softmax", {"axis": -1}, True),
            ("sum", {"axis": -1}, False), ("mean", {"axis": -1, "keepdims": True}, True),
            ("max", {"axis": 1}, False), ("cumsum", {"axis": -1}, True), ("clip", {"x_min": -0.5, "x_max": 0.5}, True),
        ]))
        args = {"function": {"$fn": f"ops.{fn}"}}
        if arguments:
            args["arguments"] = arguments
        if keep:
            out = shape
        elif fn == "sum":
            out = shape[:-1] if len(shape) > 1 else None
        else:
            out = shape[:0] + shape[1:] if len(shape) > 1 else None
        return layer("Lambda", **args), out
    # TimeDistributed(Dense)
    units = maybe(draw, st.integers(1, 4), WILD_INT)
    return ({"cls": "TimeDistributed", "args": {}, "wrap": layer("Dense", units=units)},
            (shape[:-1] + (units,) if is_count(units, 64) else None))


def draw_layer(draw, shape):
    """A layer for an input of `shape` (usually one the layer accepts) and its output shape
    (None where not known)."""
    if shape is None or draw(st.integers(0, 11)) == 0:
        shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
        known = False
    else:
        known = True
    rank = len(shape)
    choices = ["any"] * 3
    if rank == 1:
        choices += ["RepeatVector"]
    if rank in (2, 3, 4):
        choices += ["conv", "conv", "conv_transpose", "pool", "global_pool", "padding", "cropping", "upsampling"]
    if rank == 2:
        choices += ["rnn", "rnn", "bidirectional"]
    kind = draw(st.sampled_from(choices))
    r = rank - 1
    if kind == "any":
        out = draw_any_rank(draw, shape)
    elif kind == "RepeatVector":
        n = maybe(draw, st.integers(1, 4), WILD_INT)
        out = layer("RepeatVector", n=n), ((n,) + shape if is_count(n) else None)
    elif kind == "conv":
        out = draw_conv(draw, shape, r)
    elif kind == "conv_transpose":
        out = draw_conv(draw, shape, r, transpose=True)
    elif kind == "pool":
        out = draw_pool(draw, shape, r)
    elif kind == "global_pool":
        out = draw_global_pool(draw, shape, r)
    elif kind in ("padding", "cropping"):
        out = draw_padding(draw, shape, r, crop=kind == "cropping")
    elif kind == "upsampling":
        out = draw_upsampling(draw, shape, r)
    else:
        out = draw_rnn(draw, shape, bidirectional=kind == "bidirectional")
    spec, new = out
    if not known or new is None or not all(isinstance(d, int) and d > 0 for d in new) or \
            int(np.prod(new)) > 4096:
        new = None
    return spec, new


@st.composite
def input_shape(draw):
    shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    if draw(st.integers(0, 15)) == 15:
        i = draw(st.integers(0, len(shape) - 1))
        shape[i] = draw(st.sampled_from([0, -1, None, 2.5, "3", 10**13]))
        return shape, None
    return shape, tuple(shape)


def contains(spec, text: str) -> bool:
    return text in json.dumps(spec)


@st.composite
def data_for(draw, shape, n=None, int_range=None):
    """A data description for a model input of per-sample `shape` (usually a matching one).
    Returns (description, whether the values are finite and the shape matches)."""
    if n is None:
        n = maybe(draw, st.integers(1, 5), [0])
    dims = list(shape) if shape is not None and all(isinstance(d, int) and d > 0 for d in shape) else [2]
    matches = shape is not None and dims == list(shape)
    if draw(st.integers(0, 11)) == 0:
        how = draw(st.integers(0, 2))
        if how == 0:
            dims = dims[:-1]
        elif how == 1:
            dims = dims + [draw(st.integers(1, 3))]
        else:
            i = draw(st.integers(0, len(dims) - 1))
            dims[i] = dims[i] + 1
        matches = False
    d = {"shape": [n] + dims, "seed": draw(st.integers(0, 2**16))}
    if int_range is not None:
        lo, hi = int_range
        fill = maybe(draw, st.just(f"int:{lo}:{hi}"), [f"int:{-3}:{hi}", f"int:0:{hi + 5}", "normal", "nan"])
        dtype = draw(st.sampled_from(["int32", "int32", "int64", "float32"]))
    else:
        fill = maybe(draw, st.sampled_from(["normal"] * 6 + ["zeros", "uniform"]), ["nan", "inf", "big"])
        dtype = maybe(draw, st.sampled_from(["float32"] * 6 + ["float64"]), ["float16", "int32", "bool"])
    d["fill"], d["dtype"] = fill, dtype
    form = maybe(draw, st.just("array"), ["list", "fortran", "strided"])
    if form != "array":
        d["form"] = form
    finite = matches and n > 0 and fill not in ("nan", "inf", "big") and (int_range is None or
                                                                          fill == f"int:{int_range[0]}:{int_range[1]}")
    return {"$array": d}, finite


@st.composite
def sequential_spec(draw, max_layers=4, wild=True):
    """(spec, output shape or None, int range of an Embedding input or None)."""
    ints = None
    layers = []
    if draw(st.integers(0, 7)) == 0:
        steps = draw(st.integers(1, 6))
        vocab = maybe(draw, st.integers(1, 10), WILD_INT) if wild else draw(st.integers(1, 10))
        out_dim = maybe(draw, st.integers(1, 4), WILD_INT) if wild else draw(st.integers(1, 4))
        args = {"input_dim": vocab, "output_dim": out_dim}
        if draw(st.integers(0, 3)) == 0:
            args["mask_zero"] = True
        layers.append(layer("Embedding", **args))
        in_shape = [steps]
        ints = (0, vocab if is_count(vocab, 10) else 3)
        shape = (steps, out_dim) if is_count(vocab, 10) and is_count(out_dim, 10) else None
    else:
        in_shape, shape = draw(input_shape()) if wild else (lambda s: (s, tuple(s)))(
            draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)))
    for _ in range(draw(st.integers(1 if not layers else 0, max_layers))):
        spec, shape = draw_layer(draw, shape)
        layers.append(spec)
    return {"kind": "sequential", "input": in_shape, "layers": layers}, shape, ints


MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"]


@st.composite
def functional_spec(draw):
    """(spec, output shapes) of a small functional graph: layers on any earlier tensor, merges,
    shared layers; one or two inputs and outputs."""
    n_in = draw(st.integers(1, 2))
    first, shape0 = draw(input_shape())
    inputs, shapes = [first], [shape0]
    if n_in == 2:
        if draw(st.booleans()):
            inputs.append(list(first))
            shapes.append(shape0)
        else:
            s, sh = draw(input_shape())
            inputs.append(s)
            shapes.append(sh)
    nodes, node_in_shapes = [], []
    for _ in range(draw(st.integers(1, 5))):
        choice = draw(st.integers(0, 9))
        latest = len(shapes) - 1
        if choice < 3 and len(shapes) >= 2:
            kind = draw(st.sampled_from(MERGES))
            same = [(i, j) for i in range(len(shapes)) for j in range(len(shapes))
                    if i < j and shapes[i] is not None and shapes[i] == shapes[j]]
            if kind == "Concatenate":
                same = [(i, j) for i in range(len(shapes)) for j in range(len(shapes))
                        if i < j and shapes[i] is not None and shapes[j] is not None
                        and shapes[i][:-1] == shapes[j][:-1]]
            if same and draw(st.integers(0, 5)):
                i, j = draw(st.sampled_from(same))
            else:
                i, j = draw(st.integers(0, latest)), draw(st.integers(0, latest))
            ins = [i, j]
            if kind != "Subtract" and draw(st.integers(0, 4)) == 0:
                ins.append(draw(st.sampled_from(ins)))
            args = {}
            if kind == "Concatenate" and draw(st.integers(0, 3)) == 0:
                args["axis"] = maybe(draw, st.integers(-2, 2), WILD_INT)
            nodes.append({"layer": layer(kind, **args), "in": ins, "list": True})
            node_in_shapes.append(None)
            a, b = shapes[i], shapes[j]
            if a is None or b is None:
                out = None
            elif kind == "Concatenate":
                out = (a[:-1] + (a[-1] + b[-1] + (a[-1] if len(ins) == 3 else 0),)
                       if a[:-1] == b[:-1] and args.get("axis", -1) == -1 else None)
            else:
                out = a if a == b else None
            shapes.append(out)
            continue
        src = latest if draw(st.integers(0, 2)) else draw(st.integers(0, latest))
        reusable = [k for k, s in enumerate(node_in_shapes) if s is not None and s == shapes[src]]
        if choice == 3 and reusable:
            k = draw(st.sampled_from(reusable))
            nodes.append({"layer": {"reuse": k}, "in": [src]})
            node_in_shapes.append(None)
            shapes.append(shapes[n_in + k])
            continue
        spec, out = draw_layer(draw, shapes[src])
        nodes.append({"layer": spec, "in": [src]})
        node_in_shapes.append(shapes[src] if out is not None else None)
        shapes.append(out)
    outputs = [len(shapes) - 1]
    if draw(st.integers(0, 3)) == 0:
        other = draw(st.integers(n_in, len(shapes) - 1))
        if other not in outputs:
            outputs.append(other)
    spec = {"kind": "functional", "inputs": inputs, "nodes": nodes, "outputs": outputs}
    return spec, shapes[:n_in], [shapes[i] for i in outputs]


# -- model checks ---------------------------------------------------------------------------


def keras_differs(spec) -> bool:
    """Whether Keras' numpy backend is known to compute another function than Keras' definition:
    its leaky_relu is max(x, slope * x), which is not the layer's function for slopes above 1."""
    return any(isinstance(v, (int, float)) and v > 1 for v in _values_of(spec, "negative_slope"))


def _values_of(spec, key):
    if isinstance(spec, dict):
        for k, v in spec.items():
            if k == key:
                yield v
            yield from _values_of(v, key)
    elif isinstance(spec, list):
        for v in spec:
            yield from _values_of(v, key)


def benign(spec) -> bool:
    """Whether finite data must give finite predictions: no exponential activation, and no
    average of masked steps (NaN where all steps are masked, as in Keras)."""
    masked = contains(spec, "mask_zero") or contains(spec, "Masking")
    return not contains(spec, "exponential") and not (masked and contains(spec, "GlobalAveragePooling1D"))


def run_model_case(test: str, spec, x, data_finite: bool, seed: int, save: bool):
    """Runs a model case on rustkeras (and Keras) and checks the outcome."""
    case = {"op": "model", "spec": spec, "x": x, "seed": seed, "config": not contains(spec, "Lambda"),
            "save": save and not contains(spec, "Lambda")}
    note(f"case: {json.dumps(case)}")
    answer = worker("rustkeras").ask(case)
    if not answer.get("ok"):
        check_clean(test, case, answer, strict_stages=("weights", "config", "save"))
        if HAVE_KERAS:
            _compare_failure(test, spec, x, seed, answer)
        return
    count(test, "ok", "predict")
    pred = [array_of(p) for p in answer["pred"]]
    if data_finite and benign(spec) and not all(np.isfinite(p).all() for p in pred):
        fail("predictions on finite data are not finite", case, answer)
    if not HAVE_KERAS:
        return
    weights = [array_of(w).tolist() for w in answer["weights"]]
    kcase = {"op": "model", "spec": spec, "x": x, "seed": seed, "weights": weights}
    ref = worker("keras").ask(kcase)
    if "crash" in ref:
        count(test, "keras crashed", ref["crash"][:200])
        return
    if not ref.get("ok"):
        if ref["stage"] == "weights":
            fail(f"Keras cannot take rustkeras' weights: {ref['message']}", case, ref)
        count(test, "rustkeras accepts, Keras raises", f"{ref['type']}@{ref['stage']}",
              {"spec": spec, "x": x, "keras": ref["message"][:300]})
        return
    if shape_json(answer["output_shape"]) != shape_json(ref["output_shape"]):
        fail(f"output shape {answer['output_shape']}, Keras {ref['output_shape']}", case, answer)
    kpred = [array_of(p) for p in ref["pred"]]
    if len(kpred) != len(pred) or any(a.shape != b.shape for a, b in zip(pred, kpred)):
        fail(f"predict shapes {[p.shape for p in pred]}, Keras {[p.shape for p in kpred]}", case, answer)
    if data_finite and not keras_differs(spec):
        for i, (a, b) in enumerate(zip(pred, kpred)):
            if not close(a, b):
                where = np.argmax(np.abs(np.nan_to_num(a - b)))
                fail(f"output {i} differs from Keras: max |diff| {np.nanmax(np.abs(a - b)):.3g} at "
                     f"{np.unravel_index(where, a.shape)}: {a.ravel()[where]} vs {b.ravel()[where]}", case, answer)
        count(test, "ok", "same as Keras")


def _compare_failure(test, spec, x, seed, answer):
    """Where rustkeras raised: whether Keras builds (and predicts) the same case (counted only:
    rustkeras may leave out what Keras has, with a clean error)."""
    ref = worker("keras").ask({"op": "model", "spec": spec, "x": x, "seed": seed, "weights": None})
    if ref.get("ok") or (ref.get("stage") not in ("build", None) and answer["stage"] == "build"):
        count(test, "rustkeras raises, Keras accepts", f"{answer['type']}@{answer['stage']}",
              {"spec": spec, "x": x, "rustkeras": answer["message"][:300]})


# -- the tests ------------------------------------------------------------------------------


@examples(ci=70)
@given(st.data())
def test_fuzz_sequential(data):
    spec, shape, ints = data.draw(sequential_spec())
    x, finite = data.draw(data_for(tuple(spec["input"]) if ints else shape_of_input(spec), int_range=ints))
    seed = data.draw(st.integers(0, 1000))
    run_model_case("sequential", spec, x, finite, seed, save=data.draw(st.integers(0, 4)) == 0)


def shape_of_input(spec):
    s = spec["input"]
    return tuple(s) if all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in s) else None


@examples(ci=50)
@given(st.data())
def test_fuzz_functional(data):
    spec, in_shapes, _ = data.draw(functional_spec())
    xs, finite = [], True
    n = data.draw(st.integers(1, 4))
    for s, sh in zip(spec["inputs"], in_shapes):
        x, ok = data.draw(data_for(sh, n=n))
        xs.append(x)
        finite = finite and ok
    if len(xs) > 1 and data.draw(st.integers(0, 11)) == 0:
        xs = xs[:1]
        finite = False
    seed = data.draw(st.integers(0, 1000))
    run_model_case("functional", spec, xs if len(xs) > 1 else xs[0], finite, seed,
                   save=data.draw(st.integers(0, 4)) == 0)


# -- training -------------------------------------------------------------------------------

LOSSES = {  # name: (kind of targets, whether finite data gives finite losses with any head)
    "mse": ("real", True), "mean_absolute_error": ("real", True), "huber": ("real", True),
    "log_cosh": ("real", True), "categorical_crossentropy": ("onehot", True),
    "sparse_categorical_crossentropy": ("sparse", True), "binary_crossentropy": ("binary", True),
    "hinge": ("binary", True), "squared_hinge": ("binary", True), "categorical_hinge": ("onehot", True),
    "kl_divergence": ("onehot", True), "poisson": ("real", False), "cosine_similarity": ("real", False),
    "msle": ("real", True), "mape": ("real", True),
}
LOSS_CLASSES = {"MeanSquaredError": "mse", "CategoricalCrossentropy": "categorical_crossentropy",
                "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
                "BinaryCrossentropy": "binary_crossentropy", "Huber": "huber"}
OPTIMIZERS = {"SGD": ["momentum", "nesterov"], "RMSprop": ["rho", "momentum", "centered"],
              "Adagrad": ["initial_accumulator_value"], "Adadelta": ["rho"], "Adam": ["beta_1", "beta_2", "amsgrad"],
              "AdamW": ["weight_decay"], "Adamax": ["beta_1"], "Nadam": ["beta_2"]}
METRICS = ["accuracy", "mae", "mse", "categorical_accuracy", "binary_accuracy", "sparse_categorical_accuracy",
           "top_k_categorical_accuracy", "AUC", "precision", "recall", "RootMeanSquaredError"]


@st.composite
def optimizer_arg(draw):
    """(optimizer argument, whether it is benign: a finite, moderate step)."""
    if draw(st.booleans()):
        name = maybe(draw, st.sampled_from([o.lower() for o in OPTIMIZERS]), ["adamz", "", 3, None])
        return name, name in [o.lower() for o in OPTIMIZERS] or name is None
    cls = draw(st.sampled_from(sorted(OPTIMIZERS)))
    args = {}
    lr = maybe(draw, st.sampled_from([1e-3, 1e-2, 0.1]), [0.0, -0.1, 1e6, float("nan"), "0.1", None, [0.1]])
    if lr is not None or draw(st.booleans()):
        args["learning_rate"] = lr
    ok = lr in (1e-3, 1e-2, 0.1, 0.0) or lr is None
    for hp in OPTIMIZERS[cls]:
        if draw(st.integers(0, 2)) == 0:
            if hp in ("nesterov", "centered", "amsgrad"):
                args[hp] = maybe(draw, st.booleans(), ["yes", 2, None])
            elif hp == "weight_decay":
                args[hp] = maybe(draw, st.sampled_from([0.0, 0.004, 0.1]), WILD_FLOAT)
            else:
                args[hp] = maybe(draw, st.sampled_from([0.0, 0.5, 0.9]), WILD_FLOAT + [1.0 + 1e-3])
                ok = ok and args[hp] in (0.0, 0.5, 0.9)
    for clip in ("clipnorm", "clipvalue", "global_clipnorm"):
        if draw(st.integers(0, 5)) == 0:
            args[clip] = maybe(draw, st.sampled_from([0.5, 1.0]), [0.0, -1.0, float("nan"), "1"])
            ok = ok and args[clip] in (0.5, 1.0)
    if draw(st.integers(0, 6)) == 0:
        args["use_ema"] = True
        args["ema_momentum"] = maybe(draw, st.sampled_from([0.5, 0.99]), WILD_FLOAT)
    if draw(st.integers(0, 6)) == 0:
        args["gradient_accumulation_steps"] = maybe(draw, st.sampled_from([2, 3]), WILD_INT)
    return {"$obj": f"optimizers.{cls}", "args": args}, ok


@st.composite
def training_case(draw):
    """(case, whether finite losses and weights are expected, number of epochs expected or None)."""
    spec, shape, ints = draw(sequential_spec(max_layers=2, wild=draw(st.integers(0, 2)) == 0))
    if shape is None or len(shape) > 1:
        spec["layers"].append(layer("Flatten"))
    k = draw(st.integers(1, 4))
    loss_name = draw(st.sampled_from(sorted(LOSSES)))
    kind, loss_finite = LOSSES[loss_name]
    head = {"onehot": "softmax", "sparse": "softmax", "binary": "sigmoid", "real": None}[kind]
    head = maybe(draw, st.just(head), ["linear", "relu", "exponential"])
    if head != LOSSES and kind in ("onehot", "sparse", "binary") and head not in ("softmax", "sigmoid"):
        loss_finite = loss_finite and kind not in ("onehot", "sparse", "binary")
    spec["layers"].append(layer("Dense", units=k, **({"activation": head} if head else {})))
    # The loss: by name or as an object (sometimes with wild options).
    if draw(st.integers(0, 3)) == 0 and loss_name in LOSS_CLASSES.values():
        cls = [c for c, n in LOSS_CLASSES.items() if n == loss_name][0]
        largs = {}
        if "Crossentropy" in cls and draw(st.booleans()):
            largs["from_logits"] = maybe(draw, st.booleans(), ["no", 2])
        if cls in ("CategoricalCrossentropy", "BinaryCrossentropy") and draw(st.booleans()):
            largs["label_smoothing"] = maybe(draw, st.sampled_from([0.0, 0.1]), [-0.1, 1.5, float("nan")])
        if cls == "Huber" and draw(st.booleans()):
            largs["delta"] = maybe(draw, st.sampled_from([0.5, 2.0]), [0.0, -1.0])
        loss = {"$obj": f"losses.{cls}", "args": largs}
        loss_finite = loss_finite and not largs
    else:
        loss = maybe(draw, st.just(loss_name), ["mean_squared_errorz", "", 3, None])
    optimizer, opt_ok = draw(optimizer_arg())
    compile_args = {"optimizer": optimizer, "loss": loss}
    if draw(st.booleans()):
        compile_args["metrics"] = maybe(draw, st.lists(st.sampled_from(METRICS), max_size=3, unique=True),
                                        ["accuracy", ["nope"], [3], {"x": "mae"}])
    # Data.
    n = draw(st.integers(1, 8))
    x, x_finite = draw(data_for(tuple(spec["input"]) if ints else shape_of_input(spec), n=n, int_range=ints))
    seed = draw(st.integers(0, 2**16))
    target = {"real": {"shape": [n, k], "fill": "normal"},
              "binary": {"shape": [n, k], "fill": "int:0:2"},
              "onehot": {"shape": [n, k], "fill": "onehot"},
              "sparse": {"shape": [n], "fill": f"int:0:{k}", "dtype": "int32"}}[kind]
    target = dict(target, seed=seed)
    target.setdefault("dtype", "float32")
    y_ok = True
    if draw(st.integers(0, 9)) == 0:
        how = draw(st.integers(0, 3))
        if how == 0:
            target["shape"] = [n + 1] + target["shape"][1:]
        elif how == 1:
            target["shape"] = target["shape"] + [2]
        elif how == 2:
            target["fill"] = "nan"
        else:
            target["fill"] = f"int:{-2}:{k + 3}"
        y_ok = False
    y = {"$array": target}
    # fit, evaluate.
    fit = {}
    epochs = maybe(draw, st.integers(1, 2), [0, -1, 2.5, "2", None])
    fit["epochs"] = epochs
    if draw(st.booleans()):
        fit["batch_size"] = maybe(draw, st.integers(1, 9), WILD_INT)
    if draw(st.integers(0, 3)) == 0:
        fit["validation_split"] = maybe(draw, st.sampled_from([0.0, 0.25, 0.5]), WILD_FLOAT + [1.0, 0.99])
    if draw(st.integers(0, 5)) == 0:
        fit["validation_data"] = maybe(draw, st.just([x, y]), [[x], x, [x, y, y, y], None])
    if draw(st.integers(0, 3)) == 0:
        fit["shuffle"] = maybe(draw, st.sampled_from([True, False, "batch"]), ["yes", 2, None])
    if draw(st.integers(0, 4)) == 0:
        sw = {"shape": [n], "fill": "uniform", "seed": seed + 1}
        sw = maybe(draw, st.just(sw), [dict(sw, shape=[n + 1]), dict(sw, fill="nan"), dict(sw, fill="normal"),
                                       dict(sw, shape=[n, 2])])
        fit["sample_weight"] = {"$array": sw}
        y_ok = y_ok and sw["fill"] == "uniform" and sw["shape"] == [n]
    if kind in ("sparse", "onehot", "binary") and draw(st.integers(0, 4)) == 0:
        cw = {i: draw(st.sampled_from([0.5, 1.0, 2.0])) for i in range(k)}
        fit["class_weight"] = maybe(draw, st.just(cw), [{0: -1.0}, {k + 5: 1.0}, {"a": 1.0}, [1.0] * k,
                                                        {0: float("nan")}])
        y_ok = y_ok and fit["class_weight"] == cw
    steps = None
    if draw(st.integers(0, 5)) == 0:
        steps = maybe(draw, st.sampled_from([1, 2, 1000]), WILD_INT)
        fit["steps_per_epoch"] = steps
    if draw(st.integers(0, 6)) == 0:
        fit["initial_epoch"] = maybe(draw, st.integers(0, 1), WILD_INT)
    evaluate = {}
    if draw(st.booleans()):
        evaluate["batch_size"] = maybe(draw, st.integers(1, 9), WILD_INT)
    if draw(st.integers(0, 4)) == 0:
        evaluate["steps"] = maybe(draw, st.integers(1, 3), WILD_INT)
    if draw(st.integers(0, 3)) == 0:
        evaluate["return_dict"] = True
    finite = (x_finite and y_ok and loss_finite and opt_ok and benign(spec)
              and "big" not in json.dumps(x) and steps in (None, 1, 2, 1000))
    expected_epochs = None
    if is_count(epochs) and steps is None:
        expected_epochs = epochs - fit.get("initial_epoch", 0) if is_count(fit.get("initial_epoch", 1)) or \
            fit.get("initial_epoch") == 0 else None
    case = {"op": "train", "spec": spec, "compile": compile_args, "x": x, "y": y, "fit": fit, "evaluate": evaluate,
            "seed": seed}
    return case, finite, expected_epochs, n, k


@examples(ci=50)
@given(training_case())
def test_fuzz_training(drawn):
    case, finite, epochs, n, k = drawn
    note(f"case: {json.dumps(case)}")
    answer = worker("rustkeras").ask(case)
    if not answer.get("ok"):
        check_clean("training", case, answer)
        return
    count("training", "ok", "fit")
    history, epoch_list = answer["history"], answer["epochs"]
    if epoch_list and "loss" not in history:
        fail(f"no loss in the history: {sorted(history)}", case, answer)
    for key, values in history.items():
        if len(values) != len(epoch_list):
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


@st.composite
def array_arg(draw, shape=None, kind=None):
    """(data description, the array) for an op operand."""
    if shape is None:
        shape = draw(st.lists(st.integers(1, 4), min_size=0, max_size=4))
        if draw(st.integers(0, 19)) == 0:
            shape = shape + [0]
    kind = kind or draw(st.sampled_from(["float32"] * 6 + ["int32", "bool", "float64"]))
    d = {"shape": list(shape), "seed": draw(st.integers(0, 2**16)), "dtype": kind}
    if kind in ("int32", "int64"):
        d["fill"] = "int:-4:5"
    else:
        d["fill"] = maybe(draw, st.sampled_from(["normal", "normal", "uniform"]), ["nan", "inf", "zeros"])
    if draw(st.integers(0, 11)) == 0:
        d["form"] = draw(st.sampled_from(["list", "fortran", "strided"]))
    desc = {"$array": d}
    return desc, np.asarray(_fuzz_worker.make_array(d))


def axis_arg(draw, ndim, multi=True, none=True):
    options = [st.integers(-max(ndim, 1), max(ndim - 1, 0))]
    if none:
        options.append(st.none())
    if multi and ndim >= 2:
        options.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(
            lambda a: {"$tuple": a}))
    return maybe(draw, st.one_of(options), [ndim, -ndim - 1, 2.5, "0", [0, 0], {"$tuple": [0, 0]}])


def np_args(v):
    """A decoded argument for numpy (tuples for `$tuple`)."""
    return _fuzz_worker.decode(v)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


UNARY = {
    "abs": np.abs, "negative": np.negative, "square": np.square, "sqrt": np.sqrt, "exp": np.exp, "log": np.log,
    "log1p": np.log1p, "expm1": np.expm1, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "arctan": np.arctan, "tanh": np.tanh, "reciprocal": lambda x: 1.0 / x,
    "sign": np.sign, "log2": np.log2, "log10": np.log10, "isnan": np.isnan, "isinf": np.isinf,
    "isfinite": np.isfinite, "logical_not": np.logical_not, "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _sigmoid, "softplus": lambda x: np.logaddexp(0, x), "softsign": lambda x: x / (1 + np.abs(x)),
    "silu": lambda x: x * _sigmoid(x), "relu6": lambda x: np.clip(x, 0, 6), "ravel": np.ravel,
    "rsqrt": lambda x: 1.0 / np.sqrt(x), "round": np.round,
}
BINARY = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.true_divide,
    "true_divide": np.true_divide, "maximum": np.maximum, "minimum": np.minimum, "power": np.power,
    "mod": np.mod, "floor_divide": np.floor_divide, "equal": np.equal, "not_equal": np.not_equal,
    "greater": np.greater, "greater_equal": np.greater_equal, "less": np.less, "less_equal": np.less_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
}
REDUCTIONS = {
    "sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod, "var": np.var, "std": np.std,
    "all": np.all, "any": np.any, "amax": np.max, "amin": np.min,
    "logsumexp": lambda x, axis=None, keepdims=False: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims)),
}


def _shape_of(a):
    return list(np.shape(a))


def broadcastable_shape(draw, shape):
    """A shape that broadcasts with `shape` (usually), for a second operand."""
    how = draw(st.integers(0, 5))
    if how == 0:
        return shape
    if how == 1:
        return shape[draw(st.integers(0, len(shape))):]
    if how == 2:
        return [1 if draw(st.booleans()) else d for d in shape]
    if how == 3:
        return []
    return draw(st.lists(st.integers(1, 4), min_size=0, max_size=4))


@st.composite
def op_case(draw):
    """(module, name, args, kwargs, numpy reference or None)."""
    family = draw(st.sampled_from(["unary", "binary", "reduce", "axis", "shape", "linalg", "create", "misc"]))
    if family == "unary":
        name = draw(st.sampled_from(sorted(UNARY)))
        xd, x = draw(array_arg())
        return "ops", name, [xd], {}, lambda: UNARY[name](x)
    if family == "binary":
        name = draw(st.sampled_from(sorted(BINARY)))
        xd, x = draw(array_arg())
        if draw(st.integers(0, 5)) == 0:
            scalar = draw(st.sampled_from([2, -1, 0.5, 0, True, float("nan")]))
            args = [xd, scalar] if draw(st.booleans()) else [scalar, xd]
            vals = [x, scalar] if args[0] is xd else [scalar, x]
        else:
            yd, y = draw(array_arg(shape=broadcastable_shape(draw, _shape_of(x))))
            args, vals = [xd, yd], [x, y]
        return "ops", name, args, {}, lambda: BINARY[name](*vals)
    if family == "reduce":
        name = draw(st.sampled_from(sorted(REDUCTIONS)))
        xd, x = draw(array_arg())
        axis = axis_arg(draw, np.ndim(x))
        kwargs = {"axis": axis}
        if draw(st.booleans()):
            kwargs["keepdims"] = maybe(draw, st.booleans(), ["yes", 2])
        return "ops", name, [xd], kwargs, lambda: REDUCTIONS[name](x, **np_args(kwargs))
    if family == "axis":
        name = draw(st.sampled_from(["argmax", "argmin", "cumsum", "cumprod", "softmax", "log_softmax",
                                     "expand_dims", "squeeze", "sort_free_top_k", "unstack", "split",
                                     "repeat", "take", "take_along_axis", "one_hot"]))
        xd, x = draw(array_arg())
        nd = np.ndim(x)
        if name in ("argmax", "argmin"):
            axis = axis_arg(draw, nd, multi=False)
            return "ops", name, [xd], {"axis": axis}, lambda: getattr(np, name)(x, axis=axis)
        if name in ("cumsum", "cumprod"):
            axis = axis_arg(draw, nd, multi=False)
            return "ops", name, [xd], {"axis": axis}, lambda: getattr(np, name)(x, axis=axis)
        if name in ("softmax", "log_softmax"):
            axis = axis_arg(draw, nd, multi=False, none=False)
            ref = (lambda: _softmax(x, axis)) if name == "softmax" else (lambda: np.log(_softmax(x, axis)))
            return "ops", name, [xd], {"axis": axis}, ref
        if name == "expand_dims":
            axis = maybe(draw, st.integers(-nd - 1, nd), [nd + 2, None, 1.5])
            return "ops", name, [xd], {"axis": axis}, lambda: np.expand_dims(x, axis)
        if name == "squeeze":
            axis = axis_arg(draw, nd, multi=False)
            return "ops", name, [xd], {"axis": axis}, lambda: np.squeeze(x, axis=axis)
        if name == "sort_free_top_k":
            k = maybe(draw, st.integers(1, 4), WILD_INT)
            return "ops", "top_k", [xd], {"k": k}, None
        if name == "unstack":
            axis = axis_arg(draw, nd, multi=False, none=False)
            return "ops", name, [xd], {"axis": axis}, lambda: list(np.moveaxis(x, axis, 0))
        if name == "split":
            axis = axis_arg(draw, nd, multi=False, none=False)
            n = maybe(draw, st.integers(1, 4), WILD_INT)
            return "ops", name, [xd, n], {"axis": axis}, lambda: np.split(x, n, axis=axis)
        if name == "repeat":
            axis = axis_arg(draw, nd, multi=False)
            reps = maybe(draw, st.integers(1, 3), WILD_INT)
            return "ops", name, [xd, reps], {"axis": axis}, lambda: np.repeat(x, reps, axis=axis)
        if name == "take":
            axis = axis_arg(draw, nd, multi=False)
            size = max(1, x.shape[axis] if isinstance(axis, int) and -nd <= axis < nd and nd else x.size)
            idd = {"shape": draw(st.lists(st.integers(1, 3), max_size=2)), "seed": draw(st.integers(0, 99)),
                   "dtype": "int32", "fill": maybe(draw, st.just(f"int:0:{size}"), [f"int:-{size}:{size}",
                                                                                 f"int:0:{size + 3}", "normal"])}
            idx = _fuzz_worker.make_array(idd)
            return "ops", name, [xd, {"$array": idd}], {"axis": axis}, lambda: np.take(x, idx, axis=axis)
        if name == "take_along_axis":
            axis = axis_arg(draw, nd, multi=False, none=False)
            if not (isinstance(axis, int) and nd and -nd <= axis < nd):
                return "ops", name, [xd, xd], {"axis": axis}, None
            shape = list(x.shape)
            shape[axis] = draw(st.integers(1, 3))
            idd = {"shape": shape, "seed": draw(st.integers(0, 99)), "dtype": "int32",
                   "fill": maybe(draw, st.just(f"int:0:{x.shape[axis]}"), [f"int:0:{x.shape[axis] + 2}"])}
            idx = _fuzz_worker.make_array(idd)
            return "ops", name, [xd, {"$array": idd}], {"axis": axis}, lambda: np.take_along_axis(x, idx, axis)
        k = maybe(draw, st.integers(1, 5), WILD_INT)
        idd = {"shape": draw(st.lists(st.integers(1, 3), max_size=3)), "seed": draw(st.integers(0, 99)),
               "dtype": "int32", "fill": maybe(draw, st.just("int:0:5"), ["int:-2:5", "normal"])}
        idx = _fuzz_worker.make_array(idd)

        def one_hot():
            if not is_count(k) or idx.dtype.kind not in "iu":
                raise ValueError("not a one-hot case")
            return (idx[..., None] == np.arange(k)).astype(np.float32)
        return "ops", "one_hot", [{"$array": idd}, k], {}, one_hot
    if family == "shape":
        name = draw(st.sampled_from(["reshape", "transpose", "swapaxes", "moveaxis", "broadcast_to", "tile",
                                     "concatenate", "stack", "clip", "where", "cast"]))
        xd, x = draw(array_arg())
        nd = np.ndim(x)
        if name == "reshape":
            total = x.size
            dims = []
            rest = total
            for _ in range(draw(st.integers(0, 2))):
                divs = [d for d in range(1, rest + 1) if rest % d == 0] or [1]
                dims.append(draw(st.sampled_from(divs)))
                rest //= max(dims[-1], 1)
            dims.append(rest)
            if draw(st.integers(0, 3)) == 0:
                dims[draw(st.integers(0, len(dims) - 1))] = -1
            dims = maybe(draw, st.just(dims), [[total + 1], [-1, -1], [0], 2.5])
            return "ops", name, [xd, {"$tuple": dims} if isinstance(dims, list) else dims], {}, \
                lambda: np.reshape(x, dims)
        if name == "transpose":
            axes = maybe(draw, st.permutations(list(range(nd))).map(list), [None, [0] * max(nd, 1), [nd]])
            return "ops", name, [xd], {"axes": axes}, lambda: np.transpose(x, axes)
        if name in ("swapaxes", "moveaxis"):
            a, b = axis_arg(draw, nd, multi=False, none=False), axis_arg(draw, nd, multi=False, none=False)
            return "ops", name, [xd, a, b], {}, lambda: getattr(np, name)(x, a, b)
        if name == "broadcast_to":
            target = draw(st.lists(st.integers(1, 3), max_size=2)) + [d if draw(st.integers(0, 4)) else 3
                                                                        for d in x.shape]
            return "ops", name, [xd, {"$tuple": target}], {}, lambda: np.broadcast_to(x, target)
        if name == "tile":
            reps = draw(st.lists(st.integers(1, 3), min_size=1, max_size=max(nd, 1)))
            reps = maybe(draw, st.just(reps), [[0], [-1], 2.5])
            return "ops", name, [xd, reps], {}, lambda: np.tile(x, reps)
        if name in ("concatenate", "stack"):
            axis = axis_arg(draw, nd + (name == "stack"), multi=False, none=False)
            others = []
            vals = [x]
            for _ in range(draw(st.integers(0, 2))):
                shape = list(x.shape)
                if name == "concatenate" and isinstance(axis, int) and shape and -nd <= axis < nd and \
                        draw(st.booleans()):
                    shape[axis] = draw(st.integers(1, 3))
                if draw(st.integers(0, 7)) == 0:
                    shape = shape + [2]
                od, o = draw(array_arg(shape=shape, kind=str(x.dtype) if x.dtype != np.float64 else "float32"))
                others.append(od)
                vals.append(o)
            return "ops", name, [[xd] + others], {"axis": axis}, lambda: getattr(np, name)(vals, axis=axis)
        if name == "clip":
            lo = draw(st.sampled_from([-1.0, 0.0, 0.5]))
            hi = draw(st.sampled_from([0.5, 1.0, -2.0]))
            # Keras 3 keeps the input's dtype (int32 for booleans).
            return "ops", name, [xd, lo, hi], {}, lambda: np.minimum(np.maximum(x, lo), hi).astype(
                np.int32 if x.dtype.kind in "biu" else x.dtype)
        if name == "where":
            cd, c = draw(array_arg(shape=broadcastable_shape(draw, list(x.shape)), kind="bool"))
            yd, y = draw(array_arg(shape=broadcastable_shape(draw, list(x.shape))))
            return "ops", name, [cd, xd, yd], {}, lambda: np.where(c, x, y)
        dtype = maybe(draw, st.sampled_from(["float32", "int32", "bool", "float64", "int64", "uint8"]),
                      ["complex64", "str", 3, None])
        return "ops", name, [xd, dtype], {}, lambda: _cast_reference(x, dtype)
    if family == "linalg":
        name = draw(st.sampled_from(["matmul", "dot", "tensordot", "outer", "einsum"]))
        a = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
        if name in ("matmul", "dot"):
            b = [a[-1]] + draw(st.lists(st.integers(1, 4), max_size=1)) if draw(st.integers(0, 5)) else \
                draw(st.lists(st.integers(1, 4), min_size=0, max_size=3))
            if name == "matmul" and len(a) == 3 and len(b) >= 2 and draw(st.booleans()):
                b = [a[0]] + [a[-1]] + b[1:2]
        else:
            b = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
        xd, x = draw(array_arg(shape=a, kind="float32"))
        yd, y = draw(array_arg(shape=b, kind="float32"))
        if name == "tensordot":
            axes = draw(st.integers(0, 2))
            return "ops", name, [xd, yd], {"axes": axes}, lambda: np.tensordot(x, y, axes)
        if name == "einsum":
            letters = "abcd"
            sa, sb = letters[:len(a)], letters[len(a) - 1:len(a) - 1 + len(b)]
            out = "".join(sorted(set(sa) ^ set(sb)))
            expr = f"{sa},{sb}->{out}"
            return "ops", name, [expr, xd, yd], {}, lambda: np.einsum(expr, x, y)
        return "ops", name, [xd, yd], {}, lambda: getattr(np, name)(x, y)
    if family == "create":
        name = draw(st.sampled_from(["zeros", "ones", "full", "eye", "arange", "linspace", "identity"]))
        if name in ("zeros", "ones", "full"):
            shape = maybe(draw, st.lists(st.integers(1, 4), max_size=3), [[0], [-1], 10**13, [2.5], "3", None])
            args = [{"$tuple": shape} if isinstance(shape, list) else shape]
            if name == "full":
                fill = draw(st.sampled_from([1.5, -2, True, float("nan")]))
                args.append(fill)
                return "ops", name, args, {}, lambda: np.full(shape, fill, dtype=np.float32)
            return "ops", name, args, {}, lambda: getattr(np, name)(shape)
        if name in ("eye", "identity"):
            n = maybe(draw, st.integers(1, 5), WILD_INT)
            return "ops", name, [n], {}, lambda: np.eye(n)
        if name == "arange":
            start = draw(st.sampled_from([0, 1, -2, 0.5]))
            stop = draw(st.sampled_from([3, 5, 0, 2.5, None]))
            step = maybe(draw, st.sampled_from([1, 2, 0.5]), [0, -1, float("nan")])
            args = [start] if stop is None else [start, stop, step]
            return "ops", name, args, {}, lambda: np.arange(*args)
        num = maybe(draw, st.integers(1, 6), WILD_INT)
        return "ops", name, [0.0, 1.0, num], {}, lambda: np.linspace(0.0, 1.0, num)
    # misc: the backend module with Keras 1/2's argument orders.
    name = draw(st.sampled_from(["sum", "mean", "max", "min", "prod", "std", "var", "argmax", "argmin", "dot",
                                 "permute_dimensions", "transpose", "batch_flatten", "flatten", "repeat",
                                 "repeat_elements", "gather", "one_hot", "expand_dims", "squeeze", "concatenate",
                                 "pow", "clip", "softmax", "int_shape", "ndim", "l2_free_abs", "batch_dot",
                                 "square", "sqrt", "relu", "hard_sigmoid", "stack", "tile", "cast"]))
    xd, x = draw(array_arg(kind=draw(st.sampled_from(["float32", "float32", "int32"]))))
    nd = np.ndim(x)
    if name in ("sum", "mean", "max", "min", "prod", "std", "var"):
        axis = axis_arg(draw, nd)
        ref = REDUCTIONS[name]
        return "backend", name, [xd], {"axis": axis}, lambda: ref(x, axis=np_args(axis))
    if name in ("argmax", "argmin"):
        axis = axis_arg(draw, nd, multi=False, none=False)
        return "backend", name, [xd], {"axis": axis}, lambda: getattr(np, name)(x, axis=axis)
    if name == "dot":
        yd, y = draw(array_arg(shape=[x.shape[-1] if nd else 1] + draw(st.lists(st.integers(1, 3), max_size=1))
                               if draw(st.integers(0, 4)) else None))
        return "backend", name, [xd, yd], {}, lambda: np.dot(x, y)
    if name == "batch_dot":
        yd, y = draw(array_arg(shape=list(x.shape) if draw(st.integers(0, 3)) else None))
        return "backend", name, [xd, yd], {}, None
    if name in ("permute_dimensions", "transpose"):
        pattern = maybe(draw, st.permutations(list(range(nd))).map(list), [[0] * max(nd, 1), [nd]])
        if name == "transpose":
            return "backend", name, [xd], {}, lambda: np.transpose(x)
        return "backend", name, [xd, pattern], {}, lambda: np.transpose(x, pattern)
    if name == "batch_flatten":
        return "backend", name, [xd], {}, lambda: x.reshape(x.shape[0], -1) if nd else _raise("a scalar")
    if name == "flatten":
        return "backend", name, [xd], {}, lambda: x.ravel()
    if name == "repeat":
        n = maybe(draw, st.integers(1, 3), WILD_INT)
        return "backend", name, [xd, n], {}, lambda: (np.repeat(x[:, None, :], n, axis=1) if nd == 2
                                                        else _raise("repeat needs a 2D input"))
    if name == "repeat_elements":
        rep = maybe(draw, st.integers(1, 3), WILD_INT)
        axis = axis_arg(draw, nd, multi=False, none=False)
        return "backend", name, [xd, rep, axis], {}, lambda: np.repeat(x, rep, axis=axis)
    if name == "gather":
        size = max(1, x.shape[0] if nd else 1)
        idd = {"shape": draw(st.lists(st.integers(1, 3), max_size=2)), "seed": draw(st.integers(0, 99)),
               "dtype": "int32", "fill": maybe(draw, st.just(f"int:0:{size}"), [f"int:0:{size + 2}"])}
        idx = _fuzz_worker.make_array(idd)
        return "backend", name, [xd, {"$array": idd}], {}, lambda: np.take(x, idx, axis=0)
    if name == "one_hot":
        k = maybe(draw, st.integers(1, 5), WILD_INT)
        idd = {"shape": draw(st.lists(st.integers(1, 3), max_size=2)), "seed": draw(st.integers(0, 99)),
               "dtype": "int32", "fill": "int:0:5"}
        idx = _fuzz_worker.make_array(idd)
        return "backend", name, [{"$array": idd}, k], {}, \
            lambda: (idx[..., None] == np.arange(k)).astype(np.float32) if is_count(k) else _raise("bad k")
    if name == "expand_dims":
        axis = maybe(draw, st.integers(-nd - 1, nd), [nd + 2, None])
        return "backend", name, [xd, axis], {}, lambda: np.expand_dims(x, axis)
    if name == "squeeze":
        axis = axis_arg(draw, nd, multi=False, none=False)
        return "backend", name, [xd, axis], {}, lambda: np.squeeze(x, axis)
    if name in ("concatenate", "stack"):
        axis = axis_arg(draw, nd + (name == "stack"), multi=False, none=False)
        yd, y = draw(array_arg(shape=list(x.shape) if draw(st.integers(0, 4)) else None, kind=str(x.dtype)))
        return "backend", name, [[xd, yd]], {"axis": axis}, lambda: getattr(np, name)([x, y], axis=axis)
    if name == "pow":
        a = draw(st.sampled_from([2, 0.5, -1, 3]))
        return "backend", name, [xd, a], {}, lambda: np.power(x.astype(np.float64), a)
    if name == "clip":
        lo, hi = draw(st.sampled_from([(-1.0, 1.0), (0.0, 0.5), (1.0, -1.0), (None, 1.0)]))
        # Keras 2's K.clip: a max below the min is raised to the min; None is no bound.
        low = -np.inf if lo is None else lo
        return "backend", name, [xd, lo, hi], {}, lambda: np.clip(x, low, max(hi, low))
    if name == "softmax":
        axis = axis_arg(draw, nd, multi=False, none=False)
        return "backend", name, [xd], {"axis": axis}, lambda: _softmax(x, axis)
    if name in ("int_shape", "ndim"):
        return "backend", name, [xd], {}, None
    if name == "l2_free_abs":
        return "backend", "abs", [xd], {}, lambda: np.abs(x)
    if name in ("square", "sqrt"):
        return "backend", name, [xd], {}, lambda: getattr(np, name)(x)
    if name == "relu":
        return "backend", name, [xd], {}, lambda: np.maximum(x, 0)
    if name == "hard_sigmoid":
        return "backend", name, [xd], {}, None
    if name == "tile":
        n = draw(st.lists(st.integers(1, 3), min_size=max(nd, 1), max_size=max(nd, 1)))
        return "backend", name, [xd, n], {}, lambda: np.tile(x, n)
    dtype = maybe(draw, st.sampled_from(["float32", "int32", "bool"]), ["complex64", 3])
    return "backend", "cast", [xd, dtype], {}, lambda: _cast_reference(x, dtype)


def _raise(msg):
    raise ValueError(msg)


def _cast_reference(x, dtype):
    """rustkeras holds every integer as int32 (its documented design): a cast to another integer
    type gives int32 values."""
    if not isinstance(dtype, str) or dtype in ("complex64", "str"):
        raise TypeError(f"no cast to {dtype!r}")
    return x.astype(np.int32 if np.dtype(dtype).kind in "iu" else dtype)


def numpy_reference(reference):
    """numpy's result, the exception numpy raises (a bad-input case), or None where the result is
    undefined: an integer division by zero, which every backend answers differently."""
    try:
        with np.errstate(divide="raise", invalid="raise"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = reference()
        return result
    except FloatingPointError:
        pass
    except Exception as e:  # noqa: BLE001 - any numpy refusal makes the case a bad-input case
        return e
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = reference()
        except Exception as e:  # noqa: BLE001
            return e
    values = result if isinstance(result, (list, tuple)) else [result]
    return None if any(np.asarray(v).dtype.kind in "biu" for v in values) else result


def _kind(dtype: np.dtype) -> str:
    return {"u": "i", "i": "i", "b": "b", "f": "f"}.get(dtype.kind, dtype.kind)


@examples(ci=300)
@given(op_case())
def test_fuzz_ops(drawn):
    module, name, args, kwargs, reference = drawn
    case = {"op": "op", "module": module, "name": name, "args": args, "kwargs": kwargs}
    note(f"case: {json.dumps(case)}")
    test = f"{module}"
    answer = worker("rustkeras").ask(case)
    expected = None
    if reference is not None:
        expected = numpy_reference(reference)
    if not answer.get("ok"):
        check_clean(test, case, answer)
        if expected is not None and not isinstance(expected, Exception):
            count(test, "rustkeras raises, numpy accepts", f"{name}: {answer['type']}",
                  {"case": case, "rustkeras": answer["message"][:300]})
        return
    count(test, "ok", name)
    if expected is None:
        return
    if isinstance(expected, Exception):
        count(test, "rustkeras accepts, numpy raises", name, {"case": case, "numpy": str(expected)[:300]})
        return
    got = answer["result"]
    if answer["sequence"] != isinstance(expected, (list, tuple)):
        fail(f"{name}: a {'sequence' if answer['sequence'] else 'single array'} where numpy gives "
             f"{type(expected).__name__}", case, answer)
    got = [array_of(g) for g in got] if answer["sequence"] else [array_of(got)]
    want = [np.asarray(e) for e in expected] if isinstance(expected, (list, tuple)) else [np.asarray(expected)]
    if len(got) != len(want):
        fail(f"{name}: {len(got)} arrays, numpy {len(want)}", case, answer)
    all_finite = all(np.isfinite(np.asarray(_fuzz_worker.decode(a), dtype=np.float64)).all()
                     for a in args if isinstance(a, dict) and "$array" in a)
    results = answer["result"] if answer["sequence"] else [answer["result"]]
    strict = all_finite or name in ("isnan", "isinf", "isfinite")
    for r, g, w in zip(results, got, want):
        if g.shape != w.shape:
            fail(f"{name}: shape {g.shape}, numpy {w.shape}", case, answer)
        if _kind(np.dtype(r["dtype"])) != _kind(w.dtype):
            count(test, "dtype kind differs", f"{name}: {r['dtype']} vs {w.dtype}", {"case": case})
        # numpy computes float functions of bools in float16.
        if not close(g, w, rtol=2e-3 if w.dtype == np.float16 else 1e-4, atol=1e-5):
            if strict:
                fail(f"{name}: values differ from numpy:\n{g.ravel()[:8]}\n{w.ravel()[:8]}", case, answer)
            count(test, "differs from numpy on non-finite input", name, {"case": case})
    count(test, "ok", "same as numpy")
