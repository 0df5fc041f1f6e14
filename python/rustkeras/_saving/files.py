"""Atomic file writes: a save goes to a temporary file beside the target, is flushed to disk,
then renamed over the target (and the directory entry is flushed), so a crash at any moment
leaves either the previous file or the new one, never a torn one."""

import contextlib
import os
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_path(filepath: str) -> Iterator[str]:
    """Yields a temporary path beside `filepath` to write to; on success it replaces
    `filepath` (after an fsync of its bytes); on failure it is removed and `filepath` is
    untouched."""
    filepath = os.fspath(filepath)
    directory = os.path.dirname(os.path.abspath(filepath))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(filepath)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        # The new file gets the previous file's permissions, or a new file's (mkstemp's are 0600).
        try:
            mode = os.stat(filepath).st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Makes the rename itself durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def proceed_with_overwrite(filepath: str, overwrite: bool) -> bool:
    """Whether to write `filepath`: always with `overwrite=True` or when it does not exist;
    otherwise, as Keras, the user is asked on a terminal; without one, FileExistsError (so
    that nothing waits on input that cannot come)."""
    if overwrite or not os.path.exists(filepath):
        return True
    import sys

    if not (sys.stdin is not None and sys.stdin.isatty()):
        raise FileExistsError(f"{filepath} already exists and overwrite=False")
    while True:
        answer = input(f"[WARNING] {filepath} already exists - overwrite? [y/n]").strip().lower()
        if answer in ("y", "n"):
            break
        print('Enter "y" (overwrite) or "n" (cancel).')
    if answer == "n":
        print("[TIP] Next time specify overwrite=True!")
    return answer == "y"
