"""Hypothesis strategies for the fuzz tests (tests/test_fuzz.py): descriptions of models (layer
stacks and functional graphs with random, sometimes invalid, arguments), of data for them and
of compile/fit/evaluate arguments.

A description is plain JSON (see tests/_fuzz_worker.py, which builds it in rustkeras and in
Keras): a layer is `{"cls", "args"[, "wrap"]}`, data `{"$array": {"shape", "dtype", "fill",
"seed"[, "form"]}}`. Most drawn values are valid; one time in 16 an argument is a wild one
(zero, negative, huge, float, string, NaN, ...). The strategies track the shape flowing
through a stack so that most stacks are valid, and shrink towards valid arguments.
"""

import json

import numpy as np
from hypothesis import strategies as st

# -- arguments ----------------------------------------------------------------------------

WILD_INT = [0, -1, -7, 2.5, "3", None, True, 10**13, 2**64, [], [2, 2, 2, 2], float("nan")]
WILD_FLOAT = [-0.5, 1.0, 1.5, float("nan"), float("inf"), "0.1", None, [], True, -1e30]
WILD_STR = ["", "relux", "VALID", 3, None, ["relu"], "channels_middle", "full"]
ACTIVATIONS = ["relu", "sigmoid", "tanh", "softmax", "linear", "elu", "selu", "softplus", "softsign", "swish",
               "gelu", "hard_sigmoid", "relu6", "leaky_relu", "silu", None]


def maybe(draw, valid, wild, one_in=16):
    """Mostly a value from `valid`, one time in `one_in` one of `wild` (shrinks towards valid)."""
    if draw(st.integers(0, one_in - 1)) == one_in - 1:
        return draw(st.sampled_from(wild))
    return draw(valid)


def is_count(v, hi=10**6) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= hi


def tuple_arg(draw, values, wild=WILD_INT):
    """An int, or one int per axis from `values` (a list of strategies), sometimes wild.
    Returns (argument, per-axis ints or None if invalid)."""
    if draw(st.integers(0, 15)) == 15:
        return draw(st.sampled_from(wild)), None
    per_axis = [draw(v) for v in values]
    if len(set(per_axis)) == 1 and draw(st.booleans()):
        return per_axis[0], per_axis
    return per_axis, per_axis


def layer(cls, **args):
    return {"cls": cls, "args": args}


# A shape is a tuple of per-sample dims; None means "not known" (an invalid argument came in).


def conv_out(n, k, s, d, padding):
    if padding in ("same", "causal"):
        return -(-n // s)
    return (n - d * (k - 1) - 1) // s + 1


def split_channels(shape, data_format):
    if data_format == "channels_first":
        return shape[1:], shape[0]
    return shape[:-1], shape[-1]


def join_channels(spatial, ch, data_format):
    return (ch,) + tuple(spatial) if data_format == "channels_first" else tuple(spatial) + (ch,)


def data_format_arg(draw, args):
    fmt = maybe(draw, st.sampled_from(["channels_last"] * 4 + ["channels_first"]), WILD_STR)
    if fmt != "channels_last" or draw(st.booleans()):
        args["data_format"] = fmt
    return fmt if fmt in ("channels_last", "channels_first") else None


def draw_conv(draw, shape, rank, transpose=False):
    name = f"Conv{rank}D" + ("Transpose" if transpose else "")
    args = {"filters": maybe(draw, st.integers(1, 4), WILD_INT)}
    fmt = data_format_arg(draw, args)
    spatial, ch = split_channels(shape, fmt or "channels_last")
    kernel, ks = tuple_arg(draw, [st.integers(1, max(1, min(n, 3))) for n in spatial])
    args["kernel_size"] = kernel
    padding = maybe(draw, st.sampled_from(["valid", "same"] + (["causal"] if rank == 1 and not transpose else [])),
                    WILD_STR)
    if padding != "valid" or draw(st.booleans()):
        args["padding"] = padding
    strides, ss = [1] * rank, [1] * rank
    dil = [1] * rank
    if draw(st.integers(0, 3)) == 0:
        strides, ss = tuple_arg(draw, [st.integers(1, 2)] * rank)
        args["strides"] = strides
    elif draw(st.integers(0, 4)) == 0:
        d, dil = tuple_arg(draw, [st.integers(1, 2)] * rank)
        args["dilation_rate"] = d
    if draw(st.booleans()):
        args["activation"] = maybe(draw, st.sampled_from(ACTIVATIONS), WILD_STR)
    if draw(st.integers(0, 4)) == 0:
        args["use_bias"] = False
    if fmt is None or ks is None or ss is None or dil is None or not is_count(args["filters"]) or \
            padding not in ("valid", "same", "causal"):
        return layer(name, **args), None
    if transpose:
        out = [(n - 1) * s + d * (k - 1) + 1 if padding == "valid" else n * s
               for n, k, s, d in zip(spatial, ks, ss, dil)]
    else:
        out = [conv_out(n, k, s, d, padding) for n, k, s, d in zip(spatial, ks, ss, dil)]
    return layer(name, **args), join_channels(out, args["filters"], fmt)


def draw_pool(draw, shape, rank):
    kind = draw(st.sampled_from(["Max", "Average"]))
    args = {}
    fmt = data_format_arg(draw, args)
    spatial, ch = split_channels(shape, fmt or "channels_last")
    pool, ps = tuple_arg(draw, [st.integers(1, max(1, min(n, 3))) for n in spatial])
    args["pool_size"] = pool
    ss = ps
    if draw(st.integers(0, 2)) == 0:
        strides, ss = tuple_arg(draw, [st.integers(1, 2)] * rank)
        args["strides"] = strides
    padding = maybe(draw, st.sampled_from(["valid", "same"]), WILD_STR)
    if padding != "valid" or draw(st.booleans()):
        args["padding"] = padding
    name = f"{kind}Pooling{rank}D"
    if fmt is None or ps is None or ss is None or padding not in ("valid", "same"):
        return layer(name, **args), None
    out = [conv_out(n, k, s, 1, padding) for n, k, s in zip(spatial, ps, ss)]
    return layer(name, **args), join_channels(out, ch, fmt)


def draw_global_pool(draw, shape, rank):
    args = {}
    fmt = data_format_arg(draw, args)
    keep = draw(st.booleans())
    if keep:
        args["keepdims"] = True
    name = f"Global{draw(st.sampled_from(['Max', 'Average']))}Pooling{rank}D"
    if fmt is None:
        return layer(name, **args), None
    spatial, ch = split_channels(shape, fmt)
    return layer(name, **args), (join_channels([1] * rank, ch, fmt) if keep else (ch,))


def draw_padding(draw, shape, rank, crop):
    args = {}
    fmt = "channels_last"
    if rank > 1 or not crop:
        fmt = data_format_arg(draw, args) if rank > 1 else "channels_last"
    spatial, ch = split_channels(shape, fmt or "channels_last")
    if crop:
        pairs = []
        for n in spatial:
            a = draw(st.integers(0, max(0, (n - 1) // 2)))
            pairs.append((a, draw(st.integers(0, max(0, n - 1 - a)))))
    else:
        pairs = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in spatial]
    form = draw(st.integers(0, 2))
    if form == 0 and len({p for pair in pairs for p in pair}) == 1:
        amount = pairs[0][0]
    elif form == 1 and all(a == b for a, b in pairs):
        amount = [a for a, _ in pairs]
    else:
        amount = pairs[0] if rank == 1 else [list(p) for p in pairs]
    amount = maybe(draw, st.just(amount), WILD_INT + [[[1, 2, 3]], [[-1, 0]] * rank])
    args["cropping" if crop else "padding"] = amount
    name = f"{'Cropping' if crop else 'ZeroPadding'}{rank}D"
    if fmt is None or isinstance(amount, (float, str, bool)) or amount in WILD_INT or \
            amount in ([[1, 2, 3]], [[-1, 0]] * rank):
        return layer(name, **args), None
    sign = -1 if crop else 1
    out = [n + sign * (a + b) for n, (a, b) in zip(spatial, pairs)]
    return layer(name, **args), join_channels(out, ch, fmt)


def draw_upsampling(draw, shape, rank):
    args = {}
    fmt = data_format_arg(draw, args) if rank > 1 else "channels_last"
    size, sz = tuple_arg(draw, [st.integers(1, 3)] * rank)
    args["size"] = size
    name = f"UpSampling{rank}D"
    if fmt is None or sz is None:
        return layer(name, **args), None
    spatial, ch = split_channels(shape, fmt)
    return layer(name, **args), join_channels([n * s for n, s in zip(spatial, sz)], ch, fmt)


def draw_rnn(draw, shape, bidirectional=False):
    cls = draw(st.sampled_from(["SimpleRNN", "LSTM", "GRU"]))
    units = maybe(draw, st.integers(1, 4), WILD_INT)
    args = {"units": units}
    seq = draw(st.booleans())
    if seq:
        args["return_sequences"] = True
    if draw(st.integers(0, 3)) == 0:
        args["go_backwards"] = True
    if draw(st.integers(0, 3)) == 0:
        args["activation"] = maybe(draw, st.sampled_from(["tanh", "relu", "sigmoid", "linear"]), WILD_STR)
    if draw(st.integers(0, 4)) == 0:
        args["dropout"] = maybe(draw, st.sampled_from([0.0, 0.25]), WILD_FLOAT)
    if draw(st.integers(0, 4)) == 0:
        args["recurrent_dropout"] = maybe(draw, st.sampled_from([0.0, 0.25]), WILD_FLOAT)
    if draw(st.integers(0, 4)) == 0:
        args["use_bias"] = False
    if cls == "GRU" and draw(st.integers(0, 4)) == 0:
        args["reset_after"] = draw(st.booleans())
    out_units = units if is_count(units) else None
    inner = layer(cls, **args)
    if bidirectional:
        mode = maybe(draw, st.sampled_from(["concat", "sum", "mul", "ave"]), WILD_STR)
        outer = {"cls": "Bidirectional", "args": {"merge_mode": mode}, "wrap": inner}
        if out_units is not None and mode == "concat":
            out_units *= 2
        elif mode not in ("sum", "mul", "ave"):
            out_units = None
        inner = outer
    if out_units is None or len(shape) != 2:
        return inner, None
    return inner, ((shape[0], out_units) if seq else (out_units,))


def draw_reshape(draw, shape):
    total = int(np.prod(shape))
    dims = []
    rest = total
    for _ in range(draw(st.integers(0, 2))):
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = draw(st.sampled_from(divisors))
        dims.append(d)
        rest //= d
    dims.append(rest)
    target = list(dims)
    if draw(st.integers(0, 3)) == 0:
        target[draw(st.integers(0, len(target) - 1))] = -1
    target = maybe(draw, st.just(target), [[total + 1], [0], [-1, -1], [-2, total], [], 2.5, "3", [None]])
    ok = isinstance(target, list) and target == [d if t != -1 else -1 for d, t in zip(dims, target)] and \
        len(target) == len(dims)
    return layer("Reshape", target_shape=target), (tuple(dims) if ok else None)


def draw_any_rank(draw, shape):
    """A layer for an input of any rank."""
    kind = draw(st.sampled_from(["Dense", "Activation", "Dropout", "BatchNormalization", "LeakyReLU", "ELU",
                                 "PReLU", "Flatten", "Reshape", "Lambda"]
                                + (["TimeDistributed", "Masking"] if len(shape) >= 2 else [])))
    if kind == "Dense":
        units = maybe(draw, st.integers(1, 6), WILD_INT)
        args = {"units": units}
        if draw(st.booleans()):
            args["activation"] = maybe(draw, st.sampled_from(ACTIVATIONS), WILD_STR)
        if draw(st.integers(0, 3)) == 0:
            args["use_bias"] = False
        return layer("Dense", **args), (shape[:-1] + (units,) if is_count(units, 64) else None)
    if kind == "Activation":
        act = maybe(draw, st.sampled_from(ACTIVATIONS), WILD_STR)
        return layer("Activation", activation=act), (shape if act in ACTIVATIONS else None)
    if kind == "Dropout":
        rate = maybe(draw, st.sampled_from([0.0, 0.1, 0.5, 0.9]), WILD_FLOAT)
        return layer("Dropout", rate=rate), (shape if rate in (0.0, 0.1, 0.5, 0.9) else None)
    if kind == "BatchNormalization":
        args = {}
        if draw(st.integers(0, 3)) == 0:
            args["axis"] = maybe(draw, st.integers(-len(shape), len(shape)), WILD_INT)
        if draw(st.integers(0, 3)) == 0:
            args["momentum"] = maybe(draw, st.sampled_from([0.0, 0.5, 0.99]), WILD_FLOAT)
        if draw(st.integers(0, 3)) == 0:
            args["epsilon"] = maybe(draw, st.sampled_from([1e-3, 1e-5, 0.5]), WILD_FLOAT)
        for flag in ("center", "scale"):
            if draw(st.integers(0, 4)) == 0:
                args[flag] = False
        ok = args.get("axis", -1) in range(-len(shape), len(shape)) and all(
            isinstance(args.get(k, 0.5), float) and 0 <= args.get(k, 0.5) <= 1 for k in ("momentum", "epsilon"))
        return layer("BatchNormalization", **args), (shape if ok else None)
    if kind == "LeakyReLU":
        slope = maybe(draw, st.sampled_from([0.0, 0.1, 0.3, 1.0]), WILD_FLOAT)
        return layer("LeakyReLU", negative_slope=slope), shape
    if kind == "ELU":
        return layer("ELU", alpha=maybe(draw, st.sampled_from([0.5, 1.0, 2.0]), WILD_FLOAT)), shape
    if kind == "PReLU":
        return layer("PReLU"), shape
    if kind == "Flatten":
        return layer("Flatten"), (int(np.prod(shape)),)
    if kind == "Reshape":
        return draw_reshape(draw, shape)
    if kind == "Masking":
        return layer("Masking", mask_value=maybe(draw, st.sampled_from([0.0, 1.0]), WILD_FLOAT)), shape
    if kind == "Lambda":
        fn, arguments, keep = draw(st.sampled_from([
            ("abs", {}, True), ("square", {}, True), ("tanh", {}, True), ("negative", {}, True),
            ("sigmoid", {}, True), ("relu", {}, True), ("sin", {}, True), ("softmax", {"axis": -1}, True),
            ("sum", {"axis": -1}, False), ("mean", {"axis": -1, "keepdims": True}, True),
            ("max", {"axis": 1}, False), ("cumsum", {"axis": -1}, True), ("clip", {"x_min": -0.5, "x_max": 0.5}, True),
        ]))
        args = {"function": {"$fn": f"ops.{fn}"}}
        if arguments:
            args["arguments"] = arguments
        if keep:
            out = shape
        elif fn == "sum":
            out = shape[:-1] if len(shape) > 1 else None
        else:
            out = shape[:0] + shape[1:] if len(shape) > 1 else None
        return layer("Lambda", **args), out
    # TimeDistributed(Dense)
    units = maybe(draw, st.integers(1, 4), WILD_INT)
    return ({"cls": "TimeDistributed", "args": {}, "wrap": layer("Dense", units=units)},
            (shape[:-1] + (units,) if is_count(units, 64) else None))


def draw_layer(draw, shape):
    """A layer for an input of `shape` (usually one the layer accepts) and its output shape
    (None where not known)."""
    if shape is None or draw(st.integers(0, 11)) == 0:
        shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
        known = False
    else:
        known = True
    rank = len(shape)
    choices = ["any"] * 3
    if rank == 1:
        choices += ["RepeatVector"]
    if rank in (2, 3, 4):
        choices += ["conv", "conv", "conv_transpose", "pool", "global_pool", "padding", "cropping", "upsampling"]
    if rank == 2:
        choices += ["rnn", "rnn", "bidirectional"]
    kind = draw(st.sampled_from(choices))
    r = rank - 1
    if kind == "any":
        out = draw_any_rank(draw, shape)
    elif kind == "RepeatVector":
        n = maybe(draw, st.integers(1, 4), WILD_INT)
        out = layer("RepeatVector", n=n), ((n,) + shape if is_count(n) else None)
    elif kind == "conv":
        out = draw_conv(draw, shape, r)
    elif kind == "conv_transpose":
        out = draw_conv(draw, shape, r, transpose=True)
    elif kind == "pool":
        out = draw_pool(draw, shape, r)
    elif kind == "global_pool":
        out = draw_global_pool(draw, shape, r)
    elif kind in ("padding", "cropping"):
        out = draw_padding(draw, shape, r, crop=kind == "cropping")
    elif kind == "upsampling":
        out = draw_upsampling(draw, shape, r)
    else:
        out = draw_rnn(draw, shape, bidirectional=kind == "bidirectional")
    spec, new = out
    if not known or new is None or not all(isinstance(d, int) and d > 0 for d in new) or \
            int(np.prod(new)) > 4096:
        new = None
    return spec, new


@st.composite
def input_shape(draw):
    shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    if draw(st.integers(0, 15)) == 15:
        i = draw(st.integers(0, len(shape) - 1))
        shape[i] = draw(st.sampled_from([0, -1, None, 2.5, "3", 10**13]))
        return shape, None
    return shape, tuple(shape)


def contains(spec, text: str) -> bool:
    return text in json.dumps(spec)


@st.composite
def data_for(draw, shape, n=None, int_range=None):
    """A data description for a model input of per-sample `shape` (usually a matching one).
    Returns (description, whether the values are finite and the shape matches)."""
    if n is None:
        n = maybe(draw, st.integers(1, 5), [0])
    dims = list(shape) if shape is not None and all(isinstance(d, int) and d > 0 for d in shape) else [2]
    matches = shape is not None and dims == list(shape)
    if draw(st.integers(0, 11)) == 0:
        how = draw(st.integers(0, 2))
        if how == 0:
            dims = dims[:-1]
        elif how == 1:
            dims = dims + [draw(st.integers(1, 3))]
        else:
            i = draw(st.integers(0, len(dims) - 1))
            dims[i] = dims[i] + 1
        matches = False
    d = {"shape": [n] + dims, "seed": draw(st.integers(0, 2**16))}
    if int_range is not None:
        lo, hi = int_range
        fill = maybe(draw, st.just(f"int:{lo}:{hi}"), [f"int:{-3}:{hi}", f"int:0:{hi + 5}", "normal", "nan"])
        dtype = draw(st.sampled_from(["int32", "int32", "int64", "float32"]))
    else:
        fill = maybe(draw, st.sampled_from(["normal"] * 6 + ["zeros", "uniform"]), ["nan", "inf", "big"])
        dtype = maybe(draw, st.sampled_from(["float32"] * 6 + ["float64"]), ["float16", "int32", "bool"])
    d["fill"], d["dtype"] = fill, dtype
    form = maybe(draw, st.just("array"), ["list", "fortran", "strided"])
    if form != "array":
        d["form"] = form
    finite = matches and n > 0 and fill not in ("nan", "inf", "big") and (int_range is None or
                                                                          fill == f"int:{int_range[0]}:{int_range[1]}")
    return {"$array": d}, finite


@st.composite
def sequential_spec(draw, max_layers=4, wild=True):
    """(spec, output shape or None, int range of an Embedding input or None)."""
    ints = None
    layers = []
    if draw(st.integers(0, 7)) == 0:
        steps = draw(st.integers(1, 6))
        vocab = maybe(draw, st.integers(1, 10), WILD_INT) if wild else draw(st.integers(1, 10))
        out_dim = maybe(draw, st.integers(1, 4), WILD_INT) if wild else draw(st.integers(1, 4))
        args = {"input_dim": vocab, "output_dim": out_dim}
        if draw(st.integers(0, 3)) == 0:
            args["mask_zero"] = True
        layers.append(layer("Embedding", **args))
        in_shape = [steps]
        ints = (0, vocab if is_count(vocab, 10) else 3)
        shape = (steps, out_dim) if is_count(vocab, 10) and is_count(out_dim, 10) else None
    else:
        in_shape, shape = draw(input_shape()) if wild else (lambda s: (s, tuple(s)))(
            draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)))
    for _ in range(draw(st.integers(1 if not layers else 0, max_layers))):
        spec, shape = draw_layer(draw, shape)
        layers.append(spec)
    return {"kind": "sequential", "input": in_shape, "layers": layers}, shape, ints


MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"]


@st.composite
def functional_spec(draw):
    """(spec, output shapes) of a small functional graph: layers on any earlier tensor, merges,
    shared layers; one or two inputs and outputs."""
    n_in = draw(st.integers(1, 2))
    first, shape0 = draw(input_shape())
    inputs, shapes = [first], [shape0]
    if n_in == 2:
        if draw(st.booleans()):
            inputs.append(list(first))
            shapes.append(shape0)
        else:
            s, sh = draw(input_shape())
            inputs.append(s)
            shapes.append(sh)
    nodes, node_in_shapes = [], []
    for _ in range(draw(st.integers(1, 5))):
        choice = draw(st.integers(0, 9))
        latest = len(shapes) - 1
        if choice < 3 and len(shapes) >= 2:
            kind = draw(st.sampled_from(MERGES))
            same = [(i, j) for i in range(len(shapes)) for j in range(len(shapes))
                    if i < j and shapes[i] is not None and shapes[i] == shapes[j]]
            if kind == "Concatenate":
                same = [(i, j) for i in range(len(shapes)) for j in range(len(shapes))
                        if i < j and shapes[i] is not None and shapes[j] is not None
                        and shapes[i][:-1] == shapes[j][:-1]]
            if same and draw(st.integers(0, 5)):
                i, j = draw(st.sampled_from(same))
            else:
                i, j = draw(st.integers(0, latest)), draw(st.integers(0, latest))
            ins = [i, j]
            if kind != "Subtract" and draw(st.integers(0, 4)) == 0:
                ins.append(draw(st.sampled_from(ins)))
            args = {}
            if kind == "Concatenate" and draw(st.integers(0, 3)) == 0:
                args["axis"] = maybe(draw, st.integers(-2, 2), WILD_INT)
            nodes.append({"layer": layer(kind, **args), "in": ins, "list": True})
            node_in_shapes.append(None)
            a, b = shapes[i], shapes[j]
            if a is None or b is None:
                out = None
            elif kind == "Concatenate":
                out = (a[:-1] + (a[-1] + b[-1] + (a[-1] if len(ins) == 3 else 0),)
                       if a[:-1] == b[:-1] and args.get("axis", -1) == -1 else None)
            else:
                out = a if a == b else None
            shapes.append(out)
            continue
        src = latest if draw(st.integers(0, 2)) else draw(st.integers(0, latest))
        reusable = [k for k, s in enumerate(node_in_shapes) if s is not None and s == shapes[src]]
        if choice == 3 and reusable:
            k = draw(st.sampled_from(reusable))
            nodes.append({"layer": {"reuse": k}, "in": [src]})
            node_in_shapes.append(None)
            shapes.append(shapes[n_in + k])
            continue
        spec, out = draw_layer(draw, shapes[src])
        nodes.append({"layer": spec, "in": [src]})
        node_in_shapes.append(shapes[src] if out is not None else None)
        shapes.append(out)
    outputs = [len(shapes) - 1]
    if draw(st.integers(0, 3)) == 0:
        other = draw(st.integers(n_in, len(shapes) - 1))
        if other not in outputs:
            outputs.append(other)
    spec = {"kind": "functional", "inputs": inputs, "nodes": nodes, "outputs": outputs}
    return spec, shapes[:n_in], [shapes[i] for i in outputs]


# -- what a model promises -------------------------------------------------------------------


def keras_differs(spec) -> bool:
    """Whether Keras' numpy backend is known to compute another function than Keras' definition:
    its leaky_relu is max(x, slope * x), which is not the layer's function for slopes above 1."""
    return any(isinstance(v, (int, float)) and v > 1 for v in _values_of(spec, "negative_slope"))


def _values_of(spec, key):
    if isinstance(spec, dict):
        for k, v in spec.items():
            if k == key:
                yield v
            yield from _values_of(v, key)
    elif isinstance(spec, list):
        for v in spec:
            yield from _values_of(v, key)


def benign(spec) -> bool:
    """Whether finite data must give finite predictions: no exponential activation, and no
    average of masked steps (NaN where all steps are masked, as in Keras)."""
    masked = contains(spec, "mask_zero") or contains(spec, "Masking")
    return not contains(spec, "exponential") and not (masked and contains(spec, "GlobalAveragePooling1D"))



def shape_of_input(spec):
    s = spec["input"]
    return tuple(s) if all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in s) else None


# -- training -------------------------------------------------------------------------------

# name: (kind of targets, whether finite data gives finite losses with the kind's usual head).
# Not poisson (log of a negative prediction) nor cosine_similarity (its gradient at a zero
# prediction is NaN, as in Keras).
LOSSES = {
    "mse": ("real", True), "mean_absolute_error": ("real", True), "huber": ("real", True),
    "log_cosh": ("real", True), "categorical_crossentropy": ("onehot", True),
    "sparse_categorical_crossentropy": ("sparse", True), "binary_crossentropy": ("binary", True),
    "hinge": ("binary", True), "squared_hinge": ("binary", True), "categorical_hinge": ("onehot", True),
    "kl_divergence": ("onehot", True), "poisson": ("real", False), "cosine_similarity": ("real", False),
    "msle": ("real", True), "mape": ("real", True),
}
def often(draw, valid, wild):
    """As `maybe`, with a wild value one time in 6: compile and fit arguments are cheap to vary."""
    return maybe(draw, valid, wild, one_in=6)


LOSS_CLASSES = {"MeanSquaredError": "mse", "CategoricalCrossentropy": "categorical_crossentropy",
                "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
                "BinaryCrossentropy": "binary_crossentropy", "Huber": "huber"}
OPTIMIZERS = {"SGD": ["momentum", "nesterov"], "RMSprop": ["rho", "momentum", "centered"],
              "Adagrad": ["initial_accumulator_value"], "Adadelta": ["rho"], "Adam": ["beta_1", "beta_2", "amsgrad"],
              "AdamW": ["weight_decay"], "Adamax": ["beta_1"], "Nadam": ["beta_2"]}
METRICS = ["accuracy", "mae", "mse", "categorical_accuracy", "binary_accuracy", "sparse_categorical_accuracy",
           "top_k_categorical_accuracy", "AUC", "precision", "recall", "RootMeanSquaredError"]


@st.composite
def optimizer_arg(draw):
    """(optimizer argument, whether it is benign: a finite, moderate step)."""
    if draw(st.booleans()):
        name = often(draw, st.sampled_from([o.lower() for o in OPTIMIZERS]), ["adamz", "", 3, None])
        return name, name in [o.lower() for o in OPTIMIZERS] or name is None
    cls = draw(st.sampled_from(sorted(OPTIMIZERS)))
    args = {}
    lr = often(draw, st.sampled_from([1e-3, 1e-2, 0.1]), [0.0, -0.1, 1e6, float("nan"), "0.1", None, [0.1]])
    if lr is not None or draw(st.booleans()):
        args["learning_rate"] = lr
    ok = lr in (1e-3, 1e-2, 0.1, 0.0) or lr is None
    for hp in OPTIMIZERS[cls]:
        if draw(st.integers(0, 2)) == 0:
            if hp in ("nesterov", "centered", "amsgrad"):
                args[hp] = often(draw, st.booleans(), ["yes", 2, None])
            elif hp == "weight_decay":
                args[hp] = often(draw, st.sampled_from([0.0, 0.004, 0.1]), WILD_FLOAT)
            else:
                args[hp] = often(draw, st.sampled_from([0.0, 0.5, 0.9]), WILD_FLOAT + [1.0 + 1e-3])
                ok = ok and args[hp] in (0.0, 0.5, 0.9)
    if draw(st.integers(0, 3)) == 0:  # one of the three (two is an error), sometimes two
        clips = draw(st.lists(st.sampled_from(["clipnorm", "clipvalue", "global_clipnorm"]), min_size=1,
                              max_size=1 if draw(st.integers(0, 7)) else 2, unique=True))
        for clip in clips:
            args[clip] = often(draw, st.sampled_from([0.5, 1.0]), [0.0, -1.0, float("nan"), "1"])
            ok = ok and args[clip] in (0.5, 1.0)
    if draw(st.integers(0, 6)) == 0:
        args["use_ema"] = True
        args["ema_momentum"] = often(draw, st.sampled_from([0.5, 0.99]), WILD_FLOAT)
    if draw(st.integers(0, 6)) == 0:
        args["gradient_accumulation_steps"] = often(draw, st.sampled_from([2, 3]), WILD_INT)
    return {"$obj": f"optimizers.{cls}", "args": args}, ok


@st.composite
def training_case(draw):
    """(case, whether finite losses and weights are expected, number of epochs expected or None)."""
    spec, shape, ints = draw(sequential_spec(max_layers=2, wild=draw(st.integers(0, 2)) == 0))
    if shape is None or len(shape) > 1:
        spec["layers"].append(layer("Flatten"))
    k = draw(st.integers(1, 4))
    loss_name = draw(st.sampled_from(sorted(LOSSES)))
    kind, loss_finite = LOSSES[loss_name]
    head = {"onehot": "softmax", "sparse": "softmax", "binary": "sigmoid", "real": None}[kind]
    natural = head
    head = often(draw, st.just(head), ["linear", "relu", "exponential"])
    # A probabilistic loss on another head (a linear output into a crossentropy) may be NaN.
    loss_finite = loss_finite and (head == natural or kind == "real")
    spec["layers"].append(layer("Dense", units=k, **({"activation": head} if head else {})))
    # The loss: by name or as an object (sometimes with wild options).
    if draw(st.integers(0, 3)) == 0 and loss_name in LOSS_CLASSES.values():
        cls = [c for c, n in LOSS_CLASSES.items() if n == loss_name][0]
        largs = {}
        if "Crossentropy" in cls and draw(st.booleans()):
            largs["from_logits"] = often(draw, st.booleans(), ["no", 2])
        if cls in ("CategoricalCrossentropy", "BinaryCrossentropy") and draw(st.booleans()):
            largs["label_smoothing"] = often(draw, st.sampled_from([0.0, 0.1]), [-0.1, 1.5, float("nan")])
        if cls == "Huber" and draw(st.booleans()):
            largs["delta"] = often(draw, st.sampled_from([0.5, 2.0]), [0.0, -1.0])
        loss = {"$obj": f"losses.{cls}", "args": largs}
        loss_finite = loss_finite and not largs
    else:
        loss = often(draw, st.just(loss_name), ["mean_squared_errorz", "", 3, None])
    optimizer, opt_ok = draw(optimizer_arg())
    compile_args = {"optimizer": optimizer, "loss": loss}
    if draw(st.booleans()):
        compile_args["metrics"] = often(draw, st.lists(st.sampled_from(METRICS), max_size=3, unique=True),
                                        ["accuracy", ["nope"], [3], {"x": "mae"}])
    # Data.
    n = draw(st.integers(1, 8))
    x, x_finite = draw(data_for(tuple(spec["input"]) if ints else shape_of_input(spec), n=n, int_range=ints))
    seed = draw(st.integers(0, 2**16))
    target = {"real": {"shape": [n, k], "fill": "normal"},
              "binary": {"shape": [n, k], "fill": "int:0:2"},
              "onehot": {"shape": [n, k], "fill": "onehot"},
              "sparse": {"shape": [n], "fill": f"int:0:{k}", "dtype": "int32"}}[kind]
    target = dict(target, seed=seed)
    target.setdefault("dtype", "float32")
    y_ok = True
    if draw(st.integers(0, 9)) == 0:
        how = draw(st.integers(0, 3))
        if how == 0:
            target["shape"] = [n + 1] + target["shape"][1:]
        elif how == 1:
            target["shape"] = target["shape"] + [2]
        elif how == 2:
            target["fill"] = "nan"
        else:
            target["fill"] = f"int:{-2}:{k + 3}"
        y_ok = False
    y = {"$array": target}
    # fit, evaluate.
    fit = {}
    epochs = often(draw, st.integers(1, 2), [0, -1, 2.5, "2", None])
    fit["epochs"] = epochs
    if draw(st.booleans()):
        fit["batch_size"] = often(draw, st.integers(1, 9), WILD_INT)
    if draw(st.integers(0, 3)) == 0:
        fit["validation_split"] = often(draw, st.sampled_from([0.0, 0.25, 0.5]), WILD_FLOAT + [1.0, 0.99])
    if draw(st.integers(0, 5)) == 0:
        fit["validation_data"] = often(draw, st.just({"$tuple": [x, y]}), [[x], x, [x, y, y, y], None])
        if draw(st.booleans()):
            fit["validation_batch_size"] = often(draw, st.integers(1, 4), WILD_INT)
    if draw(st.integers(0, 7)) == 0:
        fit["validation_freq"] = often(draw, st.sampled_from([1, 2, [2], [1, 2]]), WILD_INT)
    if draw(st.integers(0, 3)) == 0:
        fit["shuffle"] = often(draw, st.sampled_from([True, False, "batch"]), ["yes", 2, None])
    if draw(st.integers(0, 4)) == 0:
        sw = {"shape": [n], "fill": "uniform", "seed": seed + 1}
        sw = often(draw, st.just(sw), [dict(sw, shape=[n + 1]), dict(sw, fill="nan"), dict(sw, fill="normal"),
                                       dict(sw, shape=[n, 2])])
        fit["sample_weight"] = {"$array": sw}
        y_ok = y_ok and sw["fill"] == "uniform" and sw["shape"] == [n]
    if kind in ("sparse", "onehot", "binary") and draw(st.integers(0, 4)) == 0:
        cw = {i: draw(st.sampled_from([0.5, 1.0, 2.0])) for i in range(k)}
        wild = [{0: -1.0}, {k + 5: 1.0}, {"a": 1.0}, {0: float("nan")}]
        class_weight = often(draw, st.just(cw), wild + [[1.0] * k])
        # JSON keys are strings: the worker rebuilds a dict with int keys from pairs.
        fit["class_weight"] = {"$dict": list(class_weight.items())} if isinstance(class_weight, dict) else class_weight
        y_ok = y_ok and class_weight == cw
    steps = None
    if draw(st.integers(0, 5)) == 0:
        steps = often(draw, st.sampled_from([1, 2, 1000]), WILD_INT)
        fit["steps_per_epoch"] = steps
    if draw(st.integers(0, 6)) == 0:
        fit["initial_epoch"] = often(draw, st.integers(0, 1), WILD_INT)
    evaluate = {}
    if draw(st.booleans()):
        evaluate["batch_size"] = often(draw, st.integers(1, 9), WILD_INT)
    if draw(st.integers(0, 4)) == 0:
        evaluate["steps"] = often(draw, st.integers(1, 3), WILD_INT)
    if draw(st.integers(0, 3)) == 0:
        evaluate["return_dict"] = True
    finite = (x_finite and y_ok and loss_finite and opt_ok and benign(spec)
              and "big" not in json.dumps(x) and steps in (None, 1, 2, 1000))
    expected_epochs = None
    if is_count(epochs) and steps is None:
        expected_epochs = epochs - fit.get("initial_epoch", 0) if is_count(fit.get("initial_epoch", 1)) or \
            fit.get("initial_epoch") == 0 else None
    case = {"op": "train", "spec": spec, "compile": compile_args, "x": x, "y": y, "fit": fit, "evaluate": evaluate,
            "seed": seed}
    return case, finite, expected_epochs, n, k
