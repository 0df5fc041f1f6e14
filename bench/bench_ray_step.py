"""The step time of `RayTrainer` on a local Ray cluster with 1 and 2 replicas, beside the step of
one process with the same global batch, and the bytes one step moves.

    python bench/bench_ray_step.py [--workers 1,2] [--batch-size-per-worker 64] [--steps 60]

The model is the Fashion-MNIST MLP of examples/distributed_fashion_mnist.py (784-512-512-10,
669,706 parameters) on random data (the step time does not depend on the values). A step is
timed over the second epoch of a fit, after the replicas started and planned their programs:
each replica's gradient, the tree sum through the object store, the update on every replica.
The bytes are the formula of rustkeras/distribute.py: 2 (W - 1) transfers of 4 bytes a
parameter (zero for one replica).
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--batch-size-per-worker", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60, help="steps an epoch")
    args = parser.parse_args()

    import ray

    import distributed_fashion_mnist
    from distributed_fashion_mnist import build
    from rustkeras.callbacks import Callback
    from rustkeras.distribute import RayTrainer

    # The replicas cannot import the example's module: its functions travel by value.
    ray.cloudpickle.register_pickle_by_value(distributed_fashion_mnist)
    workers = [int(w) for w in args.workers.split(",")]
    ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False)
    rng = np.random.default_rng(0)
    b = args.batch_size_per_worker

    class EpochTimes(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.last = time.perf_counter() - self.t0

    params = None
    print(f"load average before: {os.getloadavg()}")
    for w in workers:
        n = w * b * args.steps
        x = rng.random((n, 784), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
        times = EpochTimes()
        trainer = RayTrainer(build, num_workers=w, batch_size_per_worker=b)
        trainer.fit(x, y, epochs=2, shuffle=True, callbacks=[times])
        params = sum(int(np.prod(v.shape)) for v in trainer.model.get_weights())
        ms = 1000 * times.last / args.steps
        single = build()
        single.fit(x[: w * b * 4], y[: w * b * 4], epochs=1, batch_size=w * b, verbose=0)  # plans the programs
        t0 = time.perf_counter()
        single.fit(x, y, epochs=1, batch_size=w * b, verbose=0)
        one = 1000 * (time.perf_counter() - t0) / args.steps
        print(f"{w} replica(s) x {b} rows: {ms:.1f} ms a step (one process, batch {w * b}: {one:.1f} ms); "
              f"{2 * (w - 1) * 4 * params} bytes a step")
    print(f"{params} parameters; by the same formula 8 replicas move {2 * 7 * 4 * params} bytes a step")
    print(f"load average after: {os.getloadavg()}")
    ray.shutdown()


if __name__ == "__main__":
    main()
