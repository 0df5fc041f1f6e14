"""The Keras tutorial's stacked LSTM for sequence classification, on a task it can learn.

Three LSTM layers of 32 units over sequences of 8 timesteps with 16 features, then a softmax
over 10 classes. The tutorial fed random data (nothing to learn); here each class has its own
prototype sequence (unit Gaussian) and every sample is its class' prototype plus Gaussian noise of
1.5 times that scale, so the accuracy says whether the model trains.

With `--stateful`, the tutorial's stateful variant: a fixed batch of 32 given by
`batch_input_shape`, `stateful=True` on every LSTM (the last states of sample i of a batch are
the initial states of sample i of the next one), `shuffle=False`, and sample counts rounded
down to a multiple of 32.

Run:
    python examples/stacked_lstm.py [--epochs 5] [--samples 10000] [--stateful]
"""

import argparse
import time

import numpy as np

from rustkeras.layers import LSTM, Dense
from rustkeras.models import Sequential
from rustkeras.utils import plot_history, set_random_seed, to_categorical

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
    parser.add_argument("--stateful", action="store_true", help="the tutorial's stateful stacked LSTM")
    parser.add_argument("--plot", metavar="FILE",
                        help="write a picture of the training history (loss and metrics per epoch) to FILE, "
                             "e.g. history.png (needs matplotlib)")
    args = parser.parse_args()
    batch_size = 32 if args.stateful else 64
    if args.stateful:
        args.samples -= args.samples % (10 * batch_size)

    set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    prototypes = rng.normal(0.0, 1.0, (NB_CLASSES, TIMESTEPS, DATA_DIM))
    x_train, y_train = make_data(args.samples, rng, prototypes)
    x_val, y_val = make_data(args.samples // 10, rng, prototypes)

    model = Sequential()
    if args.stateful:
        # the tutorial's stateful variant: the batch size is part of the input shape
        model.add(LSTM(32, return_sequences=True, stateful=True,
                       batch_input_shape=(batch_size, TIMESTEPS, DATA_DIM)))
        model.add(LSTM(32, return_sequences=True, stateful=True))
        model.add(LSTM(32, stateful=True))
    else:
        # expected input data shape: (batch_size, timesteps, data_dim)
        model.add(LSTM(32, return_sequences=True, input_shape=(TIMESTEPS, DATA_DIM)))  # a sequence of 32-d vectors
        model.add(LSTM(32, return_sequences=True))  # returns a sequence of 32-d vectors
        model.add(LSTM(32))  # returns a single 32-d vector
    model.add(Dense(NB_CLASSES, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])

    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=batch_size, nb_epoch=args.epochs,
                        validation_data=(x_val, y_val), shuffle=not args.stateful, verbose=2)
    seconds = time.perf_counter() - start
    if args.stateful:
        model.reset_states()
    loss, acc = model.evaluate(x_val, y_val, batch_size=batch_size if args.stateful else 256, verbose=0)
    print(f"validation accuracy {acc:.4f} (loss {loss:.4f}) after {args.epochs} epochs, "
          f"{seconds / max(args.epochs, 1):.2f} s/epoch")

    if args.plot:
        plot_history(history, args.plot)
        print("training history written to", args.plot)


if __name__ == "__main__":
    main()
