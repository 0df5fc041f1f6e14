"""An Embedding + LSTM sequence classifier on padded, variable-length token sequences.

Each sample is 5 to 40 tokens from a 2,000-word vocabulary, left-padded with 0 to length 40 as
`pad_sequences` does; `mask_zero=True` makes the LSTM skip the padding. Tokens 1-99 are
"positive" words, 100-199 "negative" ones, the rest neutral; the label says whether a sequence
holds more positive than negative words (ties dropped), so the model must count over time.

Run:
    python examples/embedding_lstm_classifier.py [--epochs 8] [--samples 8000]
"""

import argparse

import numpy as np

from rustkeras.layers import LSTM, Dense, Embedding
from rustkeras.models import Sequential
from rustkeras.utils import plot_history, set_random_seed

VOCAB, MAXLEN = 2000, 40


def make_data(n: int, rng: np.random.Generator):
    x = np.zeros((n, MAXLEN), np.int64)
    y = np.zeros(n, np.float32)
    keep = np.ones(n, bool)
    for i in range(n):
        length = rng.integers(5, MAXLEN + 1)
        kind = rng.choice(3, size=length, p=[0.15, 0.15, 0.7])
        tokens = np.where(kind == 0, rng.integers(1, 100, length),
                          np.where(kind == 1, rng.integers(100, 200, length), rng.integers(200, VOCAB, length)))
        x[i, MAXLEN - length:] = tokens
        pos, neg = int((kind == 0).sum()), int((kind == 1).sum())
        y[i], keep[i] = float(pos > neg), pos != neg
    return x[keep], y[keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--samples", type=int, default=8000, help="training sequences (the test set is a quarter)")
    parser.add_argument("--plot", metavar="FILE",
                        help="write a picture of the training history (loss and metrics per epoch) to FILE, "
                             "e.g. history.png (needs matplotlib)")
    args = parser.parse_args()

    set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_data(args.samples, rng)
    x_test, y_test = make_data(max(args.samples // 4, 1), rng)

    model = Sequential()
    model.add(Embedding(VOCAB, 32, mask_zero=True, input_length=MAXLEN))
    model.add(LSTM(32))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.summary()
    history = model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, validation_data=(x_test, y_test),
                        verbose=2)
    loss, acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"test accuracy {acc:.4f} (loss {loss:.4f})")

    if args.plot:
        plot_history(history, args.plot)
        print("training history written to", args.plot)


if __name__ == "__main__":
    main()
