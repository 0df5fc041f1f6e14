"""Finding, downloading and parsing dataset files.

A loader looks in the user's cache first, then in the places system packages
install datasets, and downloads into the cache only when neither has the files.
Downloads are checked against a SHA-256 digest before they are kept.
"""

import gzip
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import numpy as np

DOWNLOAD_TIMEOUT_S = 60

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable."""


def rustkeras_home() -> Path:
    """`$RUSTKERAS_HOME` if set, else `~/.rustkeras`."""
    home = os.environ.get("RUSTKERAS_HOME")
    if home:
        return Path(home).expanduser()
    return Path.home() / ".rustkeras"


def cache_dir(name: str) -> Path:
    """The user's cache folder for dataset `name`: `<home>/datasets/<name>`."""
    return rustkeras_home() / "datasets" / name


def read_idx(path: "os.PathLike[str] | str") -> np.ndarray:
    """Reads an IDX file (the MNIST format), gzipped or raw, into a numpy array.

    The file starts with two zero bytes, a type code, the number of
    dimensions, then each dimension as a big-endian uint32, then the values in
    row-major order, big-endian.

    Args:
        path: The file. Gzip compression is recognized by its magic bytes, not
            by the file name.

    Returns:
        A writable array in native byte order with the file's shape.

    Raises:
        ValueError: If the file is not a well-formed IDX file.
    """
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == _GZIP_MAGIC else open
    with opener(path, "rb") as f:
        data = bytearray(f.read())

    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file: bad magic number.")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file: unknown type code 0x{type_code:02x}.")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f"{path} is truncated: the header is incomplete.")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path} is not a well-formed IDX file: the header announces shape "
            f"{shape} ({expected} bytes in all) but the file holds {len(data)} bytes."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    if dtype.byteorder == ">" and dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def sha256_of(path: "os.PathLike[str] | str") -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, sha256: str) -> Path:
    """Downloads `url` to `dest`, keeping it only if its SHA-256 matches.

    The file is written next to `dest` under a temporary name and renamed
    into place once verified, so an interrupted download leaves no partial
    file behind.

    Raises:
        OSError: If the transfer fails or the digest does not match.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
            url, timeout=DOWNLOAD_TIMEOUT_S
        ) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        actual = sha256_of(tmp_name)
        if actual != sha256:
            raise OSError(
                f"Downloaded {url} but its SHA-256 is {actual}, expected {sha256}; "
                "the file was discarded."
            )
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return dest


def find_file(candidates: Iterable[str], folders: Sequence[Path]) -> Optional[Path]:
    """The first existing `folder/candidate`, folders in order of preference."""
    names = list(candidates)
    for folder in folders:
        for name in names:
            path = folder / name
            if path.is_file():
                return path
    return None


def idx_names(stem: str) -> List[str]:
    """Spellings an IDX file is found under: gzipped, raw, and with a dot
    before `idx` as some unpacked copies of MNIST have it."""
    dotted = stem.replace("-idx", ".idx")
    return [stem + ".gz", stem, dotted + ".gz", dotted]


def not_found(dataset: str, folders: Sequence[Path], files: str, reason: str,
              debian_package: Optional[str] = None) -> DatasetNotFoundError:
    """The error a loader raises when it has nothing to read.

    Args:
        dataset: The dataset's name for people.
        folders: Where the loader looked, the user's cache first.
        files: What to put in the cache, in words.
        reason: Why the download failed.
        debian_package: The Debian package that installs the files, if any.
    """
    lines = [
        f"Could not load the {dataset} dataset: it is not on this machine and "
        f"downloading it failed ({reason}).",
        "Looked in: " + ", ".join(str(f) for f in folders) + ".",
        f"Put {files} in {folders[0]}.",
    ]
    if debian_package:
        lines.append(
            f"On Debian or Ubuntu, `apt-get install {debian_package}` installs them "
            "where rustkeras finds them."
        )
    lines.append("Set RUSTKERAS_HOME to use another cache folder than ~/.rustkeras.")
    return DatasetNotFoundError(" ".join(lines))


# The four IDX files of an MNIST-format dataset, in the order load_data returns them.
MNIST_FORMAT_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def find_mnist_format(folders: Sequence[Path]) -> List[Optional[Path]]:
    """Where each of the four files is, or `None` for those not found."""
    return [find_file(idx_names(stem), folders) for stem in MNIST_FORMAT_STEMS]


def load_mnist_format(paths: Sequence[Path]):
    """Reads the four IDX files into `((x_train, y_train), (x_test, y_test))`
    and checks that they fit together: uint8 images `(n, 28, 28)` and uint8
    labels `(n,)`."""
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    splits = ((x_train, y_train, paths[0], paths[1]), (x_test, y_test, paths[2], paths[3]))
    for x, y, px, py in splits:
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(
                f"{px} does not hold uint8 images of 28x28: shape {x.shape}, dtype {x.dtype}."
            )
        if y.dtype != np.uint8 or y.shape != (x.shape[0],):
            raise ValueError(
                f"{py} does not hold one uint8 label per image of {px}: "
                f"shape {y.shape}, dtype {y.dtype}, {x.shape[0]} images."
            )
    return (x_train, y_train), (x_test, y_test)
