"""Pooling, global pooling, zero padding, cropping and upsampling layers against numpy
references, in both data formats, with Keras 1 spellings. Gradients of the ops are checked by
finite differences in the Rust tests (src/ops/pool.rs, src/ops/pad.rs)."""

import itertools

import numpy as np
import pytest

from rustkeras import layers as L
from rustkeras.models import Sequential

RNG = np.random.default_rng(0)


def run(layer, x):
    m = Sequential()
    layer._input_shape_arg = tuple(x.shape[1:])
    m.add(layer)
    return m.predict(x.astype(np.float32), verbose=0)


def pool_reference(x, pool, strides, padding, kind, channels_first):
    """TF/Keras pooling: 'same' pads so that padded cells never win a max or count in a mean."""
    if channels_first:
        x = np.moveaxis(x, 1, -1)
    rank = len(pool)
    sp = x.shape[1:-1]
    outs, starts = [], []
    for n, p, s in zip(sp, pool, strides):
        if padding == "valid":
            o, pad = (n - p) // s + 1, 0
        else:
            o = -(-n // s)
            pad = max((o - 1) * s + p - n, 0) // 2
        outs.append(o)
        starts.append([i * s - pad for i in range(o)])
    y = np.zeros((x.shape[0],) + tuple(outs) + (x.shape[-1],))
    for idx in itertools.product(*[range(o) for o in outs]):
        sl = tuple(slice(max(st[i], 0), min(st[i] + p, n)) for st, i, p, n in zip(starts, idx, pool, sp))
        win = x[(slice(None),) + sl + (slice(None),)].reshape(x.shape[0], -1, x.shape[-1])
        y[(slice(None),) + idx + (slice(None),)] = win.max(axis=1) if kind == "max" else win.mean(axis=1)
    assert rank == len(outs)
    return np.moveaxis(y, -1, 1) if channels_first else y


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pooling2d_matches_numpy(kind, padding, data_format):
    cls = L.MaxPooling2D if kind == "max" else L.AveragePooling2D
    cf = data_format == "channels_first"
    x = RNG.standard_normal((2, 3, 7, 6) if cf else (2, 7, 6, 3))
    for pool, strides in [((2, 2), None), ((3, 2), (2, 1)), ((2, 3), (3, 3))]:
        got = run(cls(pool_size=pool, strides=strides, padding=padding, data_format=data_format), x)
        want = pool_reference(x, pool, strides or pool, padding, kind, cf)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling1d_and_3d_match_numpy(kind):
    x = RNG.standard_normal((2, 9, 4))
    cls1 = L.MaxPooling1D if kind == "max" else L.AveragePooling1D
    got = run(cls1(pool_size=3, strides=2, padding="same"), x)
    np.testing.assert_allclose(got, pool_reference(x, (3,), (2,), "same", kind, False), rtol=1e-5, atol=1e-6)
    x3 = RNG.standard_normal((2, 2, 4, 5, 3))
    cls3 = L.MaxPooling3D if kind == "max" else L.AveragePooling3D
    got = run(cls3(pool_size=(2, 2, 2), data_format="channels_first"), x3)
    np.testing.assert_allclose(got, pool_reference(x3, (2, 2, 2), (2, 2, 2), "valid", kind, True), rtol=1e-5,
                               atol=1e-6)


def test_keras1_pooling_spellings():
    layer = L.MaxPooling1D(pool_length=2, stride=None)
    assert layer.pool_size == (2,) and layer.strides == (2,)
    layer = L.MaxPooling2D(pool_size=(2, 2), border_mode="same", dim_ordering="th")
    assert layer.padding == "same" and layer.data_format == "channels_first"
    x = RNG.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(run(layer, x), pool_reference(x, (2, 2), (2, 2), "same", "max", True), rtol=1e-6)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_pooling(data_format):
    cf = data_format == "channels_first"
    x = RNG.standard_normal((3, 4, 5, 6))
    axes = (2, 3) if cf else (1, 2)
    np.testing.assert_allclose(run(L.GlobalAveragePooling2D(data_format=data_format), x), x.mean(axis=axes),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run(L.GlobalMaxPooling2D(data_format=data_format), x), x.max(axis=axes), rtol=1e-6)
    got = run(L.GlobalAveragePooling2D(data_format=data_format, keepdims=True), x)
    np.testing.assert_allclose(got, x.mean(axis=axes, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run(L.GlobalMaxPooling1D(), x[:, 0]), x[:, 0].max(axis=1), rtol=1e-6)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling1d_averages_the_unmasked_steps(keepdims):
    # Keras 3: after Embedding(mask_zero=True) (or Masking) the mean is over the unmasked steps
    # only, and a sample whose steps are all masked gives NaN (0 / 0). Found by tests/test_fuzz.py.
    m = Sequential([L.Input((4,)), L.Embedding(5, 3, mask_zero=True), L.GlobalAveragePooling1D(keepdims=keepdims)])
    x = np.array([[1, 2, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0], [1, 2, 3, 4]])
    table = m.get_weights()[0]
    got = m.predict(x, verbose=0)
    assert got.shape == ((4, 1, 3) if keepdims else (4, 3))
    got = got.reshape(4, 3)
    np.testing.assert_allclose(got[0], table[[1, 2]].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(got[1], table[3], rtol=1e-6)
    assert np.isnan(got[2]).all()
    np.testing.assert_allclose(got[3], table[[1, 2, 3, 4]].mean(axis=0), rtol=1e-6)
    # Without a mask, every step counts.
    plain = Sequential([L.Input((4, 3)), L.GlobalAveragePooling1D()])
    np.testing.assert_allclose(plain.predict(table[x].astype(np.float32), verbose=0), table[x].mean(axis=1),
                               rtol=1e-5, atol=1e-7)


def test_zero_padding_forms():
    x = RNG.standard_normal((2, 3, 4, 2))
    np.testing.assert_allclose(run(L.ZeroPadding2D(padding=(1, 1)), x), np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)]))
    np.testing.assert_allclose(run(L.ZeroPadding2D(padding=((1, 0), (2, 3))), x),
                               np.pad(x, [(0, 0), (1, 0), (2, 3), (0, 0)]))
    np.testing.assert_allclose(run(L.ZeroPadding2D(2, data_format="channels_first"), x),
                               np.pad(x, [(0, 0), (0, 0), (2, 2), (2, 2)]))
    x1 = x[:, 0]
    np.testing.assert_allclose(run(L.ZeroPadding1D(padding=1), x1), np.pad(x1, [(0, 0), (1, 1), (0, 0)]))
    np.testing.assert_allclose(run(L.ZeroPadding1D((0, 2)), x1), np.pad(x1, [(0, 0), (0, 2), (0, 0)]))
    x3 = RNG.standard_normal((1, 2, 2, 2, 1))
    np.testing.assert_allclose(run(L.ZeroPadding3D(1), x3), np.pad(x3, [(0, 0), (1, 1), (1, 1), (1, 1), (0, 0)]))


def test_cropping_and_upsampling():
    x = RNG.standard_normal((2, 6, 7, 3))
    np.testing.assert_allclose(run(L.Cropping2D(cropping=((1, 2), (0, 3))), x), x[:, 1:4, 0:4])
    np.testing.assert_allclose(run(L.Cropping2D(1, data_format="channels_first"), x), x[:, :, 1:6, 1:2])
    np.testing.assert_allclose(run(L.Cropping1D((2, 1)), x[:, 0]), x[:, 0, 2:6])
    np.testing.assert_allclose(run(L.UpSampling2D(size=(2, 3)), x), x.repeat(2, axis=1).repeat(3, axis=2), rtol=1e-6)
    np.testing.assert_allclose(run(L.UpSampling1D(length=2), x[:, 0]), x[:, 0].repeat(2, axis=1), rtol=1e-6)
    np.testing.assert_allclose(run(L.UpSampling3D(2, data_format="channels_first"), x[:, :2, :2, :2, None]),
                               x[:, :2, :2, :2, None].repeat(2, 2).repeat(2, 3).repeat(2, 4), rtol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: L.MaxPooling2D(pool_size=(0, 2)), "pool_size"),
        (lambda: L.MaxPooling2D(padding="full"), "padding"),
        (lambda: L.ZeroPadding2D(padding=(1, 2, 3)), "padding"),
        (lambda: L.Cropping2D(cropping=-1), "cropping"),
        (lambda: L.UpSampling2D(interpolation="bilinear"), "interpolation"),
    ],
)
def test_bad_arguments_name_the_argument(make, message):
    with pytest.raises((ValueError, NotImplementedError), match=message):
        make()


def test_bad_shapes_name_the_layer():
    with pytest.raises(ValueError, match="pool_size"):
        run(L.MaxPooling2D(pool_size=(3, 3)), np.zeros((1, 2, 2, 1)))
    with pytest.raises(ValueError, match="cropping"):
        run(L.Cropping2D(cropping=2), np.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match="expected ndim=4"):
        run(L.MaxPooling2D(), np.zeros((1, 4, 4)))
