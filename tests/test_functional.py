"""The functional API: Model(inputs, outputs) with several inputs and outputs, shared layers,
per-output losses, weights and metrics, data by name, config round trips and errors.

Numbers are checked against numpy forwards and hand-derived gradients with the same weights.
"""

import json

import numpy as np
import pytest

import rustkeras
from rustkeras.layers import (
    LSTM, Add, Bidirectional, Concatenate, Dense, Embedding, Input, InputLayer, KerasTensor, Layer, Subtract,
    concatenate,
)
from rustkeras.models import Model, Sequential, model_from_json
from rustkeras.optimizers import SGD
from rustkeras.utils import set_random_seed

EPS = 1e-7


def relu(x):
    return np.maximum(x, 0.0)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def cce(y, p):
    p = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -(y * np.log(p)).sum(-1)


def two_by_two():
    """a (3,), b (2,) -> h = relu(Dense(4)(concat)) -> o1 = Dense(1)(h), o2 = softmax(Dense(2)(h) + Dense(2)(b))."""
    a = Input(shape=(3,), name="a")
    b = Input(shape=(2,), name="b")
    h = Dense(4, activation="relu", name="h")(concatenate([a, b]))
    o1 = Dense(1, name="o1")(h)
    s = Add(name="s")([Dense(2, name="ph")(h), Dense(2, name="pb")(b)])
    o2 = Dense(2, activation="softmax", name="o2")(s)
    return Model(inputs=[a, b], outputs=[o1, o2], name="two_by_two")


def numpy_forward(w, xa, xb):
    """`w` in get_weights order: h, ph, pb, o1, o2 (kernel, bias each)."""
    h = relu(np.concatenate([xa, xb], -1) @ w[0] + w[1])
    s = (h @ w[2] + w[3]) + (xb @ w[4] + w[5])
    return h @ w[6] + w[7], softmax(s @ w[8] + w[9])


@pytest.fixture
def data():
    r = np.random.default_rng(0)
    xa = r.normal(size=(12, 3)).astype(np.float32)
    xb = r.normal(size=(12, 2)).astype(np.float32)
    y1 = r.normal(size=(12, 1)).astype(np.float32)
    y2 = np.eye(2, dtype=np.float32)[r.integers(0, 2, 12)]
    return xa, xb, y1, y2


def random_weights(model, seed=1):
    r = np.random.default_rng(seed)
    return [r.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()]


def test_structure_of_a_two_input_two_output_model():
    m = two_by_two()
    # Keras 3's order (and so get_weights' order): h, ph, pb, o1, o2.
    assert [l.name for l in m.layers] == ["a", "b", "concatenate", "h", "ph", "pb", "s", "o1", "o2"]
    assert isinstance(m.layers[0], InputLayer) and isinstance(m, Model)
    assert m.input_shape == [(None, 3), (None, 2)] and m.output_shape == [(None, 1), (None, 2)]
    assert [t.shape for t in m.inputs] == [(None, 3), (None, 2)]
    assert all(isinstance(t, KerasTensor) for t in m.outputs)
    assert m.output_names == ["o1", "o2"] and m.input_names == ["a", "b"]
    assert m.count_params() == 5 * 4 + 4 + 4 + 1 + 4 * 2 + 2 + 2 * 2 + 2 + 2 * 2 + 2
    assert m.get_layer("h").output_shape == (None, 4)
    lines = []
    m.summary(print_fn=lines.append)
    assert any("concatenate[0][0]" in line and "h (Dense)" in line for line in lines)


def test_layers_and_weights_follow_keras_order():
    """Orders Keras 3 gives for these graphs: by depth from the outputs, then as a walk from
    the outputs meets the layers (not the order the layers were called in)."""
    a, b = Input(shape=(3,), name="a"), Input(shape=(2,), name="b")
    d_b = Dense(4, name="db")(b)
    d_a = Dense(5, name="da")(a)
    m = Model([a, b], Dense(1, name="o")(Concatenate(name="c")([d_a, d_b])))
    assert [l.name for l in m.layers] == ["a", "b", "da", "db", "c", "o"]
    assert [w.shape for w in m.get_weights()] == [(3, 5), (5,), (2, 4), (4,), (9, 1), (1,)]
    x = Input(shape=(3,), name="x")
    skip = Dense(4, name="skip")(x)
    deep = Dense(4, name="h2")(Dense(4, name="h1")(x))
    assert [l.name for l in Model(x, Add(name="s1")([skip, deep])).layers] == ["x", "h1", "skip", "h2", "s1"]
    assert [l.name for l in Model(x, Add(name="s2")([deep, skip])).layers] == ["x", "h1", "h2", "skip", "s2"]
    p, q = Input(shape=(3,), name="p"), Input(shape=(3,), name="q")
    shared = Dense(3, name="sh")
    m = Model([p, q], [shared(p), shared(Dense(3, name="pre")(q))])
    assert [l.name for l in m.layers] == ["q", "p", "pre", "sh"]
    assert [l.name for l in Model([p, q, x], Dense(2, name="z")(q)).layers] == ["q", "p", "x", "z"]


def test_predict_matches_numpy_with_the_same_weights(data):
    xa, xb, _, _ = data
    m = two_by_two()
    w = random_weights(m)
    m.set_weights(w)
    o1, o2 = m.predict([xa, xb], batch_size=5, verbose=0)
    want1, want2 = numpy_forward(w, xa, xb)
    np.testing.assert_allclose(o1, want1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(o2, want2, rtol=1e-5, atol=1e-6)
    # Inputs by name, in any key order.
    d1, d2 = m.predict({"b": xb, "a": xa}, verbose=0)
    np.testing.assert_array_equal(d1, o1)
    np.testing.assert_array_equal(d2, o2)
    p1, p2 = m.predict_on_batch([xa, xb])
    np.testing.assert_allclose(p2, o2, rtol=1e-6)


def test_one_output_gives_an_array():
    a = Input(shape=(3,))
    d = Dense(2)
    for outputs in (d(a), [d(a)]):
        got = Model(a, outputs).predict(np.ones((4, 3), np.float32), verbose=0)
        assert isinstance(got, np.ndarray) and got.shape == (4, 2)


def test_loss_dict_and_loss_weights_give_the_weighted_sum(data):
    xa, xb, y1, y2 = data
    m = two_by_two()
    w = random_weights(m, seed=2)
    m.set_weights(w)
    m.compile(optimizer="sgd", loss={"o1": "mse", "o2": "categorical_crossentropy"},
              loss_weights={"o1": 0.3, "o2": 2.0}, metrics={"o2": ["accuracy"]})
    assert m.metrics_names == ["loss", "o1_loss", "o2_loss", "o2_accuracy"]
    logs = m.evaluate({"a": xa, "b": xb}, {"o1": y1, "o2": y2}, batch_size=5, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "o1_loss", "o2_loss", "o2_accuracy"]
    p1, p2 = numpy_forward(w, xa, xb)
    mse = ((p1 - y1) ** 2).mean()
    ce = cce(y2, p2).mean()
    acc = (p2.argmax(-1) == y2.argmax(-1)).mean()
    np.testing.assert_allclose([logs["o1_loss"], logs["o2_loss"], logs["o2_accuracy"]], [mse, ce, acc], rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], 0.3 * mse + 2.0 * ce, rtol=1e-5)
    # Per-output sample weights by name; one array would weigh both outputs.
    sw = np.linspace(0.5, 2.0, 12).astype(np.float32)
    logs = m.evaluate([xa, xb], [y1, y2], sample_weight={"o1": sw}, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["o1_loss"], (((p1 - y1) ** 2)[:, 0] * sw).mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["o2_loss"], ce, rtol=1e-5)
    logs = m.evaluate([xa, xb], [y1, y2], sample_weight=sw, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["o2_loss"], (cce(y2, p2) * sw).mean(), rtol=1e-5)


def test_one_loss_for_every_output_and_lists_of_losses_and_metrics(data):
    xa, xb, y1, y2 = data
    m = two_by_two()
    m.compile(optimizer="sgd", loss="mse", metrics=[["mae"], ["accuracy", "mse"]], loss_weights=[1.0, 0.5])
    assert m.metrics_names == ["loss", "o1_loss", "o2_loss", "o1_mae", "o2_accuracy", "o2_mse"]
    vals = m.evaluate([xa, xb], [y1, y2], verbose=0)
    np.testing.assert_allclose(vals[0], vals[1] + 0.5 * vals[2], rtol=1e-5)
    np.testing.assert_allclose(vals[2], vals[5], rtol=1e-5)
    # A flat list as long as the outputs gives each output one metric (Keras 3) ...
    m.compile(optimizer="sgd", loss="mse", metrics=["mae", "accuracy"])
    assert m.metrics_names == ["loss", "o1_loss", "o2_loss", "o1_mae", "o2_accuracy"]
    # ... and any other flat list applies to every output.
    m.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    assert m.metrics_names == ["loss", "o1_loss", "o2_loss", "o1_mae", "o2_mae"]


def test_an_output_without_a_loss_needs_no_targets(data):
    xa, xb, y1, y2 = data
    m = two_by_two()
    m.compile(optimizer=SGD(learning_rate=0.1), loss=["mse", None])
    assert m.metrics_names == ["loss"]
    o2_before = m.get_layer("o2").get_weights()
    h = m.fit([xa, xb], {"o1": y1}, epochs=2, verbose=0)
    assert list(h.history) == ["loss"]
    m.train_on_batch([xa, xb], [y1, None])
    for before, after in zip(o2_before, m.get_layer("o2").get_weights()):
        np.testing.assert_array_equal(before, after)
    # An output with metrics but no loss takes targets for its metrics only.
    m.compile(optimizer="sgd", loss=["mse", None], metrics=[[], ["accuracy"]])
    assert m.metrics_names == ["loss", "o2_accuracy"]
    logs = m.evaluate([xa, xb], [y1, y2], verbose=0, return_dict=True)
    _, p2 = m.predict([xa, xb], verbose=0)
    np.testing.assert_allclose(logs["o2_accuracy"], (p2.argmax(-1) == y2.argmax(-1)).mean())


def test_fit_on_a_learnable_two_input_task():
    set_random_seed(3)
    r = np.random.default_rng(3)
    xa = r.normal(size=(256, 4)).astype(np.float32)
    xb = r.normal(size=(256, 3)).astype(np.float32)
    y_sum = (xa[:, :1] - 0.5 * xb[:, 2:]).astype(np.float32)
    y_cls = np.eye(2, dtype=np.float32)[(xa[:, 1] + xb[:, 0] > 0).astype(int)]
    a, b = Input(shape=(4,), name="a"), Input(shape=(3,), name="b")
    h = Dense(16, activation="tanh")(concatenate([a, b]))
    model = Model([a, b], [Dense(1, name="reg")(h), Dense(2, activation="softmax", name="cls")(h)])
    model.compile(optimizer="adam", loss=["mse", "categorical_crossentropy"], metrics={"cls": "accuracy"})
    hist = model.fit({"a": xa, "b": xb}, [y_sum, y_cls], epochs=40, batch_size=32, validation_split=0.25,
                     verbose=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.25 * loss[0], loss
    assert hist.history["cls_accuracy"][-1] > 0.9 and hist.history["val_cls_accuracy"][-1] > 0.8, hist.history
    assert set(hist.history) == {"loss", "reg_loss", "cls_loss", "cls_accuracy", "val_loss", "val_reg_loss",
                                 "val_cls_loss", "val_cls_accuracy"}


def test_a_shared_layer_has_one_set_of_weights_and_sums_both_gradients():
    r = np.random.default_rng(4)
    a, b = Input(shape=(3,)), Input(shape=(3,))
    shared = Dense(2, name="shared")
    out = Add()([shared(a), shared(b)])
    m = Model([a, b], out)
    assert [l.name for l in m.layers].count("shared") == 1
    assert len(m.get_weights()) == 2 and m.count_params() == 8
    w, bias = r.normal(size=(3, 2)).astype(np.float32), r.normal(size=2).astype(np.float32)
    m.set_weights([w, bias])
    xa, xb = r.normal(size=(5, 3)).astype(np.float32), r.normal(size=(5, 3)).astype(np.float32)
    y = r.normal(size=(5, 2)).astype(np.float32)
    m.compile(optimizer=SGD(learning_rate=0.1), loss="mse")
    loss = m.train_on_batch([xa, xb], y)
    pred = xa @ w + xb @ w + 2 * bias
    dpred = 2 * (pred - y) / pred.size
    np.testing.assert_allclose(loss, ((pred - y) ** 2).mean(), rtol=1e-5)
    new_w, new_b = m.get_weights()
    np.testing.assert_allclose(new_w, w - 0.1 * (xa.T @ dpred + xb.T @ dpred), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_b, bias - 0.1 * 2 * dpred.sum(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='"shared"'):
        shared(Input(shape=(4,)))


def test_shared_wrappers_and_embeddings_reuse_their_inner_weights():
    set_random_seed(9)
    left, right = Input(shape=(5,)), Input(shape=(5,))
    embed, encode = Embedding(10, 4), Bidirectional(LSTM(3))
    diff = Subtract()([encode(embed(left)), encode(embed(right))])
    m = Model([left, right], Dense(1)(diff))
    assert [w.shape for w in m.get_weights()[:7]] == [(10, 4), (4, 12), (3, 12), (12,), (4, 12), (3, 12), (12,)]
    x = np.random.default_rng(9).integers(0, 10, size=(8, 5)).astype(np.float32)
    # Both branches compute the same function: identical inputs give a zero difference.
    np.testing.assert_allclose(m.predict([x, x], verbose=0), np.broadcast_to(m.get_weights()[-1], (8, 1)),
                               atol=1e-6)
    m.compile(optimizer="adam", loss="mse")
    before = m.get_weights()
    m.fit([x, x[::-1]], np.ones((8, 1), np.float32), epochs=2, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_layers_shared_between_models_keep_one_set_of_weights():
    inp = Input(shape=(4,))
    enc = Dense(2, name="enc")
    code = enc(inp)
    encoder = Model(inp, code)
    auto = Model(inp, Dense(4, name="dec")(code))
    auto.compile(optimizer=SGD(learning_rate=0.1), loss="mse")
    x = np.random.default_rng(5).normal(size=(16, 4)).astype(np.float32)
    seen = []

    class Snapshot(rustkeras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.get_weights()[0].copy())

    auto.fit(x, x, epochs=3, verbose=0, callbacks=[Snapshot()])
    assert not np.array_equal(seen[0], seen[-1]), "reading weights during fit does not reset them"
    w, b = auto.get_layer("enc").get_weights()
    np.testing.assert_array_equal(w, seen[-1])
    np.testing.assert_allclose(encoder.predict(x, verbose=0), x @ w + b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(encoder.get_weights()[0], w)
    # Training the encoder alone moves the weights the autoencoder uses.
    encoder.compile(optimizer=SGD(learning_rate=0.1), loss="mse")
    encoder.train_on_batch(x, np.zeros((16, 2), np.float32))
    w2, b2 = encoder.get_weights()
    assert not np.array_equal(w2, w)
    np.testing.assert_array_equal(auto.get_weights()[0], w2)
    dw, db = auto.get_layer("dec").get_weights()
    np.testing.assert_allclose(auto.predict(x, verbose=0), (x @ w2 + b2) @ dw + db, rtol=1e-5, atol=1e-6)


def test_masks_flow_as_in_sequential():
    set_random_seed(6)
    seq = Sequential([Input((5,)), Embedding(10, 4, mask_zero=True), LSTM(3)])
    i = Input(shape=(5,))
    f = Model(i, LSTM(3)(Embedding(10, 4, mask_zero=True)(i)))
    f.set_weights(seq.get_weights())
    x = np.array([[1, 2, 0, 0, 0], [3, 4, 5, 6, 7]], np.float32)
    np.testing.assert_allclose(f.predict(x, verbose=0), seq.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="input_dim=10"):
        f.predict(np.array([[11, 0, 0, 0, 0]], np.float32), verbose=0)


class _SplitHalves(Layer):
    """Returns the two halves of its input's last axis (a layer with two outputs)."""

    def build_graph_multi(self, graph, inputs, masks, **kwargs):
        x, = inputs
        n = graph.dims(x)[-1] // 2
        eye = np.eye(2 * n, dtype=np.float32)
        first = self._graph_weight(graph, "first", (2 * n, n), "zeros", trainable=False)
        second = self._graph_weight(graph, "second", (2 * n, n), "zeros", trainable=False)
        self._halves = (eye[:, :n], eye[:, n:])
        return [graph.matmul(x, first), graph.matmul(x, second)]

    def _attach(self, core):
        super()._attach(core)
        for w, value in zip(self._weights, self._halves):
            core.set_var(w.var, np.ascontiguousarray(value))


class _Gate(Layer):
    """`x * gate`, with the gate a keyword argument that may be a tensor."""

    _call_kwargs = ("gate",)

    def build_graph_multi(self, graph, inputs, masks, gate=None):
        return graph.mul(inputs[0], gate)


def test_layers_with_several_outputs_and_tensor_keyword_arguments():
    x, g = Input(shape=(4,)), Input(shape=(2,))
    first, second = _SplitHalves()(x)
    assert isinstance(first, KerasTensor) and first.shape == (None, 2) and second.shape == (None, 2)
    gated = _Gate()(first, gate=g)
    m = Model([x, g], [gated, second])
    xv = np.arange(12, dtype=np.float32).reshape(3, 4)
    gv = np.array([[1, 0], [2, 3], [-1, 1]], np.float32)
    got_gated, got_second = m.predict([xv, gv], verbose=0)
    np.testing.assert_allclose(got_gated, xv[:, :2] * gv)
    np.testing.assert_allclose(got_second, xv[:, 2:])
    with pytest.raises(TypeError, match="'gate'"):
        Dense(2)(x, gate=g)
    # The tensor given as a keyword argument is an input of the call: without it, the graph is
    # disconnected.
    with pytest.raises(ValueError, match="disconnected"):
        Model(x, gated)


def test_config_round_trip_reproduces_predictions(data):
    xa, xb, _, _ = data
    m = two_by_two()
    w = random_weights(m, seed=7)
    m.set_weights(w)
    cfg = m.get_config()
    assert cfg["input_layers"] == [["a", 0, 0], ["b", 0, 0]]
    assert cfg["output_layers"] == [["o1", 0, 0], ["o2", 0, 0]]
    s_entry = next(e for e in cfg["layers"] if e["name"] == "s")
    refs = [t["config"]["keras_history"] for t in s_entry["inbound_nodes"][0]["args"][0]]
    assert refs == [["ph", 0, 0], ["pb", 0, 0]]
    for clone in (Model.from_config(cfg), model_from_json(m.to_json())):
        assert [l.name for l in clone.layers] == [l.name for l in m.layers]
        clone.set_weights(w)
        for got, want in zip(clone.predict([xa, xb], verbose=0), m.predict([xa, xb], verbose=0)):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    assert json.loads(m.to_json())["class_name"] == "Functional"


def test_config_round_trip_of_a_shared_layer():
    a, b = Input(shape=(3,), name="left"), Input(shape=(3,), name="right")
    shared = Dense(2, name="twin")
    m = Model([a, b], [shared(a), shared(b)])
    entry = next(e for e in m.get_config()["layers"] if e["name"] == "twin")
    assert len(entry["inbound_nodes"]) == 2
    assert m.get_config()["output_layers"] == [["twin", 0, 0], ["twin", 1, 0]]
    clone = model_from_json(m.to_json())
    clone.set_weights(m.get_weights())
    x = np.random.default_rng(8).normal(size=(4, 3)).astype(np.float32)
    for got, want in zip(clone.predict([x, 2 * x], verbose=0), m.predict([x, 2 * x], verbose=0)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_keras1_spelling_and_top_level_names():
    a = Input(shape=(3,))
    m = rustkeras.Model(input=a, output=Dense(1)(a))
    assert m.input is a and m.output_shape == (None, 1)
    assert rustkeras.models.Model is rustkeras.Model
    assert isinstance(Sequential([Input((3,)), Dense(1)]), rustkeras.Model)


# ---- errors ---------------------------------------------------------------------------------


def compiled():
    m = two_by_two()
    m.compile(optimizer="sgd", loss=["mse", "categorical_crossentropy"])
    return m


@pytest.mark.parametrize("call,exc,needles", [
    (lambda m, d: m.predict({"a": d[0]}, verbose=0), ValueError, ["'b'"]),
    (lambda m, d: m.predict({"a": d[0], "b": d[1], "c": d[1]}, verbose=0), ValueError, ["'c'"]),
    (lambda m, d: m.predict([d[0]], verbose=0), ValueError, ["2 inputs", "1 entries"]),
    (lambda m, d: m.predict(d[0], verbose=0), ValueError, ["2 inputs"]),
    (lambda m, d: m.predict([d[0], d[0]], verbose=0), ValueError, ["Input 1", "(None, 2)", "(12, 3)"]),
    (lambda m, d: m.predict([d[0], d[1][:5]], verbose=0), ValueError, ["cardinality", "12", "5"]),
    (lambda m, d: m.fit([d[0], d[1]], [d[2], d[2]], verbose=0), ValueError, ["y['o2']", "(12, 1)", "(None, 2)"]),
    (lambda m, d: m.fit([d[0], d[1]], {"o1": d[2]}, verbose=0), ValueError, ["y['o2']", "None"]),
    (lambda m, d: m.fit([d[0], d[1]], [d[2], d[3]], class_weight={0: 1.0}, verbose=0), ValueError,
     ["class_weight", "single output"]),
    (lambda m, d: m.fit([d[0], d[1]], [d[2], d[3]], sample_weight={"o3": d[2]}, verbose=0), ValueError, ["'o3'"]),
])
def test_data_errors_name_the_input_or_output(data, call, exc, needles):
    with pytest.raises(exc) as e:
        call(compiled(), data)
    for needle in needles:
        assert needle in str(e.value), (needle, str(e.value))


@pytest.mark.parametrize("kwargs,exc,needles", [
    ({"loss": {"o1": "mse", "o3": "mse"}}, ValueError, ["'o3'", "o1", "o2"]),
    ({"loss": {"o1": "mse"}}, ValueError, ["'o2'"]),
    ({"loss": ["mse"]}, ValueError, ["loss", "2"]),
    ({"loss": [None, None]}, ValueError, ["loss"]),
    ({"loss": "mse", "loss_weights": {"o3": 1.0}}, ValueError, ["loss_weights", "'o3'"]),
    ({"loss": "mse", "loss_weights": [1.0]}, ValueError, ["loss_weights", "2"]),
    ({"loss": "mse", "loss_weights": 2.0}, ValueError, ["loss_weights"]),
    ({"loss": "mse", "metrics": {"o3": ["mae"]}}, ValueError, ["metrics", "'o3'"]),
    ({"loss": "mse", "metrics": [["mae"]]}, ValueError, ["metrics", "2"]),
    ({"loss": "mse", "weighted_metrics": {"o3": ["mae"]}}, ValueError, ["weighted_metrics", "'o3'"]),
])
def test_compile_errors_name_the_argument(kwargs, exc, needles):
    with pytest.raises(exc) as e:
        two_by_two().compile(optimizer="sgd", **kwargs)
    for needle in needles:
        assert needle in str(e.value), (needle, str(e.value))


def test_construction_errors():
    a, b = Input(shape=(3,), name="in_a"), Input(shape=(3,), name="in_b")
    with pytest.raises(ValueError, match="disconnected.*in_b"):
        Model(a, Dense(1)(b))
    with pytest.raises(TypeError, match="KerasTensor"):
        Model(a, np.zeros(3))
    with pytest.raises(ValueError, match="from `Input"):
        Model(Dense(2)(a), Dense(1)(a))
    with pytest.raises(ValueError, match="subclass Model"):
        Model()
    with pytest.raises(ValueError, match="foo"):
        Model(a, Dense(1)(a), foo=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        Dense(2)(a, foo=1)
    with pytest.raises(TypeError, match="`training` must be True, False or None"):
        Dense(2)(a, training="yes")
    with pytest.raises(ValueError, match='"dense_in"'):
        Dense(2, name="dense_in")([a, b])
    with pytest.raises(ValueError, match='"concat_bad".*matching shapes'):
        Concatenate(name="concat_bad")([a, Input(shape=(2, 3))])
    with pytest.raises(ValueError, match="expects 1 input"):
        Model(a, Dense(1)(a))([a, b])


def test_engine_model_errors_name_the_argument():
    from rustkeras import _core

    g = _core.Graph()
    a, b = g.input([2]), g.input([3])
    s = g.concat([a, b], 1)
    with pytest.raises(TypeError, match="`inputs`"):
        _core.Model(g, "a", s, 0)
    with pytest.raises(ValueError, match="inputs"):
        _core.Model(g, [b, a], s, 0)
    core = _core.Model(g, [a, b], [s, a], 0)
    xa, xb = np.ones((4, 2), np.float32), np.zeros((4, 3), np.float32)
    out, same = core.predict([xa, xb], 3)
    np.testing.assert_array_equal(out, np.concatenate([xa, xb], 1))
    np.testing.assert_array_equal(same, xa)
    with pytest.raises(TypeError, match=r"`x\[1\]`.*float32"):
        core.predict([xa, xb.astype(np.float64)], 3)
    with pytest.raises(ValueError, match=r"`x\[1\]` has 2 samples"):
        core.predict([xa, xb[:2]], 3)
    with pytest.raises(ValueError, match="`losses`"):
        core.compile(["mse"], [1.0], [[]], "sgd", [], [])
    core.compile(["mse", None], [1.0, 1.0], [[], []], "sgd", [], [])
    with pytest.raises(ValueError, match="`y`"):
        core.train_on_batch([xa, xb], [np.zeros((4, 5), np.float32)])
