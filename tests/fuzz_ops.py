"""Hypothesis strategies for the `ops` and `backend` fuzz test (tests/test_fuzz.py): a random
function of either module on random operands (shapes of rank 0-4 with dims 1-4, sometimes a
zero dim; float32, float64, int32 and bool; NaN and infinities; lists) and arguments, with the
numpy function that gives the expected result where there is an obvious one.
"""

import warnings

import numpy as np
from hypothesis import strategies as st

import _fuzz_worker
from fuzz_models import WILD_INT, is_count, maybe


def often(draw, valid, wild):
    """As fuzz_models.maybe, with a wild value one time in 4: an op call is cheap, and most of
    an op's arguments are what the cases vary."""
    return maybe(draw, valid, wild, one_in=4)


@st.composite
def array_arg(draw, shape=None, kind=None):
    """(data description, the array) for an op operand."""
    if shape is None:
        shape = draw(st.lists(st.integers(1, 4), min_size=0, max_size=4))
        if draw(st.integers(0, 19)) == 0:
            shape = shape + [0]
    kind = kind or draw(st.sampled_from(["float32"] * 6 + ["int32", "bool", "float64"]))
    d = {"shape": list(shape), "seed": draw(st.integers(0, 2**16)), "dtype": kind}
    if kind in ("int32", "int64"):
        d["fill"] = "int:-4:5"
    else:
        d["fill"] = often(draw, st.sampled_from(["normal", "normal", "uniform"]), ["nan", "inf", "zeros"])
    if draw(st.integers(0, 11)) == 0:
        d["form"] = draw(st.sampled_from(["list", "fortran", "strided"]))
    desc = {"$array": d}
    value = np.asarray(_fuzz_worker.make_array(d))
    # The engine computes in float32 (its documented design): so does the reference.
    return desc, value.astype(np.float32) if value.dtype.kind == "f" else value


def axis_arg(draw, ndim, multi=True, none=True):
    options = [st.integers(-max(ndim, 1), max(ndim - 1, 0))]
    if none:
        options.append(st.none())
    if multi and ndim >= 2:
        options.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(
            lambda a: {"$tuple": a}))
    return often(draw, st.one_of(options), [ndim, -ndim - 1, 2.5, "0", [0, 0], {"$tuple": [0, 0]}])


def np_args(v):
    """A decoded argument for numpy (tuples for `$tuple`)."""
    return _fuzz_worker.decode(v)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


UNARY = {
    "abs": np.abs, "negative": np.negative, "square": np.square, "sqrt": np.sqrt, "exp": np.exp, "log": np.log,
    "log1p": np.log1p, "expm1": np.expm1, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "arctan": np.arctan, "tanh": np.tanh, "reciprocal": lambda x: 1.0 / x,
    "sign": np.sign, "log2": np.log2, "log10": np.log10, "isnan": np.isnan, "isinf": np.isinf,
    "isfinite": np.isfinite, "logical_not": np.logical_not, "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _sigmoid, "softplus": lambda x: np.logaddexp(0, x), "softsign": lambda x: x / (1 + np.abs(x)),
    "silu": lambda x: x * _sigmoid(x), "relu6": lambda x: np.clip(x, 0, 6), "ravel": np.ravel,
    "rsqrt": lambda x: 1.0 / np.sqrt(x), "round": np.round,
}
BINARY = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.true_divide,
    "true_divide": np.true_divide, "maximum": np.maximum, "minimum": np.minimum, "power": np.power,
    "mod": np.mod, "floor_divide": np.floor_divide, "equal": np.equal, "not_equal": np.not_equal,
    "greater": np.greater, "greater_equal": np.greater_equal, "less": np.less, "less_equal": np.less_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
}
REDUCTIONS = {
    "sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod, "var": np.var, "std": np.std,
    "all": np.all, "any": np.any, "amax": np.max, "amin": np.min,
    "logsumexp": lambda x, axis=None, keepdims=False: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims)),
}


def _shape_of(a):
    return list(np.shape(a))


def broadcastable_shape(draw, shape):
    """A shape that broadcasts with `shape` (usually), for a second operand."""
    how = draw(st.integers(0, 5))
    if how == 0:
        return shape
    if how == 1:
        return shape[draw(st.integers(0, len(shape))):]
    if how == 2:
        return [1 if draw(st.booleans()) else d for d in shape]
    if how == 3:
        return []
    return draw(st.lists(st.integers(1, 4), min_size=0, max_size=4))


def _unary_case(draw):
    """An elementwise function of one array."""
    name = draw(st.sampled_from(sorted(UNARY)))
    xd, x = draw(array_arg())
    return "ops", name, [xd], {}, lambda: UNARY[name](x)


def _binary_case(draw):
    """An elementwise function of two operands (arrays or numbers) that broadcast (usually)."""
    name = draw(st.sampled_from(sorted(BINARY)))
    xd, x = draw(array_arg())
    if draw(st.integers(0, 5)) == 0:
        scalar = draw(st.sampled_from([2, -1, 0.5, 0, True, float("nan")]))
        args = [xd, scalar] if draw(st.booleans()) else [scalar, xd]
        vals = [x, scalar] if args[0] is xd else [scalar, x]
    else:
        yd, y = draw(array_arg(shape=broadcastable_shape(draw, _shape_of(x))))
        args, vals = [xd, yd], [x, y]
    return "ops", name, args, {}, lambda: BINARY[name](*vals)


def _reduce_case(draw):
    """A reduction over random axes."""
    name = draw(st.sampled_from(sorted(REDUCTIONS)))
    xd, x = draw(array_arg())
    axis = axis_arg(draw, np.ndim(x))
    kwargs = {"axis": axis}
    if draw(st.booleans()):
        kwargs["keepdims"] = often(draw, st.booleans(), ["yes", 2])
    return "ops", name, [xd], kwargs, lambda: REDUCTIONS[name](x, **np_args(kwargs))


def _axis_case(draw):
    """A function along one axis (arg-reductions, cumulative, softmax, splits, gathers, one_hot)."""
    name = draw(st.sampled_from(["argmax", "argmin", "cumsum", "cumprod", "softmax", "log_softmax",
                                 "expand_dims", "squeeze", "sort_free_top_k", "unstack", "split",
                                 "repeat", "take", "take_along_axis", "one_hot"]))
    xd, x = draw(array_arg())
    nd = np.ndim(x)
    if name in ("argmax", "argmin"):
        axis = axis_arg(draw, nd, multi=False)
        return "ops", name, [xd], {"axis": axis}, lambda: getattr(np, name)(x, axis=axis)
    if name in ("cumsum", "cumprod"):
        axis = axis_arg(draw, nd, multi=False)
        return "ops", name, [xd], {"axis": axis}, lambda: getattr(np, name)(x, axis=axis)
    if name in ("softmax", "log_softmax"):
        axis = axis_arg(draw, nd, multi=False, none=False)
        ref = (lambda: _softmax(x, axis)) if name == "softmax" else (lambda: np.log(_softmax(x, axis)))
        return "ops", name, [xd], {"axis": axis}, ref
    if name == "expand_dims":
        axis = often(draw, st.integers(-nd - 1, nd), [nd + 2, None, 1.5])
        return "ops", name, [xd], {"axis": axis}, lambda: np.expand_dims(x, axis)
    if name == "squeeze":
        axis = axis_arg(draw, nd, multi=False)
        return "ops", name, [xd], {"axis": axis}, lambda: np.squeeze(x, axis=axis)
    if name == "sort_free_top_k":
        k = often(draw, st.integers(1, 4), WILD_INT)
        return "ops", "top_k", [xd], {"k": k}, None
    if name == "unstack":
        axis = axis_arg(draw, nd, multi=False, none=False)
        return "ops", name, [xd], {"axis": axis}, lambda: list(np.moveaxis(x, axis, 0))
    if name == "split":
        axis = axis_arg(draw, nd, multi=False, none=False)
        n = often(draw, st.integers(1, 4), WILD_INT)
        return "ops", name, [xd, n], {"axis": axis}, lambda: np.split(x, n, axis=axis)
    if name == "repeat":
        axis = axis_arg(draw, nd, multi=False)
        reps = often(draw, st.integers(1, 3), WILD_INT)
        return "ops", name, [xd, reps], {"axis": axis}, lambda: np.repeat(x, reps, axis=axis)
    if name == "take":
        axis = axis_arg(draw, nd, multi=False)
        size = max(1, x.shape[axis] if isinstance(axis, int) and -nd <= axis < nd and nd else x.size)
        idd = {"shape": draw(st.lists(st.integers(1, 3), max_size=2)), "seed": draw(st.integers(0, 99)),
               "dtype": "int32", "fill": often(draw, st.just(f"int:0:{size}"), [f"int:-{size}:{size}",
                                                                             f"int:0:{size + 3}", "normal"])}
        idx = _fuzz_worker.make_array(idd)
        return "ops", name, [xd, {"$array": idd}], {"axis": axis}, lambda: np.take(x, idx, axis=axis)
    if name == "take_along_axis":
        axis = axis_arg(draw, nd, multi=False, none=False)
        if not (isinstance(axis, int) and nd and -nd <= axis < nd):
            return "ops", name, [xd, xd], {"axis": axis}, None
        shape = list(x.shape)
        shape[axis] = draw(st.integers(1, 3))
        idd = {"shape": shape, "seed": draw(st.integers(0, 99)), "dtype": "int32",
               "fill": often(draw, st.just(f"int:0:{x.shape[axis]}"), [f"int:0:{x.shape[axis] + 2}"])}
        idx = _fuzz_worker.make_array(idd)
        return "ops", name, [xd, {"$array": idd}], {"axis": axis}, lambda: np.take_along_axis(x, idx, axis)
    k = often(draw, st.integers(1, 5), WILD_INT)
    idd = {"shape": draw(st.lists(st.integers(1, 3), max_size=3)), "seed": draw(st.integers(0, 99)),
           "dtype": "int32", "fill": often(draw, st.just("int:0:5"), ["int:-2:5", "normal"])}
    idx = _fuzz_worker.make_array(idd)

    def one_hot():
        if not is_count(k) or idx.dtype.kind not in "iu":
            raise ValueError("not a one-hot case")
        return (idx[..., None] == np.arange(k)).astype(np.float32)
    return "ops", "one_hot", [{"$array": idd}, k], {}, one_hot


def _shape_case(draw):
    """A reshaping, transposing, broadcasting, joining, clipping, selecting or casting function."""
    name = draw(st.sampled_from(["reshape", "transpose", "swapaxes", "moveaxis", "broadcast_to", "tile",
                                 "concatenate", "stack", "clip", "where", "cast"]))
    xd, x = draw(array_arg())
    nd = np.ndim(x)
    if name == "reshape":
        total = x.size
        dims = []
        rest = total
        for _ in range(draw(st.integers(0, 2))):
            divs = [d for d in range(1, rest + 1) if rest % d == 0] or [1]
            dims.append(draw(st.sampled_from(divs)))
            rest //= max(dims[-1], 1)
        dims.append(rest)
        if draw(st.integers(0, 3)) == 0:
            dims[draw(st.integers(0, len(dims) - 1))] = -1
        dims = often(draw, st.just(dims), [[total + 1], [-1, -1], [0], 2.5])
        return "ops", name, [xd, {"$tuple": dims} if isinstance(dims, list) else dims], {}, \
            lambda: np.reshape(x, dims)
    if name == "transpose":
        axes = often(draw, st.permutations(list(range(nd))).map(list), [None, [0] * max(nd, 1), [nd]])
        return "ops", name, [xd], {"axes": axes}, lambda: np.transpose(x, axes)
    if name in ("swapaxes", "moveaxis"):
        a, b = axis_arg(draw, nd, multi=False, none=False), axis_arg(draw, nd, multi=False, none=False)
        return "ops", name, [xd, a, b], {}, lambda: getattr(np, name)(x, a, b)
    if name == "broadcast_to":
        target = draw(st.lists(st.integers(1, 3), max_size=2)) + [d if draw(st.integers(0, 4)) else 3
                                                                    for d in x.shape]
        return "ops", name, [xd, {"$tuple": target}], {}, lambda: np.broadcast_to(x, target)
    if name == "tile":
        reps = draw(st.lists(st.integers(1, 3), min_size=1, max_size=max(nd, 1)))
        reps = often(draw, st.just(reps), [[0], [-1], 2.5])
        return "ops", name, [xd, reps], {}, lambda: np.tile(x, reps)
    if name in ("concatenate", "stack"):
        axis = axis_arg(draw, nd + (name == "stack"), multi=False, none=False)
        others = []
        vals = [x]
        for _ in range(draw(st.integers(0, 2))):
            shape = list(x.shape)
            if name == "concatenate" and isinstance(axis, int) and shape and -nd <= axis < nd and \
                    draw(st.booleans()):
                shape[axis] = draw(st.integers(1, 3))
            if draw(st.integers(0, 7)) == 0:
                shape = shape + [2]
            od, o = draw(array_arg(shape=shape, kind=str(x.dtype) if x.dtype != np.float64 else "float32"))
            others.append(od)
            vals.append(o)
        return "ops", name, [[xd] + others], {"axis": axis}, lambda: getattr(np, name)(vals, axis=axis)
    if name == "clip":
        lo = draw(st.sampled_from([-1.0, 0.0, 0.5]))
        hi = draw(st.sampled_from([0.5, 1.0, -2.0]))
        # Keras 3 keeps the input's dtype (int32 for booleans).
        return "ops", name, [xd, lo, hi], {}, lambda: np.minimum(np.maximum(x, lo), hi).astype(
            np.int32 if x.dtype.kind in "biu" else x.dtype)
    if name == "where":
        cd, c = draw(array_arg(shape=broadcastable_shape(draw, list(x.shape)), kind="bool"))
        yd, y = draw(array_arg(shape=broadcastable_shape(draw, list(x.shape))))
        return "ops", name, [cd, xd, yd], {}, lambda: np.where(c, x, y)
    dtype = often(draw, st.sampled_from(["float32", "int32", "bool", "float64", "int64", "uint8"]),
                  ["complex64", "str", 3, None])
    return "ops", name, [xd, dtype], {}, lambda: _cast_reference(x, dtype)


def _linalg_case(draw):
    """A product of two arrays (matmul, dot, tensordot, outer, einsum)."""
    name = draw(st.sampled_from(["matmul", "dot", "tensordot", "outer", "einsum"]))
    a = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    if name in ("matmul", "dot"):
        b = [a[-1]] + draw(st.lists(st.integers(1, 4), max_size=1)) if draw(st.integers(0, 5)) else \
            draw(st.lists(st.integers(1, 4), min_size=0, max_size=3))
        if name == "matmul" and len(a) == 3 and len(b) >= 2 and draw(st.booleans()):
            b = [a[0]] + [a[-1]] + b[1:2]
    else:
        b = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    xd, x = draw(array_arg(shape=a, kind="float32"))
    yd, y = draw(array_arg(shape=b, kind="float32"))
    if name == "tensordot":
        axes = draw(st.integers(0, 2))
        return "ops", name, [xd, yd], {"axes": axes}, lambda: np.tensordot(x, y, axes)
    if name == "einsum":
        letters = "abcd"
        sa, sb = letters[:len(a)], letters[len(a) - 1:len(a) - 1 + len(b)]
        out = "".join(sorted(set(sa) ^ set(sb)))
        expr = f"{sa},{sb}->{out}"
        return "ops", name, [expr, xd, yd], {}, lambda: np.einsum(expr, x, y)
    return "ops", name, [xd, yd], {}, lambda: getattr(np, name)(x, y)


def _create_case(draw):
    """An array from a shape and values (zeros, full, eye, arange, linspace)."""
    name = draw(st.sampled_from(["zeros", "ones", "full", "eye", "arange", "linspace", "identity"]))
    if name in ("zeros", "ones", "full"):
        shape = often(draw, st.lists(st.integers(1, 4), max_size=3), [[0], [-1], 10**13, [2.5], "3", None])
        args = [{"$tuple": shape} if isinstance(shape, list) else shape]
        if name == "full":
            fill = draw(st.sampled_from([1.5, -2, True, float("nan")]))
            args.append(fill)
            return "ops", name, args, {}, lambda: np.full(shape, fill, dtype=np.float32)
        return "ops", name, args, {}, lambda: getattr(np, name)(shape)
    if name in ("eye", "identity"):
        n = often(draw, st.integers(1, 5), WILD_INT)
        return "ops", name, [n], {}, lambda: np.eye(n)
    if name == "arange":
        start = draw(st.sampled_from([0, 1, -2, 0.5]))
        stop = draw(st.sampled_from([3, 5, 0, 2.5, None]))
        step = often(draw, st.sampled_from([1, 2, 0.5]), [0, -1, float("nan")])
        args = [start] if stop is None else [start, stop, step]
        return "ops", name, args, {}, lambda: np.arange(*args)
    num = often(draw, st.integers(1, 6), WILD_INT)
    return "ops", name, [0.0, 1.0, num], {}, lambda: np.linspace(0.0, 1.0, num)


def _backend_case(draw):
    """A function of the backend module, with Keras 1/2's argument orders."""
    name = draw(st.sampled_from(["sum", "mean", "max", "min", "prod", "std", "var", "argmax", "argmin", "dot",
                                 "permute_dimensions", "transpose", "batch_flatten", "flatten", "repeat",
                                 "repeat_elements", "gather", "one_hot", "expand_dims", "squeeze", "concatenate",
                                 "pow", "clip", "softmax", "int_shape", "ndim", "l2_free_abs", "batch_dot",
                                 "square", "sqrt", "relu", "hard_sigmoid", "stack", "tile", "cast"]))
    xd, x = draw(array_arg(kind=draw(st.sampled_from(["float32", "float32", "int32"]))))
    nd = np.ndim(x)
    if name in ("sum", "mean", "max", "min", "prod", "std", "var"):
        axis = axis_arg(draw, nd)
        ref = REDUCTIONS[name]
        return "backend", name, [xd], {"axis": axis}, lambda: ref(x, axis=np_args(axis))
    if name in ("argmax", "argmin"):
        axis = axis_arg(draw, nd, multi=False, none=False)
        return "backend", name, [xd], {"axis": axis}, lambda: getattr(np, name)(x, axis=axis)
    if name == "dot":
        yd, y = draw(array_arg(shape=[x.shape[-1] if nd else 1] + draw(st.lists(st.integers(1, 3), max_size=1))
                               if draw(st.integers(0, 4)) else None))
        return "backend", name, [xd, yd], {}, lambda: np.dot(x, y)
    if name == "batch_dot":
        yd, y = draw(array_arg(shape=list(x.shape) if draw(st.integers(0, 3)) else None))
        return "backend", name, [xd, yd], {}, None
    if name in ("permute_dimensions", "transpose"):
        pattern = often(draw, st.permutations(list(range(nd))).map(list), [[0] * max(nd, 1), [nd]])
        if name == "transpose":
            return "backend", name, [xd], {}, lambda: np.transpose(x)
        return "backend", name, [xd, pattern], {}, lambda: np.transpose(x, pattern)
    if name == "batch_flatten":
        return "backend", name, [xd], {}, lambda: x.reshape(x.shape[0], -1) if nd else _raise("a scalar")
    if name == "flatten":
        return "backend", name, [xd], {}, lambda: x.ravel()
    if name == "repeat":
        n = often(draw, st.integers(1, 3), WILD_INT)
        return "backend", name, [xd, n], {}, lambda: (np.repeat(x[:, None, :], n, axis=1) if nd == 2
                                                        else _raise("repeat needs a 2D input"))
    if name == "repeat_elements":
        rep = often(draw, st.integers(1, 3), WILD_INT)
        axis = axis_arg(draw, nd, multi=False, none=False)
        return "backend", name, [xd, rep, axis], {}, lambda: np.repeat(x, rep, axis=axis)
    if name == "gather":
        size = max(1, x.shape[0] if nd else 1)
        idd = {"shape": draw(st.lists(st.integers(1, 3), max_size=2)), "seed": draw(st.integers(0, 99)),
               "dtype": "int32", "fill": often(draw, st.just(f"int:0:{size}"), [f"int:0:{size + 2}"])}
        idx = _fuzz_worker.make_array(idd)
        return "backend", name, [xd, {"$array": idd}], {}, lambda: np.take(x, idx, axis=0)
    if name == "one_hot":
        k = often(draw, st.integers(1, 5), WILD_INT)
        idd = {"shape": draw(st.lists(st.integers(1, 3), max_size=2)), "seed": draw(st.integers(0, 99)),
               "dtype": "int32", "fill": "int:0:5"}
        idx = _fuzz_worker.make_array(idd)
        return "backend", name, [{"$array": idd}, k], {}, \
            lambda: (idx[..., None] == np.arange(k)).astype(np.float32) if is_count(k) else _raise("bad k")
    if name == "expand_dims":
        axis = often(draw, st.integers(-nd - 1, nd), [nd + 2, None])
        return "backend", name, [xd, axis], {}, lambda: np.expand_dims(x, axis)
    if name == "squeeze":
        axis = axis_arg(draw, nd, multi=False, none=False)
        return "backend", name, [xd, axis], {}, lambda: np.squeeze(x, axis)
    if name in ("concatenate", "stack"):
        axis = axis_arg(draw, nd + (name == "stack"), multi=False, none=False)
        yd, y = draw(array_arg(shape=list(x.shape) if draw(st.integers(0, 4)) else None, kind=str(x.dtype)))
        return "backend", name, [[xd, yd]], {"axis": axis}, lambda: getattr(np, name)([x, y], axis=axis)
    if name == "pow":
        a = draw(st.sampled_from([2, 0.5, -1, 3]))
        return "backend", name, [xd, a], {}, lambda: np.power(x.astype(np.float64), a)
    if name == "clip":
        lo, hi = draw(st.sampled_from([(-1.0, 1.0), (0.0, 0.5), (1.0, -1.0), (None, 1.0)]))
        # Keras 2's K.clip: a max below the min is raised to the min; None is no bound.
        low = -np.inf if lo is None else lo
        return "backend", name, [xd, lo, hi], {}, lambda: np.clip(x, low, max(hi, low)).astype(
            np.int32 if x.dtype.kind in "biu" else x.dtype)
    if name == "softmax":
        axis = axis_arg(draw, nd, multi=False, none=False)
        return "backend", name, [xd], {"axis": axis}, lambda: _softmax(x, axis)
    if name in ("int_shape", "ndim"):
        return "backend", name, [xd], {}, None
    if name == "l2_free_abs":
        return "backend", "abs", [xd], {}, lambda: np.abs(x)
    if name in ("square", "sqrt"):
        return "backend", name, [xd], {}, lambda: getattr(np, name)(x)
    if name == "relu":
        return "backend", name, [xd], {}, lambda: np.maximum(x, 0)
    if name == "hard_sigmoid":
        return "backend", name, [xd], {}, None
    if name == "tile":
        n = draw(st.lists(st.integers(1, 3), min_size=max(nd, 1), max_size=max(nd, 1)))
        return "backend", name, [xd, n], {}, lambda: np.tile(x, n)
    dtype = often(draw, st.sampled_from(["float32", "int32", "bool"]), ["complex64", 3])
    return "backend", "cast", [xd, dtype], {}, lambda: _cast_reference(x, dtype)


FAMILIES = {"unary": _unary_case, "binary": _binary_case, "reduce": _reduce_case, "axis": _axis_case,
            "shape": _shape_case, "linalg": _linalg_case, "create": _create_case, "backend": _backend_case}


@st.composite
def op_case(draw):
    """A call of an `ops` or `backend` function: (module, name, args, kwargs, a function giving
    numpy's result, or None where there is no obvious reference)."""
    return FAMILIES[draw(st.sampled_from(sorted(FAMILIES)))](draw)

def _raise(msg):
    raise ValueError(msg)


def _cast_reference(x, dtype):
    """rustkeras holds every integer as int32 (its documented design): a cast to another integer
    type gives int32 values."""
    if not isinstance(dtype, str) or dtype in ("complex64", "str"):
        raise TypeError(f"no cast to {dtype!r}")
    return x.astype(np.int32 if np.dtype(dtype).kind in "iu" else dtype)


def numpy_reference(reference):
    """numpy's result, the exception numpy raises (a bad-input case), or None where the result is
    undefined: an integer division by zero, which every backend answers differently."""
    try:
        with np.errstate(divide="raise", invalid="raise"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = reference()
        return result
    except FloatingPointError:
        pass
    except Exception as e:  # noqa: BLE001 - any numpy refusal makes the case a bad-input case
        return e
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = reference()
        except Exception as e:  # noqa: BLE001
            return e
    values = result if isinstance(result, (list, tuple)) else [result]
    return None if any(np.asarray(v).dtype.kind in "biu" for v in values) else result


def kind_of(dtype: np.dtype) -> str:
    """The kind of a dtype: "i" for every integer, "b", "f"."""
    return {"u": "i", "i": "i", "b": "b", "f": "f"}.get(dtype.kind, dtype.kind)
