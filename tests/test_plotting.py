"""Pictures: `plot_history` (matplotlib) draws every log per epoch, `model_to_dot`/`plot_model` (pydot,
graphviz) draw the layers and their connections, and the clear messages when a library is missing."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rustkeras.layers import Concatenate, Dense, Input
from rustkeras.models import Model, Sequential
from rustkeras.utils import model_to_dot, plot_history, plot_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b"\x89PNG\r\n\x1a\n"


def trained(validation_freq=1):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x[:, :2] * 2.0
    model = Sequential([Input((4,)), Dense(8, activation="relu"), Dense(2)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model.fit(x, y, epochs=4, validation_split=0.25, validation_freq=validation_freq, verbose=0)


def test_plot_history_writes_a_png_of_every_log(tmp_path):
    history = trained()
    fig = plot_history(history, str(tmp_path / "history.png"))
    assert (tmp_path / "history.png").read_bytes()[:8] == PNG
    assert [ax.get_title() for ax in fig.axes] == ["loss", "mae"]
    for ax, name in zip(fig.axes, ["loss", "mae"]):
        train, val = ax.get_lines()
        assert list(train.get_xdata()) == [1, 2, 3, 4]
        np.testing.assert_allclose(train.get_ydata(), history.history[name])
        np.testing.assert_allclose(val.get_ydata(), history.history["val_" + name])
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]


def test_plot_history_from_a_dict_and_validation_every_other_epoch(tmp_path):
    history = trained(validation_freq=2)
    fig = plot_history(history.history, str(tmp_path / "h.svg"))
    assert (tmp_path / "h.svg").read_text().lstrip().startswith("<?xml")
    _, val = fig.axes[0].get_lines()
    assert list(val.get_xdata()) == [2, 4]
    with pytest.raises(ValueError, match="history"):
        plot_history({})


def test_missing_libraries_are_named(monkeypatch, tmp_path):
    model = Sequential([Input((3,)), Dense(2)])
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="install matplotlib"):
        plot_history({"loss": [1.0]}, str(tmp_path / "h.png"))
    monkeypatch.setitem(sys.modules, "pydot", None)
    with pytest.raises(ImportError, match="install pydot"):
        plot_model(model, str(tmp_path / "m.png"))


def functional():
    a, b = Input((4,), name="left"), Input((3,), name="right")
    h = Concatenate(name="cat")([Dense(2, activation="relu", name="l")(a), Dense(2, name="r")(b)])
    return Model([a, b], Dense(1, activation="sigmoid", name="out")(h))


def test_model_to_dot_draws_layers_and_connections():
    dot = model_to_dot(functional(), show_shapes=True, show_layer_activations=True, show_trainable=True)
    labels = {n.get_name(): n.get("label") for n in dot.get_nodes() if n.get_name().startswith("layer")}
    names = {k: next(n for n in ("left", "right", "l", "r", "cat", "out") if f"<b>{n} (" in v)
             for k, v in labels.items()}
    edges = sorted((names[e.get_source()], names[e.get_destination()]) for e in dot.get_edges())
    assert edges == [("cat", "out"), ("l", "cat"), ("left", "l"), ("r", "cat"), ("right", "r")]
    out = next(v for k, v in labels.items() if names[k] == "out")
    assert "Input shape: (None, 4)" in out and "Output shape: (None, 1)" in out
    assert "Activation: sigmoid" in out and "Trainable: True" in out
    assert "Input shape: [(None, 2), (None, 2)]" in next(v for k, v in labels.items() if names[k] == "cat")


def test_plot_model_writes_dot_source_without_graphviz(tmp_path):
    model = Sequential([Input((3,)), Dense(5, name="hidden"), Dense(2, name="output")])
    plot_model(model, str(tmp_path / "model.dot"), show_shapes=True, show_layer_names=True)
    text = (tmp_path / "model.dot").read_text()
    assert text.startswith("digraph") and "hidden (Dense)" in text and "output (Dense)" in text
    assert text.count("->") == 2  # input -> hidden -> output
    plot_model(model, str(tmp_path / "plain.dot"))  # Keras 3's defaults: class names only
    assert "<b>Dense</b>" in (tmp_path / "plain.dot").read_text()


def test_plot_model_png_through_graphviz_or_a_clear_message(tmp_path, monkeypatch):
    model = functional()
    if shutil.which("dot"):
        plot_model(model, str(tmp_path / "model.png"), show_shapes=True)
        assert (tmp_path / "model.png").read_bytes()[:8] == PNG
    monkeypatch.setenv("PATH", str(tmp_path))  # no graphviz `dot` program on the path
    with pytest.raises(ImportError, match="install graphviz"):
        plot_model(model, str(tmp_path / "other.png"))


def test_plot_model_argument_errors():
    with pytest.raises(ValueError, match="rankdir"):
        model_to_dot(functional(), rankdir="BT")
    with pytest.raises(NotImplementedError, match="expand_nested"):
        model_to_dot(functional(), expand_nested=True)
    with pytest.raises(ValueError, match="not yet been built"):
        model_to_dot(Sequential([Dense(2)]))


def test_an_example_writes_its_history_with_plot(tmp_path):
    out = tmp_path / "history.png"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "stacked_lstm.py"), "--epochs", "2",
                        "--samples", "320", "--plot", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.read_bytes()[:8] == PNG and "training history written to" in r.stdout
