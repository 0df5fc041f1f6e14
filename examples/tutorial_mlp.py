"""The getting-started tutorial's MLP, on Fashion-MNIST.

A small network written with the tutorial's Keras 1 spellings (`input_dim`,
`nb_epoch`), trained, then inspected layer by layer: each layer's weight
shapes and its config.

Run:
    python examples/tutorial_mlp.py [--epochs 5] [--batch-size 32] [--samples 60000]
"""

import argparse

from rustkeras.datasets import fashion_mnist
from rustkeras.layers import Activation, Dense, Dropout
from rustkeras.models import Sequential
from rustkeras.utils import plot_history, to_categorical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=60000, help="train on the first N images (quick runs)")
    parser.add_argument("--plot", metavar="FILE",
                        help="write a picture of the training history (loss and metrics per epoch) to FILE, "
                             "e.g. history.png (needs matplotlib)")
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    x_train, y_train = x_train[: args.samples], y_train[: args.samples]
    X_train = x_train.reshape(-1, 784).astype("float32") / 255
    X_test = x_test.reshape(-1, 784).astype("float32") / 255
    Y_train = to_categorical(y_train, 10)
    Y_test = to_categorical(y_test, 10)

    model = Sequential()
    model.add(Dense(32, input_dim=784))
    model.add(Activation("relu"))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))

    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        X_train,
        Y_train,
        nb_epoch=args.epochs,
        batch_size=args.batch_size,
        validation_data=(X_test, Y_test),
    )

    loss, accuracy = model.evaluate(X_test, Y_test, verbose=0)
    print(f"Test loss: {loss:.4f}  test accuracy: {accuracy:.4f}")

    for layer in model.layers:
        shapes = [w.shape for w in layer.get_weights()]
        print(f"{layer.name}: weights {shapes}")
        print(f"    config {layer.get_config()}")

    if args.plot:
        plot_history(history, args.plot)
        print("training history written to", args.plot)


if __name__ == "__main__":
    main()
