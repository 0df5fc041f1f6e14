"""Epoch time of a model made of user code (Keras-style custom layers, a Lambda and a custom
loss) beside the same network from built-in layers, and the Python calls each makes per
training batch (counted with sys.setprofile on the training thread: zero expected, as
`call` and the loss are traced once when the model is built and compiled).

    python bench/bench_user_code.py [--samples 60000] [--epochs 3]
"""

import argparse
import sys
import time

import numpy as np

from rustkeras import Input, Sequential, layers, ops


class MyDense(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="kernel")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


def mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def build(custom: bool):
    if custom:
        m = Sequential([Input((784,)), MyDense(512), layers.Lambda(lambda t: ops.relu(t)), MyDense(512),
                        layers.Lambda(lambda t: ops.relu(t)), MyDense(10), layers.Activation("softmax")])
        m.compile(optimizer="rmsprop", loss=mse)
    else:
        m = Sequential([Input((784,)), layers.Dense(512, activation="relu"), layers.Dense(512, activation="relu"),
                        layers.Dense(10, activation="softmax")])
        m.compile(optimizer="rmsprop", loss="mse")
    return m


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=60000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((a.samples, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, a.samples)]
    for custom in (False, True):
        m = build(custom)
        m.fit(x[: a.batch_size * 4], y[: a.batch_size * 4], epochs=1, batch_size=a.batch_size, verbose=0)
        calls = [0]

        def prof(frame, event, arg):
            if event == "call":
                calls[0] += 1

        def counted(n):
            calls[0] = 0
            sys.setprofile(prof)
            t = time.perf_counter()
            m.fit(x[:n], y[:n], epochs=1, batch_size=a.batch_size, verbose=0)
            dt = time.perf_counter() - t
            sys.setprofile(None)
            return calls[0], dt

        small, _ = counted(a.batch_size * 8)
        times = []
        for _ in range(a.epochs):
            big, dt = counted(a.samples)
            times.append(dt)
        steps = -(-a.samples // a.batch_size)
        per_batch = (big - small) / (steps - 8)
        print(f"{'user code' if custom else 'built-in '}: best epoch {min(times):.3f} s; Python calls: "
              f"{small} for an 8-batch fit, {big} for a {steps}-batch fit: {per_batch:.3f} per batch")

if __name__ == "__main__":
    main()
