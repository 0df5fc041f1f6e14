"""Progress output as Keras 3 draws it: a `━` bar with the ETA, the time per step and the
metrics, redrawn in place on a terminal; off a terminal one line per epoch; `verbose=2` one
shorter line per epoch; `rustkeras.utils.Progbar` for custom loops."""

import contextlib
import io
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rustkeras.layers import Dense
from rustkeras.models import Sequential
from rustkeras.utils import Progbar

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from rustkeras.models import Sequential
    from rustkeras.layers import Dense
    x = np.random.default_rng(0).normal(size=(640, 8)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    m = Sequential([Dense(1, activation="sigmoid", input_shape=(8,))])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["acc"])
    m.fit(x, y, epochs=EPOCHS, batch_size=8, verbose=VERBOSE, validation_split=0.25)
    """
)

NUM = r"\d+\.\d{4}(e[-+]\d+)?"
METRICS = rf" - acc: {NUM} - loss: {NUM} - val_acc: {NUM} - val_loss: {NUM}$"


def run_script(verbose, epochs=3):
    r = subprocess.run([sys.executable, "-c", SCRIPT.replace("VERBOSE", str(verbose)).replace("EPOCHS", str(epochs))],
                       capture_output=True, text=True, timeout=120, env={"PYTHONIOENCODING": "utf-8", **_env()})
    assert r.returncode == 0, r.stderr
    return r.stdout


def _env():
    import os

    return dict(os.environ)


@pytest.mark.parametrize("verbose", [1, 2])
def test_one_line_per_epoch_when_stdout_is_not_a_terminal(verbose):
    out = run_script(verbose)
    lines = out.splitlines()
    assert len(lines) == 6, lines
    assert lines[0] == "Epoch 1/3" and lines[2] == "Epoch 2/3"
    if verbose == 1:
        assert re.match(r"^60/60 ━{20} \d+s \d+(s|ms|us)/step" + METRICS, lines[1]), lines[1]
    else:
        assert re.match(r"^60/60 - \d+s - \d+(s|ms|us)/step" + METRICS, lines[1]), lines[1]
    assert "\r" not in out and "\x1b" not in out


def test_a_single_epoch_has_no_epoch_header():
    lines = run_script(1, epochs=1).splitlines()
    assert len(lines) == 1 and lines[0].startswith("60/60 ━")


class FakeTty(io.StringIO):
    def isatty(self):
        return True


@contextlib.contextmanager
def terminal():
    """A terminal as stdout (set inside the test: pytest sets its own before each phase)."""
    out = FakeTty()
    with contextlib.redirect_stdout(out):
        yield out


def plain(text):
    return re.sub(r"\x1b\[\d+m", "", text)


def test_terminal_bar_redraws_one_line_with_eta_and_metrics():
    with terminal() as tty:
        bar = Progbar(10, interval=0.0)
        for i in range(1, 10):
            bar.update(i, [("loss", 0.5)])
        bar.update(10, [("loss", 0.25), ("accuracy", 0.75)])
    text = tty.getvalue()
    assert text.count("\n") == 1 and text.count("\r") == 10
    frames = [plain(f.replace("\b", "")) for f in text.split("\r")[1:]]
    assert re.match(r"^ 5/10 ━{10}━{10} \d+s \d+(s|ms|us)/step - loss: 0\.5000", frames[4]), frames[4]
    assert "\x1b[32m" in text and "\x1b[1m" in text
    # Finished: the elapsed time instead of the ETA, and the values given last.
    assert re.match(r"^10/10 ━{20} \d+s \d+(s|ms|us)/step - loss: 0\.2500 - accuracy: 0\.7500\n$", frames[-1]), frames[-1]


def test_eta_formats_and_stateful_metrics():
    with terminal() as tty:
        bar = Progbar(100000, interval=0.0, stateful_metrics=["acc"])
        bar._start -= 7000.0
        bar.update(50, [("loss", 2e-5), ("acc", 0.5)])
        bar.update(100, [("loss", 4e-5), ("acc", 0.9)])
    last = plain(tty.getvalue().split("\r")[-1])
    # 7000 s for the first step, then 100 steps of the rest: hours remain.
    assert re.search(r" \d+:\d\d:\d\d \d+s/step", last), last
    assert "loss: 3.0000e-05" in last and "acc: 0.9000" in last


def test_verbose_two_prints_only_the_finished_line(capsys):
    bar = Progbar(3, verbose=2)
    for i in range(1, 4):
        bar.update(i, [("loss", float(i))])
    out = capsys.readouterr().out
    assert re.match(r"^3/3 - \d+s - \d+(s|ms|us)/step - loss: 3\.0000\n$", out), out


def test_an_ascii_stdout_gets_equals_signs(monkeypatch):
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", out)
    bar = Progbar(4)
    bar.update(4, [("loss", 1.0)])
    out.flush()
    assert raw.getvalue().decode("ascii").startswith("4/4 ====================")


def small_model():
    m = Sequential([Dense(1, input_shape=(2,))])
    m.compile(optimizer="sgd", loss="mse")
    return m


def test_evaluate_and_predict_print_one_finished_line(capsys):
    m = small_model()
    x, y = np.zeros((40, 2), "float32"), np.zeros((40, 1), "float32")
    m.evaluate(x, y, batch_size=10, verbose=1)
    m.predict(x, batch_size=10, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert re.match(rf"^4/4 ━{{20}} \d+s \d+(s|ms|us)/step - loss: {NUM}$", lines[0]), lines[0]
    assert re.match(r"^4/4 ━{20} \d+s \d+(s|ms|us)/step$", lines[1]), lines[1]


def test_fit_on_a_terminal_ends_each_epoch_with_a_finished_bar():
    m = small_model()
    x, y = np.zeros((40, 2), "float32"), np.zeros((40, 1), "float32")
    with terminal() as tty:
        m.fit(x, y, batch_size=10, epochs=2, verbose=1, validation_split=0.25)
    text = tty.getvalue()
    lines = text.split("\n")
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    last = plain(lines[1].split("\r")[-1])
    assert re.match(r"^3/3 ━{20} \d+s \d+(s|ms|us)/step - loss: .* - val_loss: ", last), last
    # Validation draws nothing of its own: every frame counts training steps.
    frames = [plain(f.replace("\b", "")) for f in text.replace("\n", "\r").split("\r") if "/step" in f]
    assert frames and all(f.startswith(("3/3", "1/3", "2/3")) for f in frames), frames


def test_verbose_zero_prints_nothing(capsys):
    m = small_model()
    m.fit(np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32"), epochs=2, verbose=0)
    m.evaluate(np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32"), verbose=0)
    m.predict(np.zeros((4, 2), "float32"), verbose=0)
    assert capsys.readouterr().out == ""
