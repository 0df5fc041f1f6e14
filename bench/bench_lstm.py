"""Recurrent training speed: rustkeras vs PyTorch CPU vs Keras 3 on JAX (and GPUs).

Two models, the same everywhere:
- stacked: the Keras tutorial's stacked LSTM, LSTM(32, return_sequences) x2, LSTM(32),
  Dense(10, softmax) on (8 timesteps, 16 features), 10,000 samples (class prototypes plus noise,
  as in examples/stacked_lstm.py), categorical crossentropy, RMSprop(0.001), batch 64;
- embedding: Embedding(5000, 64) on 40 indices, LSTM(128), Dense(1, sigmoid), 5,000 samples,
  binary crossentropy, RMSprop(0.001), batch 64.
Glorot-uniform input kernels, orthogonal recurrent kernels, zero biases. Each framework and
model runs in its own subprocess on the same CPUs; the first epoch is warm-up and not timed.
With --rounds N everything runs N times, interleaved, and each run's fastest is kept.

Two GPU rows run only when named in --frameworks: "rustkeras-gpu" (rustkeras with
RUSTKERAS_BACKEND=gpu) and "torch-cuda" (PyTorch on CUDA, data and model on the device, each
epoch timed between two torch.cuda.synchronize()); each reports a missing GPU instead of
measuring the CPU. For a software GPU, --samples N trains each model on the first N of its
training samples and --test-samples N tests on the first N of its test samples.

Run:
    python bench/bench_lstm.py [--epochs 4] [--models stacked,embedding] [--threads 2]
                               [--samples N] [--test-samples N]
                               [--frameworks rustkeras,torch,keras-jax,keras-tf,rustkeras-gpu,torch-cuda]
                               [--rounds 3] [--out bench/RESULTS.md]
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
KNOWN_FRAMEWORKS, REFERENCE = common.KNOWN_MODEL_FRAMEWORKS, common.MODEL_REFERENCE
MODELS = ("stacked", "embedding")
BATCH = 64
LEARNING_RATE = 0.001
RHO = 0.9
EPSILON = 1e-7
TIMESTEPS, DATA_DIM, CLASSES, UNITS, NOISE = 8, 16, 10, 32, 1.5
VOCAB, EMBED, SEQ_LEN, EMB_UNITS = 5000, 64, 40, 128
# Training and test samples of each model.
SIZES = {"stacked": (10000, 1000), "embedding": (5000, 500)}


def sizes(model: str, samples: Optional[int], test_samples: Optional[int]) -> Tuple[int, int]:
    """The training and test samples `model` uses: all of them, or the first `samples` / `test_samples`."""
    n_train, n_test = SIZES[model]
    return min(n_train, samples or n_train), min(n_test, test_samples or n_test)


def prepare_data(folder: Path, seed: int, samples: Optional[int], test_samples: Optional[int]) -> Path:
    """Writes both models' data (the same whatever the sizes; --samples and --test-samples take the first rows)."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(0.0, 1.0, (CLASSES, TIMESTEPS, DATA_DIM))
    labels = rng.integers(0, CLASSES, 11000)
    x = (protos[labels] + rng.normal(0.0, NOISE, (len(labels), TIMESTEPS, DATA_DIM))).astype(np.float32)
    # Embedding task: positive sequences contain more indices from the first half of the vocabulary.
    ey = rng.integers(0, 2, 5500)
    p_low = np.where(ey == 1, 0.65, 0.35)[:, None]
    low = rng.uniform(size=(len(ey), SEQ_LEN)) < p_low
    shape = (len(ey), SEQ_LEN)
    ex = np.where(low, rng.integers(1, VOCAB // 2, shape), rng.integers(VOCAB // 2, VOCAB, shape))
    path = folder / "lstm_data.npz"
    (n, n_test), (en, en_test) = sizes("stacked", samples, test_samples), sizes("embedding", samples, test_samples)
    np.savez(path, x_train=x[:n], y_train=labels[:n], x_test=x[10000:10000 + n_test],
             y_test=labels[10000:10000 + n_test], ex_train=ex[:en].astype(np.int64), ey_train=ey[:en],
             ex_test=ex[5000:5000 + en_test].astype(np.int64), ey_test=ey[5000:5000 + en_test])
    return path


def task(data, model: str):
    if model == "stacked":
        return data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    return data["ex_train"], data["ey_train"], data["ex_test"], data["ey_test"]


# ---- workers ---------------------------------------------------------------------------


def train_torch(data, model_name: str, epochs: int, threads: int, seed: int, device: str) -> dict:
    """PyTorch's run on `device` ("cpu" or "cuda"); on CUDA the data and the model live on the
    GPU and each epoch is timed between two synchronizations."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = torch.device(device)

    class Stacked(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(DATA_DIM, UNITS, num_layers=3, batch_first=True)
            self.out = nn.Linear(UNITS, CLASSES)

        def forward(self, x):
            return self.out(self.lstm(x)[0][:, -1])

    class EmbLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, EMBED)
            self.lstm = nn.LSTM(EMBED, EMB_UNITS, batch_first=True)
            self.out = nn.Linear(EMB_UNITS, 1)

        def forward(self, x):
            return self.out(self.lstm(self.emb(x))[0][:, -1]).squeeze(1)

    model = Stacked() if model_name == "stacked" else EmbLSTM()
    for name, p in model.named_parameters():  # Keras' defaults
        if "weight_ih" in name or name == "out.weight":
            nn.init.xavier_uniform_(p)
        elif "weight_hh" in name:
            nn.init.orthogonal_(p)
        elif "bias" in name:
            nn.init.zeros_(p)
    model.to(dev)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=LEARNING_RATE, alpha=RHO, eps=math.sqrt(EPSILON))
    loss_fn = nn.CrossEntropyLoss() if model_name == "stacked" else nn.BCEWithLogitsLoss()
    x_train, y_train, x_test, y_test = task(data, model_name)
    x_train, x_test = torch.from_numpy(x_train).to(dev), torch.from_numpy(x_test).to(dev)
    y_train = torch.from_numpy(y_train if model_name == "stacked" else y_train.astype(np.float32)).to(dev)
    n = len(x_train)
    epoch_s = []
    for _ in range(epochs):
        common.torch_sync(dev)
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, device=dev)
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        common.torch_sync(dev)
        epoch_s.append(time.perf_counter() - start)
    model.eval()
    with torch.inference_mode():
        out = model(x_test)
        pred = out.argmax(1) if model_name == "stacked" else (out > 0).long()
        pred = pred.cpu().numpy()
    return {"epoch_s": epoch_s, "test_acc": float((pred == y_test).mean()), "version": common.torch_version(dev)}


def train_keras_api(keras, data, model_name: str, epochs: int, seed: int) -> dict:
    """The Keras-API run, shared by Keras 3 and rustkeras."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    model = keras.models.Sequential()
    if model_name == "stacked":
        model.add(L.LSTM(UNITS, return_sequences=True, input_shape=(TIMESTEPS, DATA_DIM)))
        model.add(L.LSTM(UNITS, return_sequences=True))
        model.add(L.LSTM(UNITS))
        model.add(L.Dense(CLASSES, activation="softmax"))
        loss = "categorical_crossentropy"
    else:
        model.add(L.Embedding(VOCAB, EMBED, input_shape=(SEQ_LEN,)))
        model.add(L.LSTM(EMB_UNITS))
        model.add(L.Dense(1, activation="sigmoid"))
        loss = "binary_crossentropy"
    model.compile(loss=loss, optimizer=keras.optimizers.RMSprop(learning_rate=LEARNING_RATE, rho=RHO, epsilon=EPSILON),
                  metrics=["accuracy"])
    x_train, y_train, x_test, y_test = task(data, model_name)
    if model_name == "stacked":
        y_train, y_test = np.eye(CLASSES, dtype=np.float32)[y_train], np.eye(CLASSES, dtype=np.float32)[y_test]
    else:
        y_train, y_test = y_train.astype(np.float32), y_test.astype(np.float32)
    epoch_s = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_s.append(time.perf_counter() - self.start)

    model.fit(x_train, y_train, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=True, callbacks=[EpochTimer()])
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    return {"epoch_s": epoch_s, "test_acc": float(accuracy)}


def worker(framework: str, data_path: str, model_name: str, epochs: int, threads: int, seed: int) -> None:
    common.train_worker(framework, data_path, threads,
                        lambda data: train_torch(data, model_name, epochs, threads, seed,
                                                 common.torch_device(framework)),
                        lambda keras, data: train_keras_api(keras, data, model_name, epochs, seed))


# ---- the parent ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run; the first is warm-up")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--samples", type=int, metavar="N",
                        help="train each model on its first N samples (default: all, 10000 and 5000)")
    parser.add_argument("--test-samples", type=int, metavar="N",
                        help="test each model on its first N test samples (default: all, 1000 and 500)")
    common.add_run_args(parser, FRAMEWORKS)
    args = parser.parse_args()

    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is warm-up")
    for flag, value in (("--samples", args.samples), ("--test-samples", args.test_samples)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1")
    models = [m.strip() for m in args.models.split(",")]
    if set(models) - set(MODELS):
        parser.error(f"unknown models {sorted(set(models) - set(MODELS))}; choose from {MODELS}")
    if args.worker:
        worker(args.worker, args.data, models[0], args.epochs, args.threads, args.seed)
        return
    frameworks = common.chosen_frameworks(parser, args, KNOWN_FRAMEWORKS)

    tmp = Path(tempfile.mkdtemp(prefix="rustkeras-bench-"))
    try:
        data_path = prepare_data(tmp, args.seed, args.samples, args.test_samples)
        results = {}
        for round_ in range(1, args.rounds + 1):
            for model in models:
                for fw in frameworks:
                    print(f"round {round_}/{args.rounds}: {fw}, {model}, {args.epochs} epochs", file=sys.stderr,
                          flush=True)
                    result = common.run_framework(
                        __file__, fw,
                        ["--worker", fw, "--data", str(data_path), "--models", model, "--epochs", str(args.epochs),
                         "--threads", str(args.threads), "--seed", str(args.seed)],
                        args.threads, args.timeout,
                    )
                    common.keep_fastest(results, (fw, model), result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for model in models:
        for fw in frameworks:
            r = results[fw, model]
            if r.get("status") != "ok":
                rows.append([model, LABELS[fw], r.get("status", "?")] + ["–"] * 4)
                continue
            steady = r["epoch_s"][1:]
            ratio = "–"
            mine = results.get((REFERENCE.get(fw), model), {})
            if mine.get("status") == "ok":
                ratio = f"{mine['steady_s'] / r['steady_s']:.2f}"
            rows.append([model, LABELS[fw], r["version"],
                         f"{r['steady_s']:.3f} (min {min(steady):.3f}, first {r['epoch_s'][0]:.2f})",
                         f"{r['test_acc']:.4f}", f"{r['peak_rss_mib']:.0f}", ratio])
    columns = ["model", "framework", "version", f"s/epoch, epochs 2-{args.epochs}",
               f"test acc after {args.epochs} epochs", "peak RSS MiB", "time rustkeras/peer"]
    lines = common.header("Recurrent models (stacked LSTM 3x32; Embedding + LSTM(128)), RMSprop, batch 64",
                          args.threads, [d for fw in frameworks for d in DISTS[fw]])
    lines += common.markdown_table(columns, rows)
    lines += ["", f"Best of {args.rounds} round(s). Ratios below 1 mean rustkeras is faster; each peer is compared "
                  "with rustkeras on the same kind of device (PyTorch CUDA with rustkeras on the GPU)."]
    if args.samples is not None or args.test_samples is not None:
        lines += ["", "Samples (training / test): " + "; ".join(
            f"{m} {'/'.join(str(k) for k in sizes(m, args.samples, args.test_samples))}" for m in models) + "."]
    common.emit(lines, args.out)


if __name__ == "__main__":
    main()
