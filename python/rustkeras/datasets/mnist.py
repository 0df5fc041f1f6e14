"""MNIST: 70,000 28x28 grayscale images of handwritten digits.

Yann LeCun and Corinna Cortes hold the copyright of MNIST, a derivative of
NIST's data; it is available under the CC BY-SA 3.0 license.
"""

from pathlib import Path
from typing import Tuple

import numpy as np

from rustkeras.datasets import _files

NAME = "mnist"
ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
# SHA-256 of mnist.npz as served at ORIGIN (the digest Keras checks).
SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

Split = Tuple[np.ndarray, np.ndarray]


def load_data(path: str = "mnist.npz") -> Tuple[Split, Split]:
    """Loads the MNIST dataset.

    Reads `path` (Keras' `mnist.npz`, with arrays `x_train`, `y_train`,
    `x_test`, `y_test`); a relative `path` is taken inside the user's cache,
    `$RUSTKERAS_HOME/datasets/mnist/` (default `~/.rustkeras/datasets/mnist/`).
    Without that file, the four original IDX files (gzipped or raw) in the
    cache folder are read; failing both, `mnist.npz` is downloaded to `path`
    and its SHA-256 checked.

    Args:
        path: Where the `.npz` file is or should be cached, relative to the
            cache folder unless absolute. Defaults to `"mnist.npz"`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 arrays shaped
        `(60000, 28, 28)`, `(60000,)`, `(10000, 28, 28)` and `(10000,)`.

    Raises:
        DatasetNotFoundError (a FileNotFoundError): If the data is nowhere on
            disk and cannot be downloaded; the message says where to put it.

    Example:

        (x_train, y_train), (x_test, y_test) = mnist.load_data()
    """
    cache = _files.cache_dir(NAME)
    npz_path = cache / Path(path).expanduser()  # an absolute path replaces `cache`
    if not npz_path.is_file():
        idx_paths = _files.find_mnist_format([cache])
        if all(p is not None for p in idx_paths):
            return _files.load_mnist_format(idx_paths)
        try:
            _files.download(ORIGIN, npz_path, SHA256)
        except OSError as err:
            idx_files = ", ".join(s + ".gz" for s in _files.MNIST_FORMAT_STEMS)
            raise _files.not_found(
                "MNIST", [npz_path.parent],
                f"Keras' {npz_path.name} (or, in {cache}, the four IDX files {idx_files})",
                str(err),
            ) from err
    with np.load(npz_path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
