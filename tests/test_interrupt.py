"""Ctrl-C during a long fit, evaluate or predict stops it at a batch boundary with
KeyboardInterrupt, with the weights of the last completed batch (checked bit for bit against a
replay of that many batches): in the Rust loop (no batch callbacks) and between batches (a
batch callback)."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from rustkeras.models import Sequential
    from rustkeras.layers import Dense
    from rustkeras.callbacks import Callback
    from rustkeras.utils import set_random_seed

    class Announce(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 0:
                print("running", flush=True)

    class EachBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    def build(seed):
        set_random_seed(seed)
        m = Sequential([Dense(64, activation="relu", input_shape=(64,)), Dense(4)])
        m.compile(optimizer="adam", loss="mse")
        return m

    x = np.random.default_rng(0).normal(size=(20000, 64)).astype("float32")
    y = x[:, :4].copy()
    model = build(7)
    before = [w.copy() for w in model.get_weights()]
    try:
        if "LOOP" == "fit":
            model.fit(x, y, epochs=100000, batch_size=8, shuffle=False, verbose=0, callbacks=[Announce()])
        elif "LOOP" == "fit_batch_callback":
            model.fit(x, y, epochs=100000, batch_size=8, shuffle=False, verbose=0,
                      callbacks=[Announce(), EachBatch()])
        else:
            # Calls long enough that Ctrl-C lands inside one (a call that ends first is
            # followed by the next).
            heavy = Sequential([Dense(512, activation="relu", input_shape=(64,)), Dense(512), Dense(4)])
            heavy.compile(optimizer="sgd", loss="mse")
            print("running", flush=True)
            while True:
                if "LOOP" == "evaluate":
                    heavy.evaluate(x, y, batch_size=16, verbose=0)
                else:
                    heavy.predict(x, batch_size=16, verbose=0)
    except KeyboardInterrupt:
        got = model.get_weights()
        steps = int(model.optimizer.iterations)
        # The same model trained on exactly `steps` batches, one at a time, in the order fit
        # took them (shuffle=False): the interrupted model must hold these weights bit for bit,
        # so no batch was half applied.
        replay = build(7)
        batches = len(x) // 8
        for i in range(steps):
            b = i % batches
            replay.train_on_batch(x[b * 8:(b + 1) * 8], y[b * 8:(b + 1) * 8])
        same = all(np.array_equal(a, b) for a, b in zip(got, replay.get_weights()))
        untouched = all(np.array_equal(a, b) for a, b in zip(got, before))
        print("interrupted", model.predict(x[:2], verbose=0).shape, steps, same, untouched, flush=True)
        sys.exit(0)
    sys.exit(3)
    """
)


@pytest.mark.parametrize("loop", ["fit", "fit_batch_callback", "evaluate", "predict"])
def test_ctrl_c_stops_the_loop_with_keyboard_interrupt(loop):
    p = subprocess.Popen([sys.executable, "-c", SCRIPT.replace("LOOP", loop)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "running"
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    line = [l for l in out.splitlines() if l.startswith("interrupted")][0]
    _, shape, steps, same, untouched = line.replace("(2, 4)", "(2,4)").split()
    assert shape == "(2,4)"
    assert same == "True", line
    if loop.startswith("fit"):
        # Stopped inside the run, after some batches: the weights moved, to those of the last
        # completed batch.
        assert int(steps) > 0 and untouched == "False", line
    else:
        assert int(steps) == 0 and untouched == "True", line
