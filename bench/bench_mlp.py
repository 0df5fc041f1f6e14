"""MLP training speed on Fashion-MNIST: rustkeras vs PyTorch CPU vs Keras 3 on JAX (and GPUs).

The same model everywhere: 784-512-512-10, relu, Dropout(0.2) after each
hidden layer, softmax output, categorical crossentropy, RMSprop(lr=0.001,
rho=0.9, epsilon=1e-7), Glorot-uniform kernels and zero biases, inputs x/255
as float32, shuffled every epoch. Each framework and batch size runs in its
own subprocess on the same CPUs. The first epoch is warm-up (compilation,
allocation) and is not timed; seconds per epoch are the mean of the others.
With --rounds N the whole set runs N times, interleaved, and each framework's
fastest run is reported (for machines with other load).

Two GPU rows run only when named in --frameworks: "rustkeras-gpu" (rustkeras with
RUSTKERAS_BACKEND=gpu) and "torch-cuda" (PyTorch on CUDA, data and model on the
device); each reports a missing GPU instead of measuring the CPU. --subset N trains
on the first N training images and tests on the first N // 6 (for a software GPU).
--batch-callback adds a callback with an (empty) `on_train_batch_end` to the Keras-API
runs, which then call Python after every batch: the cost of a batch hook.

Prediction: the model trained at the first of --batch-sizes then predicts the 10,000 test images
(`model.predict(x, batch_size=B, verbose=0)`; PyTorch: forward pass and softmax in eval mode under
torch.inference_mode(), batch by batch, gathered into one numpy array) at each of
--predict-batch-sizes (default 32 and 1024): one untimed call, then the fastest of --predict-repeats
(default 3). A second table gives seconds per predict and that run's peak RSS (training and
predict); the training table's peak RSS is measured before the predict. --no-predict skips it.

Run:
    python bench/bench_mlp.py [--epochs 3] [--batch-sizes 128,32] [--threads 2] [--subset N] [--batch-callback]
                              [--predict-batch-sizes 32,1024] [--predict-repeats 3] [--no-predict]
                              [--frameworks rustkeras,torch,keras-jax,keras-tf,rustkeras-gpu,torch-cuda]
                              [--rounds 1] [--out bench/RESULTS.md]
"""

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

import common

FRAMEWORKS, LABELS, DISTS = common.MODEL_FRAMEWORKS, common.MODEL_LABELS, common.MODEL_DISTS
KNOWN_FRAMEWORKS = common.KNOWN_MODEL_FRAMEWORKS
# Each peer's time and RSS are divided into those of rustkeras on the same kind of device.
REFERENCE = common.MODEL_REFERENCE
HIDDEN = 512
CLASSES = 10
LEARNING_RATE = 0.001
RHO = 0.9
EPSILON = 1e-7
DROPOUT = 0.2
EVAL_BATCH = 1024


# ---- the data, prepared once by the parent ----------------------------------


def import_fashion_mnist():
    """rustkeras' loader, without needing the compiled engine: the peers'
    figures must not depend on rustkeras being built."""
    try:
        from rustkeras.datasets import fashion_mnist
    except ImportError:
        import importlib.machinery
        import importlib.util

        # Stand-in for the package so that its __init__ (which loads the
        # engine) does not run; only the pure-Python datasets are imported.
        for name in [m for m in sys.modules if m == "rustkeras" or m.startswith("rustkeras.")]:
            del sys.modules[name]
        spec = importlib.machinery.ModuleSpec("rustkeras", None, is_package=True)
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(common.REPO_PYTHON / "rustkeras")]
        sys.modules["rustkeras"] = package
        from rustkeras.datasets import fashion_mnist
    return fashion_mnist


def prepare_data(folder: Path, subset: Optional[int]) -> Tuple[Path, int]:
    """Writes the float data the workers load; returns its path and the number of training
    samples (the first `subset` of them, and the first `subset // 6` test samples, if given)."""
    if str(common.REPO_PYTHON) not in sys.path:
        sys.path.append(str(common.REPO_PYTHON))
    (x_train, y_train), (x_test, y_test) = import_fashion_mnist().load_data()
    if subset is not None:
        x_train, y_train = x_train[:subset], y_train[:subset]
        x_test, y_test = x_test[: subset // 6], y_test[: subset // 6]
    path = folder / "fashion_mnist_float.npz"
    np.savez(
        path,
        x_train=x_train.reshape(len(x_train), 784).astype(np.float32) / 255,
        y_train=y_train.astype(np.int64),
        x_test=x_test.reshape(len(x_test), 784).astype(np.float32) / 255,
        y_test=y_test.astype(np.int64),
    )
    return path, len(x_train)


def one_hot(labels: np.ndarray) -> np.ndarray:
    out = np.zeros((len(labels), CLASSES), np.float32)
    out[np.arange(len(labels)), labels] = 1
    return out


# ---- workers: one framework, one batch size, in its own process -------------


def train_torch(data, batch_size: int, epochs: int, threads: int, seed: int, device: str) -> dict:
    """PyTorch's run on `device` ("cpu" or "cuda"); on CUDA the data and the model live on the
    GPU and each epoch's time waits for the GPU to finish."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = nn.Sequential(
        nn.Linear(784, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT),
        nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT),
        nn.Linear(HIDDEN, CLASSES),
    )
    for layer in model:
        if isinstance(layer, nn.Linear):  # Keras' defaults for Dense
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    model.to(dev)
    # Keras divides by sqrt(v + eps), PyTorch by sqrt(v) + eps: eps = sqrt(1e-7)
    # gives both the same floor where v is 0 and the same step elsewhere.
    optimizer = torch.optim.RMSprop(
        model.parameters(), lr=LEARNING_RATE, alpha=RHO, eps=math.sqrt(EPSILON)
    )
    # Softmax + categorical crossentropy on one-hot targets, fused as PyTorch does it.
    loss_fn = nn.CrossEntropyLoss()

    x_train = torch.from_numpy(data["x_train"]).to(dev)
    y_train = torch.from_numpy(data["y_train"]).to(dev)
    n = len(x_train)
    epoch_s = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, device=dev)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        epoch_s.append(time.perf_counter() - start)

    model.eval()
    correct = 0
    x_test = torch.from_numpy(data["x_test"]).to(dev)
    y_test = torch.from_numpy(data["y_test"]).to(dev)
    with torch.inference_mode():
        for i in range(0, len(x_test), EVAL_BATCH):
            pred = model(x_test[i : i + EVAL_BATCH]).argmax(1)
            correct += int((pred == y_test[i : i + EVAL_BATCH]).sum())
    version = torch.__version__
    if dev.type == "cuda":
        version += f" on {torch.cuda.get_device_name(dev)}"
    x_predict = x_test[: common.PREDICT_SAMPLES]
    return {"epoch_s": epoch_s, "test_acc": correct / len(x_test), "version": version,
            "predict": common.torch_predictor(model, x_predict, dev), "predict_samples": len(x_predict)}


def train_keras_api(keras, data, batch_size: int, epochs: int, seed: int, batch_callback: bool = False) -> dict:
    """The Keras-API run, shared by Keras 3 and rustkeras: the same code, only
    the module differs. With `batch_callback`, a callback also has a batch hook."""
    keras.utils.set_random_seed(seed)
    model = keras.models.Sequential()
    model.add(keras.layers.Dense(HIDDEN, activation="relu", input_shape=(784,)))
    model.add(keras.layers.Dropout(DROPOUT))
    model.add(keras.layers.Dense(HIDDEN, activation="relu"))
    model.add(keras.layers.Dropout(DROPOUT))
    model.add(keras.layers.Dense(CLASSES, activation="softmax"))
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.RMSprop(learning_rate=LEARNING_RATE, rho=RHO, epsilon=EPSILON),
        metrics=["accuracy"],
    )
    x_train, y_train = data["x_train"], one_hot(data["y_train"])
    x_test, y_test = data["x_test"], one_hot(data["y_test"])

    epoch_s = []
    callback_base = getattr(getattr(keras, "callbacks", None), "Callback", None)
    if callback_base is not None:

        class EpochTimer(callback_base):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                epoch_s.append(time.perf_counter() - self.start)

        class EachBatch(callback_base):
            def on_train_batch_end(self, batch, logs=None):
                pass

        callbacks = [EpochTimer()] + ([EachBatch()] if batch_callback else [])
        model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0,
                  shuffle=True, callbacks=callbacks)
    else:
        for _ in range(epochs):
            start = time.perf_counter()
            model.fit(x_train, y_train, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)
            epoch_s.append(time.perf_counter() - start)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=EVAL_BATCH, verbose=0)
    x_predict = x_test[: common.PREDICT_SAMPLES]
    return {"epoch_s": epoch_s, "test_acc": float(accuracy),
            "predict": lambda batch: model.predict(x_predict, batch_size=batch, verbose=0),
            "predict_samples": len(x_predict)}


def worker(framework: str, data_path: str, batch_size: int, epochs: int, threads: int, seed: int,
           batch_callback: bool, predict_batch_sizes, predict_repeats: int) -> None:
    device = common.torch_device(framework)
    common.train_worker(framework, data_path, threads,
                        lambda data: train_torch(data, batch_size, epochs, threads, seed, device),
                        lambda keras, data: train_keras_api(keras, data, batch_size, epochs, seed, batch_callback),
                        predict_batch_sizes, predict_repeats)


# ---- the parent: runs the workers, prints the table --------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is warm-up")
    parser.add_argument("--batch-sizes", default="128,32")
    parser.add_argument("--subset", type=int, metavar="N",
                        help="train on the first N training images and test on the first N // 6")
    parser.add_argument("--batch-callback", action="store_true",
                        help="add a callback with a batch hook to the Keras-API runs")
    common.add_run_args(parser, FRAMEWORKS)
    common.add_predict_args(parser)
    args = parser.parse_args()

    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is warm-up")
    if args.subset is not None and args.subset < 6:
        parser.error("--subset must be at least 6")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    predict_batches = common.predict_batch_sizes(parser, args)
    if args.worker:
        worker(args.worker, args.data, batch_sizes[0], args.epochs, args.threads, args.seed, args.batch_callback,
               predict_batches, args.predict_repeats)
        return
    frameworks = common.chosen_frameworks(parser, args, KNOWN_FRAMEWORKS)

    tmp = Path(tempfile.mkdtemp(prefix="rustkeras-bench-"))
    try:
        data_path, n_train = prepare_data(tmp, args.subset)
        results, predicted = {}, {}
        for round_ in range(1, args.rounds + 1):
            for batch in batch_sizes:
                # The trained model of the first batch size's runs is the one that predicts.
                predicting = predict_batches if batch == batch_sizes[0] else []
                for fw in frameworks:
                    print(f"round {round_}/{args.rounds}: {fw}, batch {batch}, {args.epochs} epochs"
                          + (", then predict" if predicting else ""), file=sys.stderr, flush=True)
                    result = common.run_framework(
                        __file__, fw,
                        ["--worker", fw, "--data", str(data_path), "--batch-sizes", str(batch),
                         "--epochs", str(args.epochs), "--threads", str(args.threads),
                         "--seed", str(args.seed)] + (["--batch-callback"] if args.batch_callback else [])
                        + common.predict_worker_args(predicting, args.predict_repeats),
                        args.threads, args.timeout,
                    )
                    common.keep_fastest(results, (fw, batch), result)
                    common.keep_fastest_predict(predicted, fw, result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for batch in batch_sizes:
        for fw in frameworks:
            r = results[fw, batch]
            if r.get("status") != "ok":
                rows.append([LABELS[fw], r.get("status", "?"), batch] + ["–"] * 6)
                continue
            steady = r["epoch_s"][1:]
            s_epoch = r["steady_s"]
            steps = math.ceil(n_train / batch)
            ratio_t = ratio_m = "–"
            mine = results.get((REFERENCE.get(fw), batch), {})
            if mine.get("status") == "ok":
                ratio_t = f"{mine['steady_s'] / s_epoch:.2f}"
                ratio_m = f"{mine['peak_rss_mib'] / r['peak_rss_mib']:.2f}"
            rows.append([
                LABELS[fw], r["version"], batch,
                f"{s_epoch:.2f} (min {min(steady):.2f}, first {r['epoch_s'][0]:.2f})",
                f"{1000 * s_epoch / steps:.2f}",
                f"{r['test_acc']:.4f}",
                f"{r['peak_rss_mib']:.0f}",
                ratio_t, ratio_m,
            ])
    columns = ["framework", "version", "batch", f"s/epoch, epochs 2-{args.epochs}", "ms/step",
               f"test acc after {args.epochs} epochs", "peak RSS MiB",
               "time rustkeras/peer", "RSS rustkeras/peer"]
    data = "Fashion-MNIST" if args.subset is None else f"the first {n_train} Fashion-MNIST training images"
    lines = common.header(f"MLP 784-512-512-10 on {data}, RMSprop", args.threads,
                          [d for fw in frameworks for d in DISTS[fw]])
    lines += common.markdown_table(columns, rows)
    lines += ["", f"Best of {args.rounds} round(s). Ratios below 1 mean rustkeras is faster or smaller; "
                  "each peer is compared with rustkeras on the same kind of device (PyTorch CUDA with "
                  "rustkeras on the GPU), and RSS is host memory only (training's peak, before any predict)."]
    if predict_batches:
        statuses = {fw: results[fw, batch_sizes[0]].get("status", "?") for fw in frameworks}
        lines += common.predict_table(f"MLP trained at batch {batch_sizes[0]}", frameworks, predict_batches,
                                      predicted, statuses, args.predict_repeats, args.rounds)
    common.emit(lines, args.out)


if __name__ == "__main__":
    main()
