"""ModelCheckpoint and BackupAndRestore: what is saved when, under which name, and a fit resumed
from a backup (after an exception, or after a SIGKILL of the training process) that ends
exactly where an uninterrupted fit does."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rustkeras import Input, Sequential
from rustkeras.callbacks import BackupAndRestore, Callback, LambdaCallback, ModelCheckpoint
from rustkeras.layers import BatchNormalization, Dense, Dropout
from rustkeras.models import load_model
from rustkeras.utils import set_random_seed


def _model():
    m = Sequential([Input((5,)), Dense(8, activation="relu"), Dropout(0.3), BatchNormalization(),
                    Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _data(n=40):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5)).astype("float32"), rng.integers(0, 3, size=n)


class _Snapshots(Callback):
    """The weights at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def _same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


# -- ModelCheckpoint ---------------------------------------------------------------------


def test_checkpoint_names_files_from_the_epoch_and_the_logs(tmp_path):
    x, y = _data()
    m = _model()
    snaps = _Snapshots()
    template = str(tmp_path / "ckpt" / "w.{epoch:02d}-{val_loss:.2f}.keras")
    h = m.fit(x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[ModelCheckpoint(template), snaps])
    names = sorted(os.listdir(tmp_path / "ckpt"))
    assert names == sorted(f"w.{e + 1:02d}-{v:.2f}.keras" for e, v in enumerate(h.history["val_loss"]))
    for e, name in enumerate(sorted(names, key=lambda n: n[2:4])):
        assert _same_weights(load_model(tmp_path / "ckpt" / name).get_weights(), snaps.weights[e])


def test_save_best_only_keeps_the_best_epoch(tmp_path):
    x, y = _data()
    m = _model()
    snaps = _Snapshots()
    losses = []
    record = LambdaCallback(on_epoch_end=lambda epoch, logs: losses.append(logs["loss"]))
    path = tmp_path / "best.keras"
    m.fit(x, y, epochs=6, batch_size=8, verbose=0,
          callbacks=[ModelCheckpoint(path, monitor="loss", save_best_only=True, mode="min"), snaps, record])
    best = int(np.argmin(losses))
    assert _same_weights(load_model(path).get_weights(), snaps.weights[best])


def test_save_best_only_with_max_mode_and_a_threshold(tmp_path):
    x, y = _data()
    m = _model()
    path = tmp_path / "acc.weights.h5"
    # Accuracy is never above 1: with that threshold nothing is ever saved.
    cb = ModelCheckpoint(path, monitor="accuracy", save_best_only=True, save_weights_only=True,
                         initial_value_threshold=1.0)
    assert cb.mode == "max"
    m.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    assert not path.exists()
    with pytest.warns(UserWarning, match="val_loss available"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "m.keras", save_best_only=True)])


def test_save_weights_only_writes_a_weights_file(tmp_path):
    x, y = _data()
    m = _model()
    path = tmp_path / "w.weights.h5"
    m.fit(x, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(path, save_weights_only=True)])
    twin = _model()
    twin.load_weights(path)
    assert _same_weights(twin.get_weights(), m.get_weights())


def test_save_freq_in_batches_counts_across_epochs(tmp_path):
    x, y = _data(40)
    m = _model()
    seen = []

    class Count(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    template = str(tmp_path / "b.{epoch}-{batch}.weights.h5")
    # 5 batches an epoch, 3 epochs, a save every 4 batches: after global batches 4, 8, 12.
    m.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0,
          callbacks=[Count(), ModelCheckpoint(template, save_weights_only=True, save_freq=4)])
    assert len(seen) == 15
    assert sorted(os.listdir(tmp_path)) == ["b.1-4.weights.h5", "b.2-3.weights.h5", "b.3-2.weights.h5"]


def test_checkpoint_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must end in `\.keras`"):
        ModelCheckpoint(tmp_path / "m.h5x")
    with pytest.raises(NotImplementedError, match="legacy"):
        ModelCheckpoint(tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        ModelCheckpoint(tmp_path / "m.keras", save_weights_only=True)
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint(tmp_path / "m.keras", save_freq="batch")
    with pytest.raises(ValueError, match="mode"):
        ModelCheckpoint(tmp_path / "m.keras", mode="best")
    m = _model()
    x, y = _data()
    with pytest.raises(KeyError, match="val_auc"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "{val_auc}.keras"))])


# -- BackupAndRestore --------------------------------------------------------------------


class _Interrupt(Callback):
    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise RuntimeError("interrupted")


def _reference(x, y, epochs):
    set_random_seed(11)
    m = _model()
    h = m.fit(x, y, epochs=epochs, batch_size=7, verbose=0)
    return m.get_weights(), h.history


def test_a_fit_resumed_from_its_backup_ends_as_an_uninterrupted_one(tmp_path):
    x, y = _data()
    weights, history = _reference(x, y, 5)
    backup = tmp_path / "backup"
    set_random_seed(11)
    m = _model()
    with pytest.raises(RuntimeError, match="interrupted"):
        m.fit(x, y, epochs=5, batch_size=7, verbose=0, callbacks=[BackupAndRestore(backup), _Interrupt(2)])
    assert sorted(os.listdir(backup)) == ["latest.weights.h5", "training_metadata.json"]
    assert json.loads((backup / "training_metadata.json").read_text()) == {"epoch": 3, "batch": 0}
    # A new process would build the model anew: other initial weights, other seeds.
    set_random_seed(12)
    resumed = _model()
    h = resumed.fit(x, y, epochs=5, batch_size=7, verbose=0, callbacks=[BackupAndRestore(backup)])
    assert h.epoch == [3, 4]
    assert h.history["loss"] == history["loss"][3:]
    assert _same_weights(resumed.get_weights(), weights)
    assert not backup.exists()


def test_backups_every_few_batches_and_the_previous_backup(tmp_path):
    x, y = _data()
    backup = tmp_path / "backup"
    m = _model()
    with pytest.raises(RuntimeError):
        m.fit(x, y, epochs=4, batch_size=8, verbose=0,
              callbacks=[BackupAndRestore(backup, save_freq=3, double_checkpoint=True), _Interrupt(1)])
    # 5 batches an epoch: backups after global batches 3, 6, 9; the last one in epoch 1 (0-based).
    assert json.loads((backup / "training_metadata.json").read_text()) == {"epoch": 1, "batch": 4}
    assert json.loads((backup / "training_metadata.json.bkp").read_text()) == {"epoch": 1, "batch": 1}
    (backup / "latest.weights.h5").write_bytes(b"torn")
    fresh = _model()
    with pytest.warns(UserWarning, match="previous one"):
        h = fresh.fit(x, y, epochs=4, batch_size=8, verbose=0,
                      callbacks=[BackupAndRestore(backup, double_checkpoint=True, delete_checkpoint=False)])
    # As Keras: from a backup taken inside an epoch, that epoch runs again from its start.
    assert h.epoch == [1, 2, 3]
    assert backup.exists()


def test_backup_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="backup_dir"):
        BackupAndRestore("")
    with pytest.raises(ValueError, match="save_freq"):
        BackupAndRestore(tmp_path, save_freq=0)


_TRAINER = textwrap.dedent("""
    import sys
    import numpy as np
    from rustkeras import Input, Sequential
    from rustkeras.callbacks import BackupAndRestore, LambdaCallback
    from rustkeras.layers import BatchNormalization, Dense, Dropout
    from rustkeras.utils import set_random_seed

    set_random_seed(int(sys.argv[2]))
    m = Sequential([Input((5,)), Dense(8, activation="relu"), Dropout(0.3), BatchNormalization(),
                    Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)).astype("float32"), rng.integers(0, 3, size=40)
    report = LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, flush=True))
    m.fit(x, y, epochs=8, batch_size=7, verbose=0, callbacks=[BackupAndRestore(sys.argv[1]), report])
    np.savez(sys.argv[3], *m.get_weights())
""")


def test_a_training_process_killed_mid_fit_resumes_exactly(tmp_path):
    x, y = _data()
    weights, _ = _reference(x, y, 8)
    backup, out = str(tmp_path / "backup"), str(tmp_path / "final.npz")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", _TRAINER, backup, "11", out], stdout=subprocess.PIPE, env=env,
                            text=True)
    # Killed once it reports epoch 2: wherever it is then (writing a backup, or inside epoch 3 or
    # 4), the backup on disk is a whole one.
    while True:
        line = proc.stdout.readline()
        assert line, "the training process died"
        if int(line) == 2:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(out)
    # The restarted process builds its model with other seeds; the backup decides.
    subprocess.run([sys.executable, "-c", _TRAINER, backup, "99", out], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    with np.load(out) as d:
        final = [d[f"arr_{i}"] for i in range(len(d.files))]
    assert _same_weights(final, weights)
    assert not os.path.exists(backup)


# -- SIGKILL while ModelCheckpoint writes ------------------------------------------------

_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from rustkeras import Input, Sequential
    from rustkeras.callbacks import Callback, ModelCheckpoint
    from rustkeras.layers import Dense

    path, weights_only = sys.argv[1], sys.argv[2] == "1"

    class Ready(Callback):
        # After the checkpoint callback's first save, so a checkpoint exists when the parent
        # starts its clock.
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0 and self.params.get("epoch", 0) == 0:
                print("ready", flush=True)

    # About 1.5 MB of weights, written after every batch: most of the process's time is spent
    # inside a save, so the kills land in every phase of one.
    m = Sequential([Input((128,)), Dense(512, activation="relu"), Dense(512), Dense(4)])
    m.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 128)).astype("float32")
    m.fit(x, x[:, :4], epochs=10**6, batch_size=8, verbose=0,
          callbacks=[ModelCheckpoint(path, save_freq=1, save_weights_only=weights_only), Ready()])
""")


def _kill_while_checkpointing(path, weights_only, delay):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, path, str(int(weights_only))], stdout=subprocess.PIPE,
                            env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", "the writer died before its first checkpoint"
        import time

        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


def _loadable(path, weights_only):
    if weights_only:
        m = Sequential([Input((128,)), Dense(512, activation="relu"), Dense(512), Dense(4)])
        m.load_weights(path)
    else:
        m = load_model(path)
    ws = m.get_weights()
    assert [w.shape for w in ws] == [(128, 512), (512,), (512, 512), (512,), (512, 4), (4,)]
    assert all(np.isfinite(w).all() for w in ws)
    return m


# A few moments in CI; RUSTKERAS_KILL_REPEATS raises the count for a long run.
_KILLS = int(os.environ.get("RUSTKERAS_KILL_REPEATS", "4"))


@pytest.mark.parametrize("weights_only", [False, True], ids=["keras", "weights_h5"])
def test_a_process_killed_while_a_checkpoint_is_written_leaves_the_previous_one_loadable(tmp_path, weights_only):
    path = str(tmp_path / ("ckpt.weights.h5" if weights_only else "ckpt.keras"))
    rng = np.random.default_rng(1)
    torn = 0
    for k in range(_KILLS):
        # Spread over a few checkpoint writes (each takes some milliseconds), at different phases.
        _kill_while_checkpointing(path, weights_only, float(rng.uniform(0.0, 0.25)))
        _loadable(path, weights_only)
        # A kill inside a write leaves its temporary file (never the target) behind.
        leftovers = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        torn += bool(leftovers)
        for f in leftovers:
            os.remove(tmp_path / f)
    print(f"{_KILLS} kills, {torn} inside a write")
