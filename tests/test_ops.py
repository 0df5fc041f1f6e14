"""Every `ops` and `K` function against numpy: eagerly on arrays, and symbolically inside a
model (a Lambda over a batch, so that each op runs as nodes of the graph)."""

import math

import numpy as np
import pytest

from rustkeras import Input, Sequential, ops
from rustkeras import backend as K
from rustkeras.layers import Lambda

RNG = np.random.default_rng(0)
A = RNG.normal(size=(4, 3, 5)).astype("float32")           # a batch of 4 samples (3, 5)
P = RNG.uniform(0.5, 2.0, size=(4, 3, 5)).astype("float32")  # positive
W = RNG.normal(size=(5, 2)).astype("float32")


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _lse(x, axis):
    m = x.max(axis, keepdims=True)
    return (np.log(np.exp(x - m).sum(axis, keepdims=True)) + m).squeeze(axis)


# (name, rustkeras function of x, numpy function of x, input): each works per sample, so it
# runs the same on the whole batch eagerly and inside a model.
CASES = [
    ("add", lambda x: ops.add(x, 1.5), lambda x: x + 1.5, A),
    ("subtract", lambda x: ops.subtract(2.0, x), lambda x: 2.0 - x, A),
    ("multiply", lambda x: ops.multiply(x, x), lambda x: x * x, A),
    ("divide", lambda x: ops.divide(x, 3.0), lambda x: x / 3.0, A),
    ("floor_divide", lambda x: ops.floor_divide(x, 0.5), lambda x: np.floor_divide(x, 0.5), A),
    ("mod", lambda x: ops.mod(x, 0.7), lambda x: np.mod(x, np.float32(0.7)), A),
    ("power", lambda x: ops.power(x, 3), lambda x: x ** 3, A),
    ("power_tensor", lambda x: ops.power(x, x), lambda x: x ** x, P),
    ("negative", ops.negative, np.negative, A),
    ("abs", ops.abs, np.abs, A),
    ("square", ops.square, np.square, A),
    ("sqrt", ops.sqrt, np.sqrt, P),
    ("exp", ops.exp, np.exp, A),
    ("log", ops.log, np.log, P),
    ("log1p", ops.log1p, np.log1p, P),
    ("expm1", ops.expm1, np.expm1, A),
    ("log2", ops.log2, np.log2, P),
    ("log10", ops.log10, np.log10, P),
    ("sign", ops.sign, np.sign, A),
    ("floor", ops.floor, np.floor, A * 3),
    ("ceil", ops.ceil, np.ceil, A * 3),
    ("round", ops.round, np.round, A * 3),
    ("trunc", ops.trunc, np.trunc, A * 3),
    ("sin", ops.sin, np.sin, A),
    ("cos", ops.cos, np.cos, A),
    ("tan", ops.tan, np.tan, A),
    ("arctan", ops.arctan, np.arctan, A),
    ("tanh", ops.tanh, np.tanh, A),
    ("reciprocal", ops.reciprocal, np.reciprocal, P),
    ("clip", lambda x: ops.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), A),
    ("maximum", lambda x: ops.maximum(x, 0.1), lambda x: np.maximum(x, 0.1), A),
    ("minimum", lambda x: ops.minimum(x, 0.1), lambda x: np.minimum(x, 0.1), A),
    ("where", lambda x: ops.where(x > 0, ops.sqrt(ops.abs(x)), x * 2),
     lambda x: np.where(x > 0, np.sqrt(np.abs(x)), x * 2), A),
    ("comparisons", lambda x: ops.cast(ops.greater(x, 0), "float32") + ops.cast(ops.less_equal(x, 0.5), "float32")
     + ops.cast(ops.equal(ops.round(x), 0), "float32") + ops.cast(ops.not_equal(ops.round(x), 1), "float32")
     + ops.cast(ops.less(x, -0.2), "float32") + ops.cast(ops.greater_equal(x, 0.3), "float32"),
     lambda x: (x > 0) * 1.0 + (x <= 0.5) + (np.round(x) == 0) + (np.round(x) != 1) + (x < -0.2) + (x >= 0.3), A),
    ("logical", lambda x: ops.cast(ops.logical_or(ops.logical_and(x > 0, x < 1), ops.logical_not(x > -1)),
                                   "float32") + ops.cast(ops.logical_xor(x > 0, x > 0.5), "float32"),
     lambda x: ((x > 0) & (x < 1) | ~(x > -1)) * 1.0 + ((x > 0) ^ (x > 0.5)), A),
    ("relu", ops.relu, lambda x: np.maximum(x, 0), A),
    ("sigmoid", ops.sigmoid, lambda x: 1 / (1 + np.exp(-x)), A),
    ("softplus", ops.softplus, lambda x: np.log1p(np.exp(x)), A),
    ("elu", lambda x: ops.elu(x, 0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)), A),
    ("leaky_relu", lambda x: ops.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x), A),
    ("softmax", lambda x: ops.softmax(x, axis=-1), _softmax, A),
    ("softmax_axis1", lambda x: ops.softmax(x, axis=1), lambda x: _softmax(x, 1), A),
    ("log_softmax", ops.log_softmax, lambda x: np.log(_softmax(x)), A),
    ("sum", lambda x: ops.sum(x, axis=-1), lambda x: x.sum(-1), A),
    ("sum_keep", lambda x: ops.sum(x, axis=(1, 2), keepdims=True), lambda x: x.sum((1, 2), keepdims=True), A),
    ("mean", lambda x: ops.mean(x, axis=1), lambda x: x.mean(1), A),
    ("max", lambda x: ops.max(x, axis=2), lambda x: x.max(2), A),
    ("min", lambda x: ops.min(x, axis=1), lambda x: x.min(1), A),
    ("prod", lambda x: ops.prod(x, axis=-1), lambda x: x.prod(-1), P),
    ("var", lambda x: ops.var(x, axis=-1), lambda x: x.var(-1), A),
    ("std", lambda x: ops.std(x, axis=1), lambda x: x.std(1), A),
    ("logsumexp", lambda x: ops.logsumexp(x, axis=-1), lambda x: _lse(x, -1), A),
    ("norm", lambda x: ops.norm(x, axis=-1), lambda x: np.linalg.norm(x, axis=-1), A),
    ("any_all", lambda x: ops.cast(ops.any(x > 1, axis=-1), "float32") + ops.cast(ops.all(x > -1, axis=-1), "float32"),
     lambda x: (x > 1).any(-1) * 1.0 + (x > -1).all(-1), A),
    ("argmax", lambda x: ops.cast(ops.argmax(x, axis=-1), "float32"), lambda x: x.argmax(-1) * 1.0, A),
    ("argmin", lambda x: ops.cast(ops.argmin(x, axis=1), "float32"), lambda x: x.argmin(1) * 1.0, A),
    ("cumsum", lambda x: ops.cumsum(x, axis=-1), lambda x: np.cumsum(x, -1), A),
    ("cumprod", lambda x: ops.cumprod(x, axis=1), lambda x: np.cumprod(x, 1), P),
    ("matmul", lambda x: ops.matmul(x, W), lambda x: x @ W, A),
    ("matmul_batched", lambda x: ops.matmul(x, ops.swapaxes(x, 1, 2)), lambda x: x @ x.transpose(0, 2, 1), A),
    ("dot", lambda x: K.dot(x, W), lambda x: x @ W, A),
    ("einsum", lambda x: ops.einsum("bij,jk->bik", x, W), lambda x: np.einsum("bij,jk->bik", x, W), A),
    ("einsum_batch", lambda x: ops.einsum("bij,bkj->bik", x, x), lambda x: np.einsum("bij,bkj->bik", x, x), A),
    ("reshape", lambda x: ops.reshape(x, (-1, 15)), lambda x: x.reshape(-1, 15), A),
    ("transpose", lambda x: ops.transpose(x, (0, 2, 1)), lambda x: x.transpose(0, 2, 1), A),
    ("expand_squeeze", lambda x: ops.squeeze(ops.expand_dims(x, 2), axis=2), lambda x: x, A),
    ("expand_dims", lambda x: ops.expand_dims(x, -1), lambda x: x[..., None], A),
    ("concatenate", lambda x: ops.concatenate([x, x * 2], axis=-1), lambda x: np.concatenate([x, x * 2], -1), A),
    ("stack", lambda x: ops.stack([x, x + 1], axis=1), lambda x: np.stack([x, x + 1], 1), A),
    ("split", lambda x: ops.split(x, [2], axis=-1)[1], lambda x: np.split(x, [2], -1)[1], A),
    ("repeat", lambda x: ops.repeat(x, 2, axis=1), lambda x: np.repeat(x, 2, 1), A),
    ("tile", lambda x: ops.tile(x, (1, 2, 1)), lambda x: np.tile(x, (1, 2, 1)), A),
    ("getitem", lambda x: x[:, 1:, ::2], lambda x: x[:, 1:, ::2], A),
    ("getitem_int", lambda x: x[:, 0, -1], lambda x: x[:, 0, -1], A),
    ("take", lambda x: ops.take(x, np.array([4, 0, 4]), axis=2), lambda x: np.take(x, [4, 0, 4], axis=2), A),
    ("take_along_axis", lambda x: ops.take_along_axis(x, ops.argmax(x, axis=-1, keepdims=True), axis=-1),
     lambda x: np.take_along_axis(x, x.argmax(-1)[..., None], -1), A),
    ("top_k", lambda x: ops.top_k(x, 2)[0], lambda x: -np.sort(-x, -1)[..., :2], A),
    ("one_hot", lambda x: ops.one_hot(ops.argmax(x, axis=-1), 5), lambda x: np.eye(5)[x.argmax(-1)], A),
    ("zeros_like", lambda x: ops.zeros_like(x) + ops.ones_like(x) * 2, lambda x: np.full_like(x, 2.0), A),
    ("full_like", lambda x: ops.full_like(x, 3.0), lambda x: np.full_like(x, 3.0), A),
    ("arange", lambda x: x + ops.arange(5), lambda x: x + np.arange(5), A),
    ("linspace", lambda x: x * ops.linspace(0.0, 1.0, 5), lambda x: x * np.linspace(0, 1, 5), A),
    ("isnan", lambda x: ops.cast(ops.isnan(ops.log(x)), "float32"), lambda x: np.isnan(np.log(x)) * 1.0, A),
    ("average", lambda x: ops.average(x, axis=-1, weights=np.arange(1.0, 6.0)),
     lambda x: np.average(x, axis=-1, weights=np.arange(1.0, 6.0)), A),
    ("k_functions", lambda x: K.sum(K.square(K.relu(x)), axis=-1) + K.mean(K.abs(x), axis=1, keepdims=False)[:, :3]
     + K.max(K.clip(x, -1, 1), axis=-1) * K.cast(K.argmax(x, axis=-1), "float32"),
     lambda x: (np.maximum(x, 0) ** 2).sum(-1) + np.abs(x).mean(1)[:, :3]
     + np.clip(x, -1, 1).max(-1) * x.argmax(-1), A),
    ("k_shapes", lambda x: K.permute_dimensions(K.repeat_elements(x, 2, axis=2), (0, 2, 1)),
     lambda x: np.repeat(x, 2, 2).transpose(0, 2, 1), A),
    ("k_batch_flatten", K.batch_flatten, lambda x: x.reshape(len(x), -1), A),
    ("k_hard_sigmoid", K.hard_sigmoid, lambda x: np.clip(0.2 * x + 0.5, 0, 1), A * 4),
    ("k_pow_sign_sqrt", lambda x: K.pow(K.sqrt(K.abs(x)), 3) * K.sign(x), lambda x: np.abs(x) ** 1.5 * np.sign(x), A),
]


def _close(got, want):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name,fn,ref,x", CASES, ids=[c[0] for c in CASES])
def test_eager_matches_numpy(name, fn, ref, x):
    _close(fn(x), ref(x.astype(np.float64)).astype(np.float32))


@pytest.mark.parametrize("name,fn,ref,x", CASES, ids=[c[0] for c in CASES])
def test_symbolic_matches_numpy(name, fn, ref, x):
    model = Sequential([Input(x.shape[1:]), Lambda(fn)])
    _close(model.predict(x, batch_size=len(x), verbose=0), ref(x.astype(np.float64)).astype(np.float32))


def test_eager_results_are_numpy_with_keras_dtypes():
    assert ops.argmax(np.array([[1.0, 3.0, 2.0]]), axis=-1).dtype == np.int32
    assert ops.greater(np.ones(3), 0).dtype == np.bool_
    assert ops.add(np.arange(3), 1.5).dtype == np.float32
    assert isinstance(ops.matmul(np.ones((2, 3)), np.ones((3, 4))), np.ndarray)
    values, idx = ops.top_k(np.array([1.0, 5.0, 3.0, 5.0]), 2)
    np.testing.assert_array_equal(values, [5.0, 5.0])
    np.testing.assert_array_equal(idx, [1, 3])


def test_creation_functions():
    np.testing.assert_array_equal(ops.arange(2, 11, 3), np.arange(2, 11, 3))
    np.testing.assert_allclose(ops.linspace(0, 1, 5), np.linspace(0, 1, 5))
    np.testing.assert_array_equal(ops.eye(3, 4, k=1), np.eye(3, 4, k=1))
    np.testing.assert_array_equal(ops.one_hot(np.array([0, 2]), 3), np.eye(3)[[0, 2]])
    np.testing.assert_array_equal(ops.zeros((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(ops.ones((2,)), np.ones(2))
    np.testing.assert_array_equal(ops.full((2, 2), 7.0), np.full((2, 2), 7.0))
    assert ops.shape(np.ones((2, 3))) == (2, 3)
    assert ops.convert_to_numpy([1, 2]).tolist() == [1, 2]
    assert isinstance(ops.convert_to_tensor([1.0, 2.0]), np.ndarray)


@pytest.mark.parametrize("args,exc,needle", [
    ((0, 3, 0), ValueError, "`step` must not be zero"),      # numpy: ZeroDivisionError
    ((0, float("inf")), ValueError, "`stop` must be finite"),  # an OverflowError before
    ((0, 3, float("nan")), ValueError, "`step` must be finite"),
    (("3",), TypeError, "`stop` must be a number"),
])
def test_arange_bad_arguments_are_clean_errors(args, exc, needle):
    # Found by tests/test_fuzz.py: a zero step leaked a ZeroDivisionError.
    with pytest.raises(exc, match=needle):
        ops.arange(*args)
    np.testing.assert_array_equal(ops.arange(np.float32(3)), np.arange(3))


def test_a_python_int_with_booleans_makes_ints():
    # Keras 3 promotes booleans with a weak Python int to int32 (2 + True is 3); rustkeras gave
    # True (found by tests/test_fuzz.py).
    b = np.array([True, False])
    for got in (ops.add(2, b), ops.add(b, 2)):
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, [3, 2])
    assert ops.add(b, b).dtype == np.bool_ and ops.multiply(b, True).dtype == np.bool_
    assert ops.add(b, 1.5).dtype == np.float32


def test_sums_products_and_clips_of_booleans_are_int32():
    # ops.sum(x > 0) counts, as in Keras 3; rustkeras gave True (found by tests/test_fuzz.py).
    b = np.array([[True, True, False], [True, False, False]])
    for fn, ref in ((ops.sum, np.sum), (ops.prod, np.prod), (ops.cumsum, np.cumsum), (ops.cumprod, np.cumprod),
                    (K.sum, np.sum)):
        for axis in (None, 1):
            got = fn(b, axis=axis)
            assert got.dtype == np.int32, fn.__name__
            np.testing.assert_array_equal(got, ref(b, axis=axis))
    assert ops.sum(np.True_).dtype == np.int32 and ops.mean(np.int32(3)).dtype == np.float32
    assert ops.max(b).dtype == np.bool_
    clipped = ops.clip(b, -1.0, 0.5)   # Keras 3: booleans clip as int32 (it gave booleans)
    assert clipped.dtype == np.int32 and not clipped.any()
    m = Sequential([Input((3,)), Lambda(lambda t: ops.cast(ops.sum(ops.greater(t, 0.0), axis=-1, keepdims=True),
                                                           "float32"))])
    np.testing.assert_array_equal(m.predict(np.array([[1.0, -1.0, 2.0]], "float32"), verbose=0), [[2.0]])


@pytest.mark.parametrize("call,exc,needle", [
    (lambda: ops.top_k(np.float32(1.0), 1), ValueError, "at least one axis"),  # an IndexError before
    (lambda: K.batch_dot(np.int32(1), np.int32(2)), ValueError, "rank < 2"),  # a ZeroDivisionError before
    (lambda: K.batch_dot(np.ones((2, 3)), np.ones((2, 3)), axes=5), ValueError, "out of bounds"),
    # Axes: a scalar has none (the axis was ignored); non-integer axes were truncated or parsed.
    (lambda: ops.sum(np.float32(2.0), axis=0), ValueError, "out of bounds"),
    (lambda: ops.mean(np.ones(3), axis=2.5), TypeError, "axis must be an int"),
    (lambda: ops.max(np.ones(3), axis="0"), TypeError, "axis must be an int"),
    (lambda: ops.softmax(np.ones(3), axis=0.5), TypeError, "axis must be an int"),
    (lambda: ops.sum(np.ones((2, 2)), axis=(0, 0)), ValueError, "repeated axis"),
    # einsum: an index of two sizes (the message was about an internal reshape), an unknown output index.
    (lambda: ops.einsum("abc,c->ab", np.ones((1, 1, 3)), np.ones(1)), ValueError, "index 'c' has size 3"),
    (lambda: ops.einsum("ij->ik", np.ones((2, 2))), ValueError, "at most once"),
    # split, repeat, tile: counts of 0 (a ZeroDivisionError), negative (an OverflowError or a
    # wrong result) or fractional (truncated); split indices out of order (an OverflowError).
    (lambda: ops.split(np.ones((2, 3)), 0, axis=1), ValueError, "must be positive"),
    (lambda: ops.split(np.ones((2, 3)), -3, axis=1), ValueError, "must be positive"),
    (lambda: ops.split(np.ones((2, 3)), [2, 1], axis=1), ValueError, "increase strictly"),
    (lambda: ops.split(np.ones((2, 3)), 2.0), TypeError, "int or a list of ints"),
    (lambda: ops.repeat(np.ones((2, 3)), -1), ValueError, "`repeats` must be positive"),
    (lambda: ops.repeat(np.ones((2, 3)), 2.5), TypeError, "`repeats` must be an integer"),
    (lambda: ops.repeat(np.ones(3), [1, 2, 1]), NotImplementedError, "one per element"),
    (lambda: ops.tile(np.ones((2, 3)), [2, -1]), ValueError, "`repeats` must be positive"),
    (lambda: K.repeat_elements(np.ones((2, 3)), 0, 1), ValueError, "`repeats` must be positive"),
    # Sizes: negative and huge ones leaked OverflowErrors from the conversion to the engine's
    # unsigned sizes, fractional ones were truncated, zero ones failed inside the engine.
    (lambda: ops.full((-1,), 1.0), ValueError, "`shape` must be positive"),
    (lambda: ops.zeros((2**64,)), MemoryError, "more values than memory can address"),
    (lambda: ops.ones((2.5,)), TypeError, "`shape` must be an integer"),
    (lambda: ops.one_hot(np.array([0, 1]), -1), ValueError, "`num_classes` must be positive"),
    (lambda: ops.one_hot(np.array([0, 1]), 2.5), TypeError, "`num_classes` must be an integer"),
    (lambda: ops.eye(-1), ValueError, "`N` must be positive"),
    (lambda: ops.eye(2**64), MemoryError, "`N`"),
    (lambda: ops.linspace(0, 1, 2**64), MemoryError, "`num`"),
    (lambda: ops.linspace(0, float("nan"), 3), ValueError, "`stop` must be a finite number"),
    (lambda: ops.arange(0, 1e30), MemoryError, "more than memory can address"),
    (lambda: ops.broadcast_to(np.ones(3), (-1, 3)), ValueError, "`shape` must be positive"),
    (lambda: ops.reshape(np.ones(6), (-2, -3)), ValueError, "positive sizes"),
    (lambda: ops.slice(np.ones((2, 3)), (-1, 0), (1, 1)), ValueError, "non-negative"),
    (lambda: ops.round(np.ones(3), 2.5), TypeError, "`decimals` must be an integer"),
])
def test_bad_operands_are_clean_errors(call, exc, needle):
    # Cases found by tests/test_fuzz.py, where an internal error leaked.
    with pytest.raises(exc, match=needle):
        call()


def test_round_to_more_decimals_than_float32_holds():
    # 10.0 ** 400 overflowed (an OverflowError; found by tests/test_fuzz.py).
    x = np.array([1.25, -3.5, 1e-3], "float32")
    np.testing.assert_array_equal(ops.round(x, 400), x)
    np.testing.assert_array_equal(ops.round(x, -400), np.zeros(3))
    np.testing.assert_allclose(ops.round(x, 1), np.round(x, 1), rtol=1e-6)


def test_activations_are_ops():
    from rustkeras import activations

    x = np.linspace(-2, 2, 7).astype("float32")
    np.testing.assert_allclose(activations.relu(x), np.maximum(x, 0))
    m = Sequential([Input((7,)), Lambda(lambda t: activations.tanh(t) + activations.sigmoid(t))])
    _close(m.predict(x[None], verbose=0)[0], np.tanh(x) + 1 / (1 + np.exp(-x)))


def test_symbolic_shapes_and_errors():
    seen = {}

    def fn(t):
        seen["shape"], seen["ndim"], seen["dtype"] = t.shape, t.ndim, t.dtype
        return t

    Sequential([Input((3, 5)), Lambda(fn)])
    assert seen == {"shape": (None, 3, 5), "ndim": 3, "dtype": "float32"}
    with pytest.raises(NotImplementedError, match="batch axis"):
        Sequential([Input((3,)), Lambda(lambda t: ops.reshape(t, (-1,)))])
    with pytest.raises(ValueError, match="reshape"):
        Sequential([Input((3,)), Lambda(lambda t: ops.reshape(t, (-1, 4)))])
    with pytest.raises(TypeError, match="numpy"):
        Sequential([Input((3,)), Lambda(lambda t: np.asarray(t))])
    assert math.isclose(float(ops.sum(np.ones((2, 3)))), 6.0)


K_NAMES = """dot batch_dot sum mean max min prod std var argmax argmin exp log sqrt square abs sign pow clip maximum
minimum equal not_equal greater less cast relu sigmoid hard_sigmoid tanh softmax softplus elu concatenate stack reshape
permute_dimensions transpose expand_dims squeeze flatten repeat tile gather one_hot zeros ones zeros_like ones_like
variable constant placeholder eval get_value set_value batch_get_value int_shape shape ndim epsilon floatx
categorical_crossentropy binary_crossentropy""".split()

OPS_NAMES = """dot matmul sum mean max min prod std var argmax argmin exp log sqrt square abs sign power clip maximum minimum
equal not_equal greater less cast relu sigmoid hard_sigmoid tanh softmax softplus elu concatenate stack reshape transpose
expand_dims squeeze ravel repeat tile take one_hot zeros ones zeros_like ones_like shape ndim categorical_crossentropy
binary_crossentropy where einsum linspace arange log1p expm1 logsumexp top_k norm convert_to_numpy
convert_to_tensor""".split()


def test_the_backend_and_ops_name_lists_are_complete():
    assert [n for n in K_NAMES if not callable(getattr(K, n, None))] == []
    assert [n for n in OPS_NAMES if not callable(getattr(ops, n, None))] == []


def test_k_crossentropies_in_keras_argument_order():
    t = np.array([[0.0, 1.0, 0.0]], "float32")
    p = np.array([[0.2, 0.7, 0.1]], "float32")
    np.testing.assert_allclose(K.categorical_crossentropy(t, p), [-np.log(0.7)], rtol=1e-6)
    np.testing.assert_allclose(K.binary_crossentropy(t, p), -(t * np.log(p) + (1 - t) * np.log(1 - p)), rtol=1e-5)
    np.testing.assert_allclose(ops.sparse_categorical_crossentropy(np.array([1]), np.log(p), from_logits=True),
                               [-np.log(0.7)], rtol=1e-5)
