"""The progress bar as Keras 3 draws it (`keras.utils.Progbar`), exported as
`rustkeras.utils.Progbar`.

On a terminal (verbose=1) one line is redrawn in place: the step count, a `━` bar, the ETA
(the elapsed time once finished), the time per step and the metrics. Where the output is not a
terminal (a log file, a pipe, a notebook capture), only the finished line of each bar is
printed, without colour codes: one line per epoch instead of a line per update. With verbose=2
the finished line is printed in Keras' shorter form.

Example:
    >>> from rustkeras.utils import Progbar
    >>> bar = Progbar(3, verbose=2)
    >>> for step in range(1, 4):
    ...     bar.update(step, [("loss", 0.5)])  # doctest: +ELLIPSIS
    3/3 - 0s - ...
"""

import math
import sys
import time
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

_BOLD, _GREEN, _GREY, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"


def _write(message: str) -> None:
    """Writes to stdout; where its encoding lacks `━`, as Keras does, with `=` instead."""
    stream = sys.stdout
    try:
        stream.write(message)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        message = message.replace("━", "=").encode(encoding, errors="ignore").decode(encoding)
        stream.write(message)
    stream.flush()


def _is_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def format_time(time_per_unit: float, unit_name: str) -> str:
    """`" 12ms/step"` (seconds, milliseconds or microseconds, as Keras chooses)."""
    if time_per_unit >= 1 or time_per_unit == 0:
        return f" {time_per_unit:.0f}s/{unit_name}"
    if time_per_unit >= 1e-3:
        return f" {time_per_unit * 1000.0:.0f}ms/{unit_name}"
    return f" {time_per_unit * 1000000.0:.0f}us/{unit_name}"


class Progbar:
    """Displays a progress bar (Keras 3's `keras.utils.Progbar`).

    Args:
        target: Total number of steps expected, None if unknown.
        width: Progress bar width on screen.
        verbose: Verbosity mode, 0 (silent), 1 (verbose), 2 (semi-verbose).
        interval: Minimum visual progress update interval (in seconds).
        stateful_metrics: Names of metrics shown as they are given (not averaged over
            time). If provided, do not provide `stateless_metrics`.
        stateless_metrics: Names of metrics averaged over time before display (then every
            other metric is shown as given). If neither is provided, every metric is averaged.
        unit_name: Display name for step counts (usually "step" or "sample").

    Example:
        >>> bar = Progbar(100)
        >>> for step in range(1, 101):
        ...     bar.update(step, [("loss", 1.0 / step)])  # doctest: +SKIP
    """

    def __init__(self, target: Optional[int], width: int = 20, verbose: int = 1, interval: float = 0.05,
                 stateful_metrics: Optional[Iterable[str]] = None,
                 stateless_metrics: Optional[Iterable[str]] = None, unit_name: str = "step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError(
                "Only one of `stateful_metrics` or `stateless_metrics` can be provided. "
                "`stateful_metrics` is used to make metrics stateless by default (with an exclusion "
                "list), while `stateless_metrics` is used to make metrics stateful by default (with "
                "an exclusion list)."
            )
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        if stateless_metrics is not None:
            self.stateful_metrics = None
            self.stateless_metrics = set(stateless_metrics)
        else:
            self.stateful_metrics = set(stateful_metrics or ())
            self.stateless_metrics = None
        self._dynamic_display = _is_terminal()
        self._seen_so_far = 0
        self._values: dict = {}
        self._values_order: List[str] = []
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step: Optional[float] = None
        self._prev_total_width = 0

    def _stateless(self, name: str) -> bool:
        if self.stateful_metrics is not None:
            return name not in self.stateful_metrics
        return name in self.stateless_metrics

    def update(self, current: int, values: Optional[Sequence[Tuple[str, float]]] = None,
               finalize: Optional[bool] = None) -> None:
        """Updates the progress bar.

        Args:
            current: Index of the current step.
            values: `(name, value_for_last_step)` pairs. A stateful metric's value is shown as
                given; the others are averaged over the steps.
            finalize: Whether this is the last update; defaults to `current >= target`.
        """
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for k, v in values or []:
            if k not in self._values_order:
                self._values_order.append(k)
            if self._stateless(k):
                if finalize:
                    self._values[k] = [v, 1]
                else:
                    base = max(current - self._seen_so_far, 1)
                    if k not in self._values:
                        self._values[k] = [v * base, base]
                    else:
                        self._values[k][0] += v * base
                        self._values[k][1] += base
            else:
                self._values[k] = [v, 1]
        self._seen_so_far = current
        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now)
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            if self._dynamic_display:
                self._draw(current, now, time_per_unit, finalize)
            elif finalize:
                # Not a terminal: the finished line only, without colour codes.
                bar, info, _ = self._line(current, now, time_per_unit, finalize, color=False)
                _write(bar + info + "\n")
        elif self.verbose == 2 and finalize and self.target:
            digits = int(math.log10(self.target)) + 1
            info = f"{current:{digits}d}/{self.target} - {now - self._start:.0f}s"
            info += f" -{format_time(time_per_unit, self.unit_name)}"
            for k in self._values_order:
                avg = self._average(k)
                info += f" - {k}: {avg:.4f}" if avg > 1e-3 else f" - {k}: {avg:.4e}"
            _write(info + "\n")
        self._last_update = now

    def add(self, n: int, values: Optional[Sequence[Tuple[str, float]]] = None) -> None:
        """Advances the bar by `n` steps."""
        self.update(self._seen_so_far + n, values)

    def _average(self, k: str) -> float:
        value, count = self._values[k]
        if not isinstance(value, float):
            value = np.mean(value)
        return float(value / max(1, count))

    def _line(self, current: int, now: float, time_per_unit: float, finalize: bool, color: bool):
        """The bar and the text after it, and the count of invisible colour characters."""
        bold, green, grey, reset = (_BOLD, _GREEN, _GREY, _RESET) if color else ("", "", "", "")
        special = 0
        if self.target:
            digits = int(math.log10(self.target)) + 1
            bar = f"{bold}{current:{digits}d}/{self.target}{reset} "
            filled = int(self.width * current / self.target)
            if filled > 0:
                bar += f"{green}{'━' * filled}{reset}"
            bar += f"{grey}{'━' * (self.width - filled)}{reset}"
            special += 8 + (9 if filled > 0 else 0) + 9
        else:
            bar = "%7d/Unknown" % current
        if self.target and not finalize:
            eta = time_per_unit * (self.target - current)
            if eta > 3600:
                when = "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
            elif eta > 60:
                when = "%d:%02d" % (eta // 60, eta % 60)
            else:
                when = "%ds" % eta
        else:
            when = f"{now - self._start:.0f}s"
        info = f" {bold}{when}{reset}" + format_time(time_per_unit, self.unit_name)
        special += 8
        for k in self._values_order:
            avg = self._average(k)
            info += f" - {k}: {avg:.4f}" if abs(avg) > 1e-3 else f" - {k}: {avg:.4e}"
        return bar, info, special if color else 0

    def _draw(self, current: int, now: float, time_per_unit: float, finalize: bool) -> None:
        bar, info, special = self._line(current, now, time_per_unit, finalize, color=True)
        message = "\b" * self._prev_total_width + "\r" + bar + info
        width = len(bar) + len(info) - special
        if self._prev_total_width > width:
            message += " " * (self._prev_total_width - width)
        if finalize:
            message += "\n"
        _write(message)
        self._prev_total_width = width

    def _estimate_step_duration(self, current: int, now: float) -> float:
        """Seconds per step; after the first step, the first one (warm-up) is left out."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            per = (now - self._time_after_first_step) / (current - 1)
        else:
            per = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per
