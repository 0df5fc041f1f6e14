"""Recurrent layers: SimpleRNN, LSTM and GRU, with Keras 3's equations and weight layouts.

Each layer computes the input projection of all timesteps as one matrix product and hands the
timestep loop to one fused Rust op (forward and backpropagation through time), so a whole
sequence costs one node in the model's graph.

    model = Sequential()
    model.add(LSTM(32, return_sequences=True, input_shape=(8, 16)))
    model.add(LSTM(32))
    model.add(Dense(10, activation="softmax"))

Weights (`get_weights`) are ordered and shaped as Keras stores them: `[kernel (in, G*u),
recurrent_kernel (u, G*u), bias]` with gates i, f, c, o (LSTM) or z, r, h (GRU), and GRU's
bias `(2, 3*u)` when `reset_after=True`, so weights move between rustkeras and Keras unchanged.
"""

from typing import Any, Dict, Tuple

import numpy as np

from rustkeras import _core, _seed
from rustkeras import activations as _activations
from rustkeras import initializers as _initializers
from rustkeras import regularizers as _regularizers
from rustkeras.layers.base import Layer, invalid, not_supported

_RNN_ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear")


def begin_recurrent_call(layer, graph, inputs, masks, initial_state):
    """The common start of a recurrent layer's functional call: initial states given as extra
    inputs (`layer([x, h, c])`) move to `initial_state`, the layer starts its weights in `graph`
    and records its input. Returns `(x, mask, in_dims, initial_state as a list or None)`."""
    if len(inputs) > 1:
        if initial_state is not None:
            raise ValueError(
                f'Layer "{layer.name}": initial states were given both as extra inputs and as '
                "`initial_state`; give them once."
            )
        initial_state, inputs, masks = list(inputs[1:]), inputs[:1], masks[:1]
    layer._begin_graph(graph)
    x, mask = inputs[0], masks[0]
    in_dims = tuple(graph.dims(x))
    layer.input_shape = (layer._batch_size,) + in_dims
    layer._input_mask = mask
    if initial_state is not None and not isinstance(initial_state, (list, tuple)):
        initial_state = [initial_state]
    return x, mask, in_dims, None if initial_state is None else list(initial_state)


class _RNN(Layer):
    """Shared argument handling of the three recurrent layers.

    Args:
        units: size of the state and output (Keras 1: `output_dim`).
        activation: the cell activation (default tanh).
        recurrent_activation: the gate activation (default sigmoid; Keras 1: `inner_activation`).
        use_bias: whether the layer has a bias.
        kernel_initializer / recurrent_initializer / bias_initializer: Keras 1 `init` / `inner_init`.
        kernel_regularizer / recurrent_regularizer / bias_regularizer: Keras 1 `W_`, `U_`, `b_regularizer`.
        dropout: fraction of the inputs dropped, one mask per sequence (Keras 1: `dropout_W`).
        recurrent_dropout: fraction of the state dropped where it enters the recurrent products,
            one mask per sequence (Keras 1: `dropout_U`). rustkeras draws one mask for all gates;
            Keras draws one per gate (and then one input mask per gate too).
        return_sequences: return the output of every timestep instead of the last one.
        return_state: also return the last states (`[output, h]`, LSTM `[output, h, c]`); in a
            functional model only, since a Sequential model has one output per layer.
        go_backwards: process the sequence in reverse.
        stateful: the last states of each batch are the initial states of the next, row by row
            (needs a fixed batch size: `batch_input_shape` or `Input(batch_shape=...)`);
            `reset_states()` zeros them.
    """

    supports_masking = True
    _cell = ""
    _gates = 1
    _has_recurrent_activation = True
    _aliases = {
        "output_dim": "units",
        "init": "kernel_initializer",
        "inner_init": "recurrent_initializer",
        "inner_activation": "recurrent_activation",
        "W_regularizer": "kernel_regularizer",
        "U_regularizer": "recurrent_regularizer",
        "b_regularizer": "bias_regularizer",
        "dropout_W": "dropout",
        "dropout_U": "recurrent_dropout",
        "W_constraint": "kernel_constraint",
        "U_constraint": "recurrent_constraint",
        "b_constraint": "bias_constraint",
    }

    def __init__(self, units=None, activation="tanh", recurrent_activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, seed=None, **kwargs):
        kwargs = self._translate(kwargs)
        layer = type(self).__name__
        units = kwargs.pop("units", units)
        activation = kwargs.pop("activation", activation)
        recurrent_activation = kwargs.pop("recurrent_activation", recurrent_activation)
        kernel_initializer = kwargs.pop("kernel_initializer", kernel_initializer)
        recurrent_initializer = kwargs.pop("recurrent_initializer", recurrent_initializer)
        kernel_regularizer = kwargs.pop("kernel_regularizer", kernel_regularizer)
        recurrent_regularizer = kwargs.pop("recurrent_regularizer", recurrent_regularizer)
        bias_regularizer = kwargs.pop("bias_regularizer", bias_regularizer)
        dropout = kwargs.pop("dropout", dropout)
        recurrent_dropout = kwargs.pop("recurrent_dropout", recurrent_dropout)
        for arg in ("activity_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint"):
            if kwargs.pop(arg, None) is not None:
                raise not_supported(layer, arg)
        # Performance hints with no effect on results.
        kwargs.pop("consume_less", None)
        kwargs.pop("use_cudnn", None)
        kwargs.pop("implementation", None)
        # Keras 3 configs carry it (False by default: masked steps repeat the previous output).
        if kwargs.pop("zero_output_for_mask", False):
            raise not_supported(layer, "zero_output_for_mask=True")
        # Keras 1: the forget bias initializer; 'one' is what unit_forget_bias does.
        forget_bias_init = kwargs.pop("forget_bias_init", None)
        # Keras 1: input_dim with input_length gives the input shape (input_length, input_dim).
        input_length = kwargs.pop("input_length", None)
        if input_length is not None and "input_dim" in kwargs and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length, kwargs.pop("input_dim"))
        elif "input_dim" in kwargs and "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            raise ValueError(
                f"{layer}: `input_dim` needs `input_length` (the number of timesteps) for a recurrent layer; "
                f"or pass input_shape=(timesteps, features). Received: input_dim={kwargs['input_dim']!r}"
            )
        self._forget_bias_init = forget_bias_init
        if recurrent_activation is not None and not self._has_recurrent_activation:
            raise ValueError(
                f"Unrecognized keyword arguments passed to {layer}: "
                f"{{'recurrent_activation': {recurrent_activation!r}}}"
            )
        self._extra_init(kwargs)
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                f"Received an invalid value for argument `units`, expected a positive integer, got {units!r}."
            )
        for arg, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
                raise invalid(arg, "a float between 0 and 1 (1 excluded)", rate)
        self.units = int(units)
        self.activation = self._rnn_activation("activation", activation)
        self.recurrent_activation = (
            self._rnn_activation("recurrent_activation", recurrent_activation or "sigmoid")
            if self._has_recurrent_activation else None
        )
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.recurrent_initializer = _initializers.get(recurrent_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = _regularizers.get(recurrent_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        # A stateful layer's carried states (h, and c for LSTM): variables (batch, units).
        self._state_vars = []
        self.unroll = bool(unroll)
        self.seed = seed
        self._key = (int(seed) if seed is not None else _seed.next_seed()) & ((1 << 63) - 1)
        # Bidirectional sets this on its backward layer: return the sequence in input order.
        self._reverse_output = False

    def _extra_init(self, kwargs: Dict[str, Any]) -> None:
        """Pops layer-specific arguments before the base class sees the rest."""

    def _rnn_activation(self, arg: str, value) -> str:
        name = _activations.get(value)
        if name == "identity":
            name = "linear"
        if name not in _RNN_ACTIVATIONS:
            raise NotImplementedError(
                f"{type(self).__name__}: `{arg}` must be one of {', '.join(_RNN_ACTIVATIONS)} in rustkeras. "
                f"Received: {arg}={value!r}"
            )
        return name

    def _bias_shape(self) -> Tuple[int, ...]:
        return (self._gates * self.units,)

    def _cell_name(self) -> str:
        return self._cell

    # Functional calls: `layer(x, initial_state=[h, c])`, or `layer([x, h, c])`.
    _call_kwargs = ("initial_state",)

    def _graph_call(self, graph, x, in_dims):
        if self.return_state:
            raise ValueError(
                f'Layer "{self.name}" has return_state=True and so returns several tensors (the output and '
                "the states): all layers in a Sequential model should have a single output tensor. Use the "
                "functional API (Model(inputs, outputs)) for return_state."
            )
        return self._run(graph, x, in_dims, None)[0]

    def build_graph_multi(self, graph, inputs, masks, initial_state=None):
        """A functional call: starts from `initial_state` when given (also accepted as extra
        inputs after the sequence, Keras' `layer([x, h, c])`), and with `return_state`
        returns `[output, h]` or `[output, h, c]` (LSTM)."""
        x, mask, in_dims, initial_state = begin_recurrent_call(self, graph, inputs, masks, initial_state)
        if initial_state is not None:
            self._check_initial_state(graph, initial_state)
        out, states = self._run(graph, x, in_dims, initial_state)
        out_mask = self.compute_mask(graph, x, mask)
        self.output_shape = (self._batch_size,) + tuple(graph.dims(out))
        self.built = True
        if not self.return_state:
            self._output_mask = out_mask
            return out
        self._output_masks = [out_mask] + [None] * len(states)
        return [out] + list(states)

    def _check_initial_state(self, graph, states) -> None:
        if len(states) != self._n_states():
            names = "[h, c]" if self._n_states() == 2 else "[h]"
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}) expects {self._n_states()} initial state tensor(s) '
                f"{names}, received {len(states)}"
            )
        for k, st in enumerate(states):
            dims = tuple(graph.dims(st))
            if not graph.batched(st) or dims != (self.units,):
                raise ValueError(
                    f'Layer "{self.name}" ({type(self).__name__}): initial state {k} must have shape '
                    f"(batch, {self.units}), received {(None,) + dims if graph.batched(st) else dims}"
                )
        if self.stateful:
            raise NotImplementedError(
                f'Layer "{self.name}": `initial_state` on a stateful layer is not supported by rustkeras '
                "(its states come from the previous batch; set them with reset_states(states))."
            )

    def _run(self, graph, x, in_dims, initial_state):
        """Builds the layer on `x` from `initial_state` (nodes, or None for zeros or a stateful
        layer's carried states); returns `(output, [h] or [h, c])`."""
        if len(in_dims) != 2:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected ndim=3 '
                f"(batch, timesteps, features), found shape={(None,) + tuple(in_dims)}"
            )
        width = self._gates * self.units
        if self.dropout > 0:
            x = _core.sequence_dropout(graph, x, self.dropout, self._key)
        kernel = self._graph_weight(graph, "kernel", (in_dims[-1], width), self.kernel_initializer,
                                 self.kernel_regularizer)
        recurrent = self._graph_weight(graph, "recurrent_kernel", (self.units, width), self.recurrent_initializer,
                                    self.recurrent_regularizer)
        xproj = graph.matmul(x, kernel)
        # The recurrent op adds the bias as it reads each step (and for GRU with reset_after
        # the recurrent half inside the loop).
        op_bias = None
        if self.use_bias:
            op_bias = self._graph_weight(graph, "bias", self._bias_shape(), self.bias_initializer, self.bias_regularizer)
        rec_mask = None
        if self.recurrent_dropout > 0:
            rec_mask = _core.state_dropout_mask(graph, self.units, self.recurrent_dropout,
                                                (self._key + 1) & ((1 << 63) - 1))
        initial = self._stateful_initial(graph, in_dims) if self.stateful else initial_state
        out, states = _core.rnn(
            graph, self._cell_name(), self.units, self.activation, self.recurrent_activation or "linear",
            self.go_backwards, xproj, recurrent, op_bias, getattr(self, "_input_mask", None),
            self.return_sequences, self._reverse_output, rec_mask, initial,
        )
        if self.stateful:
            # The last states become the next batch's initial states, row by row.
            for var, state in zip(self._state_vars, states):
                graph.add_assign(var, graph.as_fixed(state, self._batch_size))
        return out, states

    def _n_states(self) -> int:
        return 2 if self._cell == "lstm" else 1

    def _stateful_initial(self, graph, in_dims):
        """Declares the state variables `(batch, units)` and returns them read as a batch."""
        if self._batch_size is None:
            raise ValueError(
                f'Layer "{self.name}": when using `stateful=True` in a RNN, the batch size must be static. '
                f"Found dynamic batch size: sequence.shape={(None,) + tuple(in_dims)}. Give the first layer "
                "`batch_input_shape=(batch, timesteps, features)` (or `batch_size=`), or start with "
                "`Input(batch_shape=...)`"
            )
        self._state_vars = []
        initial = []
        for _ in range(self._n_states()):
            var, node = graph.variable([self._batch_size, self.units])
            self._state_vars.append(var)
            initial.append(graph.as_batch(node))
        return initial

    def _attach(self, core) -> None:
        super()._attach(core)
        self._attach_states(core)

    def _attach_states(self, core) -> None:
        self._state_core = core
        for var in self._state_vars:
            core.set_trainable(var, False)
        self.reset_states()

    @property
    def states(self):
        """A stateful layer's current states (`[h]`, or `[h, c]` for LSTM), each `(batch, units)`;
        None for a layer that is not stateful or not built."""
        core = getattr(self, "_state_core", None)
        if not self.stateful or core is None or not self._state_vars:
            return None
        return [core.get_var(v) for v in self._state_vars]

    def reset_states(self, states=None) -> None:
        """Sets a stateful layer's states to zeros, or to `states` (arrays `(batch, units)`)."""
        if not self.stateful:
            return  # as Keras 3: nothing to reset
        core = getattr(self, "_state_core", None)
        if core is None or not self._state_vars:
            return
        shape = (self._batch_size, self.units)
        if states is None:
            values = [np.zeros(shape, np.float32) for _ in self._state_vars]
        else:
            values = list(states) if isinstance(states, (list, tuple)) else [states]
            if len(values) != len(self._state_vars):
                raise ValueError(
                    f'Layer "{self.name}" expects {len(self._state_vars)} state(s), received {len(values)}'
                )
        for var, value in zip(self._state_vars, values):
            value = np.asarray(value, dtype=np.float32)
            if value.shape != shape:
                raise ValueError(
                    f'State for layer "{self.name}" is incompatible: expected shape {shape}, '
                    f"received shape {value.shape}"
                )
            core.set_var(var, np.ascontiguousarray(value))

    def reset_state(self) -> None:
        """Keras 3's name: sets the states to zeros."""
        self.reset_states()

    def compute_mask(self, graph, x, mask):
        return mask if self.return_sequences else None

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg.update({
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": _initializers.serialize(self.recurrent_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer) if self.kernel_regularizer else None,
            "recurrent_regularizer": (_regularizers.serialize(self.recurrent_regularizer)
                                      if self.recurrent_regularizer else None),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer) if self.bias_regularizer else None,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "seed": self.seed,
        })
        if self._has_recurrent_activation:
            cfg["recurrent_activation"] = self.recurrent_activation
        return cfg


class SimpleRNN(_RNN):
    """A fully-connected RNN: `h_t = activation(x_t · kernel + h_{t-1} · recurrent_kernel + bias)`.

    Example:
        model.add(SimpleRNN(32, input_shape=(10, 8)))
    """

    _cell = "simple"
    _gates = 1
    _has_recurrent_activation = False


class LSTM(_RNN):
    """Long short-term memory (Hochreiter 1997), Keras 3's gates i, f, c, o.

    Args:
        unit_forget_bias: start the forget gate's bias at 1 (Jozefowicz et al. 2015).

    Example:
        model.add(LSTM(32, return_sequences=True, input_shape=(8, 16)))
    """

    _cell = "lstm"
    _gates = 4

    def _extra_init(self, kwargs):
        self.unit_forget_bias = bool(kwargs.pop("unit_forget_bias", True))
        if self._forget_bias_init is not None:
            self.unit_forget_bias = self._forget_bias_init in ("one", "ones")

    def _attach(self, core) -> None:
        super()._attach(core)
        if self.use_bias and self.unit_forget_bias:
            bias_w = self._weights[-1]
            b = core.get_var(bias_w.var).copy()
            b[self.units:2 * self.units] = 1.0
            core.set_var(bias_w.var, np.ascontiguousarray(b, dtype=np.float32))

    def get_config(self):
        cfg = super().get_config()
        cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg


class GRU(_RNN):
    """Gated recurrent unit (Cho et al. 2014), Keras 3's gates z, r, h:
    `h_t = z * h_{t-1} + (1 - z) * hh`.

    Args:
        reset_after: apply the reset gate after the recurrent product (Keras 3's default,
            bias `(2, 3*units)`: input and recurrent biases), or before it (bias `(3*units,)`).

    Example:
        model.add(GRU(32, input_shape=(10, 64)))
    """

    _cell = "gru"
    _gates = 3

    def _extra_init(self, kwargs):
        self.reset_after = bool(kwargs.pop("reset_after", True))

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _cell_name(self):
        return "gru" if self.reset_after else "gru_reset_before"

    def get_config(self):
        cfg = super().get_config()
        cfg["reset_after"] = self.reset_after
        return cfg
