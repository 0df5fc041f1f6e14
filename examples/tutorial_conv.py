"""The tutorial's convolution snippets, in its Keras 1 spellings, on real data.

1. Conv1D: `Convolution1D(64, 3, input_shape=(10, 32))`, `MaxPooling1D(pool_length=2,
   stride=None)`, `ZeroPadding1D(padding=1)`: each Fashion-MNIST image read as a sequence
   of rows (28 steps of 28 features).
2. Conv2D with Theano ordering: `Convolution2D(64, 3, 3, input_shape=(3, ...))` (nb_filter,
   nb_row, nb_col) with `dim_ordering='th'`, `MaxPooling2D(pool_size=(2, 2), strides=None)`,
   `ZeroPadding2D(padding=(1, 1))`, and a Keras 3 `Conv2D(32, (3, 3), activation='relu',
   padding='same')`: on Fashion-MNIST images stacked to three channels (channels first).

Each model trains briefly, prints its layers' output shapes and weight shapes (kernels in
Keras' (kh, kw, in, out) layout in either data format) and its test accuracy.

Run:
    python examples/tutorial_conv.py [--epochs 1] [--samples 10000] [--test-samples 10000]
"""

import argparse

import numpy as np

from rustkeras.datasets import fashion_mnist
from rustkeras.layers import (
    Activation, Conv2D, Convolution1D, Convolution2D, Dense, Flatten, MaxPooling1D, MaxPooling2D, ZeroPadding1D,
    ZeroPadding2D,
)
from rustkeras.models import Sequential
from rustkeras.utils import plot_history, to_categorical


def report(model, x_test, y_test) -> None:
    for layer in model.layers:
        print(f"  {layer.name:<18} output {str(layer.output_shape):<22} weights {[w.shape for w in layer.get_weights()]}")
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"  test loss {loss:.4f}, test accuracy {accuracy:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--samples", type=int, default=10000, help="training images to use")
    parser.add_argument("--test-samples", type=int, default=10000, help="test images to use")
    parser.add_argument("--plot", metavar="FILE",
                        help="write a picture of the training history (loss and metrics per epoch) to FILE, "
                             "e.g. history.png (needs matplotlib)")
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    x_train = x_train[: args.samples].astype("float32") / 255
    y_train = to_categorical(y_train[: args.samples], 10)
    x_test = x_test[: args.test_samples].astype("float32") / 255
    y_test = to_categorical(y_test[: args.test_samples], 10)

    print("Conv1D: rows as steps")
    model = Sequential()
    model.add(Convolution1D(64, 3, input_shape=(28, 28)))
    model.add(Activation("relu"))
    model.add(MaxPooling1D(pool_length=2, stride=None))
    model.add(ZeroPadding1D(padding=1))
    model.add(Convolution1D(32, 3, border_mode="same", activation="relu"))
    model.add(Flatten())
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, nb_epoch=args.epochs, batch_size=64)
    report(model, x_test, y_test)

    print("Conv2D: Theano ordering (channels, rows, cols)")
    rgb_train = np.repeat(x_train[:, None], 3, axis=1)
    rgb_test = np.repeat(x_test[:, None], 3, axis=1)
    model = Sequential()
    model.add(Convolution2D(64, 3, 3, input_shape=(3, 28, 28), dim_ordering="th", activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2), strides=None, dim_ordering="th"))
    model.add(ZeroPadding2D(padding=(1, 1), dim_ordering="th"))
    model.add(Conv2D(32, (3, 3), activation="relu", padding="same", data_format="channels_first"))
    model.add(Flatten())
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(rgb_train, y_train, nb_epoch=args.epochs, batch_size=64)
    report(model, rgb_test, y_test)

    if args.plot:
        plot_history(history, args.plot)
        print("training history written to", args.plot)


if __name__ == "__main__":
    main()
