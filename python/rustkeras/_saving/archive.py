"""The `.keras` file: a zip of `metadata.json`, `config.json` and `model.weights.h5` (stored,
not compressed, as Keras writes it); or, with `zipped=False`, a directory of the three.

Reading checks the archive before using it: member names must be plain relative paths (no
`..`, no absolute paths, no backslashes), the JSON members are read up to a fixed limit
whatever size the archive claims, and the weights are read from the archive in place (never
extracted, never read whole into memory).
"""

import datetime
import io
import json
import os
import shutil
import tempfile
import zipfile
from typing import Any, Dict

from rustkeras._saving import files, keras_config, weights_h5

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
# The most bytes read from a JSON member (a config of thousands of layers is a few MiB).
_JSON_LIMIT = 64 << 20


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


def _check_names(zf: zipfile.ZipFile) -> None:
    for info in zf.infolist():
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if "\\" in name or name.startswith("/") or ".." in parts or (len(name) > 1 and name[1] == ":") \
                or "\x00" in name:
            raise ValueError(f"Invalid .keras file: the archive holds a member with an unsafe path: {name!r}")


def _read_json(read, name: str, what: str):
    data = read(name)
    if len(data) > _JSON_LIMIT:
        raise ValueError(f"Invalid .keras file: {name} is larger than {_JSON_LIMIT >> 20} MiB")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"Invalid .keras file: {name} is not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"Invalid .keras file: {name} is nested too deeply") from None


def _model_from_config_json(config, custom_objects, compile: bool):
    if not isinstance(config, dict):
        raise ValueError(f"Invalid .keras file: {CONFIG} must hold a JSON object")
    compile_config = config.get("compile_config")
    entry = {k: v for k, v in config.items() if k != "compile_config"}
    try:
        model = keras_config.model_from_entry(entry, custom_objects)
    except RecursionError:
        raise ValueError(f"Invalid .keras file: {CONFIG} is nested too deeply") from None
    if compile and isinstance(compile_config, dict):
        keras_config.compile_from_config(model, compile_config, custom_objects)
    return model


def load(source, custom_objects=None, compile: bool = True):
    """The model of a `.keras` file (a path or a binary file object) or of a directory saved
    with `zipped=False`."""
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return _load_directory(os.fspath(source), custom_objects, compile)
    try:
        zf = zipfile.ZipFile(source, "r")
    except zipfile.BadZipFile as e:
        raise ValueError(f"Invalid .keras file {source!r}: not a zip archive ({e})") from None
    with zf:
        _check_names(zf)
        names = set(zf.namelist())
        for member in (CONFIG, WEIGHTS):
            if member not in names:
                raise ValueError(f"Invalid .keras file: the archive has no {member}")

        def read(name: str) -> bytes:
            try:
                with zf.open(name, "r") as f:
                    return f.read(_JSON_LIMIT + 1)
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                raise ValueError(f"Invalid .keras file: cannot read {name} ({e})") from None

        model = _model_from_config_json(_read_json(read, CONFIG, "config"), custom_objects, compile)
        h5py = weights_h5.h5py_module()
        try:
            with zf.open(WEIGHTS, "r") as raw, h5py.File(raw, "r") as f:
                weights_h5.read(model, f, with_optimizer=compile)
        except zipfile.BadZipFile as e:
            raise ValueError(f"Invalid .keras file: cannot read {WEIGHTS} ({e})") from None
    return model


def _load_directory(dirpath: str, custom_objects, compile: bool):
    def read(name: str) -> bytes:
        path = os.path.join(dirpath, name)
        if not os.path.isfile(path):
            raise ValueError(f"Invalid saved model directory {dirpath}: it has no {name}")
        with open(path, "rb") as f:
            return f.read(_JSON_LIMIT + 1)

    model = _model_from_config_json(_read_json(read, CONFIG, "config"), custom_objects, compile)
    weights = os.path.join(dirpath, WEIGHTS)
    if not os.path.isfile(weights):
        raise ValueError(f"Invalid saved model directory {dirpath}: it has no {WEIGHTS}")
    h5py = weights_h5.h5py_module()
    with h5py.File(weights, "r") as f:
        weights_h5.read(model, f, with_optimizer=compile)
    return model


def load_weights(model, source, skip_mismatch: bool = False) -> None:
    """The weights (and optimizer and engine state) of a `.keras` file, into `model`."""
    try:
        zf = zipfile.ZipFile(source, "r")
    except zipfile.BadZipFile as e:
        raise ValueError(f"Invalid .keras file {source!r}: not a zip archive ({e})") from None
    with zf:
        _check_names(zf)
        if WEIGHTS not in zf.namelist():
            raise ValueError(f"Invalid .keras file: the archive has no {WEIGHTS}")
        h5py = weights_h5.h5py_module()
        with zf.open(WEIGHTS, "r") as raw, h5py.File(raw, "r") as f:
            weights_h5.read(model, f, skip_mismatch=skip_mismatch)
