"""Pictures: a model's graph (`plot_model`, `model_to_dot`, through pydot and graphviz, as in
Keras) and a training history (`plot_history`, through matplotlib).

Example:

    from rustkeras.utils import plot_history, plot_model
    plot_model(model, "model.png", show_shapes=True, show_layer_names=True)
    history = model.fit(x, y, validation_split=0.1, epochs=10)
    plot_history(history, "history.png")      # loss and every metric, train and validation
"""

import os
from typing import Any, Dict, List, Optional, Union

__all__ = ["model_to_dot", "plot_history", "plot_model"]

_PYDOT = "You must install pydot (`pip install pydot`) for `plot_model` to work."
_GRAPHVIZ = ("You must install graphviz (see instructions at https://graphviz.gitlab.io/download/; on Debian "
             "`apt-get install graphviz`) for `plot_model` to work: it draws the picture with graphviz' `dot` "
             "program. A `.dot` file needs only pydot.")


def _pydot():
    try:
        import pydot
    except ImportError:
        raise ImportError(_PYDOT) from None
    return pydot


def _shape(layer, attr: str) -> str:
    try:
        shape = getattr(layer, attr)
    except (AttributeError, ValueError):  # a layer used several times, or never built
        return "?"
    return "multiple" if shape is None else str(shape)


def _label(layer, show_shapes: bool, show_dtype: bool, show_layer_names: bool, show_layer_activations: bool,
           show_trainable: bool) -> str:
    """A node's label: graphviz' HTML-like table, as Keras draws it."""
    target = getattr(layer, "model", layer)  # a model used as a layer
    cls = type(target).__name__
    title = f"{layer.name} ({cls})" if show_layer_names else cls
    rows = [f'<tr><td colspan="2" bgcolor="black"><font color="white"><b>{_html(title)}</b></font></td></tr>']
    activation = getattr(layer, "activation", None)
    if show_layer_activations and isinstance(activation, str):
        rows.append(f'<tr><td colspan="2">Activation: {_html(activation)}</td></tr>')
    if show_trainable:
        rows.append(f'<tr><td colspan="2">Trainable: {bool(getattr(layer, "trainable", True))}</td></tr>')
    if show_dtype:
        rows.append('<tr><td colspan="2">dtype: float32</td></tr>')
    if show_shapes:
        rows.append(f'<tr><td>Input shape: {_html(_shape(layer, "input_shape"))}</td>'
                    f'<td>Output shape: {_html(_shape(layer, "output_shape"))}</td></tr>')
    return '<<table border="0" cellborder="1" cellspacing="0" cellpadding="4">' + "".join(rows) + "</table>>"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _graph(model):
    """The model's layers (each with a node id) and the edges between them."""
    from rustkeras.models.sequential import Sequential

    if isinstance(model, Sequential):
        inputs = model.inputs
        layers = ([inputs[0]._layer] if len(inputs) == 1 else []) + list(model._layers)
        return layers, [(a, b) for a, b in zip(layers, layers[1:])]
    if model._is_subclassed():
        return [model], []  # Keras draws a subclassed model as one node
    edges = []
    for node in model._nodes:
        for parent in node.parents:
            edge = (parent._layer, node.layer)
            if not any(e[0] is edge[0] and e[1] is edge[1] for e in edges):
                edges.append(edge)
    return list(model._layers), edges


def model_to_dot(model, show_shapes: bool = False, show_dtype: bool = False, show_layer_names: bool = True,
                 rankdir: str = "TB", expand_nested: bool = False, dpi: int = 200, subgraph: bool = False,
                 show_layer_activations: bool = False, show_trainable: bool = False, **kwargs):
    """The model as a `pydot.Dot` graph: a node per layer, an edge per connection.

    Args:
        model: a built model.
        show_shapes: add each layer's input and output shapes.
        show_dtype: add each layer's dtype.
        show_layer_names: title each node "name (Class)" instead of "Class".
        rankdir: graphviz' direction: "TB" (top to bottom) or "LR" (left to right).
        dpi: the picture's resolution.
        show_layer_activations: add the activation of layers that have one.
        show_trainable: add whether each layer is trainable.

    Returns:
        A `pydot.Dot`.
    """
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    if expand_nested:
        raise NotImplementedError("model_to_dot: `expand_nested=True` is not supported by rustkeras yet; a model used "
                                  "as a layer is drawn as one node")
    if subgraph:
        raise NotImplementedError("model_to_dot: `subgraph=True` is not supported by rustkeras yet")
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"Invalid value received for argument `rankdir`. Expected 'TB' or 'LR'. "
                         f"Received: rankdir={rankdir!r}")
    if not model.built:
        raise ValueError("This model has not yet been built. Build the model first by calling `build()` or by calling "
                         "the model on a batch of data.")
    pydot = _pydot()
    dot = pydot.Dot(graph_type="digraph", rankdir=rankdir, dpi=str(dpi), concentrate="true")
    dot.set_node_defaults(shape="plaintext", fontname="Helvetica")
    layers, edges = _graph(model)
    ids = {}
    for i, layer in enumerate(layers):
        ids[id(layer)] = f"layer{i}"
        dot.add_node(pydot.Node(ids[id(layer)], label=_label(layer, show_shapes, show_dtype, show_layer_names,
                                                             show_layer_activations, show_trainable)))
    for a, b in edges:
        dot.add_edge(pydot.Edge(ids[id(a)], ids[id(b)]))
    return dot


def plot_model(model, to_file: str = "model.png", show_shapes: bool = False, show_dtype: bool = False,
               show_layer_names: bool = False, rankdir: str = "TB", expand_nested: bool = False, dpi: int = 200,
               show_layer_activations: bool = False, show_trainable: bool = False, **kwargs) -> None:
    """Draws the model's graph into `to_file` (Keras 3's defaults).

    The picture's format follows the file's extension (`.png` when it has none) and is drawn by
    graphviz' `dot` program; a `.dot` file holds the graph's source and needs only pydot.
    Arguments as for `model_to_dot`.

    Raises:
        ImportError: naming pydot, or graphviz, when it is not installed.

    Example:
        plot_model(model, "model.png", show_shapes=True, show_layer_names=True)
    """
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                       rankdir=rankdir, expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations, show_trainable=show_trainable, **kwargs)
    extension = os.path.splitext(to_file)[1][1:] or "png"
    if extension == "dot":
        dot.write(to_file, format="raw")
        return
    try:
        dot.write(to_file, format=extension)
    except FileNotFoundError as e:  # pydot runs graphviz' `dot` program
        raise ImportError(f"{_GRAPHVIZ} ({e})") from None


def plot_history(history, to_file: Optional[str] = None, dpi: int = 100):
    """Plots a training history: the loss and every metric, each in its own panel, for training
    and (where there is one) validation, per epoch.

    Args:
        history: the `History` that `fit` returns, or its `history` dict (`{"loss": [...], ...}`).
        to_file: where to write the picture (its format follows the extension, e.g. `.png`);
            None shows it with matplotlib's pyplot instead.
        dpi: the picture's resolution.

    Returns:
        The matplotlib `Figure`.

    Raises:
        ImportError: naming matplotlib, when it is not installed.

    Example:
        history = model.fit(x, y, validation_split=0.1, epochs=10)
        plot_history(history, "history.png")
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("You must install matplotlib (`pip install matplotlib`) for `plot_history` to "
                          "work.") from None
    logs: Dict[str, List[float]] = history.history if hasattr(history, "history") else history
    if not isinstance(logs, dict) or not logs:
        raise ValueError(f"plot_history: `history` must be the History that fit returns or a non-empty dict of "
                         f"lists. Received: {type(history).__name__}")
    names = [k for k in logs if not k.startswith("val_")] + [k[4:] for k in logs
                                                            if k.startswith("val_") and k[4:] not in logs]
    epochs = [e + 1 for e in getattr(history, "epoch", [])] or list(range(1, len(next(iter(logs.values()))) + 1))
    if to_file is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(4.5 * len(names), 3.6), dpi=dpi)
    else:
        fig = Figure(figsize=(4.5 * len(names), 3.6), dpi=dpi)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for key, label, style in ((name, "train", "-o"), ("val_" + name, "validation", "--s")):
            if key in logs:
                values = [float(v) for v in logs[key]]
                ax.plot(_epochs_for(epochs, values), values, style, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    if to_file is None:
        plt.show()
    else:
        fig.savefig(to_file, dpi=dpi)
    return fig


def _epochs_for(epochs: List[int], values: List[Union[float, Any]]) -> List[int]:
    """The epoch of each value (validation may be logged every few epochs: `validation_freq`)."""
    if len(values) == len(epochs):
        return epochs
    step = max(1, len(epochs) // max(1, len(values)))
    return epochs[step - 1::step][:len(values)]
