r"""Trains the Fashion-MNIST MLP data-parallel on a Ray cluster (`rustkeras.distribute.RayTrainer`),
and, with `--compare`, the same model in this process with the same global batch.

With no arguments it starts a local Ray cluster on this machine's cores:

    python examples/distributed_fashion_mnist.py

On a cluster (started with `ray start --head` on one machine and `ray start --address=HOST:6379`
on the others, each with rustkeras and the dataset installed):

    python examples/distributed_fashion_mnist.py --address HOST:6379 --workers 8

Options: --workers W (replicas, default 2), --batch-size-per-worker B (default 64: a global batch
of W * B), --epochs, --subset N (the first N training and N // 6 test images), --seed, --compare.
The step time it prints is the wall time of one synchronous step (every replica's gradient, the
tree sum, the update), and the bytes are what one step moves: 2 (W - 1) x 4 bytes per parameter.
"""

import argparse
import time

import numpy as np

from rustkeras.datasets import fashion_mnist
from rustkeras.distribute import RayTrainer
from rustkeras.layers import Dense, Dropout
from rustkeras.models import Sequential
from rustkeras.optimizers import RMSprop
from rustkeras.utils import set_random_seed, to_categorical


def build(X=None, y=None, seed=1):
    set_random_seed(seed)
    model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dropout(0.2),
                        Dense(512, activation="relu"), Dropout(0.2), Dense(10, activation="softmax")])
    model.compile(optimizer=RMSprop(), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=None, help="a Ray cluster's address (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size-per-worker", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=None, metavar="N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare", action="store_true",
                        help="also train in this process with the global batch and print both accuracies")
    args = parser.parse_args()

    import ray

    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=max(args.workers, 1), include_dashboard=False, log_to_driver=False)

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    if args.subset:
        x_train, y_train = x_train[:args.subset], y_train[:args.subset]
        x_test, y_test = x_test[:max(args.subset // 6, 1)], y_test[:max(args.subset // 6, 1)]
    x_train = x_train.reshape(len(x_train), 784).astype("float32") / 255
    x_test = x_test.reshape(len(x_test), 784).astype("float32") / 255
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)

    build_fn = lambda X=None, y=None: build(X, y, seed=args.seed)  # noqa: E731
    trainer = RayTrainer(build_fn, num_workers=args.workers, batch_size_per_worker=args.batch_size_per_worker)
    global_batch = args.workers * args.batch_size_per_worker
    steps = args.epochs * -(-len(x_train) // global_batch)
    start = time.perf_counter()
    trainer.fit(x_train, y_train, epochs=args.epochs, shuffle=True, verbose=2)
    elapsed = time.perf_counter() - start
    params = sum(int(np.prod(w.shape)) for w in trainer.model.get_weights())  # all trainable here
    loss, acc = trainer.model.evaluate(x_test, y_test, verbose=0)
    print(f"Ray, {args.workers} workers x {args.batch_size_per_worker}: test loss {loss:.4f}, test accuracy {acc:.4f}")
    print(f"{steps} steps in {elapsed:.1f} s: {1000 * elapsed / steps:.1f} ms a step (the first epoch includes "
          f"starting the replicas); {params} parameters, {2 * (args.workers - 1) * 4 * params} bytes moved a step")
    if args.compare:
        model = build(seed=args.seed)
        model.fit(x_train, y_train, epochs=args.epochs, batch_size=global_batch, shuffle=True, verbose=0)
        loss1, acc1 = model.evaluate(x_test, y_test, verbose=0)
        print(f"one process, batch {global_batch}: test loss {loss1:.4f}, test accuracy {acc1:.4f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
