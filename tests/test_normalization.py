"""BatchNormalization against numpy: batch statistics in training (through the training loss),
moving statistics at inference and their update after a step, the weight order and
trainability, the channel axis of channels_first images, and argument errors."""

import numpy as np
import pytest

from rustkeras import optimizers
from rustkeras.layers import BatchNormalization, Conv2D, Dense, Flatten
from rustkeras.models import Sequential

RNG = np.random.default_rng(0)


def model(bn, input_shape, lr=0.0):
    m = Sequential()
    bn._input_shape_arg = tuple(input_shape)
    m.add(bn)
    m.compile(loss="mse", optimizer=optimizers.SGD(learning_rate=lr))
    return m


def bn_reference(x, gamma, beta, mean, var, eps, axis):
    shape = [1] * x.ndim
    shape[axis] = -1
    r = lambda v: np.reshape(v, shape)  # noqa: E731
    return (x - r(mean)) / np.sqrt(r(var) + eps) * r(gamma) + r(beta)


@pytest.mark.parametrize("axis, shape", [(-1, (5,)), (-1, (3, 4, 2)), (1, (2, 3, 4))])
def test_training_uses_batch_statistics_and_updates_moving_ones(axis, shape):
    bn = BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-3)
    m = model(bn, shape)
    c = shape[axis - 1] if axis > 0 else shape[-1]
    gamma = RNG.random(c).astype(np.float32) + 0.5
    beta = RNG.standard_normal(c).astype(np.float32)
    mm = RNG.standard_normal(c).astype(np.float32)
    mv = RNG.random(c).astype(np.float32) + 0.5
    bn.set_weights([gamma, beta, mm, mv])
    x = (RNG.standard_normal((8,) + shape) * 2 + 1).astype(np.float32)
    y = RNG.standard_normal((8,) + shape).astype(np.float32)
    full_axis = axis if axis > 0 else x.ndim - 1
    red = tuple(a for a in range(x.ndim) if a != full_axis)
    bmean, bvar = x.mean(axis=red), x.var(axis=red)

    # Inference: moving statistics.
    want = bn_reference(x, gamma, beta, mm, mv, 1e-3, full_axis)
    np.testing.assert_allclose(m.predict(x, verbose=0), want, rtol=1e-4, atol=1e-4)
    # Training: batch statistics (seen through the loss of a zero-learning-rate step).
    train_out = bn_reference(x, gamma, beta, bmean, bvar, 1e-3, full_axis)
    loss = m.train_on_batch(x, y)
    loss = loss[0] if isinstance(loss, (list, tuple)) else loss
    np.testing.assert_allclose(loss, np.mean((train_out - y) ** 2), rtol=1e-4)
    # The moving statistics moved toward the batch's.
    g, b, new_mm, new_mv = bn.get_weights()
    np.testing.assert_allclose(new_mm, 0.9 * mm + 0.1 * bmean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new_mv, 0.9 * mv + 0.1 * bvar, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g, gamma)


def test_weight_order_shapes_and_trainability():
    bn = BatchNormalization()
    m = model(bn, (4, 4, 3))
    w = bn.get_weights()
    assert [a.shape for a in w] == [(3,)] * 4
    np.testing.assert_array_equal(w[0], np.ones(3))  # gamma
    np.testing.assert_array_equal(w[1], np.zeros(3))  # beta
    np.testing.assert_array_equal(w[2], np.zeros(3))  # moving_mean
    np.testing.assert_array_equal(w[3], np.ones(3))  # moving_variance
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    assert bn.count_params() == 12
    no_scale = BatchNormalization(scale=False, center=False)
    model(no_scale, (3,))
    assert len(no_scale.get_weights()) == 2
    assert m.output_shape == (None, 4, 4, 3)


def test_gamma_and_beta_learn_in_a_cnn():
    x = RNG.random((64, 6, 6, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.float32)
    m = Sequential()
    m.add(Conv2D(4, (3, 3), input_shape=(6, 6, 1)))
    m.add(BatchNormalization())
    m.add(Flatten())
    m.add(Dense(1, activation="sigmoid"))
    m.compile(loss="binary_crossentropy", optimizer=optimizers.Adam(learning_rate=0.01))
    before = m.layers[1].get_weights()
    h = m.fit(x, y, epochs=5, batch_size=16, verbose=0)
    after = m.layers[1].get_weights()
    assert not np.allclose(before[0], after[0]) and not np.allclose(before[1], after[1])
    assert not np.allclose(before[2], after[2])
    assert h.history["loss"][-1] < h.history["loss"][0]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: BatchNormalization(momentum=2.0), "momentum"),
        (lambda: BatchNormalization(epsilon=0), "epsilon"),
        (lambda: BatchNormalization(axis="x"), "axis"),
        (lambda: BatchNormalization(mode=2), "mode"),
        (lambda: BatchNormalization(renorm=True), "renorm"),
    ],
)
def test_bad_arguments_name_the_argument(make, message):
    with pytest.raises((ValueError, NotImplementedError), match=message):
        make()


def test_axis_out_of_range_names_the_layer():
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        model(BatchNormalization(axis=3), (4, 2))
