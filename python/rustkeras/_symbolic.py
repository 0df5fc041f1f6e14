"""Symbolic tensors: user code (`ops.*`, `K.*`, a custom layer's `call`, a Lambda, a custom
loss) traced into the engine's graph.

Inside a trace, a tensor is a `SymbolicTensor`: a node of a `_core.Graph`, with Python's
operators and `.shape`/`.dtype`. Every `ops`/`K` function adds nodes when given symbolic
tensors. Given arrays, numbers or variables instead, it computes eagerly on the engine: the
same function is traced into a small graph whose arrays are fixed-shape variables, which is
run once (`_core.eval_graph`) and returns numpy arrays. So there is one implementation of
each function, and the eager and the symbolic results are the engine's alike.

A trace knows its graph, whether it is eager, the arrays it captured (`constants`: the
eager inputs, or numpy arrays that symbolic code closed over, which a model keeps as fixed
non-trainable variables), and, for a layer that branches on `training`, which branch it is.
"""

import contextlib
import functools
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from rustkeras import _core

_FLOAT = "float32"
_INT = "int32"
_BOOL = "bool"


class Trace:
    """One graph being built from user code.

    Args:
        graph: the `_core.Graph` nodes go into.
        eager: True for an eager computation (every array becomes a variable whose value is
            known now), False inside a model, a loss or a metric.
        training: in a layer traced once per mode, the mode of this trace (True/False);
            None where one trace serves both.
    """

    def __init__(self, graph, eager: bool, training: Optional[bool] = None):
        self.graph = graph
        self.eager = eager
        self.training = training
        # (variable id, value) of every captured array, in declaration order.
        self.constants: List[Tuple[int, np.ndarray]] = []
        # Scalar loss nodes added with `add_loss` while tracing.
        self.losses: List[int] = []
        # The batch size batched feeds have (eager layer calls), or None.
        self.batch: Optional[int] = None
        self.feeds: List[np.ndarray] = []

    def capture(self, value: np.ndarray) -> int:
        """The node of a captured array: a fixed-shape variable holding `value`."""
        value = np.ascontiguousarray(value, dtype=np.float32)
        var, node = self.graph.variable(list(value.shape))
        self.constants.append((var, value))
        return node

    def scalar(self, value: float) -> int:
        return self.graph.constant([], float(value))


class _State(threading.local):
    def __init__(self):
        self.trace: Optional[Trace] = None


_state = _State()


def current() -> Optional[Trace]:
    """The trace that user code running now adds to, or None outside any."""
    return _state.trace


@contextlib.contextmanager
def tracing(trace: Trace):
    """Makes `trace` the current one while the block runs."""
    before = _state.trace
    _state.trace = trace
    try:
        yield trace
    finally:
        _state.trace = before


class ArithmeticOperators:
    """Python's arithmetic operators, `@`, unary `-`, `abs()`, `[...]` and `.T` through
    `rustkeras.ops`, shared by symbolic tensors, variables and functional-model tensors
    (each then adds nodes, computes eagerly, or becomes a functional layer, as ops do)."""

    # `rustkeras.ops` is imported late: it imports this module.
    def _ops(self):
        from rustkeras import ops

        return ops

    def __add__(self, o): return self._ops().add(self, o)
    def __radd__(self, o): return self._ops().add(o, self)
    def __sub__(self, o): return self._ops().subtract(self, o)
    def __rsub__(self, o): return self._ops().subtract(o, self)
    def __mul__(self, o): return self._ops().multiply(self, o)
    def __rmul__(self, o): return self._ops().multiply(o, self)
    def __truediv__(self, o): return self._ops().divide(self, o)
    def __rtruediv__(self, o): return self._ops().divide(o, self)
    def __pow__(self, o): return self._ops().power(self, o)
    def __rpow__(self, o): return self._ops().power(o, self)
    def __matmul__(self, o): return self._ops().matmul(self, o)
    def __rmatmul__(self, o): return self._ops().matmul(o, self)
    def __neg__(self): return self._ops().negative(self)
    def __abs__(self): return self._ops().abs(self)
    def __getitem__(self, key): return self._ops()._getitem(self, key)

    @property
    def T(self):
        return self._ops().transpose(self)


class SymbolicTensor(ArithmeticOperators):
    """A tensor of a graph being traced: what `call` receives inside a model.

    `shape` has `None` for the batch axis (Keras' symbolic shape); arithmetic, comparisons,
    `@`, unary `-`, `abs()` and `[...]` slicing add nodes to the graph, as do the `ops.*`
    and `K.*` functions. It has no value: `bool(t)`, `if t:` and `np.asarray(t)` are errors
    (branch with `ops.where`, or on `training`, which is a Python bool during a trace).
    """

    # numpy defers to our reflected operators (`np_array * t` builds a node).
    __array_priority__ = 1000

    def __init__(self, trace: Trace, node: int, dtype: str = _FLOAT):
        self.trace = trace
        self.node = int(node)
        self.dtype = dtype
        self.batched = bool(trace.graph.batched(self.node))
        self.dims = tuple(int(d) for d in trace.graph.dims(self.node))
        self._keras_mask = None

    @property
    def shape(self) -> Tuple[Optional[int], ...]:
        return ((None,) if self.batched else ()) + self.dims

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def rank(self) -> int:
        return self.ndim

    def __len__(self):
        if self.batched:
            raise TypeError("len() of a symbolic tensor is not known: its first axis is the batch axis")
        if not self.dims:
            raise TypeError("len() of a 0-d tensor")
        return self.dims[0]

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape}, dtype={self.dtype}, node={self.node}>"

    def __bool__(self):
        raise TypeError(
            "A symbolic tensor has no value while a layer, Lambda or loss is traced, so it cannot be used as "
            "a Python bool (`if x:`, `and`, `or`). Use ops.where(condition, a, b) to choose values, or branch "
            "on the `training` argument, which is a Python bool during the trace."
        )

    def __iter__(self):
        raise TypeError("Iterating over a symbolic tensor is not supported; use ops.unstack or slicing.")

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            f"{self!r} is symbolic (part of a model being built) and has no value to convert to a numpy array. "
            "Use rustkeras.ops functions on it instead of numpy functions."
        )

    def __hash__(self):
        return id(self)

    # Beyond the shared arithmetic: integer division, logic and comparisons (a
    # functional-model tensor keeps Python's `==` for identity).
    def __floordiv__(self, o): return self._ops().floor_divide(self, o)
    def __rfloordiv__(self, o): return self._ops().floor_divide(o, self)
    def __mod__(self, o): return self._ops().mod(self, o)
    def __rmod__(self, o): return self._ops().mod(o, self)
    def __pos__(self): return self
    def __invert__(self): return self._ops().logical_not(self)
    def __and__(self, o): return self._ops().logical_and(self, o)
    def __rand__(self, o): return self._ops().logical_and(o, self)
    def __or__(self, o): return self._ops().logical_or(self, o)
    def __ror__(self, o): return self._ops().logical_or(o, self)
    def __xor__(self, o): return self._ops().logical_xor(self, o)
    def __lt__(self, o): return self._ops().less(self, o)
    def __le__(self, o): return self._ops().less_equal(self, o)
    def __gt__(self, o): return self._ops().greater(self, o)
    def __ge__(self, o): return self._ops().greater_equal(self, o)
    def __eq__(self, o): return self._ops().equal(self, o)  # type: ignore[override]
    def __ne__(self, o): return self._ops().not_equal(self, o)  # type: ignore[override]

    # A few tensor methods Keras code uses.
    def numpy(self):
        return self.__array__()

    def reshape(self, *shape):
        return self._ops().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)


class Variable(ArithmeticOperators):
    """A variable: a layer's weight (from `add_weight`) or a standalone one (`K.variable`).

    A layer's weight lives in the model that owns the layer; `numpy()` / `value` read it and
    `assign` writes it. Inside a trace it is the graph's variable node (so training updates
    it); outside it computes eagerly with its current value. A standalone variable holds a
    numpy array; a trace that uses it takes its value at that moment as a constant.
    """

    __array_priority__ = 1000

    def __init__(self, value=None, name: Optional[str] = None, trainable: bool = True, layer=None,
                 index: Optional[int] = None, shape=None, dtype: Optional[str] = None):
        self._layer = layer
        self._index = index
        self.name = name or "variable"
        self.trainable = bool(trainable)
        self.dtype = dtype or _FLOAT
        if layer is None:
            arr = np.array(value, dtype=np.float32 if self.dtype not in (_INT, _BOOL) else self.dtype)
            self._value = arr
            self._shape = tuple(arr.shape)
        else:
            self._value = None
            self._shape = tuple(int(d) for d in shape)

    @property
    def shape(self) -> Tuple[int, ...]:
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def path(self) -> str:
        return f"{self._layer.name}/{self.name}" if self._layer is not None else self.name

    def _weight(self):
        return self._layer._own_weights()[self._index]

    def numpy(self) -> np.ndarray:
        if self._layer is None:
            return np.array(self._value)
        layer = self._layer
        if layer._core is None:
            raise ValueError(
                f'Variable "{self.path}" has no value yet: its layer "{layer.name}" is not part of a built model.')
        return layer._core.get_var(self._weight().var)

    @property
    def value(self):
        return self.numpy()

    def assign(self, value) -> "Variable":
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape != self._shape:
            raise ValueError(f'Variable "{self.path}" has shape {self._shape}; assign() received shape {arr.shape}')
        if self._layer is None:
            self._value = arr.astype(self._value.dtype)
        else:
            if self._layer._core is None:
                raise ValueError(f'Variable "{self.path}" cannot be assigned before its layer is part of a built model.')
            self._layer._core.set_var(self._weight().var, np.ascontiguousarray(arr))
        return self

    def assign_add(self, value) -> "Variable":
        return self.assign(self.numpy() + np.asarray(value, dtype=np.float32))

    def assign_sub(self, value) -> "Variable":
        return self.assign(self.numpy() - np.asarray(value, dtype=np.float32))

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"<Variable path={self.path}, shape={self._shape}, dtype={self.dtype}>"

    def __len__(self):
        return self._shape[0]

    def __hash__(self):
        return id(self)

    # Comparisons as symbolic tensors have them (`==` keeps identity: variables are hashed).
    __lt__ = SymbolicTensor.__lt__
    __le__ = SymbolicTensor.__le__
    __gt__ = SymbolicTensor.__gt__
    __ge__ = SymbolicTensor.__ge__


def _dtype_of(value) -> str:
    if isinstance(value, (SymbolicTensor, Variable)):
        return value.dtype
    if isinstance(value, (bool, np.bool_)):
        return _BOOL
    if isinstance(value, (int, np.integer)):
        return _INT
    if isinstance(value, (float, np.floating)):
        return _FLOAT
    arr = np.asarray(value)
    if arr.dtype == np.bool_:
        return _BOOL
    if np.issubdtype(arr.dtype, np.integer):
        return _INT
    return _FLOAT


def to_tensor(value, trace: Trace, dtype: Optional[str] = None) -> SymbolicTensor:
    """`value` as a tensor of `trace`: a symbolic tensor of this trace as it is; a layer's
    variable as its variable node; a number as a scalar node; anything array-like as a
    captured array."""
    if isinstance(value, SymbolicTensor):
        if value.trace.graph is not trace.graph:
            raise ValueError(
                f"{value!r} belongs to another graph than the one being built (a tensor kept from another "
                "layer's or model's trace cannot be reused here)."
            )
        return value
    if isinstance(value, Variable):
        if value._layer is not None and not trace.eager:
            layer = value._layer
            if layer._graph is not trace.graph:
                raise ValueError(
                    f'Variable "{value.path}" is used in a graph where its layer "{layer.name}" has not been built: '
                    "call that layer in the same model first."
                )
            return SymbolicTensor(trace, trace.graph.param(value._weight().var), value.dtype)
        return SymbolicTensor(trace, trace.capture(value.numpy()), value.dtype)
    from rustkeras.layers.node import KerasTensor

    if isinstance(value, KerasTensor):
        raise TypeError(
            f"{value!r} is a functional-model tensor; it cannot be mixed here with the tensors of a trace."
        )
    kind = dtype or _dtype_of(value)
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return SymbolicTensor(trace, trace.scalar(float(value)), kind)
    try:
        arr = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - reported with the value's type
        raise TypeError(f"Cannot convert {type(value).__name__} to a tensor: {e}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"Cannot convert a value of type {type(value).__name__} (dtype {arr.dtype}) to a tensor")
    if arr.ndim == 0:
        return SymbolicTensor(trace, trace.scalar(float(arr)), kind)
    return SymbolicTensor(trace, trace.capture(arr), kind)


def find_trace(values) -> Tuple[str, Optional[Trace]]:
    """How a call with these arguments runs: ("symbolic", trace) when a symbolic tensor (or a
    current trace) is among them, ("keras", None) when a functional-model KerasTensor is, else
    ("eager", None)."""
    from rustkeras.layers.node import KerasTensor

    found = None
    keras = False
    for v in _leaves(values):
        if isinstance(v, SymbolicTensor):
            if found is not None and found.graph is not v.trace.graph:
                raise ValueError("Tensors from two different graphs are combined in one operation.")
            found = v.trace
        elif isinstance(v, KerasTensor):
            keras = True
    if found is not None:
        if keras:
            raise TypeError("Functional-model KerasTensors and the tensors of a layer's trace are mixed in one operation.")
        return "symbolic", found
    if keras:
        return "keras", None
    if _state.trace is not None:
        return "symbolic", _state.trace
    return "eager", None


def _leaves(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    else:
        yield value


def _numpy_result(values: List[np.ndarray], tensors: List[SymbolicTensor]):
    out = []
    for v, t in zip(values, tensors):
        if t.dtype == _BOOL:
            v = v != 0
        elif t.dtype == _INT:
            v = v.astype(np.int32)
        out.append(v)
    return out


def evaluate(trace: Trace, result):
    """The numpy values of the symbolic tensors in `result` (one, or nested lists/tuples/dicts)."""
    tensors = [v for v in _leaves(result) if isinstance(v, SymbolicTensor)]
    if not tensors:
        return result
    feeds = [np.ascontiguousarray(f, dtype=np.float32) for f in trace.feeds]
    values = _core.eval_graph(trace.graph, [t.node for t in tensors], [v for _, v in trace.constants], feeds,
                              trace.batch or 1)
    by_id = {id(t): v for t, v in zip(tensors, _numpy_result(values, tensors))}

    def rebuild(v):
        if isinstance(v, SymbolicTensor):
            return by_id[id(v)]
        if isinstance(v, list):
            return [rebuild(x) for x in v]
        if isinstance(v, tuple):
            return tuple(rebuild(x) for x in v)
        if isinstance(v, dict):
            return {k: rebuild(x) for k, x in v.items()}
        return v

    return rebuild(result)


def op(fn: Callable) -> Callable:
    """Makes `fn` (written on symbolic tensors of the current trace) an op that also computes
    eagerly on arrays and, given functional-model KerasTensors, records itself as a layer of
    the functional model (as Keras 3 does for `ops.*` on KerasTensors)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        mode, trace = find_trace((args, kwargs))
        if mode == "symbolic":
            if _state.trace is trace:
                return fn(*args, **kwargs)
            with tracing(trace):
                return fn(*args, **kwargs)
        if mode == "keras":
            from rustkeras.layers.lambda_layer import functional_op

            return functional_op(wrapper, args, kwargs)
        trace = Trace(_core.Graph(), eager=True)
        with tracing(trace):
            result = fn(*args, **kwargs)
        return evaluate(trace, result)

    wrapper._rustkeras_op = True
    return wrapper


def t(value, dtype: Optional[str] = None) -> SymbolicTensor:
    """`value` as a tensor of the current trace (inside an `op`)."""
    trace = _state.trace
    if trace is None:
        raise RuntimeError("internal: t() outside a trace")
    return to_tensor(value, trace, dtype)


def wrap(node: int, dtype: str = _FLOAT) -> SymbolicTensor:
    """A new node of the current trace as a tensor."""
    return SymbolicTensor(_state.trace, node, dtype)


def graph():
    return _state.trace.graph


def is_tensor(value) -> bool:
    return isinstance(value, (SymbolicTensor, Variable))


def normalize_axes(axis, ndim: int) -> List[int]:
    """Axes as a sorted list of non-negative ints (None: every axis)."""
    if axis is None:
        return list(range(ndim))
    axes = [axis] if is_int(axis) else list(axis) if isinstance(axis, (list, tuple)) else None
    if axes is None or not all(is_int(a) for a in axes):
        raise TypeError(f"axis must be an int or a tuple of ints, received {axis!r}")
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of bounds for a tensor of rank {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return sorted(out)


def is_int(v) -> bool:
    """Whether `v` is an integer (a Python or numpy int, not a bool)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def result_dtype(*values) -> str:
    if any(isinstance(v, float) for v in values):
        return _FLOAT
    kinds = [_dtype_of(v) for v in values if not isinstance(v, (bool, int, float))]
    kinds = kinds or [_dtype_of(v) for v in values]
    if _FLOAT in kinds:
        return _FLOAT
    if _INT in kinds:
        return _INT
    if kinds and all(k == _BOOL for k in kinds):
        # A Python int with booleans makes ints (Keras 3's promotion of a weak int): 2 + True is 3.
        weak_int = any(isinstance(v, int) and not isinstance(v, bool) for v in values)
        return _INT if weak_int else _BOOL
    return _FLOAT


# The most values one sample of a tensor may hold: what one buffer of f32 can address.
MAX_SAMPLE_VALUES = (2**63 - 1) // 4


def check_shape_known(shape: Sequence[Optional[int]], what: str) -> None:
    if any(d is None for d in shape):
        raise ValueError(f"{what}: every dimension must be known, received {tuple(shape)}")
