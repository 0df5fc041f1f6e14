r"""Trains a simple deep MLP on Fashion-MNIST (Keras' mnist_mlp example).

Two hidden layers of 512 units with dropout; RMSprop; 10 epochs at batch 128.
Keras reaches about 89% test accuracy on Fashion-MNIST with this model.

Run:
    python examples/fashion_mnist_mlp.py [--epochs 10] [--batch-size 128] [--subset N] [--seed S] [--plot FILE]

`--subset N` trains on the first N training images and tests on the first N // 6 test
images (the full sets are 60,000 and 10,000), for a quick run, e.g. on a software GPU:

    RUSTKERAS_BACKEND=gpu python examples/fashion_mnist_mlp.py --epochs 2 --subset 6000

`--plot history.png` draws the loss and accuracy per epoch, training and validation (matplotlib);
`fashion_mnist_mlp_history.png` beside this file comes from

    python examples/fashion_mnist_mlp.py --epochs 12 --subset 12000 --seed 1 \
        --plot examples/fashion_mnist_mlp_history.png
"""

import argparse

import rustkeras
from rustkeras.datasets import fashion_mnist
from rustkeras.layers import Dense, Dropout
from rustkeras.models import Sequential
from rustkeras.optimizers import RMSprop
from rustkeras.utils import plot_history

NUM_CLASSES = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--subset", type=int, default=None, metavar="N",
                        help="train on the first N training images and test on the first N // 6")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed weights, dropout and shuffling (the same seed gives the same run on either backend)")
    parser.add_argument("--plot", metavar="FILE",
                        help="write a picture of the training history (loss and metrics per epoch) to FILE, "
                             "e.g. history.png (needs matplotlib)")
    args = parser.parse_args()
    if args.subset is not None and args.subset < 6:
        parser.error("--subset must be at least 6")

    if args.seed is not None:
        rustkeras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    if args.subset is not None:
        x_train, y_train = x_train[: args.subset], y_train[: args.subset]
        x_test, y_test = x_test[: args.subset // 6], y_test[: args.subset // 6]
    x_train = x_train.reshape(len(x_train), 784).astype("float32") / 255
    x_test = x_test.reshape(len(x_test), 784).astype("float32") / 255
    print(x_train.shape[0], "train samples")
    print(x_test.shape[0], "test samples")
    print("backend:", rustkeras.backend.backend())

    y_train = rustkeras.utils.to_categorical(y_train, NUM_CLASSES)
    y_test = rustkeras.utils.to_categorical(y_test, NUM_CLASSES)

    model = Sequential()
    model.add(Dense(512, activation="relu", input_shape=(784,)))
    model.add(Dropout(0.2))
    model.add(Dense(512, activation="relu"))
    model.add(Dropout(0.2))
    model.add(Dense(NUM_CLASSES, activation="softmax"))
    model.summary()

    model.compile(
        loss="categorical_crossentropy",
        optimizer=RMSprop(),
        metrics=["accuracy"],
    )
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
