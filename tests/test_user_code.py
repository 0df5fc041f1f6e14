"""User code traced into the graph: Keras-style custom layers, Lambda, custom losses and
metrics, subclassed models, models as layers, all checked against numpy."""

import numpy as np
import pytest

import rustkeras
from rustkeras import Input, Model, Sequential, layers, losses, metrics, ops
from rustkeras import backend as K
from rustkeras.layers import Dense, Lambda
from rustkeras.utils import set_random_seed


class MyDense(layers.Layer):
    """The issue's Keras 3 style layer."""

    calls = 0

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="kernel")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        MyDense.calls += 1
        return ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class MyLayer(layers.Layer):
    """The Keras 1 guide's layer."""

    def __init__(self, output_dim, **kwargs):
        self.output_dim = output_dim
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.W = self.add_weight(shape=(input_shape[1], self.output_dim), initializer="uniform", trainable=True)
        super().build(input_shape)

    def call(self, x, mask=None):
        return K.dot(x, self.W)

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], self.output_dim)


def data(n=32, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype("float32"), rng.normal(size=(n, k)).astype("float32")


def test_my_dense_matches_dense_in_predictions_and_training():
    x, y = data()
    set_random_seed(1)
    a = Sequential([Input((6,)), MyDense(5), layers.Activation("tanh"), MyDense(3)])
    b = Sequential([Input((6,)), Dense(5), layers.Activation("tanh"), Dense(3)])
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    for m in (a, b):
        m.compile(optimizer=rustkeras.optimizers.SGD(0.1), loss="mse")
        m.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    layer = a.layers[0]
    assert [w.name for w in layer._own_weights()] == ["kernel", "bias"]
    np.testing.assert_array_equal(layer.w.numpy(), a.get_weights()[0])
    assert layer.w.shape == (6, 5) and layer.trainable_weights[0].shape == (6, 5)


def test_call_is_traced_once_not_per_batch():
    x, y = data(n=64)
    MyDense.calls = 0
    m = Sequential([Input((6,)), MyDense(3)])
    traced = MyDense.calls
    assert traced >= 1

    def loss_fn(y_true, y_pred):
        loss_fn.calls += 1
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    loss_fn.calls = 0
    m.compile(optimizer="sgd", loss=loss_fn)
    m.fit(x, y, epochs=3, batch_size=4, verbose=0)
    m.evaluate(x, y, verbose=0)
    m.predict(x, verbose=0)
    # 48 training batches and 32 more: neither the layer nor the loss ran per batch.
    assert MyDense.calls == traced
    assert loss_fn.calls == 1


def test_keras1_layer_with_k_dot():
    x, _ = data()
    m = Sequential([Input((6,)), MyLayer(4)])
    (w,) = m.get_weights()
    assert w.shape == (6, 4) and np.all(np.abs(w) <= 0.05)
    np.testing.assert_allclose(m.predict(x, verbose=0), x @ w, rtol=1e-5, atol=1e-6)


def test_lambda_between_dense_layers_forward_and_one_sgd_step():
    x, y = data(n=8, d=4, k=2)
    set_random_seed(3)
    m = Sequential([Input((4,)), Dense(3), Lambda(lambda t: ops.square(t) * 2 + 1), Dense(2)])
    w1, b1, w2, b2 = m.get_weights()
    h = x @ w1 + b1
    g = 2 * h * h + 1
    out = g @ w2 + b2
    np.testing.assert_allclose(m.predict(x, verbose=0), out, rtol=1e-5, atol=1e-5)
    lr = 0.01
    m.compile(optimizer=rustkeras.optimizers.SGD(lr), loss="mse")
    m.train_on_batch(x, y)
    d_out = 2 * (out - y) / out.size
    d_w2 = g.T @ d_out
    d_g = d_out @ w2.T
    d_h = d_g * 4 * h
    d_w1 = x.T @ d_h
    new = m.get_weights()
    np.testing.assert_allclose(new[0], w1 - lr * d_w1, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new[1], b1 - lr * d_h.sum(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new[2], w2 - lr * d_w2, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new[3], b2 - lr * d_out.sum(0), rtol=1e-4, atol=1e-6)


def smooth_l1(y_true, y_pred):
    d = ops.abs(y_true - y_pred)
    return ops.mean(ops.where(d < 1.0, 0.5 * d * d, d - 0.5), axis=-1)


def my_metric_fn(y_true, y_pred):
    return ops.max(ops.abs(y_true - y_pred), axis=-1)


def test_custom_loss_and_metric_values_and_history_keys():
    x, y = data(n=16)
    y = y * 3
    m = Sequential([Input((6,)), Dense(3)])
    m.compile(optimizer="sgd", loss=smooth_l1, metrics=["mae", my_metric_fn])
    assert m.metrics_names == ["loss", "mae", "my_metric_fn"]
    p = m.predict(x, verbose=0)
    d = np.abs(y - p)
    expect_loss = np.mean(np.where(d < 1, 0.5 * d * d, d - 0.5).mean(-1))
    loss, mae, mm = m.evaluate(x, y, batch_size=16, verbose=0)
    np.testing.assert_allclose(loss, expect_loss, rtol=1e-5)
    np.testing.assert_allclose(mae, d.mean(), rtol=1e-5)
    np.testing.assert_allclose(mm, d.max(-1).mean(), rtol=1e-5)
    h = m.fit(x, y, epochs=2, verbose=0)
    assert set(h.history) == {"loss", "mae", "my_metric_fn"}
    # Sample weights scale the per-sample values, as Keras does.
    sw = np.linspace(0, 1, 16).astype("float32")
    p = m.predict(x, verbose=0)
    d = np.abs(y - p)
    per = np.where(d < 1, 0.5 * d * d, d - 0.5).mean(-1)
    np.testing.assert_allclose(m.evaluate(x, y, sample_weight=sw, batch_size=16, verbose=0)[0],
                               np.mean(per * sw), rtol=1e-5)


def test_loss_subclass_and_metric_wrapper():
    class Scaled(losses.Loss):
        def call(self, y_true, y_pred):
            return ops.mean(ops.square(y_true - y_pred), axis=-1) * 3.0

    x, y = data(n=8)
    m = Sequential([Input((6,)), Dense(3)])
    m.compile(optimizer="sgd", loss=Scaled(name="scaled"),
              metrics=[metrics.MeanMetricWrapper(lambda t, p: ops.mean(ops.abs(t - p), axis=-1), name="l1")])
    p = m.predict(x, verbose=0)
    loss, l1 = m.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(loss, 3 * np.mean((y - p) ** 2), rtol=1e-5)
    np.testing.assert_allclose(l1, np.mean(np.abs(y - p)), rtol=1e-5)
    assert m.metrics_names == ["loss", "l1"]


def test_crossentropy_from_logits_and_label_smoothing():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(5, 4)).astype("float32")
    labels = np.eye(4, dtype="float32")[rng.integers(0, 4, 5)]
    sm = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    smoothed = labels * 0.9 + 0.1 / 4
    expect = -(smoothed * np.log(sm)).sum(-1).mean()
    got = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(labels, logits)
    np.testing.assert_allclose(got, expect, rtol=1e-5)
    z = rng.integers(0, 2, (5, 4)).astype("float32")
    sig = 1 / (1 + np.exp(-logits))
    expect_b = -(z * np.log(sig) + (1 - z) * np.log(1 - sig)).mean(-1).mean()
    np.testing.assert_allclose(losses.BinaryCrossentropy(from_logits=True)(z, logits), expect_b, rtol=1e-5)
    idx = labels.argmax(-1)
    expect_s = -np.log(sm[np.arange(5), idx]).mean()
    np.testing.assert_allclose(losses.SparseCategoricalCrossentropy(from_logits=True)(idx, logits), expect_s,
                               rtol=1e-5)
    # And in training: a model without softmax trained from logits.
    x = rng.normal(size=(32, 6)).astype("float32")
    yl = np.eye(4, dtype="float32")[rng.integers(0, 4, 32)]
    m = Sequential([Input((6,)), Dense(4)])
    m.compile(optimizer="adam", loss=losses.CategoricalCrossentropy(from_logits=True))
    out = m.predict(x, verbose=0)
    e = np.exp(out - out.max(-1, keepdims=True))
    ref = -(yl * np.log(e / e.sum(-1, keepdims=True))).sum(-1).mean()
    np.testing.assert_allclose(m.evaluate(x, yl, batch_size=32, verbose=0), ref, rtol=1e-5)


class Net(Model):
    def __init__(self):
        super().__init__()
        self.hidden = Dense(8, activation="relu")
        self.out = Dense(3)

    def call(self, inputs, training=None):
        return self.out(self.hidden(inputs))


def test_subclassed_model_matches_functional_model():
    x, y = data()
    set_random_seed(4)
    sub = Net()
    sub.build((None, 6))
    i = Input((6,))
    fun = Model(i, Dense(3)(Dense(8, activation="relu")(i)))
    fun.set_weights(sub.get_weights())
    np.testing.assert_allclose(sub.predict(x, verbose=0), fun.predict(x, verbose=0), rtol=1e-6)
    for m in (sub, fun):
        m.compile(optimizer=rustkeras.optimizers.SGD(0.05), loss="mse")
        m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(sub.get_weights(), fun.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert [l.name for l in sub.layers] == [sub.hidden.name, sub.out.name]
    np.testing.assert_allclose(sub(x[:2]), sub.predict(x[:2], verbose=0), rtol=1e-6)


def test_subclassed_model_builds_on_first_fit():
    x, y = data()
    m = Net()
    m.compile(optimizer="adam", loss="mse")
    h = m.fit(x, y, epochs=2, verbose=0)
    assert len(h.history["loss"]) == 2 and m.output_shape == (None, 3)


def test_training_argument_branches_at_trace_time():
    class Noisy(layers.Layer):
        def call(self, x, training=None):
            return x * 2.0 if training else x

    x = np.ones((4, 3), "float32")
    m = Sequential([Input((3,)), Noisy()])
    np.testing.assert_allclose(m.predict(x, verbose=0), x)
    m.compile(optimizer="sgd", loss="mse")
    # In training the layer doubles: the loss against zeros is 4 per element, not 1.
    np.testing.assert_allclose(m.train_on_batch(x, np.zeros_like(x)), 4.0)
    np.testing.assert_allclose(m.evaluate(x, np.zeros_like(x), verbose=0), 1.0)


def test_functional_training_false_freezes_batchnorm_and_dropout():
    i = Input((3,))
    o = layers.Dropout(0.9)(layers.BatchNormalization()(i, training=False), training=False)
    m = Model(i, o)
    m.compile(optimizer="sgd", loss="mse")
    x = np.arange(12, dtype="float32").reshape(4, 3)
    # Moving statistics (mean 0, variance 1) are used even in training, and dropout is off.
    np.testing.assert_allclose(m.train_on_batch(x, x / np.sqrt(1 + 1e-3)), 0.0, atol=1e-6)


def test_nested_layers_inside_a_custom_layer():
    class Block(layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.a = Dense(4, activation="relu")
            self.b = Dense(2)

        def call(self, x):
            return self.b(self.a(x)) + x[:, :2]

    x, y = data(k=2)
    m = Sequential([Input((6,)), Block()])
    ka, ba, kb, bb = m.get_weights()
    ref = np.maximum(x @ ka + ba, 0) @ kb + bb + x[:, :2]
    np.testing.assert_allclose(m.predict(x, verbose=0), ref, rtol=1e-5, atol=1e-6)
    m.compile(optimizer="sgd", loss="mse")
    before = m.get_weights()
    m.fit(x, y, epochs=1, verbose=0)
    assert all(not np.allclose(a, b) for a, b in zip(before, m.get_weights()))


def test_add_loss_adds_to_the_training_loss():
    class Penalized(layers.Layer):
        def call(self, x):
            self.add_loss(0.5 * ops.sum(ops.square(x)))
            return x

    x = np.ones((2, 3), "float32")
    m = Sequential([Input((3,)), Penalized()])
    m.compile(optimizer="sgd", loss="mse")
    # mse 0 plus the penalty (0.5 * 6 per batch of 2).
    np.testing.assert_allclose(m.evaluate(x, x, batch_size=2, verbose=0), 3.0, rtol=1e-6)


def test_model_as_layer_shares_weights():
    inner = Sequential([Input((6,)), Dense(4, activation="tanh")])
    a = Input((6,))
    outer = Model(a, Dense(1)(inner(a)))
    outer.compile(optimizer="sgd", loss="mse")
    x, y = data(k=1)
    outer.fit(x, y, epochs=2, verbose=0)
    w = outer.get_weights()
    np.testing.assert_array_equal(w[0], inner.get_weights()[0])
    np.testing.assert_allclose(outer.predict(x, verbose=0), np.tanh(x @ w[0] + w[1]) @ w[2] + w[3], rtol=1e-5,
                               atol=1e-6)
    assert outer.layers[1] is inner
    stacked = Sequential([inner, Dense(2)])
    assert stacked.predict(x, verbose=0).shape == (32, 2)


def test_layers_called_eagerly_on_arrays():
    d = Dense(3, use_bias=False)
    x = np.ones((2, 4), "float32")
    y = d(x)
    np.testing.assert_allclose(y, x @ d.get_weights()[0], rtol=1e-6)


def test_ops_on_functional_tensors_become_layers():
    i = Input((4,))
    o = ops.relu(Dense(4)(i)) * 2 + 1
    m = Model(i, o)
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    k, b = m.get_weights()
    np.testing.assert_allclose(m.predict(x, verbose=0), np.maximum(x @ k + b, 0) * 2 + 1, rtol=1e-5)


def test_custom_objects_and_registration():
    cfg = Sequential([Input((6,)), MyDense(3)]).get_config()
    with pytest.raises(ValueError, match="MyDense"):
        Sequential.from_config(cfg)
    m = Sequential.from_config(cfg, custom_objects={"MyDense": MyDense})
    assert m.layers[0].units == 3 and m.predict(np.ones((1, 6), "float32"), verbose=0).shape == (1, 3)

    @rustkeras.saving.register_keras_serializable(package="tests")
    class Twice(layers.Layer):
        def call(self, x):
            return x * 2

    cfg = Sequential([Input((2,)), Twice()]).get_config()
    m = Sequential.from_config(cfg)
    np.testing.assert_allclose(m.predict(np.ones((1, 2), "float32"), verbose=0), 2.0)


def test_lambda_from_config_needs_the_function():
    def double(t):
        return t * 2

    cfg = Sequential([Input((2,)), Lambda(double)]).get_config()
    with pytest.raises(ValueError, match="custom_objects"):
        Sequential.from_config(cfg)
    m = Sequential.from_config(cfg, custom_objects={"double": double})
    np.testing.assert_allclose(m.predict(np.ones((1, 2), "float32"), verbose=0), 2.0)


def test_symbolic_tensors_refuse_python_branching():
    class Bad(layers.Layer):
        def call(self, x):
            return x if x > 0 else -x

    with pytest.raises(TypeError, match="ops.where"):
        Sequential([Input((2,)), Bad()])


def test_k_backend_variables_and_eval():
    a = np.arange(6, dtype="float32").reshape(2, 3)
    b = np.arange(12, dtype="float32").reshape(3, 4)
    va, vb = K.variable(a), K.variable(b)
    np.testing.assert_allclose(K.eval(K.dot(va, vb)), a @ b)
    K.set_value(va, a * 2)
    np.testing.assert_allclose(K.get_value(va), a * 2)
    assert K.int_shape(va) == (2, 3) and K.ndim(vb) == 2
    assert K.epsilon() == pytest.approx(1e-7) and K.floatx() == "float32"
    np.testing.assert_allclose(K.batch_dot(np.ones((2, 3)), np.ones((2, 3))), [[3.0], [3.0]])
    x3, y3 = np.ones((2, 3, 4)), np.ones((2, 4, 5))
    np.testing.assert_allclose(K.batch_dot(x3, y3, axes=(2, 1)), np.einsum("bij,bjk->bik", x3, y3))


def test_user_code_trains_the_same_on_the_gpu():
    from rustkeras import config

    def build():
        set_random_seed(11)
        i = Input((6,))
        h = MyDense(8)(i)
        h = Lambda(lambda t: ops.where(t > 0, t, t * 0.1))(h)
        out = MyLayer(3)(h)
        m = Model(i, out)
        weights = np.array([1.0, 2.0, 3.0], "float32")
        m.compile(optimizer=rustkeras.optimizers.SGD(0.05),
                  loss=lambda yt, yp: ops.mean(ops.square(yt - yp) * weights, axis=-1),
                  metrics=[my_metric_fn])
        return m

    x, y = data()
    results = {}
    try:
        for backend in ("cpu", "gpu"):
            config.set_backend(backend)
            assert K.backend() == backend
            m = build()
            h = m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
            results[backend] = (h.history, m.get_weights(), m.predict(x, verbose=0))
    finally:
        config.set_backend("cpu")
    (hc, wc, pc), (hg, wg, pg) = results["cpu"], results["gpu"]
    assert set(hc) == set(hg) == {"loss", "my_metric_fn"}
    for k in hc:
        np.testing.assert_allclose(hc[k], hg[k], rtol=1e-4)
    for a, b in zip(wc, wg):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pc, pg, rtol=1e-4, atol=1e-5)
