"""Ctrl-C during a long fit stops it at a batch boundary with KeyboardInterrupt, weights intact."""

import signal
import subprocess
import sys
import textwrap
import time

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from rustkeras.models import Sequential
    from rustkeras.layers import Dense
    from rustkeras.callbacks import Callback

    class Announce(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 0:
                print("training", flush=True)

    x = np.random.default_rng(0).normal(size=(20000, 64)).astype("float32")
    y = x[:, :4].copy()
    model = Sequential([Dense(64, activation="relu", input_shape=(64,)), Dense(4)])
    model.compile(optimizer="sgd", loss="mse")
    try:
        model.fit(x, y, epochs=100000, batch_size=8, verbose=0, callbacks=[Announce()])
    except KeyboardInterrupt:
        ok = all(np.isfinite(w).all() for w in model.get_weights())
        print("interrupted", model.predict(x[:2], verbose=0).shape, ok, flush=True)
        sys.exit(0)
    sys.exit(3)
    """
)


def test_ctrl_c_stops_fit_with_keyboard_interrupt():
    p = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "training"
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "interrupted (2, 4) True" in out
