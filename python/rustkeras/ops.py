"""`rustkeras.ops`: Keras 3's operations, on symbolic tensors and on arrays alike.

Inside a custom layer's `call`, a Lambda or a custom loss, every function adds nodes to the
model's graph (training then runs the graph, with no Python per batch). On arrays, numbers
or variables it computes at once, on the engine, and returns numpy arrays:

    from rustkeras import ops
    ops.matmul(np.ones((2, 3)), np.ones((3, 4)))         # array of 3.0, shape (2, 4)

    class Scale(layers.Layer):
        def call(self, x):
            return ops.where(x > 0, ops.sqrt(x), 0.0) * 2

Every tensor is float32 in the engine; integer and boolean results (argmax, comparisons) come
back as int32 and bool numpy arrays when computed eagerly. Functions on functional-model
tensors (`Input(...)`) become a layer of the functional model, as in Keras 3.
"""

import builtins
import math
import string
from typing import List

import numpy as np

from rustkeras import _symbolic as S
from rustkeras._symbolic import SymbolicTensor, Variable, op

_FLOAT, _INT, _BOOL = "float32", "int32", "bool"


# -- helpers ------------------------------------------------------------------------------


def _g():
    return S.graph()


def _unary(x, kind, param=0.0, param2=0.0, dtype=None):
    x = S.t(x)
    return S.wrap(_g().unary(x.node, kind, float(param), float(param2)), dtype or _float_of(x))


def _float_of(x) -> str:
    return _FLOAT


def _binary(a, b, kind, dtype=None):
    ta, tb = S.t(a), S.t(b)
    node = _binary_nodes(ta, tb, kind)
    return S.wrap(node, dtype or S.result_dtype(a, b))


def _binary_nodes(ta, tb, kind):
    g = _g()
    if kind == "add":
        return g.add(ta.node, tb.node)
    if kind == "sub":
        return g.sub(ta.node, tb.node)
    if kind == "mul":
        return g.mul(ta.node, tb.node)
    if kind == "div":
        return g.div(ta.node, tb.node)
    return g.binary(ta.node, tb.node, kind)


def _axis(a, ndim):
    if not S.is_int(a):
        raise TypeError(f"axis must be an int, received {a!r}")
    a = int(a)
    if not -ndim <= a < ndim:
        raise ValueError(f"axis {a} is out of bounds for a tensor of rank {ndim}")
    return a % ndim


def _check_batch_axis(x: SymbolicTensor, axis: int, what: str):
    if x.batched and axis == 0:
        raise NotImplementedError(
            f"{what} along the batch axis (axis 0) of a tensor of shape {x.shape} is not supported by rustkeras: "
            "the batch size is not known while the graph is built."
        )


def _sample_dims(x: SymbolicTensor, shape) -> List[int]:
    """Per-sample dims for a Keras `shape` (with the batch axis when x is batched)."""
    if not isinstance(shape, (list, tuple)) or not builtins.all(d is None or S.is_int(d) for d in shape):
        raise TypeError(f"reshape: the new shape must be a tuple of ints, received {shape!r}")
    shape = [(-1 if d is None else int(d)) for d in shape]
    if builtins.any(d == 0 or d < -1 for d in shape):
        raise ValueError(f"reshape: the new shape {tuple(shape)} must hold positive sizes (or one -1); rustkeras has "
                         "no zero-size tensors")
    if not x.batched:
        return _resolve_minus_one(shape, int(np.prod(x.dims, dtype=np.int64)), x)
    if len(shape) < 2 and x.dims or not shape or shape[0] != -1:
        raise NotImplementedError(
            f"reshape of a batched tensor of shape {x.shape} to {tuple(shape)}: the first entry must be -1 or None "
            "(the batch axis, kept as it is); rustkeras cannot reshape across the batch axis."
        )
    return _resolve_minus_one(shape[1:], int(np.prod(x.dims, dtype=np.int64)), x)


def _resolve_minus_one(shape, total, x):
    unknown = [i for i, d in enumerate(shape) if d == -1]
    if len(unknown) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, received {tuple(shape)}")
    known = int(np.prod([d for d in shape if d != -1], dtype=object))
    if unknown:
        if known == 0 or total % known:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into {tuple(shape)}")
        shape[unknown[0]] = total // known
    elif known != total:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({total} values) into {tuple(shape)}")
    return shape


def _reshape_node(x: SymbolicTensor, dims) -> SymbolicTensor:
    if tuple(dims) == x.dims:
        return x
    return S.wrap(_g().reshape(x.node, [int(d) for d in dims]), x.dtype)


def _transpose_node(x: SymbolicTensor, perm) -> SymbolicTensor:
    perm = [int(p) for p in perm]
    if perm == list(range(len(perm))):
        return x
    if x.batched:
        if perm[0] != 0:
            raise NotImplementedError(
                f"transpose of a tensor of shape {x.shape} with axes {tuple(perm)}: the batch axis must stay first "
                "in rustkeras."
            )
        perm = [p - 1 for p in perm[1:]]
    return S.wrap(_g().transpose(x.node, perm), x.dtype)


def _move_to_last(x: SymbolicTensor, axis: int):
    """x with `axis` moved last, and the permutation that undoes it."""
    n = x.ndim
    if axis == n - 1:
        return x, None
    perm = [i for i in range(n) if i != axis] + [axis]
    inv = [perm.index(i) for i in range(n)]
    return _transpose_node(x, perm), inv


def _counting(kind: str, dtype: str) -> str:
    """The dtype of a sum or product of `dtype` values: int32 for booleans, as in Keras 3."""
    return _INT if kind in ("sum", "prod") and dtype == _BOOL else dtype


def _reduce(x, kind, axis, keepdims):
    x = S.t(x)
    dtype = _FLOAT if kind == "mean" else _counting(kind, x.dtype)
    axes = S.normalize_axes(axis, x.ndim)
    if not axes:
        return x if dtype == x.dtype else S.wrap(x.node, dtype)
    if kind in ("min", "prod") or kind in ("sum", "mean", "max"):
        return S.wrap(_g().reduce(x.node, kind, axes, bool(keepdims)), dtype)
    raise ValueError(f"unknown reduction {kind}")


# -- creation -----------------------------------------------------------------------------


def convert_to_tensor(x, dtype=None, sparse=None):
    """`x` as a tensor: inside a trace a node of the graph; outside, a numpy array."""
    if sparse:
        raise NotImplementedError("convert_to_tensor: `sparse=True` is not supported by rustkeras.")
    trace = S.current()
    if trace is not None and not trace.eager:
        t = S.to_tensor(x, trace)
        return cast(t, dtype) if dtype is not None else t
    if isinstance(x, SymbolicTensor):
        return x
    if isinstance(x, Variable):
        x = x.numpy()
    return np.asarray(x, dtype=_np_dtype(dtype) if dtype is not None else None)


def convert_to_numpy(x):
    """The numpy value of an array-like or a variable (a symbolic tensor has none)."""
    if isinstance(x, SymbolicTensor):
        return x.__array__()
    return np.asarray(x)


def _np_dtype(dtype):
    if dtype is None:
        return np.float32
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name.startswith("float") or name in ("half", "double"):
        return np.float32
    if name.startswith("int") or name.startswith("uint"):
        return np.int32
    if name == "bool":
        return np.bool_
    raise ValueError(f"Unsupported dtype: {dtype!r}")


def _kind_of(dtype) -> str:
    t = _np_dtype(dtype)
    return {np.float32: _FLOAT, np.int32: _INT, np.bool_: _BOOL}[t]


def _shape_arg(shape, fn: str = "shape", arg: str = "shape") -> List[int]:
    """A shape given by the user (an int or a sequence of them) as a list of positive ints whose
    product memory can address."""
    if S.is_int(shape):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)):
        raise TypeError(f"{fn}: `{arg}` must be an int or a tuple of ints, received {shape!r}")
    S.check_shape_known(shape, f"{fn}: `{arg}`")
    dims = [_positive_count(fn, arg, d) for d in shape]
    if int(np.prod(dims, dtype=object)) > S.MAX_SAMPLE_VALUES:
        raise MemoryError(f"{fn}: `{arg}`={tuple(dims)} holds more values than memory can address")
    return dims


def _positive_count(fn: str, arg: str, v) -> int:
    """`v` as a positive int: a TypeError for what is no int, a ValueError for zero and negatives
    (rustkeras has no zero-size tensors), a MemoryError beyond what memory can address."""
    if not S.is_int(v):
        if isinstance(v, (list, tuple, np.ndarray)):
            raise NotImplementedError(f"{fn}: a sequence of `{arg}` (one per element) is not supported by rustkeras; "
                                      f"received {v!r}")
        raise TypeError(f"{fn}: `{arg}` must be an integer, received {v!r}")
    if v <= 0:
        raise ValueError(f"{fn}: `{arg}` must be positive (rustkeras has no zero-size tensors), received {v}")
    if v > S.MAX_SAMPLE_VALUES:
        raise MemoryError(f"{fn}: `{arg}`={v} is more values than memory can address")
    return int(v)




@op
def full(shape, fill_value, dtype=None):
    dims = _shape_arg(shape, "full")
    node = _g().constant(dims, float(fill_value), False)
    return S.wrap(node, _kind_of(dtype) if dtype else S.result_dtype(fill_value))


def zeros(shape, dtype=None):
    return full(shape, 0.0, dtype or "float32")


def ones(shape, dtype=None):
    return full(shape, 1.0, dtype or "float32")


@op
def full_like(x, fill_value, dtype=None):
    x = S.t(x)
    node = _g().constant(list(x.dims), float(fill_value), x.batched)
    return S.wrap(node, _kind_of(dtype) if dtype else x.dtype)


def zeros_like(x, dtype=None):
    return full_like(x, 0.0, dtype)


def ones_like(x, dtype=None):
    return full_like(x, 1.0, dtype)


@op
def arange(start, stop=None, step=1, dtype=None):
    if stop is None:
        start, stop = 0, start
    bounds = {}
    for name, v in (("start", start), ("stop", stop), ("step", step)):
        if isinstance(v, (bool, str)):
            raise TypeError(f"arange: `{name}` must be a number, received {v!r}")
        bounds[name] = float(v)
        if not math.isfinite(bounds[name]):
            raise ValueError(f"arange: `{name}` must be finite, received {name}={v!r}")
    if bounds["step"] == 0:
        raise ValueError(f"arange: `step` must not be zero, received step={step!r}")
    n = int(math.ceil((bounds["stop"] - bounds["start"]) / bounds["step"]))
    if n <= 0:
        raise ValueError(f"arange: empty range ({start}, {stop}, {step}); rustkeras has no zero-size tensors")
    if n > S.MAX_SAMPLE_VALUES:
        raise MemoryError(f"arange: ({start}, {stop}, {step}) holds {n} values, more than memory can address")
    node = _g().iota([n], 0)
    if step != 1:
        node = _g().unary(node, "scale", float(step))
    if start != 0:
        node = _g().unary(node, "add_scalar", float(start))
    kind = _kind_of(dtype) if dtype else S.result_dtype(start, stop, step)
    return S.wrap(node, kind)


@op
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    if retstep:
        raise NotImplementedError("linspace: `retstep=True` is not supported by rustkeras.")
    if axis != 0:
        raise NotImplementedError("linspace: only `axis=0` is supported by rustkeras.")
    num = _positive_count("linspace", "num", num)
    for name, v in (("start", start), ("stop", stop)):
        if S.is_tensor(v) or not math.isfinite(float(v)):
            raise ValueError(f"linspace: `{name}` must be a finite number, received {v!r}")
    div = (num - 1) if endpoint else num
    step = (float(stop) - float(start)) / div if div > 0 else 0.0
    node = _g().iota([num], 0)
    node = _g().unary(_g().unary(node, "scale", step), "add_scalar", float(start))
    return S.wrap(node, _kind_of(dtype) if dtype else _FLOAT)


@op
def eye(N, M=None, k=0, dtype=None):
    M = N if M is None else M
    N, M = _positive_count("eye", "N", N), _positive_count("eye", "M", M)
    _shape_arg((N, M), "eye", "(N, M)")
    if not S.is_int(k):
        raise TypeError(f"eye: `k` must be an integer, received {k!r}")
    rows = _g().iota([N, M], 0)
    cols = _g().iota([N, M], 1)
    if k:
        rows = _g().unary(rows, "add_scalar", float(k))
    return S.wrap(_g().binary(rows, cols, "equal"), _kind_of(dtype) if dtype else _FLOAT)


def identity(n, dtype=None):
    return eye(n, dtype=dtype)


@op
def one_hot(x, num_classes, axis=-1, dtype=None):
    x = S.t(x)
    classes = _g().iota([_positive_count("one_hot", "num_classes", num_classes)], 0)
    idx = expand_dims(x, -1)
    out = S.wrap(_g().binary(idx.node, classes, "equal"), _kind_of(dtype) if dtype else _FLOAT)
    if axis not in (-1, out.ndim - 1):
        perm = list(range(out.ndim - 1))
        perm.insert(_axis(axis, out.ndim), out.ndim - 1)
        out = _transpose_node(out, perm)
    return out


# -- elementwise --------------------------------------------------------------------------


@op
def add(x1, x2):
    return _binary(x1, x2, "add")


@op
def subtract(x1, x2):
    return _binary(x1, x2, "sub")


@op
def multiply(x1, x2):
    return _binary(x1, x2, "mul")


@op
def divide(x1, x2):
    return _binary(x1, x2, "div", _FLOAT)


true_divide = divide


@op
def floor_divide(x1, x2):
    return _binary(x1, x2, "floor_divide")


@op
def mod(x1, x2):
    return _binary(x1, x2, "mod")


@op
def power(x1, x2):
    if isinstance(x2, (int, float, np.number)) and not isinstance(x2, bool):
        p = float(x2)
        if p == 1.0:
            return S.t(x1)
        if p == 2.0:
            return _unary(x1, "square")
        if p == 0.5:
            return _unary(x1, "sqrt")
        return _unary(x1, "pow", p)
    return _binary(x1, x2, "pow", S.result_dtype(x1, x2))


@op
def maximum(x1, x2):
    return _binary(x1, x2, "maximum")


@op
def minimum(x1, x2):
    return _binary(x1, x2, "minimum")


@op
def negative(x):
    return _unary(x, "neg", dtype=S.t(x).dtype)


@op
def abs(x):
    return _unary(x, "abs", dtype=S.t(x).dtype)


absolute = abs


@op
def square(x):
    return _unary(x, "square", dtype=S.t(x).dtype)


@op
def rsqrt(x):
    return _unary(_unary(x, "sqrt"), "reciprocal")


def _float_unary(kind: str):
    """The op applying the engine's unary `kind` elementwise (a float result)."""

    @op
    def fn(x):
        return _unary(x, kind)

    fn.__name__ = fn.__qualname__ = kind
    fn.__doc__ = f"Elementwise `{kind}`, as numpy's."
    return fn


sqrt = _float_unary("sqrt")
exp = _float_unary("exp")
log = _float_unary("log")
log1p = _float_unary("log1p")
expm1 = _float_unary("expm1")
floor = _float_unary("floor")
ceil = _float_unary("ceil")
trunc = _float_unary("trunc")
sin = _float_unary("sin")
cos = _float_unary("cos")
arctan = _float_unary("arctan")
tanh = _float_unary("tanh")
reciprocal = _float_unary("reciprocal")


@op
def log2(x):
    return _unary(_unary(x, "log"), "scale", 1.0 / math.log(2.0))


@op
def log10(x):
    return _unary(_unary(x, "log"), "scale", 1.0 / math.log(10.0))


@op
def sign(x):
    return _unary(x, "sign", dtype=S.t(x).dtype)


@op
def round(x, decimals=0):
    if not S.is_int(decimals):
        raise TypeError(f"round: `decimals` must be an integer, received {decimals!r}")
    if decimals > 38:  # a step finer than float32 resolves: nothing to round
        return S.t(x)
    if decimals < -38:  # a step beyond float32's range: every finite value rounds to 0
        return multiply(x, 0.0)
    if decimals:
        f = 10.0 ** int(decimals)
        return _unary(_unary(_unary(x, "scale", f), "round"), "scale", 1.0 / f)
    return _unary(x, "round")


@op
def tan(x):
    return divide(sin(x), cos(x))


@op
def clip(x, x_min, x_max):
    x = S.t(x)
    if S.is_tensor(x_min) or S.is_tensor(x_max):
        return minimum(maximum(x, x_min), x_max)
    # Keras 3 keeps the input's dtype, booleans becoming int32.
    return S.wrap(_g().unary(x.node, "clip", float(x_min), float(x_max)), _INT if x.dtype == _BOOL else x.dtype)


@op
def where(condition, x1=None, x2=None):
    if x1 is None or x2 is None:
        raise NotImplementedError("where: the one-argument form (indices of non-zero entries) is not supported by "
                                  "rustkeras: its result shape depends on the values.")
    c, a, b = S.t(condition), S.t(x1), S.t(x2)
    return S.wrap(_g().where(c.node, a.node, b.node), S.result_dtype(x1, x2))


def _compare(kind):
    @op
    def fn(x1, x2):
        return _binary(x1, x2, kind, _BOOL)

    fn.__name__ = fn.__qualname__ = kind
    return fn


equal = _compare("equal")
not_equal = _compare("not_equal")
greater = _compare("greater")
greater_equal = _compare("greater_equal")
less = _compare("less")
less_equal = _compare("less_equal")


@op
def logical_not(x):
    return _unary(x, "logical_not", dtype=_BOOL)


@op
def logical_and(x1, x2):
    a, b = not_equal(x1, 0.0), not_equal(x2, 0.0)
    return S.wrap(_g().mul(a.node, b.node), _BOOL)


@op
def logical_or(x1, x2):
    a, b = not_equal(x1, 0.0), not_equal(x2, 0.0)
    return S.wrap(_g().binary(a.node, b.node, "maximum"), _BOOL)


@op
def logical_xor(x1, x2):
    return not_equal(not_equal(x1, 0.0), not_equal(x2, 0.0))


@op
def isnan(x):
    x = S.t(x)
    return S.wrap(_g().binary(x.node, x.node, "not_equal"), _BOOL)


@op
def isinf(x):
    return equal(abs(x), float("inf"))


@op
def isfinite(x):
    return logical_not(logical_or(isnan(x), isinf(x)))


@op
def cast(x, dtype):
    x = S.t(x)
    kind = _kind_of(dtype)
    if kind == _FLOAT:
        return S.wrap(x.node, _FLOAT)
    if kind == _INT:
        return S.wrap(x.node if x.dtype in (_INT, _BOOL) else _g().unary(x.node, "trunc", 0.0, 0.0), _INT)
    return S.wrap(x.node if x.dtype == _BOOL else _g().binary(x.node, S.t(0.0).node, "not_equal"), _BOOL)


# -- activations (Keras 3's `ops.relu`, ...) ----------------------------------------------


def _activation(name):
    @op
    def fn(x):
        x = S.t(x)
        return S.wrap(_g().activation(x.node, name))

    fn.__name__ = fn.__qualname__ = name
    return fn


relu = _activation("relu")
relu6 = _activation("relu6")
sigmoid = _activation("sigmoid")
hard_sigmoid = _activation("hard_sigmoid")
softplus = _activation("softplus")
softsign = _activation("softsign")
selu = _activation("selu")
silu = swish = _activation("swish")
exponential = _activation("exponential")


@op
def elu(x, alpha=1.0):
    return _unary(x, "elu", alpha)


@op
def leaky_relu(x, negative_slope=0.2):
    return _unary(x, "leaky_relu", negative_slope)


@op
def gelu(x, approximate=False):
    if approximate:
        raise NotImplementedError("gelu: `approximate=True` is not supported by rustkeras (exact GELU only).")
    return _unary(x, "gelu")


@op
def softmax(x, axis=-1):
    x = S.t(x)
    a = _axis(axis, x.ndim)
    moved, inv = _move_to_last(x, a)
    y = S.wrap(_g().activation(moved.node, "softmax"))
    return y if inv is None else _transpose_node(y, inv)


@op
def log_softmax(x, axis=-1):
    x = S.t(x)
    return subtract(x, logsumexp(x, axis=axis, keepdims=True))


# -- reductions ---------------------------------------------------------------------------


@op
def sum(x, axis=None, keepdims=False):
    return _reduce(x, "sum", axis, keepdims)


@op
def mean(x, axis=None, keepdims=False):
    return _reduce(x, "mean", axis, keepdims)


@op
def max(x, axis=None, keepdims=False, initial=None):
    if initial is not None:
        return maximum(_reduce(x, "max", axis, keepdims), initial)
    return _reduce(x, "max", axis, keepdims)


amax = max


@op
def min(x, axis=None, keepdims=False, initial=None):
    if initial is not None:
        return minimum(_reduce(x, "min", axis, keepdims), initial)
    return _reduce(x, "min", axis, keepdims)


amin = min


@op
def prod(x, axis=None, keepdims=False, dtype=None):
    return _reduce(x, "prod", axis, keepdims)


@op
def var(x, axis=None, keepdims=False):
    x = S.t(x)
    m = mean(x, axis=axis, keepdims=True)
    return mean(square(subtract(x, m)), axis=axis, keepdims=keepdims)


@op
def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis=axis, keepdims=keepdims))


@op
def all(x, axis=None, keepdims=False):
    return S.wrap(_reduce(not_equal(x, 0.0), "min", axis, keepdims).node, _BOOL)


@op
def any(x, axis=None, keepdims=False):
    return S.wrap(_reduce(not_equal(x, 0.0), "max", axis, keepdims).node, _BOOL)


@op
def logsumexp(x, axis=None, keepdims=False):
    x = S.t(x)
    m = max(x, axis=axis, keepdims=True)
    # A row of -inf (or all equal infinities) keeps its max instead of producing NaN.
    m_safe = where(isfinite(m), m, 0.0)
    s = log(sum(exp(subtract(x, m_safe)), axis=axis, keepdims=True))
    out = add(s, m_safe)
    if not keepdims:
        axes = S.normalize_axes(axis, x.ndim)
        out = squeeze(out, axis=axes) if axes else out
    return out


@op
def norm(x, ord=None, axis=None, keepdims=False):
    x = S.t(x)
    if ord in (None, "fro", 2) and (axis is None or isinstance(axis, (int, np.integer)) or ord in (None, "fro")):
        if ord == 2 and axis is not None and not isinstance(axis, (int, np.integer)):
            raise NotImplementedError("norm: the spectral norm (ord=2 over two axes) is not supported by rustkeras.")
        return sqrt(sum(square(x), axis=axis, keepdims=keepdims))
    if ord == 1 and (axis is None or isinstance(axis, (int, np.integer))):
        return sum(abs(x), axis=axis, keepdims=keepdims)
    if ord in (np.inf, "inf") and (axis is None or isinstance(axis, (int, np.integer))):
        return max(abs(x), axis=axis, keepdims=keepdims)
    if isinstance(ord, (int, float)) and ord > 0 and (axis is None or isinstance(axis, (int, np.integer))):
        return power(sum(power(abs(x), float(ord)), axis=axis, keepdims=keepdims), 1.0 / ord)
    raise NotImplementedError(f"norm: ord={ord!r} with axis={axis!r} is not supported by rustkeras.")


@op
def argmax(x, axis=None, keepdims=False):
    x = S.t(x)
    if axis is None:
        if x.batched:
            raise NotImplementedError("argmax with axis=None over a batched tensor is not supported by rustkeras.")
        x = _reshape_node(x, [int(np.prod(x.dims))])
        axis = 0
    a = _axis(axis, x.ndim)
    _check_batch_axis(x, a, "argmax")
    moved, _ = _move_to_last(x, a)
    # The engine's argmax keeps a trailing axis of 1; keep it only for keepdims.
    node = _g().argmax_last(moved.node)
    out = S.wrap(node, _INT)
    if keepdims:
        return expand_dims(out, a)
    return out


@op
def argmin(x, axis=None, keepdims=False):
    return argmax(negative(x), axis=axis, keepdims=keepdims)


@op
def cumsum(x, axis=None, dtype=None):
    x = S.t(x)
    if axis is None:
        x = flatten_all(x)
        axis = -1
    return S.wrap(_g().cumulative(x.node, "sum", _axis(axis, x.ndim), False), _counting("sum", x.dtype))


@op
def cumprod(x, axis=None, dtype=None):
    x = S.t(x)
    if axis is None:
        x = flatten_all(x)
        axis = -1
    return S.wrap(_g().cumulative(x.node, "prod", _axis(axis, x.ndim), False), _counting("prod", x.dtype))


def flatten_all(x: SymbolicTensor) -> SymbolicTensor:
    if x.batched:
        raise NotImplementedError("flattening a batched tensor including its batch axis is not supported by rustkeras")
    return _reshape_node(x, [int(np.prod(x.dims))] if x.dims else [1])


@op
def top_k(x, k, sorted=True):
    x = S.t(x)
    if x.ndim == 0:
        raise ValueError("top_k: the input must have at least one axis, received a scalar (shape ())")
    k = int(k)
    if not 0 < k <= x.shape[-1]:
        raise ValueError(f"top_k: k must be in [1, {x.shape[-1]}], received {k}")
    idx = _g().top_k_indices(x.node, k)
    values = _g().take_along(x.node, idx)
    return S.wrap(values, x.dtype), S.wrap(idx, _INT)


@op
def take_along_axis(x, indices, axis=None):
    x, idx = S.t(x), S.t(indices)
    if axis is None:
        return take_along_axis(flatten_all(x), flatten_all(idx), axis=0)
    a = _axis(axis, x.ndim)
    _check_batch_axis(x, a, "take_along_axis")
    if a == x.ndim - 1:
        return S.wrap(_g().take_along(x.node, idx.node), x.dtype)
    xm, inv = _move_to_last(x, a)
    im, _ = _move_to_last(idx, a)
    return _transpose_node(S.wrap(_g().take_along(xm.node, im.node), x.dtype), inv)


@op
def take(x, indices, axis=None):
    x, idx = S.t(x), S.t(indices)
    if axis is None:
        x = flatten_all(x)
        axis = 0
    return S.wrap(_g().take(x.node, idx.node, _axis(axis, x.ndim)), x.dtype)


# -- linear algebra -----------------------------------------------------------------------


@op
def matmul(x1, x2):
    a, b = S.t(x1), S.t(x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one axis, received shapes {a.shape} and {b.shape}")
    if b.ndim == 1:
        return squeeze(matmul(a, expand_dims(b, -1)), axis=-1)
    if a.ndim == 1:
        return squeeze(matmul(expand_dims(a, 0), b), axis=-2)
    if not b.batched and b.ndim == 2:
        return S.wrap(_g().matmul(a.node, b.node, False, False), S.result_dtype(x1, x2))
    return S.wrap(_g().batch_matmul(a.node, b.node, False, False), S.result_dtype(x1, x2))


@op
def dot(x1, x2):
    """numpy's `dot`: for 2-D operands the matrix product; for N-D, a sum product over the
    last axis of x1 and the second-to-last of x2."""
    a, b = S.t(x1), S.t(x2)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    if b.ndim <= 2:
        return matmul(a, b)
    if b.batched:
        raise NotImplementedError(f"dot: a batched right operand of rank {b.ndim} is not supported; use batch_dot")
    # b (..., k, n): move k first and fold the rest into columns.
    perm = [b.ndim - 2] + [i for i in range(b.ndim) if i != b.ndim - 2]
    bt = _transpose_node(b, perm)
    rest = [d for i, d in enumerate(b.dims) if i != b.ndim - 2]
    b2 = _reshape_node(bt, [b.dims[-2], int(np.prod(rest))])
    y = matmul(a, b2)
    return reshape(y, tuple(a.shape[:-1]) + tuple(rest))


@op
def tensordot(x1, x2, axes=2):
    a, b = S.t(x1), S.t(x2)
    if isinstance(axes, (int, np.integer)):
        ax_a = list(range(a.ndim - int(axes), a.ndim))
        ax_b = list(range(int(axes)))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
    letters = iter(string.ascii_letters)
    sa = [next(letters) for _ in range(a.ndim)]
    sb = [next(letters) for _ in range(b.ndim)]
    for i, j in zip(ax_a, ax_b):
        sb[_axis(j, b.ndim)] = sa[_axis(i, a.ndim)]
    contracted = {sa[_axis(i, a.ndim)] for i in ax_a}
    out = [c for c in sa if c not in contracted] + [c for c in sb if c not in contracted]
    return einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)


@op
def outer(x1, x2):
    a, b = S.t(x1), S.t(x2)
    return multiply(expand_dims(reshape(a, (-1,)) if not a.batched else a, -1), reshape(b, (-1,)))


@op
def einsum(subscripts, *operands):
    """Einstein summation over one or two operands (`"ij,jk->ik"`, `"bij,bjk->bik"`,
    `"ii->i"` is not supported: repeated indices within one operand are refused)."""
    spec = subscripts.replace(" ", "")
    if "..." in spec:
        raise NotImplementedError("einsum: ellipsis ('...') is not supported by rustkeras.")
    if "->" in spec:
        lhs, out = spec.split("->")
    else:
        lhs = spec
        counts = {}
        for c in lhs.replace(",", ""):
            counts[c] = counts.get(c, 0) + 1
        out = "".join(sorted(c for c, n in counts.items() if n == 1))
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise ValueError(f"einsum: {len(ins)} operand specs in {subscripts!r} but {len(operands)} operands")
    ts = [S.t(o) for o in operands]
    for s, t in zip(ins, ts):
        if len(s) != t.ndim:
            raise ValueError(f"einsum: spec {s!r} does not match an operand of rank {t.ndim} (shape {t.shape})")
        if len(set(s)) != len(s):
            raise NotImplementedError(f"einsum: repeated indices within one operand ({s!r}) are not supported")
    sizes = {}
    for i, (s, t) in enumerate(zip(ins, ts)):
        for c, d in zip(s, t.shape):
            if d is not None and sizes.setdefault(c, (d, i))[0] != d:
                raise ValueError(f"einsum: index {c!r} has size {sizes[c][0]} in operand {sizes[c][1]} and {d} in "
                                 f"operand {i} ({subscripts!r})")
    missing = [c for c in out if c not in lhs]
    if missing or len(set(out)) != len(out):
        raise ValueError(f"einsum: the output {out!r} must name each index of the inputs at most once "
                         f"({subscripts!r})")
    if len(ts) == 1:
        return _einsum_one(ins[0], out, ts[0])
    if len(ts) == 2:
        return _einsum_two(ins[0], ins[1], out, ts[0], ts[1])
    acc, acc_spec = ts[0], ins[0]
    for s, t in zip(ins[1:-1], ts[1:-1]):
        keep = "".join(dict.fromkeys(c for c in acc_spec + s if c in out or any(c in o for o in ins[ins.index(s) + 1:])))
        acc = _einsum_two(acc_spec, s, keep, acc, t)
        acc_spec = keep
    return _einsum_two(acc_spec, ins[-1], out, acc, ts[-1])


def _einsum_one(s, out, t):
    drop = [i for i, c in enumerate(s) if c not in out]
    if drop:
        t = sum(t, axis=drop)
        s = "".join(c for c in s if c in out)
    return _transpose_node(t, [s.index(c) for c in out])


def _einsum_two(sa, sb, out, a, b):
    # Sum away indices that only one operand has and the output does not.
    only_a = [c for c in sa if c not in sb and c not in out]
    if only_a:
        a = sum(a, axis=[sa.index(c) for c in only_a])
        sa = "".join(c for c in sa if c not in only_a)
    only_b = [c for c in sb if c not in sa and c not in out]
    if only_b:
        b = sum(b, axis=[sb.index(c) for c in only_b])
        sb = "".join(c for c in sb if c not in only_b)
    batch = [c for c in sa if c in sb and c in out]
    contract = [c for c in sa if c in sb and c not in out]
    left = [c for c in sa if c not in sb]
    right = [c for c in sb if c not in sa]
    size = {}
    for s, t in ((sa, a), (sb, b)):
        for c, d in zip(s, t.shape):
            size[c] = d
    # The batch axis of a batched operand must be a batch index leading both operands.
    for s, t in ((sa, a), (sb, b)):
        if t.batched and (not batch or s[0] != batch[0]):
            if t is a and not b.batched and s[0] in left:
                continue
            if t is b and not a.batched and s[0] in right:
                continue
            raise NotImplementedError(
                f"einsum: the batch axis of an operand (index {s[0]!r}) must stay the leading output axis in rustkeras")
    if a.batched and not batch and not b.batched and left and sa[0] == left[0]:
        # (None, left.., contract) x (contract, right..): one matrix product.
        at = _transpose_node(a, [sa.index(c) for c in left + contract])
        a2 = _reshape_node(at, [size[c] for c in left[1:]] + [int(np.prod([size[c] for c in contract] or [1]))])
        bt = _transpose_node(b, [sb.index(c) for c in contract + right])
        b2 = _reshape_node(bt, [int(np.prod([size[c] for c in contract] or [1])),
                                int(np.prod([size[c] for c in right] or [1]))])
        y = S.wrap(_g().matmul(a2.node, b2.node, False, False))
        y = _reshape_node(y, [size[c] for c in left[1:]] + [size[c] for c in right])
        got = left + right
        return _transpose_node(y, [got.index(c) for c in out])
    at = _transpose_node(a, [sa.index(c) for c in batch + left + contract])
    bt = _transpose_node(b, [sb.index(c) for c in batch + contract + right])
    nb = [size[c] for c in batch]
    L = int(np.prod([size[c] for c in left] or [1]))
    C = int(np.prod([size[c] for c in contract] or [1]))
    R = int(np.prod([size[c] for c in right] or [1]))
    lead_a = nb[1:] if a.batched else nb
    lead_b = nb[1:] if b.batched else nb
    a3 = _reshape_node(at, lead_a + [L, C])
    b3 = _reshape_node(bt, lead_b + [C, R])
    if not a3.batched and not b3.batched and not nb:
        y = matmul(a3, b3)
    else:
        y = S.wrap(_g().batch_matmul(a3.node, b3.node, False, False))
    lead = nb[1:] if y.batched else nb
    y = _reshape_node(y, lead + [size[c] for c in left] + [size[c] for c in right])
    got = batch + left + right
    return _transpose_node(y, [got.index(c) for c in out])


# -- shapes -------------------------------------------------------------------------------


def shape(x):
    """The shape as a tuple (None for the batch axis of a symbolic tensor)."""
    if isinstance(x, (SymbolicTensor, Variable)):
        return tuple(x.shape)
    return tuple(np.shape(x))


def ndim(x):
    return len(shape(x))


def size(x):
    s = shape(x)
    if None in s:
        raise ValueError(f"size: the batch size of {x!r} is not known while the graph is built")
    return int(np.prod(s))


@op
def reshape(x, newshape):
    x = S.t(x)
    if isinstance(newshape, (int, np.integer)):
        newshape = (int(newshape),)
    return _reshape_node(x, _sample_dims(x, newshape))


@op
def transpose(x, axes=None):
    x = S.t(x)
    perm = list(reversed(range(x.ndim))) if axes is None else [_axis(a, x.ndim) for a in axes]
    if x.batched and axes is None and x.ndim > 1:
        raise NotImplementedError(
            f"transpose of a batched tensor of shape {x.shape} without `axes` would move the batch axis; pass axes "
            "that keep it first (e.g. (0, 2, 1))."
        )
    return _transpose_node(x, perm)


@op
def swapaxes(x, axis1, axis2):
    x = S.t(x)
    perm = list(range(x.ndim))
    a, b = _axis(axis1, x.ndim), _axis(axis2, x.ndim)
    perm[a], perm[b] = perm[b], perm[a]
    return _transpose_node(x, perm)


@op
def moveaxis(x, source, destination):
    x = S.t(x)
    src, dst = _axis(source, x.ndim), _axis(destination, x.ndim)
    perm = [i for i in range(x.ndim) if i != src]
    perm.insert(dst, src)
    return _transpose_node(x, perm)


@op
def expand_dims(x, axis):
    x = S.t(x)
    n = x.ndim + 1
    a = _axis(axis, n)
    _check_batch_axis(x, a, "expand_dims")
    shape_ = list(x.shape)
    shape_.insert(a, 1)
    return _reshape_node(x, shape_[1:] if x.batched else shape_)


@op
def squeeze(x, axis=None):
    x = S.t(x)
    if axis is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    else:
        axes = S.normalize_axes(axis, x.ndim)
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: cannot select an axis to squeeze out which has size not equal to one "
                                 f"(axis {a} of shape {x.shape})")
    new = [d for i, d in enumerate(x.shape) if i not in axes]
    return _reshape_node(x, new[1:] if x.batched else new)


@op
def broadcast_to(x, shape):
    x = S.t(x)
    if S.is_int(shape):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)):
        raise TypeError(f"broadcast_to: `shape` must be a tuple of ints, received {shape!r}")
    shape = tuple(shape)
    batched = bool(shape) and shape[0] is None
    fixed = shape[1:] if batched else shape
    dims = _shape_arg(fixed, "broadcast_to") if fixed else []
    if batched and not x.batched:
        raise NotImplementedError("broadcast_to a batched shape from a fixed tensor is not supported by rustkeras")
    return S.wrap(_g().broadcast_to(x.node, dims, batched), x.dtype)


@op
def concatenate(xs, axis=0):
    ts = [S.t(v) for v in xs]
    if not ts:
        raise ValueError("concatenate: needs at least one tensor")
    a = _axis(axis, ts[0].ndim)
    _check_batch_axis(ts[0], a, "concatenate")
    if len(ts) == 1:
        return ts[0]
    return S.wrap(_g().concat([t.node for t in ts], a), S.result_dtype(*ts))


@op
def stack(xs, axis=0):
    ts = [S.t(v) for v in xs]
    if not ts:
        raise ValueError("stack: needs at least one tensor")
    a = _axis(axis, ts[0].ndim + 1)
    return concatenate([expand_dims(t, a) for t in ts], axis=a)


@op
def unstack(x, num=None, axis=0):
    x = S.t(x)
    a = _axis(axis, x.ndim)
    _check_batch_axis(x, a, "unstack")
    return [squeeze(_slice_axis(x, a, i, 1), axis=a) for i in range(x.shape[a])]


@op
def split(x, indices_or_sections, axis=0):
    x = S.t(x)
    a = _axis(axis, x.ndim)
    _check_batch_axis(x, a, "split")
    n = x.shape[a]
    if S.is_int(indices_or_sections):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError(f"split: the number of sections must be positive, received {k}")
        if n % k:
            raise ValueError(f"split: axis {a} of size {n} does not divide into {k} equal sections")
        cuts = [n // k * i for i in range(1, k)]
    else:
        if not isinstance(indices_or_sections, (list, tuple)) or not builtins.all(
                S.is_int(c) for c in indices_or_sections):
            raise TypeError(f"split: `indices_or_sections` must be an int or a list of ints, received "
                            f"{indices_or_sections!r}")
        cuts = [int(c) + n if c < 0 else int(c) for c in indices_or_sections]
        if builtins.any(not lo < hi for lo, hi in zip([0] + cuts, cuts + [n])):
            raise ValueError(f"split: the indices {list(indices_or_sections)} must increase strictly within axis {a} "
                             f"of size {n} (rustkeras has no empty sections)")
    bounds = [0] + cuts + [n]
    return [_slice_axis(x, a, s, e - s) for s, e in zip(bounds[:-1], bounds[1:])]


def _slice_axis(x: SymbolicTensor, axis: int, start: int, length: int) -> SymbolicTensor:
    if start == 0 and length == x.shape[axis]:
        return x
    return S.wrap(_g().slice_axis(x.node, axis, int(start), int(length)), x.dtype)


@op
def repeat(x, repeats, axis=None):
    x = S.t(x)
    if axis is None:
        x = flatten_all(x)
        axis = 0
    a = _axis(axis, x.ndim)
    _check_batch_axis(x, a, "repeat")
    r = _positive_count("repeat", "repeats", repeats)
    y = expand_dims(x, a + 1)
    target = list(y.shape)
    target[a + 1] = r
    y = broadcast_to(y, tuple(target))
    new = list(x.shape)
    new[a] = new[a] * r
    return reshape(y, tuple(-1 if d is None else d for d in new))


@op
def tile(x, repeats):
    x = S.t(x)
    if S.is_int(repeats):
        repeats = [repeats]
    if not isinstance(repeats, (list, tuple)):
        raise TypeError(f"tile: `repeats` must be an int or a list of ints, received {repeats!r}")
    reps = [_positive_count("tile", "repeats", r) for r in repeats]
    if len(reps) < x.ndim:
        reps = [1] * (x.ndim - len(reps)) + reps
    if len(reps) > x.ndim:
        for _ in range(len(reps) - x.ndim):
            x = expand_dims(x, 0)
    for a, r in enumerate(reps):
        if r == 1:
            continue
        _check_batch_axis(x, a, "tile")
        x = concatenate([x] * r, axis=a)
    return x


@op
def slice(inputs, start_indices, shape):
    x = S.t(inputs)
    if len(start_indices) != x.ndim or len(shape) != x.ndim:
        raise ValueError(f"slice: `start_indices` {tuple(start_indices)} and `shape` {tuple(shape)} must have one "
                         f"entry per axis of the input of shape {x.shape}")
    for a, (s, n) in enumerate(zip(start_indices, shape)):
        if not S.is_int(s) or not (n in (None, -1) or S.is_int(n)):
            raise TypeError(f"slice: `start_indices` and `shape` must hold integers, received {tuple(start_indices)} "
                            f"and {tuple(shape)}")
        if s < 0 or not (n in (None, -1) or n > 0):
            raise ValueError(f"slice: `start_indices` must be non-negative and `shape` positive (or -1), received "
                             f"{tuple(start_indices)} and {tuple(shape)}")
        if x.batched and a == 0:
            if int(s) != 0 or n not in (None, -1):
                raise NotImplementedError("slice: slicing the batch axis is not supported by rustkeras")
            continue
        n = x.shape[a] - int(s) if n in (None, -1) else int(n)
        x = _slice_axis(x, a, int(s), n)
    return x


def _getitem(x, key):
    """`x[key]` for ints, slices (any step > 0 is a take), None and Ellipsis."""
    return _getitem_op(x, key)


@op
def _getitem_op(x, key):
    x = S.t(x)
    if not isinstance(key, tuple):
        key = (key,)
    if builtins.any(isinstance(k, (SymbolicTensor, Variable, np.ndarray, list)) for k in key):
        if len(key) == 1:
            return take(x, key[0], axis=0)
        raise NotImplementedError("indexing with tensors or lists beside other indices is not supported; use ops.take")
    n_real = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if builtins.sum(1 for k in key if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    expanded = []
    for k in key:
        if k is Ellipsis:
            expanded += [builtins.slice(None)] * (x.ndim - n_real)
        else:
            expanded.append(k)
    expanded += [builtins.slice(None)] * (x.ndim - builtins.sum(1 for k in expanded if k is not None))
    axis = 0
    squeeze_axes, new_axes = [], []
    out_axis = 0
    for k in expanded:
        if k is None:
            new_axes.append(out_axis)
            out_axis += 1
            continue
        size_ = x.shape[axis]
        if isinstance(k, (int, np.integer)):
            if x.batched and axis == 0:
                raise NotImplementedError("indexing the batch axis of a symbolic tensor is not supported by rustkeras")
            i = int(k)
            if not -size_ <= i < size_:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {size_}")
            x = _slice_axis(x, axis, i % size_, 1)
            squeeze_axes.append(axis)
        elif isinstance(k, builtins.slice):
            if x.batched and axis == 0:
                if k != builtins.slice(None):
                    raise NotImplementedError("slicing the batch axis of a symbolic tensor is not supported by rustkeras")
            else:
                start, stop, step = k.indices(size_)
                if step == 1:
                    if stop <= start:
                        raise ValueError(f"slice {k} of axis {axis} (size {size_}) is empty; rustkeras has no "
                                         "zero-size tensors")
                    x = _slice_axis(x, axis, start, stop - start)
                else:
                    idx = list(range(start, stop, step))
                    if not idx:
                        raise ValueError(f"slice {k} of axis {axis} (size {size_}) is empty")
                    x = take(x, np.array(idx, dtype=np.int32), axis=axis)
            out_axis += 1
        else:
            raise TypeError(f"unsupported index {k!r}")
        axis += 1
    if squeeze_axes:
        x = squeeze(x, axis=squeeze_axes)
    for a in new_axes:
        x = expand_dims(x, a)
    return x


# -- networks -----------------------------------------------------------------------------


@op
def average(x, axis=None, weights=None):
    if weights is None:
        return mean(x, axis=axis)
    x, w = S.t(x), S.t(weights)
    if w.ndim == 1 and axis is not None and x.ndim > 1:
        shape_ = [1] * x.ndim
        shape_[_axis(axis, x.ndim)] = w.shape[0]
        w = reshape(w, tuple(shape_))
    return divide(sum(multiply(x, w), axis=axis), sum(multiply(ones_like(x), w), axis=axis))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Per-sample categorical crossentropy (Keras 3's `ops.categorical_crossentropy`)."""
    from rustkeras import losses

    return losses.categorical_crossentropy_ext(target, output, from_logits=from_logits, axis=axis)


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Per-sample sparse categorical crossentropy (integer targets)."""
    from rustkeras import losses

    return losses.sparse_categorical_crossentropy_ext(target, output, from_logits=from_logits, axis=axis)


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise binary crossentropy (Keras 3's `ops.binary_crossentropy`: not averaged)."""
    from rustkeras import backend

    return backend.binary_crossentropy(target, output, from_logits=from_logits)


@op
def ravel(x):
    """Every value in one axis (a batched tensor keeps its batch axis: Keras would merge it,
    which rustkeras cannot while the batch size is unknown)."""
    x = S.t(x)
    if x.batched:
        raise NotImplementedError(
            f"ravel of a batched tensor of shape {x.shape} would merge the batch axis; use "
            "ops.reshape(x, (-1, n)) to flatten each sample.")
    return flatten_all(x)


@op
def dropout(x, rate, noise_shape=None, seed=None):
    raise NotImplementedError("ops.dropout is not supported by rustkeras; use the Dropout layer.")


__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "builtins", "math", "string", "np", "S", "op", "List",
    "SymbolicTensor", "Variable", "flatten_all")]
