"""The Keras 1 guide's `Merge` of two Sequential branches, on Fashion-MNIST.

The guide merged two Dense(32) branches over two inputs with `Merge([left, right],
mode='concat')` and stacked a softmax on top. Here the two inputs are the two halves of each
image (rows 0-13 and 14-27), so each branch sees half the picture and the merged model must
combine them.

Run:
    python examples/tutorial_merge.py [--epochs 5] [--samples 60000]
"""

import argparse

from rustkeras.datasets import fashion_mnist
from rustkeras.layers import Dense, Merge
from rustkeras.models import Sequential
from rustkeras.utils import plot_history, set_random_seed, to_categorical


def halves(x):
    flat = x.reshape(len(x), 28, 28).astype("float32") / 255
    return flat[:, :14].reshape(len(x), -1), flat[:, 14:].reshape(len(x), -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=60000, help="train on the first N images (quick runs)")
    parser.add_argument("--plot", metavar="FILE",
                        help="write a picture of the training history (loss and metrics per epoch) to FILE, "
                             "e.g. history.png (needs matplotlib)")
    args = parser.parse_args()
    set_random_seed(1337)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    x_train, y_train = x_train[: args.samples], y_train[: args.samples]
    top, bottom = halves(x_train)
    top_test, bottom_test = halves(x_test)

    left_branch = Sequential()
    left_branch.add(Dense(32, input_dim=392, activation="relu"))
    right_branch = Sequential()
    right_branch.add(Dense(32, input_dim=392, activation="relu"))
    merged = Merge([left_branch, right_branch], mode="concat")

    final_model = Sequential()
    final_model.add(merged)
    final_model.add(Dense(10, activation="softmax"))
    final_model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    final_model.summary()
    history = final_model.fit([top, bottom], to_categorical(y_train, 10), batch_size=32, nb_epoch=args.epochs,
                              verbose=2)
    loss, acc = final_model.evaluate([top_test, bottom_test], to_categorical(y_test, 10), verbose=0)
    print(f"test accuracy {acc:.4f} (loss {loss:.4f})")

    if args.plot:
        plot_history(history, args.plot)
        print("training history written to", args.plot)


if __name__ == "__main__":
    main()
