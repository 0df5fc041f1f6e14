"""CNN training speed on Fashion-MNIST: rustkeras vs PyTorch CPU vs Keras 3 on JAX (and GPUs).

The same model everywhere (Keras' mnist_cnn): Conv2D 32 3x3 relu, Conv2D 64 3x3 relu,
MaxPooling 2x2, Dropout 0.25, Flatten, Dense 128 relu, Dropout 0.5, Dense 10 softmax;
categorical crossentropy; Adam(lr=0.001, eps=1e-7); Glorot-uniform kernels, zero biases;
channels_last images x/255 (PyTorch: NCHW, its native layout). An epoch is long on a small
machine, so each "epoch" here is a fixed number of batches (`--steps`, default 60) of the
shuffled training set; the first is warm-up. Reported: seconds per step over the others, the
projected seconds per full epoch (469 steps at batch 128), test accuracy after the run
(low after few steps: it shows the model learns, not its final accuracy; evaluated untimed at the
training batch size, which a small GPU can hold where a batch of 1,000 is too large) and peak RSS.
Each framework runs in its own subprocess; `--rounds N` interleaves N runs and keeps each
framework's fastest.

Two GPU rows run only when named in --frameworks: "rustkeras-gpu" (rustkeras with
RUSTKERAS_BACKEND=gpu) and "torch-cuda" (PyTorch on CUDA, data and model on the device, each
epoch timed between two torch.cuda.synchronize()); each reports a missing GPU instead of
measuring the CPU. For a software GPU, shrink the run with --steps, --epochs and
--test-samples N (test on the first N test images).

Prediction: the trained model then predicts the test images (all 10,000, or the first
--test-samples) with `model.predict(x, batch_size=B, verbose=0)` (PyTorch: forward pass and
softmax in eval mode under torch.inference_mode(), batch by batch, NCHW test tensor prepared
beforehand like its training data, gathered into one numpy array) at each of
--predict-batch-sizes (default 32 and 1024): one untimed call, then the fastest of
--predict-repeats (default 3). A second table gives seconds per predict and that run's peak RSS
(training and predict); the training table's peak RSS is measured before the predict.
--no-predict skips it.

Run:
    python bench/bench_cnn.py [--steps 60] [--epochs 3] [--batch-size 128] [--threads 2] [--test-samples N]
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

import numpy as np

import common
from bench_mlp import import_fashion_mnist, one_hot

FRAMEWORKS, LABELS, DISTS = common.MODEL_FRAMEWORKS, common.MODEL_LABELS, common.MODEL_DISTS
KNOWN_FRAMEWORKS, REFERENCE = common.KNOWN_MODEL_FRAMEWORKS, common.MODEL_REFERENCE
CLASSES = 10
N_TRAIN = 60000
N_TEST = 10000


def prepare_data(folder: Path, test_samples: int) -> Path:
    """Writes the images the workers load: the whole training set, the first `test_samples` test images."""
    if str(common.REPO_PYTHON) not in sys.path:
        sys.path.append(str(common.REPO_PYTHON))
    (x_train, y_train), (x_test, y_test) = import_fashion_mnist().load_data()
    x_test, y_test = x_test[:test_samples], y_test[:test_samples]
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


def train_torch(data, batch: int, steps: int, epochs: int, threads: int, seed: int, device: str) -> dict:
    """PyTorch's run on `device` ("cpu" or "cuda"); on CUDA the data and the model live on the
    GPU and each epoch is timed between two synchronizations."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, CLASSES),
    )
    epoch_s, accuracy, x_test = common.torch_train_images(
        model, data, dev, subsets(len(data["x_train"]), steps, batch, epochs, seed), batch)
    x_predict = x_test[: common.PREDICT_SAMPLES]
    return {"epoch_s": epoch_s, "test_acc": accuracy, "version": common.torch_version(dev),
            "predict": common.torch_predictor(model, x_predict, dev), "predict_samples": len(x_predict)}


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
    _, accuracy = model.evaluate(data["x_test"], one_hot(data["y_test"]), batch_size=batch, verbose=0)
    x_predict = data["x_test"][: common.PREDICT_SAMPLES]
    return {"epoch_s": epoch_s, "test_acc": float(accuracy),
            "predict": lambda b: model.predict(x_predict, batch_size=b, verbose=0),
            "predict_samples": len(x_predict)}


def worker(framework: str, data_path: str, batch: int, steps: int, epochs: int, threads: int, seed: int,
           predict_batch_sizes, predict_repeats: int) -> None:
    common.train_worker(framework, data_path, threads,
                        lambda data: train_torch(data, batch, steps, epochs, threads, seed,
                                                 common.torch_device(framework)),
                        lambda keras, data: train_keras_api(keras, data, batch, steps, epochs, seed),
                        predict_batch_sizes, predict_repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="batches per timed epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is warm-up")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--test-samples", type=int, default=N_TEST, metavar="N",
                        help="test on the first N test images (for a software GPU)")
    common.add_run_args(parser, FRAMEWORKS)
    common.add_predict_args(parser)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is warm-up")
    if args.steps * args.batch_size > N_TRAIN:
        parser.error(f"--steps x --batch-size must not exceed the {N_TRAIN} training images")
    if not 1 <= args.test_samples <= N_TEST:
        parser.error(f"--test-samples must be between 1 and {N_TEST}")
    predict_batches = common.predict_batch_sizes(parser, args)
    if args.worker:
        worker(args.worker, args.data, args.batch_size, args.steps, args.epochs, args.threads, args.seed,
               predict_batches, args.predict_repeats)
        return
    frameworks = common.chosen_frameworks(parser, args, KNOWN_FRAMEWORKS)

    tmp = Path(tempfile.mkdtemp(prefix="rustkeras-bench-"))
    results, predicted = {}, {}
    try:
        data_path = prepare_data(tmp, args.test_samples)
        for round_ in range(1, args.rounds + 1):
            for fw in frameworks:
                print(f"round {round_}/{args.rounds}: {fw}, {args.epochs} x {args.steps} steps"
                      + (", then predict" if predict_batches else ""), file=sys.stderr, flush=True)
                result = common.run_framework(
                    __file__, fw,
                    ["--worker", fw, "--data", str(data_path), "--batch-size", str(args.batch_size),
                     "--steps", str(args.steps), "--epochs", str(args.epochs), "--threads", str(args.threads),
                     "--seed", str(args.seed)] + common.predict_worker_args(predict_batches, args.predict_repeats),
                    args.threads, args.timeout,
                )
                common.keep_fastest(results, fw, result)
                common.keep_fastest_predict(predicted, fw, result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    steps_epoch = math.ceil(N_TRAIN / args.batch_size)
    rows = []
    for fw in frameworks:
        r = results[fw]
        if r.get("status") != "ok":
            rows.append([LABELS[fw], r.get("status", "?")] + ["–"] * 6)
            continue
        ratio_t = ratio_m = "–"
        mine = results.get(REFERENCE.get(fw), {})
        if mine.get("status") == "ok":
            ratio_t = f"{mine['steady_s'] / r['steady_s']:.2f}"
            ratio_m = f"{mine['peak_rss_mib'] / r['peak_rss_mib']:.2f}"
        rows.append([
            LABELS[fw], r["version"],
            f"{1000 * r['steady_s'] / args.steps:.1f} (first epoch {1000 * r['epoch_s'][0] / args.steps:.1f})",
            f"{r['steady_s'] / args.steps * steps_epoch:.1f}",
            f"{r['test_acc']:.4f}",
            f"{r['peak_rss_mib']:.0f}",
            ratio_t, ratio_m,
        ])
    tested = "" if args.test_samples == N_TEST else f" (first {args.test_samples} test images)"
    columns = ["framework", "version", f"ms/step, epochs 2-{args.epochs}", f"projected s/epoch ({steps_epoch} steps)",
               f"test acc after {args.epochs * args.steps} steps{tested}", "peak RSS MiB", "time rustkeras/peer",
               "RSS rustkeras/peer"]
    lines = common.header(f"CNN (Keras mnist_cnn) on Fashion-MNIST, Adam, batch {args.batch_size}", args.threads,
                          [d for fw in frameworks for d in DISTS[fw]])
    lines += common.markdown_table(columns, rows)
    lines += ["", f"{args.epochs} epochs of {args.steps} batches, the first untimed; best of {args.rounds} "
              "round(s). Ratios below 1 mean rustkeras is faster or smaller; each peer is compared with rustkeras "
              "on the same kind of device (PyTorch CUDA with rustkeras on the GPU), and RSS is host memory only "
              "(training's peak, before any predict)."]
    if predict_batches:
        statuses = {fw: results[fw].get("status", "?") for fw in frameworks}
        lines += common.predict_table(f"CNN trained {args.epochs} x {args.steps} steps", frameworks, predict_batches,
                                      predicted, statuses, args.predict_repeats, args.rounds)
    common.emit(lines, args.out)


if __name__ == "__main__":
    main()
