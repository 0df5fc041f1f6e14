"""CNN training speed on Fashion-MNIST: rustkeras vs PyTorch CPU vs Keras 3 on JAX.

The same model everywhere (Keras' mnist_cnn): Conv2D 32 3x3 relu, Conv2D 64 3x3 relu,
MaxPooling 2x2, Dropout 0.25, Flatten, Dense 128 relu, Dropout 0.5, Dense 10 softmax;
categorical crossentropy; Adam(lr=0.001, eps=1e-7); Glorot-uniform kernels, zero biases;
channels_last images x/255 (PyTorch: NCHW, its native layout). An epoch is long on a small
machine, so each "epoch" here is a fixed number of batches (`--steps`, default 60) of the
shuffled training set; the first is warm-up. Reported: seconds per step over the others, the
projected seconds per full epoch (469 steps at batch 128), test accuracy after the run
(low after few steps: it shows the model learns, not its final accuracy) and peak RSS.
Each framework runs in its own subprocess; `--rounds N` interleaves N runs and keeps each
framework's fastest.

Run:
    python bench/bench_cnn.py [--steps 60] [--epochs 3] [--batch-size 128] [--threads 2]
                              [--frameworks rustkeras,torch,keras-jax] [--rounds 1] [--out bench/RESULTS.md]
"""

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import common
from bench_mlp import import_fashion_mnist, one_hot

FRAMEWORKS = ("rustkeras", "torch", "keras-jax")
LABELS = {"rustkeras": "rustkeras", "torch": "PyTorch (CPU)", "keras-jax": "Keras 3 + JAX"}
DISTS = {"rustkeras": ("rustkeras",), "torch": ("torch",), "keras-jax": ("keras", "jax", "jaxlib")}
CLASSES = 10
EVAL_BATCH = 1000
N_TRAIN = 60000


def prepare_data(folder: Path) -> Path:
    if str(common.REPO_PYTHON) not in sys.path:
        sys.path.append(str(common.REPO_PYTHON))
    (x_train, y_train), (x_test, y_test) = import_fashion_mnist().load_data()
    path = folder / "fashion_mnist_images.npz"
    np.savez(
        path,
        x_train=x_train.reshape(-1, 28, 28, 1).astype(np.float32) / 255,
        y_train=y_train.astype(np.int64),
        x_test=x_test.reshape(-1, 28, 28, 1).astype(np.float32) / 255,
        y_test=y_test.astype(np.int64),
    )
    return path


def subsets(n: int, steps: int, batch: int, epochs: int, seed: int):
    """The rows each epoch trains on: `steps` batches of a fresh permutation."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n)[: steps * batch] for _ in range(epochs)]


def train_torch(data, batch: int, steps: int, epochs: int, threads: int, seed: int) -> dict:
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, CLASSES),
    )
    for layer in model:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):  # Keras' defaults
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    x_train = torch.from_numpy(np.ascontiguousarray(data["x_train"].transpose(0, 3, 1, 2)))
    y_train = torch.from_numpy(data["y_train"])
    epoch_s = []
    for rows in subsets(len(x_train), steps, batch, epochs, seed):
        start = time.perf_counter()
        model.train()
        rows = torch.from_numpy(rows)
        for i in range(0, len(rows), batch):
            idx = rows[i : i + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        epoch_s.append(time.perf_counter() - start)
    model.eval()
    correct = 0
    x_test = torch.from_numpy(np.ascontiguousarray(data["x_test"].transpose(0, 3, 1, 2)))
    y_test = torch.from_numpy(data["y_test"])
    with torch.inference_mode():
        for i in range(0, len(x_test), EVAL_BATCH):
            correct += int((model(x_test[i : i + EVAL_BATCH]).argmax(1) == y_test[i : i + EVAL_BATCH]).sum())
    return {"epoch_s": epoch_s, "test_acc": correct / len(x_test), "version": torch.__version__}


def train_keras_api(keras, data, batch: int, steps: int, epochs: int, seed: int) -> dict:
    """Shared by Keras 3 and rustkeras: the same code, only the module differs."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    model = keras.models.Sequential()
    model.add(L.Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(L.Conv2D(64, (3, 3), activation="relu"))
    model.add(L.MaxPooling2D(pool_size=(2, 2)))
    model.add(L.Dropout(0.25))
    model.add(L.Flatten())
    model.add(L.Dense(128, activation="relu"))
    model.add(L.Dropout(0.5))
    model.add(L.Dense(CLASSES, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=0.001,
                  epsilon=1e-7), metrics=["accuracy"])
    x_train, y_train = data["x_train"], one_hot(data["y_train"])
    epoch_s = []
    for rows in subsets(len(x_train), steps, batch, epochs, seed):
        x, y = x_train[rows], y_train[rows]
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        epoch_s.append(time.perf_counter() - start)
    _, accuracy = model.evaluate(data["x_test"], one_hot(data["y_test"]), batch_size=EVAL_BATCH, verbose=0)
    return {"epoch_s": epoch_s, "test_acc": float(accuracy)}


def worker(framework: str, data_path: str, batch: int, steps: int, epochs: int, threads: int, seed: int) -> None:
    common.pin_to_threads(threads)
    try:
        if framework == "torch":
            import torch  # noqa: F401
        elif framework == "keras-jax":
            import jax  # noqa: F401
            import keras
        else:
            import rustkeras
            import rustkeras._core  # noqa: F401  (the engine, not just the Python side)
    except ImportError as err:
        common.report({"status": common.NOT_INSTALLED, "detail": str(err)})
        return
    with np.load(data_path) as f:
        data = {k: f[k] for k in f.files}
    if framework == "torch":
        result = train_torch(data, batch, steps, epochs, threads, seed)
    elif framework == "keras-jax":
        result = train_keras_api(keras, data, batch, steps, epochs, seed)
        result["version"] = f"keras {keras.__version__}, jax {jax.__version__}"
    else:
        result = train_keras_api(rustkeras, data, batch, steps, epochs, seed)
        result["version"] = getattr(rustkeras, "__version__", common.version("rustkeras"))
    result["status"] = "ok"
    result["peak_rss_mib"] = common.peak_rss_mib()
    common.report(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="batches per timed epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is warm-up")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run everything this many times, interleaved; keep each one's fastest")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--out", help="append the results to this Markdown file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is warm-up")
    if args.steps * args.batch_size > N_TRAIN:
        parser.error(f"--steps x --batch-size must not exceed the {N_TRAIN} training images")
    if args.worker:
        worker(args.worker, args.data, args.batch_size, args.steps, args.epochs, args.threads, args.seed)
        return
    frameworks = [f.strip() for f in args.frameworks.split(",")]
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        parser.error(f"unknown frameworks {sorted(unknown)}; choose from {FRAMEWORKS}")

    tmp = Path(tempfile.mkdtemp(prefix="rustkeras-bench-"))
    results = {}
    try:
        data_path = prepare_data(tmp)
        for round_ in range(1, args.rounds + 1):
            for fw in frameworks:
                print(f"round {round_}/{args.rounds}: {fw}, {args.epochs} x {args.steps} steps", file=sys.stderr,
                      flush=True)
                extra = {"KERAS_BACKEND": "jax"} if fw == "keras-jax" else {}
                result = common.run_worker(
                    __file__,
                    ["--worker", fw, "--data", str(data_path), "--batch-size", str(args.batch_size),
                     "--steps", str(args.steps), "--epochs", str(args.epochs), "--threads", str(args.threads),
                     "--seed", str(args.seed)],
                    common.worker_env(args.threads, extra),
                    args.timeout,
                )
                if result.get("status") == "ok":
                    steady = result["epoch_s"][1:]
                    result["s_step"] = sum(steady) / len(steady) / args.steps
                best = results.get(fw)
                if best is None or best.get("status") != "ok" or (
                    result.get("status") == "ok" and result["s_step"] < best["s_step"]
                ):
                    results[fw] = result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    steps_epoch = math.ceil(N_TRAIN / args.batch_size)
    mine = results.get("rustkeras", {})
    rows = []
    for fw in frameworks:
        r = results[fw]
        if r.get("status") != "ok":
            rows.append([LABELS[fw], r.get("status", "?")] + ["–"] * 6)
            continue
        ratio_t = ratio_m = "–"
        if fw != "rustkeras" and mine.get("status") == "ok":
            ratio_t = f"{mine['s_step'] / r['s_step']:.2f}"
            ratio_m = f"{mine['peak_rss_mib'] / r['peak_rss_mib']:.2f}"
        rows.append([
            LABELS[fw], r["version"],
            f"{1000 * r['s_step']:.1f} (first epoch {1000 * r['epoch_s'][0] / args.steps:.1f})",
            f"{r['s_step'] * steps_epoch:.1f}",
            f"{r['test_acc']:.4f}",
            f"{r['peak_rss_mib']:.0f}",
            ratio_t, ratio_m,
        ])
    columns = ["framework", "version", f"ms/step, epochs 2-{args.epochs}", f"projected s/epoch ({steps_epoch} steps)",
               f"test acc after {args.epochs * args.steps} steps", "peak RSS MiB", "time rustkeras/peer",
               "RSS rustkeras/peer"]
    lines = common.header(f"CNN (Keras mnist_cnn) on Fashion-MNIST, Adam, batch {args.batch_size}", args.threads,
                          [d for fw in frameworks for d in DISTS[fw]])
    lines += common.markdown_table(columns, rows)
    lines += ["", f"{args.epochs} epochs of {args.steps} batches, the first untimed; best of {args.rounds} "
              "round(s). Ratios below 1 mean rustkeras is faster or smaller."]
    common.emit(lines, args.out)


if __name__ == "__main__":
    main()
