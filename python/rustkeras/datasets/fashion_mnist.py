"""Fashion-MNIST: 70,000 28x28 grayscale images of 10 kinds of clothing.

Classes: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.

The copyright for Fashion-MNIST is held by Zalando SE; it is licensed under
the MIT license (https://github.com/zalandoresearch/fashion-mnist).
"""

from pathlib import Path
from typing import Tuple

import numpy as np

from rustkeras.datasets import _files

NAME = "fashion-mnist"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
# Where Debian's `dataset-fashion-mnist` installs the four gzipped IDX files.
SYSTEM_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# SHA-256 of the gzipped files served at ORIGIN (the digests Keras checks).
SHA256 = {
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
}

Split = Tuple[np.ndarray, np.ndarray]


def load_data() -> Tuple[Split, Split]:
    """Loads the Fashion-MNIST dataset.

    Looks for the four IDX files (gzipped or raw) in the user's cache,
    `$RUSTKERAS_HOME/datasets/fashion-mnist/` (default
    `~/.rustkeras/datasets/fashion-mnist/`), then where Debian's
    `dataset-fashion-mnist` package puts them, and otherwise downloads them
    into the cache, checking each file's SHA-256.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 arrays shaped
        `(60000, 28, 28)`, `(60000,)`, `(10000, 28, 28)` and `(10000,)`.

    Raises:
        DatasetNotFoundError (a FileNotFoundError): If the files are nowhere
            on disk and cannot be downloaded; the message says where to put them.

    Example:

        (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
        x_train = x_train.reshape(60000, 784).astype("float32") / 255
    """
    cache = _files.cache_dir(NAME)
    folders = [cache, *SYSTEM_DIRS]
    paths = _files.find_mnist_format(folders)
    if any(p is None for p in paths):
        for i, stem in enumerate(_files.MNIST_FORMAT_STEMS):
            if paths[i] is not None:
                continue
            fname = stem + ".gz"
            try:
                paths[i] = _files.download(ORIGIN + fname, cache / fname, SHA256[fname])
            except OSError as err:
                files = ", ".join(s + ".gz" for s in _files.MNIST_FORMAT_STEMS)
                raise _files.not_found(
                    "Fashion-MNIST", folders, f"the four IDX files (gzipped or not: {files})",
                    str(err), DEBIAN_PACKAGE,
                ) from err
    return _files.load_mnist_format(paths)
