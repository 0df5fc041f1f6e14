"""Keras 3's HDF5 weights layout (`model.weights.h5` in a `.keras` file, and `.weights.h5`).

Keras walks a model as it walks any object it saves: each object's own variables go to
`<path>/vars/<i>` (with a `name` attribute on `vars`), then its children follow, in this order:

- a Sequential or functional model: its `layers`, each at `layers/<snake case class name>`,
  numbered in model order when the class repeats (`dense`, `dense_1`; not the layer's `name`);
- any other layer or a subclassed model: its attributes in sorted order (private ones last),
  a layer at the attribute's name, a list, tuple or dict of layers as such a numbered container
  (a subclassed model also lists its `layers`, so a layer no attribute names sits there);
- a recurrent layer: its variables under `cell/vars`; Bidirectional: `forward_layer`,
  `backward_layer`; TimeDistributed: `layer`;
- an object met a second time (a shared layer) is saved once, where it was met first;
- at the root, the optimizer: `optimizer/vars/<i>` = iterations, learning rate, then the slots.

A layer's own variables are its trainable ones, then the others, each in creation order.
rustkeras adds what a resumed `fit` needs (dropout seed, step and epoch counters) under
`rustkeras_engine`, which Keras does not read.

Reading never follows soft or external links, never reads a virtual or external dataset or one
stored through a decompressing filter, and checks each dataset's shape and dtype against the
variable it fills before reading it, so a file cannot make rustkeras allocate more than the
model's own variables.
"""

import math
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

_ENGINE_GROUP = "rustkeras_engine"
# The attribute of a layer's `vars` group that holds the seed of its random masks.
_KEY_ATTR = "rustkeras_key"
# The root attribute of BackupAndRestore's training metadata (JSON).
_METADATA_ATTR = "rustkeras_training_metadata"
_ENGINE_KEYS = ("seed", "step", "epoch")
_CELL_NAMES = {"LSTM": "lstm_cell", "GRU": "gru_cell", "SimpleRNN": "simple_rnn_cell"}
EXPECTED = "an HDF5 file of weights (.weights.h5)"
# HDF5 filters a dataset may carry: shuffle and fletcher32 give back at most the bytes they are
# given. A decompressing filter (deflate, szip, nbit, scaleoffset, a plugin) is refused: HDF5's
# deflate inflates a chunk's whole stream, so a few compressed bytes could claim gigabytes.
_SAFE_FILTERS = (2, 3)  # shuffle, fletcher32


def h5py_module():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise ImportError("h5py must be installed to save or load weights (pip install h5py).") from None
    return h5py


def snake_case(name: str) -> str:
    """Keras' `to_snake_case` (the name of an object inside a container)."""
    import re

    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class VarRef:
    """One variable of a layer: reads and writes its value where the layer's weights live."""

    def __init__(self, layer, weight):
        self.layer = layer
        self.weight = weight

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.weight.shape)

    def get(self) -> np.ndarray:
        return self.layer._core.get_var(self.weight.var)

    def set(self, value: np.ndarray) -> None:
        self.layer._core.set_var(self.weight.var, np.ascontiguousarray(value, dtype=np.float32))


class Entry:
    """One saved object: its path, its `name` (the `vars` group's attribute) and its variables.
    `main`: the entry is the owner's own (not its recurrent cell's)."""

    def __init__(self, path: str, name: Optional[str], variables: List[VarRef], owner, main: bool = True):
        self.path = path
        self.name = name
        self.variables = variables
        self.owner = owner
        self.main = main

    @property
    def key(self) -> Optional[int]:
        """The seed of the layer's random masks (Dropout, recurrent dropout), if it draws any."""
        key = self.owner.__dict__.get("_key") if self.main else None
        return key if isinstance(key, int) and not isinstance(key, bool) else None


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _keras_class_name(obj) -> str:
    """The class name Keras gives the object (a functional rustkeras Model is a `Functional`)."""
    from rustkeras.models.functional import Model
    from rustkeras.models.sequential import Sequential

    if isinstance(obj, Sequential):
        return "Sequential" if type(obj) is Sequential else type(obj).__name__
    if isinstance(obj, Model) and not obj.__dict__.get("_subclassed"):
        return "Functional" if type(obj) is Model else type(obj).__name__
    return type(obj).__name__


_internal_attrs: Optional[set] = None


def _skipped_attributes() -> set:
    """Attributes rustkeras itself sets on layers and models (never a user's sublayer)."""
    global _internal_attrs
    if _internal_attrs is None:
        from rustkeras.layers.base import Layer

        _internal_attrs = set(vars(Layer(name="_probe"))) | {
            "_layers", "_call_layer", "_as_layer", "_input_layer", "_model_ref", "_weight_map", "_inputs",
            "_outputs", "_nodes", "_sub_io", "_compile_args", "_compile_raw", "optimizer", "history",
            "_weight_specs", "_constants", "_traced_losses", "_losses_graph", "_fn", "_args", "_kwargs", "_op",
        }
    return _internal_attrs


def _is_saveable(v) -> bool:
    from rustkeras.layers.base import Layer
    from rustkeras.models.training import Trainer

    return isinstance(v, (Layer, Trainer))


def _holds_saveables(v, depth: int = 0) -> bool:
    if _is_saveable(v):
        return True
    if depth < 4 and isinstance(v, (list, tuple)):
        return any(_holds_saveables(x, depth + 1) for x in v)
    if depth < 4 and isinstance(v, dict):
        return any(_holds_saveables(x, depth + 1) for x in v.values())
    return False


def _attribute_children(obj, public_only: bool) -> List[Tuple[str, Any]]:
    """`(attribute, value)` of the attributes that hold layers or models, in Keras' order
    (sorted, private ones last)."""
    skip = _skipped_attributes()
    items = []
    for k, v in vars(obj).items():
        if k.startswith("__") or k in skip or (public_only and k.startswith("_")):
            continue
        if _holds_saveables(v):
            items.append((k, v))
    return sorted(items, key=lambda kv: f"~{kv[0]}" if kv[0].startswith("_") else kv[0])


def _model_layers(model) -> list:
    """A model's `layers` as Keras lists them (the layers of functional-model ops excluded:
    Keras' ops are not layers)."""
    from rustkeras.layers.lambda_layer import _OpLayer

    return [l for l in model.layers if not isinstance(l, _OpLayer)]


def _own_variables(layer) -> List[VarRef]:
    """A layer's own variables, trainable ones first (Keras' `_trainable_variables +
    _non_trainable_variables`)."""
    from rustkeras.layers import _user
    from rustkeras.layers.wrappers import _Wrapper

    if layer._core is None:
        return []
    if isinstance(layer, _Wrapper):
        return []
    own = layer._own_weights() if _user.overrides_call(layer) else list(layer._weights)
    ordered = [w for w in own if w.trainable] + [w for w in own if not w.trainable]
    return [VarRef(layer, w) for w in ordered]


def walk(model) -> List[Entry]:
    """Every object Keras saves for `model`, with its path and variables, in Keras' order."""
    from rustkeras.layers.core import InputLayer
    from rustkeras.layers.recurrent import _RNN
    from rustkeras.layers.wrappers import _Wrapper
    from rustkeras.models._nested import _ModelLayer
    from rustkeras.models.training import Trainer
    from rustkeras.layers import _user

    out: List[Entry] = []
    visited = set()

    def container(items, path: str) -> None:
        used: Dict[str, int] = {}
        seen_containers = set()

        def unique(name: str) -> str:
            if name in used:
                used[name] += 1
                return f"{name}_{used[name]}"
            used[name] = 0
            return name

        values = list(items.values()) if isinstance(items, dict) else list(items)
        for v in values:
            if isinstance(v, _ModelLayer):
                v = v.model
            if _is_saveable(v):
                visit(v, _join(path, unique(snake_case(_keras_class_name(v)))))
            elif isinstance(v, (list, tuple, dict)) and id(v) not in seen_containers:
                seen_containers.add(id(v))
                container(v, _join(path, unique("container")))

    def children(obj, path: str, public_only: bool, extra: Optional[Tuple[str, list]] = None) -> None:
        items = _attribute_children(obj, public_only)
        if extra is not None:
            items = sorted(items + [extra], key=lambda kv: f"~{kv[0]}" if kv[0].startswith("_") else kv[0])
        for name, v in items:
            if isinstance(v, _ModelLayer):
                v = v.model
            if _is_saveable(v):
                visit(v, _join(path, name))
            else:
                container(v, _join(path, name))

    def visit(obj, path: str) -> None:
        if isinstance(obj, _ModelLayer):
            obj = obj.model
        if id(obj) in visited:
            return
        visited.add(id(obj))
        if isinstance(obj, Trainer):
            out.append(Entry(path, obj.name, [], obj))
            if obj.__dict__.get("_subclassed"):
                children(obj, path, public_only=False, extra=("layers", _model_layers(obj)))
            else:
                container(_model_layers(obj), _join(path, "layers"))
                children(obj, path, public_only=False)
            return
        if isinstance(obj, InputLayer):
            out.append(Entry(path, obj.name, [], obj))
            return
        if isinstance(obj, _RNN):
            out.append(Entry(path, obj.name, [], obj))
            out.append(Entry(_join(path, "cell"), _CELL_NAMES.get(type(obj).__name__, "cell"), _own_variables(obj),
                             obj, main=False))
            return
        out.append(Entry(path, obj.name, _own_variables(obj), obj))
        user = _user.overrides_call(obj) and not isinstance(obj, _Wrapper)
        children(obj, path, public_only=not user)

    visit(model, "")
    return out


# -- the optimizer ------------------------------------------------------------------------


def _trainable_order(model) -> Tuple[List[int], List[int]]:
    """The engine's trainable variables (the optimizer's order) and, for Keras' order (the
    model's weights, layer by layer), each one's index among them."""
    core = model._core
    engine = list(core.trainable_vars())
    index = {v: i for i, v in enumerate(engine)}
    order: List[int] = []
    for _, ws in model._weight_map:
        for w in ws:
            i = index.get(w.var)
            if i is not None and i not in order:
                order.append(i)
    order += [i for i in range(len(engine)) if i not in order]
    return engine, order


def optimizer_arrays(model) -> Optional[List[np.ndarray]]:
    """Keras' `optimizer.variables` of a compiled model: iterations, learning rate, slots
    (each shaped like its variable)."""
    if model._core is None or model.__dict__.get("_compile_args") is None:
        return None
    engine, order = _trainable_order(model)
    state = model._core.optimizer_state(order)
    if state is None:
        return None
    iterations, lr, slots = state
    arrays = [np.asarray(iterations, dtype=np.int64), np.asarray(lr, dtype=np.float32)]
    for _, owner, values in slots:
        shape = () if owner is None else tuple(model._core.var_shape(engine[owner]))
        arrays.append(np.asarray(values, dtype=np.float32).reshape(shape))
    return arrays


def _load_optimizer(model, group, warn: Callable[[str], None]) -> None:
    """Restores the optimizer from `optimizer/vars` when it fits this model's optimizer (as
    Keras, a file from another optimizer or model is skipped with a warning)."""
    engine, order = _trainable_order(model)
    keys = list(group.keys())
    if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(keys))] or len(keys) < 2:
        warn(f"Skipping the optimizer's state: its variables are not numbered 0..n-1 (found {sorted(keys)[:5]}).")
        return
    iterations = _read_int(group, "0", "the optimizer's iterations")
    lr = float(_read_dataset(group, "1", (), "the optimizer's learning rate", np.float64))
    if not 0 <= lr <= float(np.finfo(np.float32).max):
        warn(f"Skipping the optimizer's state: its learning rate is {lr}; expected a finite float32 >= 0.")
        return
    lens = {math.prod(model._core.var_shape(v)) for v in engine}
    slots = []
    for i in range(2, len(keys)):
        ds = _dataset(group, str(i), f"optimizer variable {i}")
        # Exact (Python int) sizes: a shape whose int64 product wraps around must not pass.
        size = math.prod(ds.shape)
        if size != 1 and size not in lens:
            warn(f"Skipping the optimizer's state: variable {i} has shape {tuple(ds.shape)}, which no trainable "
                 "variable of this model has.")
            return
        slots.append(np.ascontiguousarray(ds[()], dtype=np.float32).reshape(-1))
    try:
        model._core.load_optimizer_state(iterations, lr, order, slots)
    except ValueError as e:
        warn(f"Skipping the optimizer's state: {e}")


# -- reading and writing ------------------------------------------------------------------


def _child(parent, name: str, what: str):
    """A hard-linked child of an HDF5 group (soft and external links are refused)."""
    h5py = h5py_module()
    if name not in parent:
        return None
    link = parent.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise ValueError(f"Not allowed: {what} is a {type(link).__name__} in the HDF5 file")
    return parent[name]


def _group(parent, path: str, what: str):
    """The group at `path` under `parent` (each step a hard link), or None."""
    h5py = h5py_module()
    current = parent
    for part in [p for p in path.split("/") if p]:
        current = _child(current, part, what)
        if current is None:
            return None
        if not isinstance(current, h5py.Group):
            raise ValueError(f"Invalid weights file: {what} is not a group")
    return current


def _dataset(group, key: str, what: str):
    h5py = h5py_module()
    ds = _child(group, key, what)
    if ds is None:
        raise ValueError(f"Invalid weights file: {what} is missing")
    if not isinstance(ds, h5py.Dataset):
        raise ValueError(f"Invalid weights file: {what} is not a dataset")
    if ds.is_virtual or ds.external:
        raise ValueError(f"Not allowed: {what} is a virtual or external dataset")
    if ds.dtype.kind not in "fiub":
        raise ValueError(f"Invalid weights file: {what} has dtype {ds.dtype}, expected numbers")
    plist = ds.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _, _, name = plist.get_filter(i)
        if code not in _SAFE_FILTERS:
            name = name.decode(errors="replace") if isinstance(name, bytes) else name
            raise ValueError(f"Not allowed: {what} is stored through the HDF5 filter {code} ({name}); expected "
                             "weights stored uncompressed, as Keras and rustkeras write them")
    return ds


def _read_dataset(group, key: str, shape: Tuple[int, ...], what: str, dtype=np.float32) -> np.ndarray:
    """A dataset's value (as `dtype`), read only after its shape is checked against `shape`."""
    ds = _dataset(group, key, what)
    if tuple(ds.shape) != tuple(shape):
        raise ValueError(f"{what}: expected shape {tuple(shape)}, the file has {tuple(ds.shape)}")
    return np.asarray(ds[()], dtype=dtype)


def _int_attr(obj, name: str, what: str) -> int:
    """A non-negative integer attribute, its shape and dtype checked before it is read."""
    attr = obj.attrs.get_id(name)
    if attr.shape != () or attr.dtype.kind not in "iu":
        raise ValueError(f"Invalid weights file: {what} must be an integer scalar; the file has an array of shape "
                         f"{attr.shape} and dtype {attr.dtype}")
    value = int(obj.attrs[name])
    if value < 0 or value >= 1 << 63:
        raise ValueError(f"Invalid weights file: {what} must be an integer in [0, 2**63); the file has {value}")
    return value


def _read_int(group, key: str, what: str) -> int:
    """A non-negative integer scalar."""
    ds = _dataset(group, key, what)
    if tuple(ds.shape) != ():
        raise ValueError(f"{what}: expected a scalar, the file has shape {tuple(ds.shape)}")
    value = ds[()]
    if ds.dtype.kind == "f":
        if not np.isfinite(value) or value != np.floor(value):
            raise ValueError(f"{what}: expected an integer, the file has {float(value)}")
    value = int(value)
    if value < 0:
        raise ValueError(f"{what}: expected a non-negative integer, the file has {value}")
    return value


def save_file(model, path: str, training_metadata: Optional[Dict[str, Any]] = None) -> None:
    """Writes a `.weights.h5` file atomically; `training_metadata` (BackupAndRestore's epoch and
    batch) goes into the same file, so that it always describes the weights beside it."""
    import json

    from rustkeras._saving import files

    h5py = h5py_module()
    with files.atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write(model, f)
            if training_metadata is not None:
                f.attrs[_METADATA_ATTR] = json.dumps(training_metadata)


def load_file(model, path: str, skip_mismatch: bool = False) -> None:
    """Reads a weights file written by `save_file` (whatever its name) into `model`."""
    from rustkeras._saving import reading

    with reading.naming(path, "weights"), reading.open_hdf5(path, EXPECTED) as f:
        read(model, f, skip_mismatch=skip_mismatch)


def training_metadata(path: str) -> Optional[Dict[str, Any]]:
    """The `training_metadata` `save_file` stored in a weights file, if any."""
    import json

    from rustkeras._saving import reading

    with reading.naming(path, "the training metadata"):
        with reading.open_hdf5(path, EXPECTED) as f:
            if _METADATA_ATTR not in f.attrs:
                return None
            attr = f.attrs.get_id(_METADATA_ATTR)
            if attr.shape != () or attr.dtype.kind not in "OSU":
                raise ValueError(f"its training metadata is an array of shape {attr.shape} and dtype {attr.dtype}; "
                                 "expected a JSON string")
            value = f.attrs[_METADATA_ATTR]
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        if not isinstance(text, str) or len(text) > 1 << 16:
            raise ValueError("its training metadata is not a short JSON string")
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ValueError(f"its training metadata is not valid JSON ({e})") from None
    return data if isinstance(data, dict) else None


def write(model, f) -> None:
    """Writes `model`'s weights (and optimizer and engine state) into the open h5py file `f`."""
    for e in walk(model):
        group = f.create_group(_join(e.path, "vars")) if e.path or "vars" not in f else f["vars"]
        if e.name is not None:
            group.attrs["name"] = e.name
        if e.key is not None:
            group.attrs[_KEY_ATTR] = np.uint64(e.key)
        for i, v in enumerate(e.variables):
            group.create_dataset(str(i), data=v.get())
    arrays = optimizer_arrays(model)
    if arrays is not None:
        opt = f.create_group("optimizer/vars")
        opt.attrs["name"] = getattr(model.optimizer, "name", "optimizer")
        for i, a in enumerate(arrays):
            opt.create_dataset(str(i), data=a)
    if model._core is not None:
        eng = f.create_group(_ENGINE_GROUP)
        for k, v in zip(_ENGINE_KEYS, model._core.engine_state()):
            eng.create_dataset(k, data=np.uint64(v))


def read(model, f, skip_mismatch: bool = False, with_optimizer: bool = True, with_engine: bool = True) -> None:
    """Sets `model`'s weights from the open h5py file `f` (Keras 3's layout); then, when the
    file has them and the model is compiled, the optimizer's state, and the engine's counters.

    Every variable is checked before any is set: a mismatch is a ValueError naming the layer
    (with `skip_mismatch`, a warning, and that layer keeps its weights)."""
    pending: List[Tuple[VarRef, np.ndarray]] = []
    keys: List[Tuple[Any, int]] = []
    entries = walk(model)
    for e in entries:
        if with_engine and e.key is not None:
            group = _group(f, _join(e.path, "vars"), f'layer "{e.owner.name}"')
            if group is not None and _KEY_ATTR in group.attrs:
                keys.append((e.owner, _int_attr(group, _KEY_ATTR, f'the mask seed of layer "{e.owner.name}"')))
        if not e.variables:
            continue
        label = f'layer "{e.owner.name}" ({type(e.owner).__name__}, at "{e.path}")'
        group = _group(f, _join(e.path, "vars"), label)
        found = 0 if group is None else len(group.keys())
        if found != len(e.variables):
            msg = (f"A total of {len(e.variables)} variables were expected for {label}, but the file has {found}.")
            if skip_mismatch:
                warnings.warn(f"Skipping {label}: {msg}", stacklevel=3)
                continue
            raise ValueError(f"Cannot load weights: {msg}")
        values = []
        for i, v in enumerate(e.variables):
            ds = _dataset(group, str(i), f"{label} variable {i}")
            if tuple(ds.shape) != v.shape:
                msg = (f"{label} variable {i} ({v.weight.name}) has shape {v.shape}; the file has {tuple(ds.shape)}.")
                if skip_mismatch:
                    warnings.warn(f"Skipping {label}: {msg}", stacklevel=3)
                    values = None
                    break
                raise ValueError(f"Cannot load weights: {msg}")
            values.append(np.asarray(ds[()], dtype=np.float32))
        if values is not None:
            pending.extend(zip(e.variables, values))
    for ref, value in pending:
        ref.set(value)
    changed = [(layer, key) for layer, key in keys if layer._key != key]
    if changed:
        # The masks' seeds are part of the model's graph: it is built again with them (its
        # weights are kept), so that a resumed fit draws the masks the original would have.
        for layer, key in changed:
            layer._key = key
        model._build()
        if model.__dict__.get("_compile_args") is not None:
            model._compile_core()
    warn = lambda msg: warnings.warn(msg, stacklevel=3)  # noqa: E731
    if with_optimizer and model.__dict__.get("_compile_args") is not None:
        group = _group(f, "optimizer/vars", "the optimizer's variables")
        if group is not None:
            _load_optimizer(model, group, warn)
    if with_engine:
        group = _group(f, _ENGINE_GROUP, "the engine state")
        if group is not None:
            seed, step, epoch = (_read_int(group, k, f"the engine's {k}") for k in _ENGINE_KEYS)
            if max(seed, step, epoch) >= 1 << 64:
                raise ValueError("Invalid weights file: the engine's counters exceed 64 bits")
            model._core.set_engine_state(seed, step, epoch)
