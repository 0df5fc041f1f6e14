"""The Keras tutorial's stacked LSTM for sequence classification, on a task it can learn.

Three LSTM layers of 32 units over sequences of 8 timesteps with 16 features, then a softmax
over 10 classes. The tutorial fed random data (nothing to learn); here each class has its own
prototype sequence (unit Gaussian) and every sample is its class' prototype plus Gaussian noise of
1.5 times that scale, so the accuracy says whether the model trains.

Run:
    python examples/stacked_lstm.py [--epochs 5] [--samples 10000]
"""

import argparse
import time

import numpy as np

from rustkeras.layers import LSTM, Dense
from rustkeras.models import Sequential
from rustkeras.utils import set_random_seed, to_categorical

DATA_DIM = 16
TIMESTEPS = 8
NB_CLASSES = 10
NOISE = 1.5


def make_data(n: int, rng: np.random.Generator, prototypes: np.ndarray):
    labels = rng.integers(0, NB_CLASSES, n)
    x = prototypes[labels] + rng.normal(0.0, NOISE, (n, TIMESTEPS, DATA_DIM))
    return x.astype(np.float32), to_categorical(labels, NB_CLASSES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()

    set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    prototypes = rng.normal(0.0, 1.0, (NB_CLASSES, TIMESTEPS, DATA_DIM))
    x_train, y_train = make_data(args.samples, rng, prototypes)
    x_val, y_val = make_data(args.samples // 10, rng, prototypes)

    # expected input data shape: (batch_size, timesteps, data_dim)
    model = Sequential()
    model.add(LSTM(32, return_sequences=True, input_shape=(TIMESTEPS, DATA_DIM)))  # returns a sequence of 32-d vectors
    model.add(LSTM(32, return_sequences=True))  # returns a sequence of 32-d vectors
    model.add(LSTM(32))  # returns a single 32-d vector
    model.add(Dense(NB_CLASSES, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])

    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, nb_epoch=args.epochs, validation_data=(x_val, y_val), verbose=2)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_val, y_val, batch_size=256, verbose=0)
    print(f"validation accuracy {acc:.4f} (loss {loss:.4f}) after {args.epochs} epochs, "
          f"{seconds / max(args.epochs, 1):.2f} s/epoch")


if __name__ == "__main__":
    main()
