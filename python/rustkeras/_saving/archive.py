"""The `.keras` file: a zip of `metadata.json`, `config.json` and `model.weights.h5` (stored,
not compressed, as Keras writes it); or, with `zipped=False`, a directory of the three.

Reading checks the archive before using it (`_check_members`): member names must be plain
relative paths, each once; a member may not claim more bytes than the archive holds, nor expand
more than `_MAX_RATIO` times; the JSON members are read up to a fixed limit whatever size the
archive claims, and the weights are read from the archive in place (never extracted, never read
whole into memory). In a directory, a member that is a link out of the directory is refused.
"""

import datetime
import io
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from typing import Any, Dict, Optional

from rustkeras._saving import files, keras_config, reading, weights_h5

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
# The most bytes read from a JSON member (a config of thousands of layers is a few MiB).
_JSON_LIMIT = 64 << 20
# How many times a compressed member may expand (weights deflate about 1.1:1 and a config
# about 10:1; a zip bomb of zeros 1000:1), for members larger than _RATIO_FLOOR bytes. Keras
# writes its members uncompressed.
_MAX_RATIO = 100
_RATIO_FLOOR = 1 << 20
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_EXPECTED = "a .keras file (a zip archive holding config.json and model.weights.h5)"
_WEIGHTS_EXPECTED = f"{WEIGHTS} to be an HDF5 file of weights"


def _metadata() -> Dict[str, Any]:
    from rustkeras import __version__

    return {"keras_version": "3", "rustkeras_version": __version__,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}


def _weights_bytes(model) -> bytes:
    h5py = weights_h5.h5py_module()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        weights_h5.write(model, f)
    return buf.getvalue()


def _members(model) -> Dict[str, bytes]:
    """The three members, serialized (an error here leaves every file untouched)."""
    return {METADATA: json.dumps(_metadata()).encode(),
            CONFIG: keras_config.to_json(keras_config.model_entry(model)).encode(),
            WEIGHTS: _weights_bytes(model)}


def _write_zip(target, members: Dict[str, bytes]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def save(model, filepath: str, zipped: bool = True) -> None:
    """Writes `model` to `filepath` atomically (everything is serialized before the target is
    touched, so an error leaves the previous file as it was)."""
    members = _members(model)
    if not zipped:
        _save_directory(filepath, members)
        return
    with files.atomic_path(filepath) as tmp:
        _write_zip(tmp, members)


def save_to_file_object(model, fileobj) -> None:
    """Writes `model`'s `.keras` bytes to a writable binary file object."""
    buf = io.BytesIO()
    _write_zip(buf, _members(model))
    fileobj.write(buf.getvalue())


def _save_directory(dirpath: str, members: Dict[str, bytes]) -> None:
    """Writes a new directory beside `dirpath` (each file flushed), then swaps it in: the
    previous directory is renamed aside first and removed last, so at every moment one
    complete copy exists."""
    parent = os.path.dirname(os.path.abspath(dirpath))
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dirpath)}.", suffix=".tmp", dir=parent)
    try:
        for name, data in members.items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        files._fsync_directory(tmp)
        old = None
        if os.path.exists(dirpath):
            if not os.path.isdir(dirpath):
                raise ValueError(f"zipped=False saves a directory, but {dirpath} is a file")
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(dirpath)}.", suffix=".old", dir=parent)
            os.rmdir(old)
            os.replace(dirpath, old)
        os.replace(tmp, dirpath)
        files._fsync_directory(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_members(zf: zipfile.ZipFile, size: Optional[int]) -> None:
    """Refuses an archive whose members could mislead a reader or make it do unbounded work:
    an unsafe or repeated name, an encrypted member or an unknown compression, a member that
    claims more bytes than the archive holds (`size`), or one that would expand more than
    `_MAX_RATIO` times (a zip bomb)."""
    seen = set()
    end = zf.start_dir if size is None else min(size, zf.start_dir)
    for info in zf.infolist():
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if "\\" in name or name.startswith("/") or ".." in parts or (len(name) > 1 and name[1] == ":") \
                or "\x00" in name:
            raise ValueError(f"the archive holds a member with an unsafe path: {name!r}; expected plain relative "
                             "names (no `..`, no absolute paths, drive letters or backslashes)")
        if name in seen:
            raise ValueError(f"the archive holds two members named {name!r}; expected each name once")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise ValueError(f"the archive's member {name} is encrypted; expected the plain members Keras writes")
        if info.compress_type not in _COMPRESSIONS:
            raise ValueError(f"the archive's member {name} uses compression method {info.compress_type}; expected "
                             "one of stored, deflated, bzip2, lzma")
        if info.header_offset + info.compress_size > end:
            raise ValueError(f"the archive's member {name} claims {info.compress_size} bytes from offset "
                             f"{info.header_offset}, past the end of its data ({end} bytes): the file is truncated "
                             "or damaged")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise ValueError(f"the archive's member {name} is stored uncompressed but claims {info.file_size} bytes "
                             f"for {info.compress_size} stored: the file is damaged")
        if info.file_size > max(_RATIO_FLOOR, _MAX_RATIO * info.compress_size):
            raise ValueError(f"the archive's member {name} would expand from {info.compress_size} to {info.file_size} "
                             f"bytes; expected at most {_MAX_RATIO} times its compressed size (a zip bomb?)")


def _open_zip(source) -> zipfile.ZipFile:
    """The `.keras` archive at a path or in a binary file object, its members checked."""
    size = None
    if isinstance(source, (str, os.PathLike)):
        size = reading.require_file(os.fspath(source), _EXPECTED)
    try:
        zf = zipfile.ZipFile(source, "r")
    except zipfile.BadZipFile as e:
        raise ValueError(f"not a zip archive ({e}): expected {_EXPECTED}; received {reading.describe(source)}") \
            from None
    try:
        _check_members(zf, size)
        names = zf.namelist()
        for member in (CONFIG, WEIGHTS):
            if member not in names:
                raise ValueError(f"the archive has no {member}: expected {_EXPECTED}; received a zip archive of "
                                 f"{sorted(names)[:8]}")
    except BaseException:
        zf.close()
        raise
    return zf


def _read_json(read, name: str):
    data = read(name)
    if len(data) > _JSON_LIMIT:
        raise ValueError(f"{name} is larger than {_JSON_LIMIT >> 20} MiB; expected a config of at most that size")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{name} is not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{name} is nested too deeply") from None


def _model_from_config_json(config, custom_objects, compile: bool):
    if not isinstance(config, dict):
        raise ValueError(f"{CONFIG} must hold a JSON object (a model's config); received a JSON "
                         f"{type(config).__name__}")
    compile_config = config.get("compile_config")
    entry = {k: v for k, v in config.items() if k != "compile_config"}
    try:
        model = keras_config.model_from_entry(entry, custom_objects)
    except RecursionError:
        raise ValueError(f"{CONFIG} is nested too deeply") from None
    # Keras writes `compile_config: {}` for a model never compiled.
    if compile and isinstance(compile_config, dict) and compile_config:
        keras_config.compile_from_config(model, compile_config, custom_objects)
    return model


def _zip_reader(zf: zipfile.ZipFile):
    def read(name: str) -> bytes:
        size = zf.getinfo(name).file_size
        if size > _JSON_LIMIT:
            raise ValueError(f"{name} claims {size} bytes; expected a config of at most {_JSON_LIMIT >> 20} MiB")
        try:
            with zf.open(name, "r") as f:
                # Never more than the member claims (zipfile stops there, and checks the CRC).
                return f.read(size)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
            raise ValueError(f"cannot read {name} ({e}): the archive is damaged") from None

    return read


def load(source, custom_objects=None, compile: bool = True):
    """The model of a `.keras` file (a path or a binary file object) or of a directory saved
    with `zipped=False`."""
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return _load_directory(os.fspath(source), custom_objects, compile)
    with _open_zip(source) as zf:
        model = _model_from_config_json(_read_json(_zip_reader(zf), CONFIG), custom_objects, compile)
        with zf.open(WEIGHTS, "r") as raw, reading.open_hdf5(raw, _WEIGHTS_EXPECTED) as f:
            weights_h5.read(model, f, with_optimizer=compile)
    return model


def _directory_member(dirpath: str, name: str) -> str:
    """The path of a saved model directory's member: a regular file inside the directory (a
    link that leads out of it is refused, never followed)."""
    path = os.path.join(dirpath, name)
    if not os.path.lexists(path):
        raise ValueError(f"the directory has no {name}: expected a directory saved with zipped=False (config.json, "
                         f"metadata.json, model.weights.h5); received one holding {sorted(os.listdir(dirpath))[:8]}")
    real, root = os.path.realpath(path), os.path.realpath(dirpath)
    if os.path.commonpath([real, root]) != root:
        raise ValueError(f"{name} is a link to {real}, outside the directory; expected the directory's own file")
    reading.require_file(real, f"{name} to be a file")
    return real


def _load_directory(dirpath: str, custom_objects, compile: bool):
    def read(name: str) -> bytes:
        with open(_directory_member(dirpath, name), "rb") as f:
            return f.read(_JSON_LIMIT + 1)

    model = _model_from_config_json(_read_json(read, CONFIG), custom_objects, compile)
    with reading.open_hdf5(_directory_member(dirpath, WEIGHTS), _WEIGHTS_EXPECTED) as f:
        weights_h5.read(model, f, with_optimizer=compile)
    return model


def load_weights(model, source, skip_mismatch: bool = False) -> None:
    """The weights (and optimizer and engine state) of a `.keras` file, into `model`."""
    with _open_zip(source) as zf:
        with zf.open(WEIGHTS, "r") as raw, reading.open_hdf5(raw, _WEIGHTS_EXPECTED) as f:
            weights_h5.read(model, f, skip_mismatch=skip_mismatch)
