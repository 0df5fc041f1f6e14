"""Shared by the benchmark scripts: workers in subprocesses, machine facts, output.

Every framework runs in its own subprocess, pinned to the same CPUs, so that
thread pools do not compete, one backend cannot disturb another, and each
run's peak RSS is its own.
"""

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO_PYTHON = Path(__file__).resolve().parent.parent / "python"
# An installed rustkeras (`pip install .`) is used as it is; only without one
# do the workers import the checkout's package (built in place by `maturin develop`).
USE_REPO_PYTHON = importlib.util.find_spec("rustkeras") is None
NOT_INSTALLED = "not installed"
# Printed by a worker before its JSON result, so that stray output is ignored.
RESULT_MARK = "BENCH-RESULT "
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS",
                   "TF_NUM_INTRAOP_THREADS")
# Recorded with every table: they change what the peers' figures mean.
RECORDED_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY")


def pin_to_threads(threads: int) -> None:
    """Restricts this process to `threads` CPUs (the first it may use), so that
    every framework gets the same cores whatever its own thread-pool policy."""
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, allowed[:threads])


def worker_env(threads: int, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    for var in THREAD_ENV_VARS:
        env[var] = str(threads)
    if USE_REPO_PYTHON:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (env.get("PYTHONPATH"), str(REPO_PYTHON)) if p
        )
    env.update(extra or {})
    return env


def run_worker(script: str, args: Sequence[str], env: Dict[str, str], timeout_s: float) -> dict:
    """Runs `script --worker ...` and returns the JSON dict it reports.

    A worker that cannot import its framework reports {"status": "not installed"};
    one that crashes or times out is reported as {"status": "failed: ..."}.
    """
    cmd = [sys.executable, script, *args]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": f"failed: timed out after {timeout_s:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"status": f"failed (exit {proc.returncode}): {tail}"}


def report(result: dict) -> None:
    """What a worker prints last: its result, one JSON line."""
    print(RESULT_MARK + json.dumps(result), flush=True)


def peak_rss_mib() -> float:
    """This process's peak resident set size: Linux's VmHWM, the peak of this program image.
    Not `ru_maxrss`: Linux carries it over fork and exec, so a worker would report at least
    the parent's peak (the data preparation's ~455 MiB here), whatever the framework used."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return NOT_INSTALLED


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def header(title: str, threads: int, dists: Sequence[str]) -> List[str]:
    """Lines that say how, when and where a table was measured."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{d} {version(d)}" for d in dict.fromkeys(("numpy", *dists)))
    recorded = ", ".join(f"{v}={os.environ.get(v, '(unset)')}" for v in RECORDED_ENV_VARS)
    return [
        f"## {title} ({now})",
        "",
        f"- command: `{shlex.join(['python', *sys.argv])}`",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, {threads} used",
        f"- Python {platform.python_version()}; {versions}",
        f"- {recorded}",
        "- load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "",
    ]


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def emit(lines: Sequence[str], out: Optional[str]) -> None:
    """Prints the section and, with --out, appends it to that file."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "a") as f:
            f.write(text + "\n")


def fmt(value: Optional[float], digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


# ---- the model-training benchmarks (MLP, CNN, LSTM): the same peers, workers and rounds ----

MODEL_FRAMEWORKS = ("rustkeras", "torch", "keras-jax", "keras-tf")
# Run only when named in --frameworks (bench_mlp.py, bench_cnn.py and bench_lstm.py offer them).
GPU_MODEL_FRAMEWORKS = ("rustkeras-gpu", "torch-cuda")
KNOWN_MODEL_FRAMEWORKS = MODEL_FRAMEWORKS + GPU_MODEL_FRAMEWORKS
MODEL_LABELS = {"rustkeras": "rustkeras", "torch": "PyTorch (CPU)", "keras-jax": "Keras 3 + JAX",
                "keras-tf": "Keras 3 + TF",
                "rustkeras-gpu": "rustkeras (GPU)", "torch-cuda": "PyTorch (CUDA)"}
MODEL_DISTS = {"rustkeras": ("rustkeras",), "torch": ("torch",), "keras-jax": ("keras", "jax", "jaxlib"),
               "keras-tf": ("keras", "tensorflow-cpu"),
               "rustkeras-gpu": ("rustkeras",), "torch-cuda": ("torch",)}
# Each peer's time and RSS are divided into those of rustkeras on the same kind of device.
MODEL_REFERENCE = {"torch": "rustkeras", "keras-jax": "rustkeras", "keras-tf": "rustkeras",
                   "torch-cuda": "rustkeras-gpu"}
# What each worker's environment adds: the backend its framework runs on.
MODEL_WORKER_ENV = {"rustkeras": {"RUSTKERAS_BACKEND": "cpu"}, "rustkeras-gpu": {"RUSTKERAS_BACKEND": "gpu"},
                    "keras-jax": {"KERAS_BACKEND": "jax"}, "keras-tf": {"KERAS_BACKEND": "tensorflow"}}


def add_run_args(parser, frameworks: Sequence[str]) -> None:
    """The options every model benchmark takes (besides its workload's own)."""
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frameworks", default=",".join(frameworks))
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run everything this many times, interleaved; keep each one's fastest")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--out", help="append the results to this Markdown file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)


def chosen_frameworks(parser, args, known: Sequence[str]) -> List[str]:
    frameworks = [f.strip() for f in args.frameworks.split(",")]
    unknown = set(frameworks) - set(known)
    if unknown:
        parser.error(f"unknown frameworks {sorted(unknown)}; choose from {tuple(known)}")
    return frameworks


def train_worker(framework: str, data_path: str, threads: int, train_torch, train_keras,
                 predict_batch_sizes: Sequence[int] = (), predict_repeats: int = 3) -> None:
    """A worker's whole run: imports its framework (reporting "not installed" when it cannot,
    and a missing GPU for "rustkeras-gpu" and "torch-cuda"), loads the data, trains with
    `train_torch(data)` or `train_keras(module, data)` (Keras on JAX and rustkeras share the
    Keras API) and reports the result with version and peak RSS (`peak_rss_mib`: training's).

    Where the training function's result holds a "predict" callable (`predict(batch_size)`, the
    trained model's prediction of its predict samples) and `predict_batch_sizes` is not empty,
    that prediction is then timed for each batch size (see `time_predict`), and the result also
    reports `predict_s` ({batch size: seconds}) and `predict_peak_rss_mib`, the whole run's peak."""
    pin_to_threads(threads)
    try:
        if framework in ("torch", "torch-cuda"):
            import torch  # noqa: F401  (present, for train_torch)
        elif framework == "keras-jax":
            import jax
            import keras
        elif framework == "keras-tf":
            import keras
            import tensorflow as tf
        else:
            import rustkeras
            import rustkeras._core  # noqa: F401  (the engine, not just the Python side)
    except ImportError as err:
        report({"status": NOT_INSTALLED, "detail": str(err)})
        return
    missing = missing_device(framework)
    if missing:
        report({"status": missing})
        return
    import numpy as np

    with np.load(data_path) as f:
        data = {k: f[k] for k in f.files}
    if framework in ("torch", "torch-cuda"):
        result = train_torch(data)
    elif framework == "keras-jax":
        result = train_keras(keras, data)
        result["version"] = f"keras {keras.__version__}, jax {jax.__version__}"
    elif framework == "keras-tf":
        result = train_keras(keras, data)
        result["version"] = f"keras {keras.__version__}, tensorflow {tf.__version__}"
    else:
        result = train_keras(rustkeras, data)
        result["version"] = getattr(rustkeras, "__version__", version("rustkeras"))
        if framework == "rustkeras-gpu":
            result["version"] += f" on {rustkeras._core.gpu_status()[1]}"
    predict = result.pop("predict", None)
    result["status"] = "ok"
    result["peak_rss_mib"] = peak_rss_mib()
    if predict is not None and predict_batch_sizes:
        result["predict_s"] = time_predict(predict, predict_batch_sizes, predict_repeats)
        result["predict_peak_rss_mib"] = peak_rss_mib()
    report(result)


def torch_device(framework: str) -> str:
    """The device a PyTorch worker trains on: "cuda" for "torch-cuda", else "cpu"."""
    return "cuda" if framework == "torch-cuda" else "cpu"


def torch_sync(dev) -> None:
    """Waits for the device's queued work (a no-op on the CPU), so that a timing covers it."""
    if dev.type == "cuda":
        import torch

        torch.cuda.synchronize(dev)


def torch_version(dev) -> str:
    """PyTorch's version, and the CUDA device's name where it runs on one."""
    import torch

    if dev.type == "cuda":
        return f"{torch.__version__} on {torch.cuda.get_device_name(dev)}"
    return torch.__version__


def missing_device(framework: str) -> Optional[str]:
    """Why the GPU that `framework` needs is not there (None when it is, or none is needed):
    a GPU row is reported as missing rather than quietly measured on the CPU."""
    if framework == "torch-cuda":
        import torch

        return None if torch.cuda.is_available() else "no CUDA device"
    if framework == "rustkeras-gpu":
        from rustkeras import _core

        available, detail = _core.gpu_status()
        return None if available else f"no GPU: {detail}"
    return None


def run_framework(script: str, framework: str, args: Sequence[str], threads: int, timeout_s: float) -> dict:
    """One worker run of `framework`; adds `steady_s`, the mean of the epochs after the first."""
    result = run_worker(script, args, worker_env(threads, MODEL_WORKER_ENV.get(framework)), timeout_s)
    if result.get("status") == "ok":
        steady = result["epoch_s"][1:]
        result["steady_s"] = sum(steady) / len(steady)
    return result


def keep_fastest(results: dict, key, result: dict) -> None:
    """Keeps, across rounds, the run with the lowest `steady_s` (any successful run beats a failed one)."""
    best = results.get(key)
    if best is None or best.get("status") != "ok" or (
        result.get("status") == "ok" and result["steady_s"] < best["steady_s"]
    ):
        results[key] = result


# ---- prediction with the trained model (bench_mlp.py, bench_cnn.py) ----

PREDICT_SAMPLES = 10000


def add_predict_args(parser) -> None:
    """The options of a benchmark that also times the trained model's predict."""
    parser.add_argument("--predict-batch-sizes", default="32,1024",
                        help=f"time predict on {PREDICT_SAMPLES} test samples at these batch sizes after training")
    parser.add_argument("--predict-repeats", type=int, default=3,
                        help="timed predict calls per batch size, after one untimed; the fastest is kept")
    parser.add_argument("--no-predict", action="store_true", help="skip the predict measurement")


def predict_batch_sizes(parser, args) -> List[int]:
    """The predict batch sizes asked for: none with --no-predict."""
    if args.no_predict:
        return []
    try:
        sizes = [int(b) for b in args.predict_batch_sizes.split(",")]
    except ValueError:
        parser.error("--predict-batch-sizes takes comma-separated integers")
    if min(sizes) < 1:
        parser.error("--predict-batch-sizes must be at least 1")
    if args.predict_repeats < 1:
        parser.error("--predict-repeats must be at least 1")
    return sizes


def predict_worker_args(batch_sizes: Sequence[int], repeats: int) -> List[str]:
    """A worker's arguments that ask for `batch_sizes` (none: no predict)."""
    if not batch_sizes:
        return ["--no-predict"]
    return ["--predict-batch-sizes", ",".join(str(b) for b in batch_sizes), "--predict-repeats", str(repeats)]


def time_predict(predict, batch_sizes: Sequence[int], repeats: int) -> Dict[str, float]:
    """The fastest of `repeats` timed calls of `predict(batch_size)` for each batch size, after one
    untimed call (compilation, allocation): {batch size (a string, for JSON): seconds}."""
    import time

    times = {}
    for batch in batch_sizes:
        predict(batch)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            predict(batch)
            best = min(best, time.perf_counter() - start)
        times[str(batch)] = best
    return times


def torch_predictor(model, x, dev):
    """`predict(batch_size)` for a PyTorch classifier whose last layer gives logits: the softmax of
    `x` (a tensor on `dev`, PyTorch's layout) in batches, in eval mode without autograd, gathered
    into one numpy array on the host as Keras' predict returns it."""
    import torch

    def predict(batch: int):
        model.eval()
        with torch.inference_mode():
            out = [torch.softmax(model(x[i : i + batch]), 1) for i in range(0, len(x), batch)]
            return torch.cat(out).cpu().numpy()

    return predict


def keep_fastest_predict(best: dict, framework: str, result: dict) -> None:
    """Keeps, across rounds, the fastest predict of each (framework, batch size), with its run's peak RSS."""
    for batch, seconds in result.get("predict_s", {}).items():
        key = (framework, int(batch))
        if key not in best or seconds < best[key]["s"]:
            best[key] = {"s": seconds, "peak_rss_mib": result["predict_peak_rss_mib"],
                         "version": result["version"], "samples": result["predict_samples"]}


def predict_table(title: str, frameworks: Sequence[str], batch_sizes: Sequence[int], best: dict,
                  statuses: Dict[str, str], repeats: int, rounds: int) -> List[str]:
    """The "predict" table under a training table: seconds per predict of the test samples for each
    batch size and framework, the peak RSS of that run (training and predict), and rustkeras'
    time and RSS divided by each peer's. `statuses` says why a framework has no figures."""
    rows = []
    for batch in batch_sizes:
        for fw in frameworks:
            r = best.get((fw, batch))
            if r is None:
                rows.append([MODEL_LABELS[fw], statuses.get(fw, "no predict"), batch] + ["–"] * 5)
                continue
            ratio_t = ratio_m = "–"
            mine = best.get((MODEL_REFERENCE.get(fw), batch))
            if mine is not None:
                ratio_t = f"{mine['s'] / r['s']:.2f}"
                ratio_m = f"{mine['peak_rss_mib'] / r['peak_rss_mib']:.2f}"
            rows.append([MODEL_LABELS[fw], r["version"], batch, fmt(r["s"]),
                         f"{r['samples'] / r['s']:.0f}", f"{r['peak_rss_mib']:.0f}", ratio_t, ratio_m])
    samples = sorted({r["samples"] for r in best.values()}) or [PREDICT_SAMPLES]
    count = "/".join(f"{n:,}" for n in samples)
    columns = ["framework", "version", "batch", f"s per predict of {count} samples", "samples/s",
               "peak RSS MiB (training and predict)", "time rustkeras/peer", "RSS rustkeras/peer"]
    lines = ["", f"### {title}: predict, {count} samples", ""]
    lines += markdown_table(columns, rows)
    lines += ["", f"`model.predict(x, batch_size=B, verbose=0)` with the trained model (PyTorch: its forward "
                  "pass and softmax in eval mode under `torch.inference_mode()`, batch by batch, gathered "
                  f"into one numpy array); one untimed call, then the fastest of {repeats} timed calls, best "
                  f"of {rounds} round(s). Ratios below 1 mean rustkeras is faster or smaller; each peer is "
                  "compared with rustkeras on the same kind of device, and RSS is host memory only."]
    return lines


def torch_train_images(model, data: dict, dev, row_sets, batch: int):
    """PyTorch's side of the image-classifier benchmarks (bench_cnn.py, bench_cifar_cnn.py):
    Keras' default initialization (Glorot-uniform kernels, zero biases) on `model`'s Linear and
    Conv2d layers, Adam(1e-3, eps=1e-7) on cross-entropy, channels_last images transposed to
    PyTorch's channels_first, one timed epoch per array of row indices in `row_sets` (between
    two synchronizations on CUDA), then the test accuracy. Returns (epoch seconds, test
    accuracy, the test images on `dev`)."""
    import time

    import numpy as np
    import torch
    from torch import nn

    for layer in model:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):  # Keras' defaults
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()

    def images(x):
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(dev)

    x_train, y_train = images(data["x_train"]), torch.from_numpy(data["y_train"]).to(dev)
    epoch_s = []
    for rows in row_sets:
        rows = torch.from_numpy(rows).to(dev)
        torch_sync(dev)
        start = time.perf_counter()
        model.train()
        for i in range(0, len(rows), batch):
            idx = rows[i : i + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        torch_sync(dev)
        epoch_s.append(time.perf_counter() - start)
    model.eval()
    correct = 0
    x_test, y_test = images(data["x_test"]), torch.from_numpy(data["y_test"]).to(dev)
    with torch.inference_mode():
        for i in range(0, len(x_test), batch):
            correct += int((model(x_test[i : i + batch]).argmax(1) == y_test[i : i + batch]).sum())
    return epoch_s, correct / len(x_test), x_test
