"""A Keras-style progress bar. On a terminal (verbose=1) it redraws one line with a bar, ETA and
the running metrics; off a terminal, and at verbose=2, it prints one line per epoch."""

import sys
import time
from typing import Any, Dict, Optional

import numpy as np


def format_logs(logs: Dict[str, Any]) -> str:
    """`name: value` pairs; a metric with several values (one per class or threshold) shows
    their mean, as Keras' progress bar does."""
    return " - ".join(f"{k}: {float(np.mean(v)):.4f}" for k, v in logs.items())


class Progbar:
    def __init__(self, target: Optional[int], verbose: int = 1, stream=None):
        """`target`: the number of steps, or None while unknown (a generator's)."""
        self.target = target
        self.verbose = verbose
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.dynamic = verbose == 1 and bool(isatty and isatty())
        self.start = time.monotonic()
        self.width = 30

    def update(self, current: int, logs: Dict[str, float], finalize: bool = False) -> None:
        if self.verbose == 0:
            return
        elapsed = time.monotonic() - self.start
        if not finalize:
            if not self.dynamic:
                return
            if self.target is None:
                line = f"\r{current}/Unknown - {elapsed:.0f}s"
                self.stream.write(line + (" - " + format_logs(logs) if logs else ""))
                self.stream.flush()
                return
            digits = len(str(self.target))
            frac = current / max(self.target, 1)
            filled = int(self.width * frac)
            bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=") + "." * (self.width - filled)
            eta = elapsed / max(current, 1) * (self.target - current)
            line = f"\r{current:>{digits}}/{self.target} [{bar}] - ETA: {eta:.0f}s"
            if logs:
                line += " - " + format_logs(logs)
            self.stream.write(line)
            self.stream.flush()
            return
        # The steps done: the target, or fewer where the data ran out (or the target was unknown).
        per_step = elapsed / max(current, 1)
        step = f"{per_step * 1000:.0f}ms/step" if per_step >= 1e-3 else f"{per_step * 1e6:.0f}us/step"
        if self.verbose == 1:
            head = f"{current}/{current} [{'=' * self.width}]"
            line = f"{head} - {elapsed:.0f}s {step}"
        else:
            line = f"{current}/{current} - {elapsed:.0f}s - {step}"
        if logs:
            line += " - " + format_logs(logs)
        self.stream.write(("\r" if self.dynamic else "") + line + "\n")
        self.stream.flush()
