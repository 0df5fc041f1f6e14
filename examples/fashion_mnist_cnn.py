"""Trains a simple convnet on Fashion-MNIST (Keras' mnist_cnn example).

Conv2D 32 3x3 relu, Conv2D 64 3x3 relu, MaxPooling 2x2, Dropout 0.25, Flatten, Dense 128 relu,
Dropout 0.5, Dense 10 softmax; Adam; batch 128. Keras' recipe is 12 epochs; the model passes
0.91 test accuracy on Fashion-MNIST within a few.

Run:
    python examples/fashion_mnist_cnn.py [--epochs 12] [--batch-size 128] [--samples 60000] [--test-samples 10000]
                                         [--data-format channels_last]
"""

import argparse

import rustkeras
from rustkeras.datasets import fashion_mnist
from rustkeras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from rustkeras.models import Sequential
from rustkeras.optimizers import Adam
from rustkeras.utils import plot_history

NUM_CLASSES = 10
IMG_ROWS, IMG_COLS = 28, 28


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=60000, help="train on the first N images (quick runs)")
    parser.add_argument("--test-samples", type=int, default=10000, help="test on the first N images")
    parser.add_argument("--data-format", default=None, choices=["channels_last", "channels_first"],
                        help="default: image_data_format from the config file")
    parser.add_argument("--plot", metavar="FILE",
                        help="write a picture of the training history (loss and metrics per epoch) to FILE, "
                             "e.g. history.png (needs matplotlib)")
    args = parser.parse_args()
    if args.data_format:
        rustkeras.config.set_image_data_format(args.data_format)

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    x_train, y_train = x_train[: args.samples], y_train[: args.samples]
    x_test, y_test = x_test[: args.test_samples], y_test[: args.test_samples]
    if rustkeras.config.image_data_format() == "channels_first":
        x_train = x_train.reshape(x_train.shape[0], 1, IMG_ROWS, IMG_COLS)
        x_test = x_test.reshape(x_test.shape[0], 1, IMG_ROWS, IMG_COLS)
        input_shape = (1, IMG_ROWS, IMG_COLS)
    else:
        x_train = x_train.reshape(x_train.shape[0], IMG_ROWS, IMG_COLS, 1)
        x_test = x_test.reshape(x_test.shape[0], IMG_ROWS, IMG_COLS, 1)
        input_shape = (IMG_ROWS, IMG_COLS, 1)
    x_train = x_train.astype("float32") / 255
    x_test = x_test.astype("float32") / 255
    print("x_train shape:", x_train.shape)
    print(x_train.shape[0], "train samples")
    print(x_test.shape[0], "test samples")

    y_train = rustkeras.utils.to_categorical(y_train, NUM_CLASSES)
    y_test = rustkeras.utils.to_categorical(y_test, NUM_CLASSES)

    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=input_shape))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(NUM_CLASSES, activation="softmax"))
    model.summary()

    model.compile(loss="categorical_crossentropy", optimizer=Adam(), metrics=["accuracy"])
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=1,
        validation_data=(x_test, y_test),
    )
    score = model.evaluate(x_test, y_test, verbose=0)
    print("Test loss:", score[0])
    print("Test accuracy:", score[1])

    if args.plot:
        plot_history(history, args.plot)
        print("training history written to", args.plot)


if __name__ == "__main__":
    main()
