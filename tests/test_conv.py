"""Convolution layers against a numpy reference: Conv1D/2D/3D with strides, padding ('valid',
'same', Keras 1 'full', 'causal'), dilation and both data formats; Keras 1 spellings, weight
layouts, config and error messages. Gradients of the ops are checked by finite differences
in the Rust tests (src/ops/conv.rs); here a small CNN is checked to learn."""

import itertools

import numpy as np
import pytest

from rustkeras import config, optimizers
from rustkeras.layers import (
    Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Convolution1D, Convolution2D, Dense, Flatten,
    MaxPooling2D,
)
from rustkeras.models import Sequential
from rustkeras.utils import set_random_seed

RNG = np.random.default_rng(0)


def out_len(n, k, s, d, padding):
    dk = (k - 1) * d + 1
    if padding == "valid":
        return (n - dk) // s + 1, 0
    if padding == "same":
        out = -(-n // s)
        return out, max((out - 1) * s + dk - n, 0) // 2
    if padding == "full":
        return (n + dk - 2) // s + 1, dk - 1
    if padding == "causal":
        return (n - 1) // s + 1, dk - 1
    raise ValueError(padding)


def conv_reference(x, kernel, bias, strides, padding, dilation, channels_first):
    """Direct convolution (cross-correlation, as Keras) of channels_last or channels_first x."""
    rank = kernel.ndim - 2
    if channels_first:
        x = np.moveaxis(x, 1, -1)
    n = x.shape[0]
    sp = x.shape[1:-1]
    geo = [out_len(sp[a], kernel.shape[a], strides[a], dilation[a], padding) for a in range(rank)]
    pads = []
    for a, (o, p) in enumerate(geo):
        dk = (kernel.shape[a] - 1) * dilation[a] + 1
        after = max((o - 1) * strides[a] + dk - sp[a] - p, 0)
        pads.append((p, after))
    xp = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    y = np.zeros((n,) + tuple(o for o, _ in geo) + (kernel.shape[-1],), np.float64)
    for taps in itertools.product(*[range(k) for k in kernel.shape[:rank]]):
        sl = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, (o, _), s in zip(taps, dilation, geo, strides))
        y += np.einsum("n...c,cf->n...f", xp[(slice(None),) + sl], kernel[taps])
    y += bias
    if channels_first:
        y = np.moveaxis(y, -1, 1)
    return y


def check_layer(layer, input_shape, strides, padding, dilation, channels_first):
    m = Sequential()
    m.add(layer)
    kernel, bias = layer.get_weights()
    kernel = RNG.standard_normal(kernel.shape).astype(np.float32)
    bias = RNG.standard_normal(bias.shape).astype(np.float32)
    layer.set_weights([kernel, bias])
    x = RNG.standard_normal((2,) + tuple(input_shape)).astype(np.float32)
    got = m.predict(x, verbose=0)
    want = conv_reference(x.astype(np.float64), kernel, bias, strides, padding, dilation, channels_first)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding", ["valid", "same", "full"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv2d_forward_matches_numpy(padding, data_format):
    cf = data_format == "channels_first"
    for strides, dilation in [((1, 1), (1, 1)), ((2, 3), (1, 1)), ((1, 1), (2, 1))]:
        shape = (3, 9, 8) if cf else (9, 8, 3)
        layer = Conv2D(4, (3, 2), strides=strides, padding=padding, dilation_rate=dilation, data_format=data_format,
                       input_shape=shape)
        check_layer(layer, shape, strides, padding, dilation, cf)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d_forward_matches_numpy(padding):
    for strides, dilation in [((1,), (1,)), ((2,), (1,)), ((1,), (3,))]:
        layer = Conv1D(5, 3, strides=strides, padding=padding, dilation_rate=dilation, input_shape=(11, 4))
        check_layer(layer, (11, 4), strides, padding, dilation, False)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv3d_forward_matches_numpy(data_format):
    cf = data_format == "channels_first"
    shape = (2, 5, 4, 6) if cf else (5, 4, 6, 2)
    layer = Conv3D(3, (2, 3, 2), strides=(1, 2, 1), padding="same", data_format=data_format, input_shape=shape)
    check_layer(layer, shape, (1, 2, 1), "same", (1, 1, 1), cf)


def test_keras1_convolution2d_reads_nb_row_nb_col_and_aliases():
    layer = Convolution2D(6, 3, 2, border_mode="same", subsample=(2, 2), dim_ordering="th", input_shape=(3, 8, 7),
                          init="he_normal", bias=True)
    assert layer.filters == 6 and layer.kernel_size == (3, 2) and layer.strides == (2, 2)
    assert layer.padding == "same" and layer.data_format == "channels_first"
    check_layer(layer, (3, 8, 7), (2, 2), "same", (1, 1), True)
    assert layer.get_weights()[0].shape == (3, 2, 3, 6)  # Keras' (kh, kw, in, out) in channels_first too
    full = Convolution2D(2, 3, 3, border_mode="full", dim_ordering="tf", input_shape=(5, 5, 1))
    check_layer(full, (5, 5, 1), (1, 1), "full", (1, 1), False)
    assert full.output_shape == (None, 7, 7, 2)


def test_keras1_convolution1d_aliases():
    layer = Convolution1D(nb_filter=4, filter_length=3, subsample_length=2, border_mode="valid", input_dim=5,
                          input_length=9)
    assert layer.kernel_size == (3,) and layer.strides == (2,)
    check_layer(layer, (9, 5), (2,), "valid", (1,), False)
    assert layer.output_shape == (None, 4, 4)


def test_default_data_format_comes_from_config():
    saved = config.image_data_format()
    try:
        config.set_image_data_format("channels_first")
        layer = Conv2D(2, (3, 3), input_shape=(1, 6, 6))
        assert layer.data_format == "channels_first"
        m = Sequential()
        m.add(layer)
        assert m.output_shape == (None, 2, 4, 4)
        assert Conv1D(2, 3).data_format == "channels_last"
    finally:
        config.set_image_data_format(saved)


def test_weights_layout_count_params_and_config_round_trip():
    m = Sequential()
    m.add(Conv2D(8, (3, 3), input_shape=(10, 10, 2), use_bias=True, activation="relu"))
    m.add(Flatten())
    w = m.layers[0].get_weights()
    assert [a.shape for a in w] == [(3, 3, 2, 8), (8,)]
    assert m.layers[0].count_params() == 3 * 3 * 2 * 8 + 8
    cfg = m.layers[0].get_config()
    assert cfg["kernel_size"] == (3, 3) and cfg["padding"] == "valid" and cfg["activation"] == "relu"
    clone = Conv2D.from_config(cfg)
    assert clone.filters == 8 and clone.kernel_size == (3, 3)
    nb = Conv2D(3, (2, 2), use_bias=False, input_shape=(4, 4, 1))
    Sequential().add(nb)
    assert [a.shape for a in nb.get_weights()] == [(2, 2, 1, 3)]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Conv2D(0, 3), "filters"),
        (lambda: Conv2D(4, (3, 3), padding="wrong"), "padding"),
        (lambda: Conv2D(4, (3, 3), data_format="nchw"), "data_format"),
        (lambda: Conv2D(4, (3, 3, 3)), "kernel_size"),
        (lambda: Conv2D(4, (3, 3), strides=2, dilation_rate=2), "dilation_rate"),
        (lambda: Convolution2D(4, 3, 3, dim_ordering="xx"), "dim_ordering"),
        (lambda: Conv2D(4, (3, 3), groups=2), "groups"),
    ],
)
def test_bad_arguments_name_the_argument(make, message):
    with pytest.raises((ValueError, NotImplementedError), match=message):
        make()


def test_bad_input_shapes_name_the_layer_and_shapes():
    m = Sequential()
    with pytest.raises(ValueError, match=r"conv.*expected ndim=4.*\(None, 28, 28\)"):
        m.add(Conv2D(4, (3, 3), input_shape=(28, 28), name="conv"))
    m = Sequential()
    with pytest.raises(ValueError, match=r"larger than the input"):
        m.add(Conv2D(4, (5, 5), input_shape=(3, 3, 1)))


def test_small_cnn_learns():
    set_random_seed(5)  # fixed initial weights: unseeded, about one start in ten learned too slowly
    rng = np.random.default_rng(1)
    x = rng.random((256, 8, 8, 1)).astype(np.float32)
    # The label says whether the bright pixels sit in the left or the right half.
    y = (x[:, :, :4, 0].sum(axis=(1, 2)) > x[:, :, 4:, 0].sum(axis=(1, 2))).astype(np.float32)
    m = Sequential()
    m.add(Conv2D(4, (3, 3), activation="relu", padding="same", input_shape=(8, 8, 1)))
    m.add(MaxPooling2D((2, 2)))
    m.add(Flatten())
    m.add(Dense(1, activation="sigmoid"))
    m.compile(loss="binary_crossentropy", optimizer=optimizers.Adam(learning_rate=0.01), metrics=["accuracy"])
    h = m.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0] * 0.6
    assert h.history["accuracy"][-1] > 0.85


def conv_transpose_reference(x, kernel, bias, strides, padding, dilation):
    """Scatter form of the transposed convolution (channels_last), kernel (k.., filters, in)."""
    rank = kernel.ndim - 2
    sp = x.shape[1:-1]
    dks = [(k - 1) * d + 1 for k, d in zip(kernel.shape[:rank], dilation)]
    outs = [n * s + max(dk - s, 0) if padding == "valid" else n * s for n, s, dk in zip(sp, strides, dks)]
    pads = [max((n - 1) * s + dk - o, 0) // 2 for n, s, dk, o in zip(sp, strides, dks, outs)]
    full = [max((n - 1) * s + dk, p + o) for n, s, dk, p, o in zip(sp, strides, dks, pads, outs)]
    buf = np.zeros((x.shape[0],) + tuple(full) + (kernel.shape[-2],))
    for pos in itertools.product(*[range(n) for n in sp]):
        for taps in itertools.product(*[range(k) for k in kernel.shape[:rank]]):
            at = tuple(i * s + t * d for i, s, t, d in zip(pos, strides, taps, dilation))
            buf[(slice(None),) + at] += x[(slice(None),) + pos] @ kernel[taps].T
    crop = tuple(slice(p, p + o) for p, o in zip(pads, outs))
    return buf[(slice(None),) + crop] + bias


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_transpose_matches_numpy(padding):
    for layer, shape, strides, dilation in [
        (Conv2DTranspose(3, (3, 2), strides=(2, 3), padding=padding, input_shape=(4, 3, 2)), (4, 3, 2), (2, 3),
         (1, 1)),
        (Conv2DTranspose(2, (2, 2), strides=(3, 3), padding=padding, input_shape=(3, 3, 1)), (3, 3, 1), (3, 3),
         (1, 1)),
        (Conv1DTranspose(4, 3, dilation_rate=2, padding=padding, input_shape=(5, 3)), (5, 3), (1,), (2,)),
    ]:
        m = Sequential()
        m.add(layer)
        kernel = RNG.standard_normal(layer.get_weights()[0].shape).astype(np.float32)
        bias = RNG.standard_normal(layer.filters).astype(np.float32)
        layer.set_weights([kernel, bias])
        assert kernel.shape[-2:] == (layer.filters, shape[-1])  # Keras: (k.., filters, in)
        x = RNG.standard_normal((2,) + shape).astype(np.float32)
        want = conv_transpose_reference(x.astype(np.float64), kernel, bias, strides, padding, dilation)
        np.testing.assert_allclose(m.predict(x, verbose=0), want, rtol=1e-4, atol=1e-4)


def test_conv_transpose_channels_first_and_training():
    m = Sequential()
    m.add(Conv2DTranspose(2, (3, 3), strides=(2, 2), padding="same", data_format="channels_first",
                          input_shape=(3, 4, 4)))
    assert m.output_shape == (None, 2, 8, 8)
    m.add(Flatten())
    m.add(Dense(1))
    m.compile(loss="mse", optimizer="adam")
    x = RNG.standard_normal((16, 3, 4, 4)).astype(np.float32)
    y = x.sum(axis=(1, 2, 3))[:, None]
    h = m.fit(x, y, epochs=20, batch_size=8, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    with pytest.raises(NotImplementedError, match="output_padding"):
        Conv2DTranspose(2, 3, output_padding=1)


def test_json_round_trip_of_a_convolutional_model():
    from rustkeras import layers as L
    from rustkeras.models import model_from_json

    m = Sequential()
    m.add(Conv2D(4, (3, 3), padding="same", input_shape=(8, 8, 2), activation="relu"))
    m.add(L.BatchNormalization())
    m.add(L.MaxPooling2D())
    m.add(L.ZeroPadding2D(((1, 0), (0, 1))))
    m.add(L.Cropping2D(1))
    m.add(L.UpSampling2D())
    m.add(Conv2DTranspose(2, 3, strides=2, padding="same"))
    m.add(L.GlobalAveragePooling2D())
    m.add(Dense(3))
    assert [type(layer).__name__ for layer in m.layers][:3] == ["Conv2D", "BatchNormalization", "MaxPooling2D"]
    assert m.layers[0].name.startswith("conv2d") and m.layers[2].name.startswith("max_pooling2d")
    clone = model_from_json(m.to_json())
    clone.set_weights(m.get_weights())
    x = RNG.random((2, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(clone.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6)
