"""Reading files that may be damaged or hostile.

Every loader runs inside `naming(source, what)`: whatever goes wrong while a file is read comes
out as a ValueError (the file holds something other than what was expected), an OSError (it
cannot be read), a MemoryError (it describes a model larger than this machine) or a
NotImplementedError (it uses a Keras feature rustkeras lacks), and the message names the file.
Errors of the parsers underneath (KeyError, struct.error, zipfile's and h5py's own) never leak
unexplained: they become a ValueError that names the file and says what it held.

Before a file is opened it must be a regular file (a FIFO would block the read forever, a device
never ends); `describe` says what a file holds when it is not what a loader expected.
"""

import contextlib
import errno
import os
import stat
import struct
import zipfile
import zlib
from typing import Iterator

# What a file starts with, and what that makes it.
_SIGNATURES = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\x93NUMPY", "a NumPy .npy file"),
)

# Errors of the parsers underneath (the json, zipfile, zlib, struct and h5py modules, and the
# loaders' own walk through the config) that mean the file is not what it should be.
_PARSER_ERRORS = (TypeError, LookupError, AttributeError, ArithmeticError, EOFError, RuntimeError, struct.error,
                  zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile)


def label(source) -> str:
    """How messages name a file: its path, or the name of a file object."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else f"the file object {type(source).__name__}"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a file"


def describe_bytes(head: bytes, size: int) -> str:
    """What a file of `size` bytes that starts with `head` looks like."""
    if size == 0:
        return "an empty file"
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return f"{what} of {size} bytes"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return f"a Python pickle of {size} bytes"
    text = head.lstrip()
    if text[:1] in (b"{", b"["):
        return f"JSON text of {size} bytes"
    return f"{size} bytes of an unknown format (starting {head[:8]!r})"


def describe(source) -> str:
    """What a path (or a seekable file object) holds, for the "received" part of a message."""
    if not isinstance(source, (str, os.PathLike)):
        try:
            position = source.tell()
            source.seek(0, os.SEEK_END)
            size = source.tell()
            source.seek(0)
            head = source.read(16)
            source.seek(position)
        except (OSError, ValueError, AttributeError):
            return "a file object that cannot be read from its start"
        return describe_bytes(head, size)
    try:
        st = os.stat(source)
    except OSError:
        return "nothing (no such file)"
    if not stat.S_ISREG(st.st_mode):
        return _kind(st.st_mode)
    try:
        with open(source, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return f"a file that cannot be read ({e.strerror})"
    if zipfile.is_zipfile(source) and not head.startswith(b"PK"):
        return f"a zip archive of {st.st_size} bytes"
    return describe_bytes(head, st.st_size)


def require_file(path: str, expected: str) -> int:
    """Checks that `path` is a regular file (following links) before it is opened; returns its
    size. A directory is an IsADirectoryError, anything else but a file a ValueError."""
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"expected {expected}; received a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"expected {expected}; received {_kind(st.st_mode)}")
    return st.st_size


def open_hdf5(source, expected: str):
    """The h5py file of a path or a file object, opened to read; a file HDF5 cannot open is an
    OSError that says what the file holds instead."""
    from rustkeras._saving.weights_h5 import h5py_module

    h5py = h5py_module()
    if isinstance(source, (str, os.PathLike)):
        require_file(os.fspath(source), expected)
    try:
        return h5py.File(source, "r")
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as e:
        reason = str(e).replace("Unable to synchronously open file ", "").replace("Unable to open file ", "")
        raise OSError(f"it is not a readable HDF5 file {reason}: expected {expected}; received "
                      f"{describe(source)}") from None


def _same_kind(e: BaseException, message: str) -> BaseException:
    if isinstance(e, OSError):
        # OSError(errno, text) is the subclass of that errno (FileNotFoundError, ...).
        return OSError(e.errno, message) if e.errno is not None else OSError(message)
    for kind in (MemoryError, NotImplementedError):
        if isinstance(e, kind):
            return kind(message)
    return ValueError(message)


@contextlib.contextmanager
def naming(source, what: str) -> Iterator[None]:
    """Errors while `what` ("a model", "weights") is read from `source` name it: "Cannot load
    a model from m.keras: ...". ValueError, OSError (with its errno, so FileNotFoundError stays
    one), MemoryError and NotImplementedError keep their kind; the error of a parser underneath
    becomes a ValueError that says which it was."""
    prefix = f"Cannot load {what} from {label(source)}: "
    try:
        yield
    except RecursionError:
        raise ValueError(f"{prefix}it is nested too deeply") from None
    except (OSError, ValueError, MemoryError, NotImplementedError) as e:
        reason = (e.strerror if isinstance(e, OSError) else None) or str(e)
        if reason.startswith(prefix):
            raise
        raise _same_kind(e, prefix + reason).with_traceback(e.__traceback__) from None
    except _PARSER_ERRORS as e:
        what_went_wrong = ("a value in it has the wrong type" if isinstance(e, (TypeError, AttributeError))
                           else "the file is damaged or is not what it claims to be")
        raise ValueError(f"{prefix}{what_went_wrong} ({type(e).__name__}: {e})") from e
