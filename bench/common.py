"""Shared by the benchmark scripts: workers in subprocesses, machine facts, output.

Every framework runs in its own subprocess, pinned to the same CPUs, so that
thread pools do not compete, one backend cannot disturb another, and each
run's peak RSS is its own.
"""

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
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")
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
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
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
    versions = ", ".join(f"{d} {version(d)}" for d in ("numpy", *dists))
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
