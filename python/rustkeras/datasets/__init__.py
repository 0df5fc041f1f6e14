"""Small real datasets with the Keras loaders' names and return values.

Example:

    from rustkeras.datasets import fashion_mnist
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
"""

from rustkeras.datasets import fashion_mnist, mnist

__all__ = ["fashion_mnist", "mnist"]
