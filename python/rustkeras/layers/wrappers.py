"""Sequence helpers and wrappers: Bidirectional, TimeDistributed, RepeatVector, Masking.

    model.add(Bidirectional(LSTM(32, return_sequences=True), input_shape=(10, 8)))
    model.add(TimeDistributed(Dense(4)))
"""

from typing import Any, Dict

import numpy as np

from rustkeras import _core
from rustkeras.layers.base import MAX_SAMPLE_VALUES, Layer, invalid, not_supported
from rustkeras.layers.core import Activation, Dense, Dropout
from rustkeras.layers.recurrent import _RNN, begin_recurrent_call

_MERGE_MODES = ("concat", "sum", "mul", "ave")
# Layers whose statistics would be taken per timestep instead of over (batch, timesteps).
_STATISTICS_LAYERS = ("BatchNormalization",)


class _Wrapper(Layer):
    """A layer whose weights belong to the layers it wraps."""

    def _inner(self):
        return []

    def _attach(self, core) -> None:
        self._core = core
        for layer in self._inner():
            layer._attach(core)
            for w in layer._weights:
                core.set_trainable(w.var, self.trainable and layer.trainable and w.trainable)

    def _collect(self) -> None:
        self._weights = [w for layer in self._inner() for w in layer._weights]


class Bidirectional(_Wrapper):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the outputs.

    Args:
        layer: an LSTM, GRU or SimpleRNN.
        merge_mode: 'concat' (default), 'sum', 'mul' or 'ave'.

    Weights: the forward layer's, then the backward layer's.
    """

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, _RNN):
            raise ValueError(
                "Please initialize `Bidirectional` layer with a recurrent layer (LSTM, GRU or SimpleRNN) instance. "
                f"Received: {layer!r}"
            )
        if merge_mode not in _MERGE_MODES + (None,):
            raise invalid("merge_mode", f"one of {_MERGE_MODES} or None", merge_mode)
        if backward_layer is not None:
            raise not_supported("Bidirectional", "backward_layer")
        if "input_shape" not in kwargs and "batch_input_shape" not in kwargs and layer._input_shape_arg is not None:
            kwargs["input_shape"] = layer._input_shape_arg
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        cfg = layer.get_config()
        cfg.pop("batch_input_shape", None)
        cfg["name"] = "forward_" + layer.name
        self.forward_layer = type(layer).from_config(dict(cfg))
        cfg["name"] = "backward_" + layer.name
        cfg["go_backwards"] = not layer.go_backwards
        self.backward_layer = type(layer).from_config(dict(cfg))
        self.backward_layer._reverse_output = True
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self._initial_weights = weights

    def _inner(self):
        return [self.forward_layer, self.backward_layer]

    # Functional calls: `Bidirectional(LSTM(..))(x, initial_state=[fw states..., bw states...])`.
    _call_kwargs = ("initial_state",)

    def _graph_call(self, graph, x, in_dims):
        if self.return_state or self.merge_mode is None:
            raise ValueError(
                f'Layer "{self.name}" returns several tensors ('
                + ("return_state=True" if self.return_state else "merge_mode=None")
                + "): all layers in a Sequential model should have a single output tensor. Use the functional "
                "API (Model(inputs, outputs))."
            )
        outs, _ = self._run(graph, x, in_dims, None)
        return outs[0]

    def build_graph_multi(self, graph, inputs, masks, initial_state=None):
        """A functional call: the merged output (both outputs with merge_mode=None), then with
        `return_state` the forward layer's final states and the backward layer's."""
        x, mask, in_dims, initial_state = begin_recurrent_call(self, graph, inputs, masks, initial_state)
        if initial_state is not None:
            if len(initial_state) != 2 * self.forward_layer._n_states():
                raise ValueError(
                    f'Layer "{self.name}" (Bidirectional) expects {2 * self.forward_layer._n_states()} initial '
                    f"state tensors (the forward layer's, then the backward layer's), received {len(initial_state)}"
                )
        outs, states = self._run(graph, x, in_dims, initial_state)
        out_mask = self.compute_mask(graph, x, mask)
        self.output_shape = (self._batch_size,) + tuple(graph.dims(outs[0]))
        self.built = True
        if len(outs) == 1 and not self.return_state:
            self._output_mask = out_mask
            return outs[0]
        self._output_masks = [out_mask] * len(outs) + [None] * len(states)
        return outs + states

    def _run(self, graph, x, in_dims, initial_state):
        """Builds both directions; returns `([merged] or [forward, backward], states)`."""
        outs, states = [], []
        k = self.forward_layer._n_states()
        inits = (None, None) if initial_state is None else (initial_state[:k], initial_state[k:])
        for layer, init in zip(self._inner(), inits):
            layer._begin_graph(graph)
            layer._input_mask = getattr(self, "_input_mask", None)
            layer._batch_size = self._batch_size
            if init is not None:
                layer._check_initial_state(graph, init)
            out, st = layer._run(graph, x, in_dims, init)
            outs.append(out)
            states.extend(st)
        self._collect()
        a, b = outs
        mask = getattr(self, "_input_mask", None)
        if self.merge_mode is None:
            if mask is not None and self.return_sequences:
                m = graph.reshape(mask, [in_dims[0], 1])
                a, b = graph.mul(a, m), graph.mul(b, m)
            return [a, b], states
        if self.merge_mode == "concat":
            y = _core.concat_last(graph, a, b)
        elif self.merge_mode == "sum":
            y = graph.add(a, b)
        elif self.merge_mode == "mul":
            y = graph.mul(a, b)
        else:
            y = graph.unary(graph.add(a, b), "scale", 0.5)
        if mask is not None and self.return_sequences:
            # Keras 3: with return_sequences, masked timesteps of a Bidirectional output are zero.
            y = graph.mul(y, graph.reshape(mask, [in_dims[0], 1]))
        return [y], states

    def compute_mask(self, graph, x, mask):
        return mask if self.return_sequences else None

    @property
    def stateful(self) -> bool:
        return self.forward_layer.stateful

    @property
    def states(self):
        """The forward layer's states, then the backward layer's (None unless stateful)."""
        if not self.stateful or self.forward_layer.states is None:
            return None
        return self.forward_layer.states + self.backward_layer.states

    def reset_states(self, states=None) -> None:
        """Zeros both directions' states, or sets them (forward's first, then backward's)."""
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        states = list(states)
        k = len(states) // 2
        self.forward_layer.reset_states(states[:k])
        self.backward_layer.reset_states(states[k:])

    def reset_state(self) -> None:
        self.reset_states()

    def _attach(self, core) -> None:
        super()._attach(core)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        inner = self.forward_layer.get_config()
        inner["name"] = inner["name"][len("forward_"):]
        cfg.update({"merge_mode": self.merge_mode,
                    "layer": {"class_name": type(self.forward_layer).__name__, "config": inner}})
        return cfg

    @classmethod
    def from_config(cls, config):
        from rustkeras import layers as _layers

        config = dict(config)
        spec = config.pop("layer")
        layer = _layers.get(spec["class_name"]).from_config(dict(spec["config"]))
        return cls(layer, **config)


class TimeDistributed(_Wrapper):
    """Applies a layer to every timestep: `(batch, T, ...) -> (batch, T, ...)`, with one set of
    weights for all timesteps.

    The layers that act on the last axis alone (Dense, Activation, Dropout) run on all
    timesteps in one product; any other layer (Conv2D, LSTM, Flatten, ...) is applied to each
    timestep's slice in turn, sharing its weights, and the results are stacked.
    """

    supports_masking = True

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `TimeDistributed` layer with a Layer instance. Received: {layer!r}")
        if type(layer).__name__ in _STATISTICS_LAYERS or getattr(layer, "stateful", False):
            raise not_supported("TimeDistributed", f"layer={type(layer).__name__} (layers with moving statistics "
                                "or carried states)")
        super().__init__(**kwargs)
        self.layer = layer

    def _inner(self):
        return [self.layer]

    def _graph_call(self, graph, x, in_dims):
        if len(in_dims) < 2:
            raise ValueError(
                f'Layer "{self.name}" (TimeDistributed) expects an input of at least 3 dimensions '
                f"(batch, timesteps, ...), received shape {(None,) + tuple(in_dims)}"
            )
        self.layer._begin_graph(graph)
        self.layer._batch_size = self._batch_size
        if isinstance(self.layer, (Dense, Activation, Dropout)):
            y = self.layer._graph_call(graph, x, in_dims)
        else:
            # One call per timestep on the slice (batch, ...); the calls share the weights.
            steps, per = in_dims[0], list(in_dims[1:])
            self.layer._input_mask = None  # the timestep mask is not the inner layer's
            outs = []
            for t in range(steps):
                xt = graph.reshape(graph.slice_axis(x, 1, t, 1), per)
                yt = self.layer._graph_call(graph, xt, tuple(per))
                outs.append(graph.reshape(yt, [1] + list(graph.dims(yt))))
            y = outs[0] if steps == 1 else graph.concat(outs, 1)
        self._collect()
        return y

    def get_config(self):
        cfg = super().get_config()
        cfg["layer"] = {"class_name": type(self.layer).__name__, "config": self.layer.get_config()}
        return cfg

    @classmethod
    def from_config(cls, config):
        from rustkeras import layers as _layers

        config = dict(config)
        spec = config.pop("layer")
        return cls(_layers.get(spec["class_name"]).from_config(dict(spec["config"])), **config)


class RepeatVector(Layer):
    """Repeats the input `n` times: `(batch, d) -> (batch, n, d)`."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise invalid("n", "a positive integer", n)
        self.n = int(n)
        if self.n > MAX_SAMPLE_VALUES:
            raise MemoryError(f"RepeatVector: n={self.n} repeats hold more values per sample than memory can address")

    def _graph_call(self, graph, x, in_dims):
        if len(in_dims) != 1:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected ndim=2, '
                f"found shape={(None,) + tuple(in_dims)}"
            )
        return _core.repeat(graph, x, self.n)

    def get_config(self):
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg


class Masking(Layer):
    """Skips timesteps whose features all equal `mask_value` in the recurrent layers that
    follow (and zeroes them in its output)."""

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float, np.floating, np.integer)):
            raise invalid("mask_value", "a number", mask_value)
        self.mask_value = float(mask_value)
        self._mask_node = None

    def _graph_call(self, graph, x, in_dims):
        if len(in_dims) != 2:
            raise ValueError(
                f'Layer "{self.name}" (Masking) expects a 3D input (batch, timesteps, features), '
                f"received shape {(None,) + tuple(in_dims)}"
            )
        y, self._mask_node = _core.value_mask(graph, x, self.mask_value)
        return y

    def compute_mask(self, graph, x, mask):
        return self._mask_node

    def get_config(self):
        cfg = super().get_config()
        cfg["mask_value"] = self.mask_value
        return cfg
