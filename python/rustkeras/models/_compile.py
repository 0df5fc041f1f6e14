"""`compile`'s loss, loss_weights and metrics arguments, resolved to one entry per model output.

As in Keras 3: a loss name or function applies to every output; a list has one entry per
output and a dict one key per output name (None: the output has no loss). `loss_weights` is a
list or a dict (missing names weigh 1). `metrics` is a list of lists, a dict by output name,
or a flat list: with several outputs a flat list as long as the outputs gives each output one
metric (Keras 3), and any other flat list applies every metric to every output (Keras 2).
"""

from typing import List, Optional, Sequence

import numpy as np

from rustkeras import losses as _losses
from rustkeras import metrics as _metrics


def _resolve_loss(value):
    """A built-in loss's canonical name, or the user's function or Loss object itself (traced
    into the training graph when the model is compiled)."""
    if value is None:
        return None
    if _losses.is_custom(value):
        return value
    return _losses.resolve_name(value)


def losses(loss, names: Sequence[str], allow_none: bool = False) -> list:
    """The canonical loss name (or None) of each output."""
    n = len(names)
    if isinstance(loss, dict):
        if set(loss) != set(names):
            raise ValueError(
                f"Expected keys {list(names)} in loss dict, but found loss.keys()={list(loss)}. "
                "Give every output a loss, or None for an output without one."
            )
        out = [_resolve_loss(loss[k]) for k in names]
    elif isinstance(loss, (list, tuple)):
        if len(loss) != n:
            raise ValueError(
                f"compile: `loss` as a list needs one entry per model output ({n}: {list(names)}). "
                f"Received {len(loss)} entries: loss={loss!r}"
            )
        out = [_resolve_loss(v) for v in loss]
    elif loss is None:
        out = [None] * n
    else:
        out = [_resolve_loss(loss)] * n
    if all(v is None for v in out) and not allow_none:
        raise ValueError(f"compile: a `loss` is required for training. Received: loss={loss!r}")
    return out


def _weight(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
        raise ValueError(f"Invalid value received for argument `loss_weights`{where}. Expected a finite number. "
                         f"Received: {value!r}")
    return float(value)


def loss_weights(weights, names: Sequence[str]) -> List[float]:
    """Each output's factor in the total loss (1.0 by default)."""
    n = len(names)
    if weights is None:
        return [1.0] * n
    if isinstance(weights, dict):
        unknown = [k for k in weights if k not in names]
        if unknown:
            raise ValueError(
                f"Invalid `loss_weights`: {unknown[0]!r} is not the name of a model output. "
                f"Expected keys among {list(names)}"
            )
        return [_weight(weights.get(k, 1.0), f"[{k!r}]") for k in names]
    if isinstance(weights, (list, tuple)):
        if len(weights) != n:
            raise ValueError(
                f"Invalid `loss_weights`: expected one weight per model output ({n}: {list(names)}). "
                f"Received {len(weights)}: loss_weights={weights!r}"
            )
        return [_weight(w, f"[{i}]") for i, w in enumerate(weights)]
    if n == 1:
        return [_weight(weights, "")]
    raise ValueError(
        f"Invalid `loss_weights`: the model has {n} outputs {list(names)}; pass a list or a dict. "
        f"Received: loss_weights={weights!r}"
    )


def _metric_entry(m):
    """A metric name, a metric object (a class is instantiated with its defaults, as Keras
    does), or a function to trace."""
    if isinstance(m, type) and issubclass(m, _metrics.Metric):
        m = m()
    if _metrics.is_engine_metric(m) or _metrics.is_custom(m):
        return m
    return _metrics.resolve_name(m)


def _metric_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [_metric_entry(m) for m in value]
    return [_metric_entry(value)]


def trace_function(fn, name: str, true_dims, pred_dims):
    """A loss or metric function `fn(y_true, y_pred)` traced on symbolic tensors of the given
    per-sample dims: `(name, graph, output node, constants)` as the engine's compile takes it."""
    from rustkeras import _core
    from rustkeras import _symbolic as S

    g = _core.Graph()
    yt, yp = g.input(list(true_dims)), g.input(list(pred_dims))
    trace = S.Trace(g, eager=False)
    with S.tracing(trace):
        try:
            value = fn(S.SymbolicTensor(trace, yt), S.SymbolicTensor(trace, yp))
        except TypeError as e:
            raise TypeError(f"Tracing the loss or metric {name!r} failed: {e}") from e
        if value is None:
            raise ValueError(f"The loss or metric {name!r} returned None; it must return a tensor.")
        out = S.to_tensor(value, trace)
    return (name, g, out.node, [v for _, v in trace.constants])


def engine_entry(m, true_dims, pred_dims):
    """A metric of compile's list as the engine's compile takes it: a name as it is, a
    built-in metric object as `(name, kind, config)`, and user code traced."""
    if isinstance(m, str):
        return m
    if _metrics.is_engine_metric(m):
        return m._engine_entry()
    return trace_function(_metrics.callable_of(m), entry_name(m), true_dims, pred_dims)


def entry_name(entry) -> str:
    """The name a custom loss or metric is logged under (Keras: the function's name, or a
    Loss or Metric object's `name`)."""
    name = getattr(entry, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(entry, "__name__", None) or type(entry).__name__


def metrics(value, names: Sequence[str], arg: str = "metrics") -> list:
    """The metrics of each output (`arg`: the argument they came in, `metrics` or
    `weighted_metrics`): names, metric objects, or functions to trace."""
    n = len(names)
    if value is None:
        return [[] for _ in names]
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(
                f"Invalid `{arg}`: {unknown[0]!r} is not the name of a model output. "
                f"Expected keys among {list(names)}"
            )
        return [_metric_list(value.get(k)) for k in names]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"`{arg}` must be a list or a dict. Received: {arg}={value!r}")
    nested = any(v is None or isinstance(v, (list, tuple)) for v in value)
    if nested or (n > 1 and len(value) == n):
        if len(value) != n:
            raise ValueError(
                f"Invalid `{arg}`: a list of lists needs one entry per model output ({n}: {list(names)}). "
                f"Received {len(value)}: {arg}={value!r}"
            )
        return [_metric_list(v) for v in value]
    every = _metric_list(value)
    return [list(every) for _ in names]
