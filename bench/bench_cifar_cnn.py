"""A wider CNN on CIFAR-shaped synthetic images: rustkeras vs PyTorch CPU vs Keras 3 (and GPUs).

The same model everywhere, so that the conv path is measured where channels are many: three
blocks of [Conv2D(f, 3x3, padding same), BatchNormalization, relu] x2 and MaxPooling 2x2, with
f = 32, 64, 128; Flatten, Dense 256 relu, Dropout 0.5, Dense 10 softmax (815,914 weights, 896
of them BatchNormalization's moving statistics); categorical crossentropy; Adam(lr=0.001,
eps=1e-7); batch 64; Glorot-uniform kernels, zero biases (PyTorch too: `xavier_uniform_`, which
takes the same fans). BatchNormalization has Keras' defaults, momentum 0.99 and epsilon 1e-3;
PyTorch's BatchNorm2d gets momentum 0.01 (its weight on the new batch) and eps 1e-3 (it keeps
the unbiased variance in its running statistics, Keras the biased one: no matter for speed).
rustkeras and Keras 3 run the same Keras code on channels_last 32x32x3 images; PyTorch a
hand-written loop on NCHW tensors (its native layout).

The data is synthetic (CIFAR-10's shape, not its images): a fixed-seed float32 set of
`--steps` x `--batch-size` training images and 1,000 test images. Each class has a random 4x4x3
pattern, repeated over 8x8 pixels; an image is its class's pattern plus Gaussian noise, so the
labels are learnable and the test accuracy is a sanity check (it shows the model learns; speed is
the point). Each "epoch" is `--steps` batches of a fresh permutation of the training images; the
first is warm-up. Reported: milliseconds per step over the others, the projected seconds per
epoch of CIFAR-10's 50,000 images (782 steps at batch 64), the test accuracy after the run
(evaluated untimed at the training batch size) and peak RSS. Each framework runs in its own
subprocess; `--rounds N` interleaves N runs and keeps each framework's fastest.

Two GPU rows run only when named in --frameworks: "rustkeras-gpu" (rustkeras with
RUSTKERAS_BACKEND=gpu) and "torch-cuda" (PyTorch on CUDA, data and model on the device, each
epoch timed between two torch.cuda.synchronize()); each reports a missing GPU instead of
measuring the CPU.

Run:
    python bench/bench_cifar_cnn.py [--steps 60] [--epochs 3] [--batch-size 64] [--threads 2]
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
from bench_cnn import subsets
from bench_mlp import one_hot

FRAMEWORKS, LABELS, DISTS = common.MODEL_FRAMEWORKS, common.MODEL_LABELS, common.MODEL_DISTS
KNOWN_FRAMEWORKS, REFERENCE = common.KNOWN_MODEL_FRAMEWORKS, common.MODEL_REFERENCE
CLASSES = 10
SIDE, CHANNELS = 32, 3
FILTERS = (32, 64, 128)
DENSE = 256
N_CIFAR = 50000  # the training images of an epoch of CIFAR-10, for the projection
N_TEST = 1000
PATTERN = 4  # each class's pattern is PATTERN x PATTERN x CHANNELS, each value repeated over a block
NOISE = 1.0


def prepare_data(folder: Path, n_train: int, seed: int) -> Path:
    """Writes the synthetic images the workers load: `n_train` training and N_TEST test images,
    each its class's pattern (upsampled to 32x32) plus noise, NHWC float32."""
    rng = np.random.default_rng(seed)
    block = SIDE // PATTERN
    patterns = rng.normal(size=(CLASSES, PATTERN, PATTERN, CHANNELS)).astype(np.float32)
    patterns = patterns.repeat(block, axis=1).repeat(block, axis=2)

    def images(n: int):
        labels = rng.integers(0, CLASSES, n)
        x = patterns[labels] + NOISE * rng.standard_normal((n, SIDE, SIDE, CHANNELS), dtype=np.float32)
        return x, labels.astype(np.int64)

    x_train, y_train = images(n_train)
    x_test, y_test = images(N_TEST)
    path = folder / "cifar_shaped_images.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def train_torch(data, batch: int, steps: int, epochs: int, threads: int, seed: int, device: str) -> dict:
    """PyTorch's run on `device` ("cpu" or "cuda"); on CUDA the data and the model live on the
    GPU and each epoch is timed between two synchronizations."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = torch.device(device)
    layers, channels = [], CHANNELS
    for f in FILTERS:
        for _ in range(2):
            # Keras' BatchNormalization(momentum=0.99, epsilon=1e-3): PyTorch weighs the new batch.
            layers += [nn.Conv2d(channels, f, 3, padding=1), nn.BatchNorm2d(f, eps=1e-3, momentum=0.01), nn.ReLU()]
            channels = f
        layers.append(nn.MaxPool2d(2))
    side = SIDE // 2 ** len(FILTERS)
    layers += [nn.Flatten(), nn.Linear(channels * side * side, DENSE), nn.ReLU(), nn.Dropout(0.5),
               nn.Linear(DENSE, CLASSES)]
    model = nn.Sequential(*layers)
    epoch_s, accuracy, _ = common.torch_train_images(
        model, data, dev, subsets(len(data["x_train"]), steps, batch, epochs, seed), batch)
    return {"epoch_s": epoch_s, "test_acc": accuracy, "version": common.torch_version(dev)}


def train_keras_api(keras, data, batch: int, steps: int, epochs: int, seed: int) -> dict:
    """Shared by Keras 3 and rustkeras: the same code, only the module differs."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    model = keras.models.Sequential()
    for b, f in enumerate(FILTERS):
        if b == 0:
            model.add(L.Conv2D(f, (3, 3), padding="same", input_shape=(SIDE, SIDE, CHANNELS)))
        else:
            model.add(L.Conv2D(f, (3, 3), padding="same"))
        model.add(L.BatchNormalization())
        model.add(L.Activation("relu"))
        model.add(L.Conv2D(f, (3, 3), padding="same"))
        model.add(L.BatchNormalization())
        model.add(L.Activation("relu"))
        model.add(L.MaxPooling2D(pool_size=(2, 2)))
    model.add(L.Flatten())
    model.add(L.Dense(DENSE, activation="relu"))
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
    return {"epoch_s": epoch_s, "test_acc": float(accuracy)}


def worker(framework: str, data_path: str, batch: int, steps: int, epochs: int, threads: int, seed: int) -> None:
    common.train_worker(framework, data_path, threads,
                        lambda data: train_torch(data, batch, steps, epochs, threads, seed,
                                                 common.torch_device(framework)),
                        lambda keras, data: train_keras_api(keras, data, batch, steps, epochs, seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="batches per timed epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is warm-up")
    parser.add_argument("--batch-size", type=int, default=64)
    common.add_run_args(parser, FRAMEWORKS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is warm-up")
    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be at least 1")
    if args.worker:
        worker(args.worker, args.data, args.batch_size, args.steps, args.epochs, args.threads, args.seed)
        return
    frameworks = common.chosen_frameworks(parser, args, KNOWN_FRAMEWORKS)

    tmp = Path(tempfile.mkdtemp(prefix="rustkeras-bench-"))
    results = {}
    try:
        data_path = prepare_data(tmp, args.steps * args.batch_size, args.seed)
        for round_ in range(1, args.rounds + 1):
            for fw in frameworks:
                print(f"round {round_}/{args.rounds}: {fw}, {args.epochs} x {args.steps} steps", file=sys.stderr,
                      flush=True)
                result = common.run_framework(
                    __file__, fw,
                    ["--worker", fw, "--data", str(data_path), "--batch-size", str(args.batch_size),
                     "--steps", str(args.steps), "--epochs", str(args.epochs), "--threads", str(args.threads),
                     "--seed", str(args.seed)],
                    args.threads, args.timeout,
                )
                common.keep_fastest(results, fw, result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    steps_epoch = math.ceil(N_CIFAR / args.batch_size)
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
    columns = ["framework", "version", f"ms/step, epochs 2-{args.epochs}",
               f"projected s/epoch ({steps_epoch} steps, {N_CIFAR:,} images)",
               f"test acc after {args.epochs * args.steps} steps (synthetic, {N_TEST:,} images)", "peak RSS MiB",
               "time rustkeras/peer", "RSS rustkeras/peer"]
    lines = common.header(f"Wider CNN (3 conv blocks 32/64/128 with BatchNormalization, Dense 256) on "
                          f"CIFAR-shaped synthetic 32x32x3 images, Adam, batch {args.batch_size}", args.threads,
                          [d for fw in frameworks for d in DISTS[fw]])
    lines += common.markdown_table(columns, rows)
    lines += ["", f"{args.epochs} epochs of {args.steps} batches (a fresh permutation of {args.steps * args.batch_size} "
              f"synthetic training images each), the first untimed; best of {args.rounds} round(s). Ratios below 1 "
              "mean rustkeras is faster or smaller; each peer is compared with rustkeras on the same kind of device "
              "(PyTorch CUDA with rustkeras on the GPU), and RSS is host memory only."]
    common.emit(lines, args.out)


if __name__ == "__main__":
    main()
