"""Progress output: a Keras-style bar on a terminal, one line per epoch otherwise."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rustkeras._progbar import Progbar

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from rustkeras.models import Sequential
    from rustkeras.layers import Dense
    x = np.random.default_rng(0).normal(size=(640, 8)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    m = Sequential([Dense(1, activation="sigmoid", input_shape=(8,))])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["acc"])
    m.fit(x, y, epochs=3, batch_size=8, verbose=VERBOSE, validation_split=0.25)
    """
)


@pytest.mark.parametrize("verbose", [1, 2])
def test_no_line_flood_when_stdout_is_not_a_terminal(verbose):
    r = subprocess.run([sys.executable, "-c", SCRIPT.replace("VERBOSE", str(verbose))],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 6, lines
    assert lines[0] == "Epoch 1/3"
    assert lines[1].startswith("60/60 ")
    for key in ("loss:", "acc:", "val_loss:", "val_acc:"):
        assert key in lines[1]
    assert "\r" not in r.stdout


class FakeTty:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_terminal_bar_redraws_one_line_with_eta_and_metrics():
    out = FakeTty()
    bar = Progbar(10, verbose=1, stream=out)
    for i in range(1, 10):
        bar.update(i, {"loss": 0.5})
    bar.update(10, {"loss": 0.25, "accuracy": 0.75}, finalize=True)
    assert out.text.count("\n") == 1
    assert "\r 5/10 [" in out.text and "ETA:" in out.text and "loss: 0.5000" in out.text
    last = out.text.split("\r")[-1]
    assert last.startswith("10/10 [==============================]")
    assert last.rstrip().endswith("loss: 0.2500 - accuracy: 0.7500")


def test_verbose_zero_prints_nothing(capsys):
    from rustkeras.layers import Dense
    from rustkeras.models import Sequential

    m = Sequential([Dense(1, input_shape=(2,))])
    m.compile(optimizer="sgd", loss="mse")
    m.fit(np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32"), epochs=2, verbose=0)
    m.evaluate(np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32"), verbose=0)
    m.predict(np.zeros((4, 2), "float32"), verbose=0)
    assert capsys.readouterr().out == ""
