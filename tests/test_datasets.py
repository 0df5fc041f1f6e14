"""rustkeras.datasets: IDX parsing, the search order and the error without data."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from rustkeras.datasets import _files, fashion_mnist, mnist

DEBIAN_DIR = fashion_mnist.SYSTEM_DIRS[0]


def write_idx(path, array, compress):
    """Writes `array` as an IDX file, built by hand from the format's definition."""
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
             np.float32: 0x0D, np.float64: 0x0E}
    code = codes[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    body = array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + body)


def write_mnist_format(folder, n_train=5, n_test=3, compress=True, seed=0):
    """Four small IDX files in the MNIST layout; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = [
        rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=(n_train,), dtype=np.uint8),
        rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=(n_test,), dtype=np.uint8),
    ]
    for stem, array in zip(_files.MNIST_FORMAT_STEMS, arrays):
        write_idx(folder / (stem + (".gz" if compress else "")), array, compress)
    return arrays


@pytest.fixture
def no_download(monkeypatch):
    """Makes every download fail at once, recording what was asked for."""
    asked = []

    def refuse(url, dest, sha256):
        asked.append((url, Path(dest), sha256))
        raise OSError("network disabled in tests")

    monkeypatch.setattr(_files, "download", refuse)
    return asked


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RUSTKERAS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def no_system_dirs(monkeypatch, tmp_path):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", (tmp_path / "nowhere",))


# ---- IDX parsing ------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trip(tmp_path, compress, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / "a.idx"
    write_idx(path, array, compress)
    got = _files.read_idx(path)
    assert got.shape == (2, 3, 4)
    assert got.dtype == np.dtype(dtype)  # native byte order
    np.testing.assert_array_equal(got, array)
    got[0, 0, 0] = 1  # writable


def test_read_idx_known_bytes(tmp_path):
    # A 1-D uint8 file written byte by byte: magic 0x00000801, count 3, data.
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 255]))
    np.testing.assert_array_equal(_files.read_idx(path), np.array([7, 0, 255], dtype=np.uint8))


def test_read_idx_big_endian_values(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFE]))
    np.testing.assert_array_equal(_files.read_idx(path), [256, -2])


@pytest.mark.parametrize(
    "content, message",
    [
        (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "magic"),
        (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 5]), "type code"),
        (bytes([0, 0, 8, 2, 0, 0]), "header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 3, 5]), "shape"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        _files.read_idx(path)


# ---- cache lookup -----------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_reads_the_cache(home, no_system_dirs, no_download, compress):
    arrays = write_mnist_format(home / "datasets" / "fashion-mnist", compress=compress)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    for got, want in zip((x_train, y_train, x_test, y_test), arrays):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)
    assert no_download == []


def test_cache_comes_before_system_dirs(home, tmp_path, monkeypatch, no_download):
    system = tmp_path / "system"
    write_mnist_format(system, seed=1)
    cached = write_mnist_format(home / "datasets" / "fashion-mnist", seed=2)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", (system,))
    (x_train, _), _ = fashion_mnist.load_data()
    np.testing.assert_array_equal(x_train, cached[0])


def test_system_dir_used_when_cache_is_empty(home, tmp_path, monkeypatch, no_download):
    system = tmp_path / "system"
    arrays = write_mnist_format(system, seed=3)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", (system,))
    _, (x_test, y_test) = fashion_mnist.load_data()
    np.testing.assert_array_equal(x_test, arrays[2])
    np.testing.assert_array_equal(y_test, arrays[3])


def test_default_cache_is_under_the_user_home(monkeypatch, tmp_path):
    monkeypatch.delenv("RUSTKERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    want = tmp_path / ".rustkeras" / "datasets" / "fashion-mnist"
    assert _files.cache_dir("fashion-mnist") == want


def test_mismatched_files_are_reported(home, no_system_dirs, no_download):
    folder = home / "datasets" / "fashion-mnist"
    write_mnist_format(folder)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8), True)
    with pytest.raises(ValueError, match="one uint8 label per image"):
        fashion_mnist.load_data()


def test_mnist_reads_npz_from_the_cache(home, no_download):
    folder = home / "datasets" / "mnist"
    folder.mkdir(parents=True)
    x = np.full((4, 28, 28), 7, np.uint8)
    y = np.arange(4, dtype=np.uint8)
    np.savez(folder / "mnist.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    np.testing.assert_array_equal(x_train, x)
    np.testing.assert_array_equal(y_test, y[:2])
    assert no_download == []


def test_mnist_absolute_path(tmp_path, home, no_download):
    target = tmp_path / "elsewhere" / "m.npz"
    target.parent.mkdir()
    y = np.arange(3, dtype=np.uint8)
    np.savez(target, x_train=np.zeros((3, 28, 28), np.uint8), y_train=y,
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=y[:1])
    (_, y_train), _ = mnist.load_data(path=str(target))
    np.testing.assert_array_equal(y_train, y)


def test_mnist_reads_idx_files_from_the_cache(home, no_download):
    arrays = write_mnist_format(home / "datasets" / "mnist", compress=False)
    (x_train, _), (_, y_test) = mnist.load_data()
    np.testing.assert_array_equal(x_train, arrays[0])
    np.testing.assert_array_equal(y_test, arrays[3])


# ---- nothing found ----------------------------------------------------------


def test_fashion_mnist_clear_error_when_nothing_found(home, no_system_dirs, no_download):
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist.load_data()
    message = str(info.value)
    assert isinstance(info.value, _files.DatasetNotFoundError)
    assert str(home / "datasets" / "fashion-mnist") in message
    assert "dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte.gz" in message
    assert "network disabled in tests" in message
    # It tried the canonical source, into the cache, with the published digest.
    url, dest, sha = no_download[0]
    assert url == fashion_mnist.ORIGIN + dest.name
    assert dest.parent == home / "datasets" / "fashion-mnist"
    assert sha == fashion_mnist.SHA256[dest.name]


def test_mnist_clear_error_when_nothing_found(home, no_download):
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_data()
    message = str(info.value)
    assert str(home / "datasets" / "mnist") in message and "mnist.npz" in message
    assert no_download == [(mnist.ORIGIN, home / "datasets" / "mnist" / "mnist.npz", mnist.SHA256)]


def test_download_rejects_a_wrong_digest(tmp_path, monkeypatch):
    served = tmp_path / "served.bin"
    served.write_bytes(b"not the dataset")
    dest = tmp_path / "cache" / "file.gz"
    with pytest.raises(OSError, match="SHA-256"):
        _files.download(served.as_uri(), dest, "0" * 64)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no partial file left behind


def test_download_keeps_a_verified_file(tmp_path):
    served = tmp_path / "served.bin"
    served.write_bytes(b"payload")
    dest = tmp_path / "cache" / "file.gz"
    _files.download(served.as_uri(), dest, _files.sha256_of(served))
    assert dest.read_bytes() == b"payload"


# ---- the real data ----------------------------------------------------------


def test_real_fashion_mnist_shapes(home, no_download):
    if not (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    assert set(np.unique(y_train)) == set(range(10))
    assert np.bincount(y_test).tolist() == [1000] * 10
