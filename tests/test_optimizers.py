"""rustkeras.optimizers against an independent numpy transcription of Keras 3's rules.

Each reference below follows keras/src/optimizers/<name>.py and base_optimizer.py (clipping,
decoupled weight decay, iteration count) in float64; the Rust steps run in float32, hence
rtol 1e-5. Calls that cross into Rust with bad input run in a subprocess, so that a crash
fails one test instead of killing pytest.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rustkeras import optimizers
from rustkeras.optimizers import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Nadam,
    Optimizer,
    RMSprop,
)

# ---- the reference: Keras 3's update rules in numpy --------------------------------------


SLOT_KEYS = ("m", "v", "a", "acc", "vh")


class Reference:
    """One Keras 3 optimizer in float64 numpy; `step(ws, gs)` updates the list `ws`."""

    DEFAULTS = {
        "sgd": dict(learning_rate=0.01, momentum=0.0, nesterov=False),
        "rmsprop": dict(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
        "adagrad": dict(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7),
        "adadelta": dict(learning_rate=0.001, rho=0.95, epsilon=1e-7),
        "adam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False),
        "adamw": dict(
            learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
            weight_decay=0.004,
        ),
        "adamax": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
        "nadam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    }  # fmt: skip

    def __init__(self, kind, **kwargs):
        self.kind = kind
        self.h = dict(self.DEFAULTS[kind])
        if "lr" in kwargs:
            kwargs["learning_rate"] = kwargs.pop("lr")
        self.h.update(kwargs)
        self.iterations = 0
        self.slots = None
        self.u_product = 1.0

    def _clip(self, gs):
        h = self.h
        if h.get("clipnorm"):
            c = h["clipnorm"]
            return [g * c / max(np.sqrt(np.sum(g * g)), c) for g in gs]
        if h.get("global_clipnorm"):
            c = h["global_clipnorm"]
            norm = np.sqrt(sum(np.sum(g * g) for g in gs))
            return [g * c * min(1.0 / norm, 1.0 / c) for g in gs]
        if h.get("clipvalue"):
            v = h["clipvalue"]
            return [np.clip(g, -v, v) for g in gs]
        return gs

    def step(self, ws, gs):
        h, t = self.h, self.iterations + 1
        gs = self._clip([np.asarray(g, np.float64) for g in gs])
        lr = h["learning_rate"] / (1.0 + h.get("decay", 0.0) * self.iterations)
        if self.slots is None:
            init = h.get("initial_accumulator_value", 0.0)
            self.slots = [
                {k: np.full(w.shape, init if k == "acc" else 0.0) for k in SLOT_KEYS}
                for w in ws
            ]
        if h.get("weight_decay") is not None:
            for i in range(len(ws)):
                ws[i] = ws[i] - ws[i] * h["weight_decay"] * lr
        if self.kind == "nadam":
            self.u_product *= h["beta_1"] * (1 - 0.5 * 0.96**t)
        for i, g in enumerate(gs):
            ws[i] = getattr(self, "_" + self.kind.replace("adamw", "adam"))(
                ws[i], g, self.slots[i], lr, t
            )
        self.iterations += 1

    def _sgd(self, w, g, s, lr, t):
        mu = self.h["momentum"]
        if mu == 0:
            return w - lr * g
        s["m"] = mu * s["m"] - lr * g
        return w + (mu * s["m"] - lr * g if self.h["nesterov"] else s["m"])

    def _rmsprop(self, w, g, s, lr, t):
        h = self.h
        s["v"] = h["rho"] * s["v"] + (1 - h["rho"]) * g * g
        if h["centered"]:
            s["a"] = h["rho"] * s["a"] + (1 - h["rho"]) * g
            inc = lr * g / np.sqrt(s["v"] - s["a"] ** 2 + h["epsilon"])
        else:
            inc = lr * g / np.sqrt(s["v"] + h["epsilon"])
        if h["momentum"] > 0:
            s["m"] = h["momentum"] * s["m"] + inc
            return w - s["m"]
        return w - inc

    def _adagrad(self, w, g, s, lr, t):
        s["acc"] = s["acc"] + g * g
        return w - lr * g / np.sqrt(s["acc"] + self.h["epsilon"])

    def _adadelta(self, w, g, s, lr, t):
        rho, eps = self.h["rho"], self.h["epsilon"]
        s["v"] = rho * s["v"] + (1 - rho) * g * g
        delta = -np.sqrt(s["a"] + eps) * g / np.sqrt(s["v"] + eps)
        s["a"] = rho * s["a"] + (1 - rho) * delta * delta
        return w + lr * delta

    def _adam(self, w, g, s, lr, t):
        b1, b2, eps = self.h["beta_1"], self.h["beta_2"], self.h["epsilon"]
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        s["m"] = s["m"] + (g - s["m"]) * (1 - b1)
        s["v"] = s["v"] + (g * g - s["v"]) * (1 - b2)
        v = s["v"]
        if self.h["amsgrad"]:
            s["vh"] = np.maximum(s["vh"], s["v"])
            v = s["vh"]
        return w - s["m"] * alpha / (np.sqrt(v) + eps)

    def _adamax(self, w, g, s, lr, t):
        b1, b2, eps = self.h["beta_1"], self.h["beta_2"], self.h["epsilon"]
        s["m"] = s["m"] + (g - s["m"]) * (1 - b1)
        s["v"] = np.maximum(b2 * s["v"], np.abs(g))
        return w - lr * s["m"] / ((1 - b1**t) * (s["v"] + eps))

    def _nadam(self, w, g, s, lr, t):
        b1, b2, eps = self.h["beta_1"], self.h["beta_2"], self.h["epsilon"]
        u_t = b1 * (1 - 0.5 * 0.96**t)
        u_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        s["m"] = s["m"] + (g - s["m"]) * (1 - b1)
        s["v"] = s["v"] + (g * g - s["v"]) * (1 - b2)
        m_hat = u_next * s["m"] / (1 - self.u_product * u_next) + (1 - u_t) * g / (
            1 - self.u_product
        )
        v_hat = s["v"] / (1 - b2**t)
        return w - m_hat * lr / (np.sqrt(v_hat) + eps)


# ---- 3 steps against the reference -------------------------------------------------------

CASES = [
    (SGD, "sgd", {}),
    (SGD, "sgd", {"learning_rate": 0.05, "momentum": 0.9}),
    (SGD, "sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    (RMSprop, "rmsprop", {}),
    (RMSprop, "rmsprop", {"learning_rate": 0.01, "centered": True}),
    (RMSprop, "rmsprop", {"learning_rate": 0.01, "momentum": 0.5}),
    (RMSprop, "rmsprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True, "rho": 0.8}),
    (Adagrad, "adagrad", {}),
    (Adagrad, "adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.5}),
    (Adadelta, "adadelta", {}),
    (Adadelta, "adadelta", {"learning_rate": 1.0, "rho": 0.9}),
    (Adam, "adam", {}),
    (Adam, "adam", {"learning_rate": 0.01, "amsgrad": True, "beta_2": 0.5}),
    (Adam, "adam", {"beta_1": 0.5, "epsilon": 1e-3}),
    (Adamax, "adamax", {}),
    (Adamax, "adamax", {"learning_rate": 0.01, "beta_2": 0.5}),
    (Nadam, "nadam", {}),
    (Nadam, "nadam", {"learning_rate": 0.01, "beta_1": 0.8}),
    (AdamW, "adamw", {}),
    (AdamW, "adamw", {"learning_rate": 0.1, "weight_decay": 0.1, "amsgrad": True}),
    # base-optimizer options, on a few rules
    (SGD, "sgd", {"learning_rate": 0.1, "weight_decay": 0.05}),
    (SGD, "sgd", {"learning_rate": 0.1, "clipnorm": 0.5}),
    (SGD, "sgd", {"learning_rate": 0.1, "global_clipnorm": 0.5}),
    (SGD, "sgd", {"learning_rate": 0.1, "clipvalue": 0.3}),
    (Adam, "adam", {"learning_rate": 0.01, "clipnorm": 0.5}),
    (RMSprop, "rmsprop", {"learning_rate": 0.01, "global_clipnorm": 1.0, "weight_decay": 0.01}),
    (SGD, "sgd", {"lr": 0.2, "decay": 0.5}),
    (Adam, "adam", {"lr": 0.02, "decay": 0.1}),
    (Nadam, "nadam", {"decay": 1.0, "clipvalue": 0.2}),
]


def _ids(case):
    cls, _, kw = case
    return cls.__name__ + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_three_steps_match_keras_rule(case):
    cls, kind, kwargs = case
    rng = np.random.default_rng(1234)
    shapes = [(3, 4), (5,)]
    w0 = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(3)]

    grads_before = [[g.copy() for g in gs] for gs in grads]

    opt = cls(**kwargs)
    ws = [w.copy() for w in w0]
    ref = Reference(kind, **kwargs)
    want = [w.astype(np.float64) for w in w0]
    for step, gs in enumerate(grads):
        assert opt.apply_gradients(zip(gs, ws)) == step + 1
        ref.step(want, gs)
        for got, exp, start in zip(ws, want, w0):
            np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)
            # and the displacement itself, which for tiny steps (Adadelta) is the real test
            np.testing.assert_allclose(got - start, exp - start, rtol=1e-3, atol=3e-7)
    assert opt.iterations == 3
    # the update really moved the weights, so the comparison means something
    assert max(np.abs(w - w_0).max() for w, w_0 in zip(ws, w0)) > 3e-6
    # the caller's gradients are left untouched, even when clipping applies
    for gs, gs_before in zip(grads, grads_before):
        for g, g_before in zip(gs, gs_before):
            np.testing.assert_array_equal(g, g_before)


def test_gradients_are_not_modified_by_clipping():
    w = np.zeros(3, np.float32)
    g = np.array([3.0, -4.0, 0.0], np.float32)
    SGD(learning_rate=1.0, clipnorm=1.0).apply_gradients([(g, w)])
    np.testing.assert_array_equal(g, [3.0, -4.0, 0.0])
    np.testing.assert_allclose(w, [-0.6, 0.8, 0.0], rtol=1e-6)


def test_gradients_are_converted_to_float32():
    w = np.zeros(2, np.float32)
    SGD(learning_rate=1.0).apply_gradients([([1, 2], w)])
    np.testing.assert_array_equal(w, [-1.0, -2.0])


def test_learning_rate_setter_changes_the_step():
    w = np.zeros(1, np.float32)
    opt = SGD(learning_rate=0.1)
    opt.learning_rate = 1.0
    opt.apply_gradients([(np.ones(1, np.float32), w)])
    assert w[0] == -1.0
    assert opt.learning_rate == 1.0
    assert opt.lr == 1.0


def test_gradient_accumulation_and_ema():
    w = np.zeros(1, np.float32)
    opt = SGD(learning_rate=1.0, gradient_accumulation_steps=2)
    for g, want in [(1.0, 0.0), (3.0, -2.0)]:
        opt.apply_gradients([(np.array([g], np.float32), w)])
        assert w[0] == want
    assert opt.iterations == 1

    w = np.zeros(1, np.float32)
    opt = SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.5)
    for _ in range(2):
        opt.apply_gradients([(np.ones(1, np.float32), w)])
    assert w[0] == -2.0
    opt.finalize_variable_values([w])
    assert w[0] == -1.5


# ---- config, names, aliases --------------------------------------------------------------

ALL = [SGD, RMSprop, Adagrad, Adadelta, Adam, Adamax, Nadam, AdamW]


@pytest.mark.parametrize("cls", ALL)
def test_config_round_trip(cls):
    opt = cls(learning_rate=0.25, clipnorm=2.0, name="my_opt")
    config = opt.get_config()
    assert config["name"] == "my_opt"
    assert config["learning_rate"] == 0.25
    assert config["clipnorm"] == 2.0
    for key in ("weight_decay", "global_clipnorm", "clipvalue", "use_ema", "ema_momentum"):
        assert key in config
    again = cls.from_config(config)
    assert type(again) is cls
    assert again.get_config() == config
    assert optimizers.deserialize(optimizers.serialize(opt)).get_config() == config
    assert opt._spec() == again._spec()


def test_keras_3_defaults_in_config():
    assert Adam().get_config()["epsilon"] == 1e-7
    assert np.float32(SGD().get_config()["learning_rate"]) == np.float32(0.01)
    assert RMSprop().get_config()["rho"] == 0.9
    assert Adagrad().get_config()["initial_accumulator_value"] == 0.1
    assert Adadelta().get_config()["rho"] == 0.95
    assert AdamW().get_config()["weight_decay"] == 0.004
    assert Adam().name.startswith("adam")
    kind, params = AdamW()._spec()
    assert kind == "adamw" and ("weight_decay", 0.004) in params


def test_lr_alias_and_decay():
    opt = SGD(lr=0.5, decay=1e-3)
    assert opt.learning_rate == 0.5
    assert opt.get_config()["decay"] == 1e-3
    assert ("decay", 1e-3) in opt._spec()[1]
    assert "decay" not in SGD().get_config()


def test_get_resolves_names_instances_and_configs():
    for name, cls in [
        ("sgd", SGD), ("RMSprop", RMSprop), ("adagrad", Adagrad), ("Adadelta", Adadelta),
        ("ADAM", Adam), ("adamax", Adamax), ("nadam", Nadam), ("adamw", AdamW),
    ]:  # fmt: skip
        assert type(optimizers.get(name)) is cls
    opt = Adam()
    assert optimizers.get(opt) is opt
    assert optimizers.get(None) is None
    got = optimizers.get({"class_name": "SGD", "config": {"learning_rate": 0.3}})
    assert type(got) is SGD and abs(got.learning_rate - 0.3) < 1e-7
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier: 'ftrl'"):
        optimizers.get("ftrl")
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        optimizers.get(42)
    assert isinstance(opt, Optimizer)


# ---- invalid arguments and inputs, each in a subprocess ----------------------------------


def _run_isolated(code):
    """Runs `code` in a fresh interpreter; returns what it printed as JSON."""
    prelude = textwrap.dedent(
        """
        import json, numpy as np
        from rustkeras import optimizers
        from rustkeras.optimizers import *
        def report(fn):
            try:
                fn()
            except Exception as e:
                print(json.dumps([type(e).__name__, str(e)]))
            else:
                print(json.dumps(["ok", ""]))
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, f"subprocess died ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


INVALID = [
    ("SGD(learning_rate=-1)", "learning_rate",
     "Invalid value received for argument `learning_rate`. Expected a float >= 0. "
     "Received: learning_rate=-1"),
    ("SGD(momentum=1.5)", "momentum", None),
    ("SGD(momentum=-0.1)", "momentum", None),
    ("SGD(nesterov='yes')", "nesterov", None),
    ("RMSprop(rho=1.5)", "rho", None),
    ("RMSprop(epsilon=-1e-7)", "epsilon", None),
    ("Adadelta(rho=-0.5)", "rho", None),
    ("Adagrad(initial_accumulator_value=-1.0)", "initial_accumulator_value", None),
    ("Adam(beta_1=1.5)", "beta_1", None),
    ("Adam(beta_2=-0.1)", "beta_2", None),
    ("Adamax(learning_rate='fast')", "learning_rate", None),
    ("Nadam(epsilon=float('nan'))", "epsilon", None),
    ("AdamW(weight_decay=None)", "weight_decay", None),
    ("AdamW(weight_decay=-0.1)", "weight_decay", None),
    ("Adam(clipnorm=-1.0)", "clipnorm", None),
    ("Adam(clipnorm=1.0, clipvalue=1.0)", "clipnorm", None),
    ("Adam(gradient_accumulation_steps=1)", "gradient_accumulation_steps", None),
    ("Adam(ema_momentum=2.0, use_ema=True)", "ema_momentum", None),
    ("SGD(decay=-1.0)", "decay", None),
    ("Adam(rho=0.9)", "rho", "Argument(s) not recognized: {'rho': 0.9}"),
    ("SGD(nb_epoch=3)", "nb_epoch", None),
]  # fmt: skip


@pytest.mark.parametrize("expr,arg,message", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_arguments_raise_value_error_naming_them(expr, arg, message):
    kind, text = _run_isolated(f"report(lambda: {expr})")
    assert kind == "ValueError", text
    assert arg in text
    if message is not None:
        assert text == message


def test_learning_rate_setter_rejects_negative():
    kind, text = _run_isolated("o = SGD()\nreport(lambda: setattr(o, 'learning_rate', -0.5))")
    assert kind == "ValueError" and "learning_rate" in text


BAD_INPUTS = [
    ("w = np.zeros(3)", "[(np.ones(3), w)]", "TypeError"),  # float64 variable
    ("w = [0.0, 0.0]", "[(np.ones(2), w)]", "TypeError"),  # not an array
    ("w = np.zeros((4, 4), np.float32)[:, ::2]", "[(np.ones((4, 2)), w)]", "ValueError"),
    ("w = np.zeros(3, np.float32)", "[(np.ones(4), w)]", "ValueError"),  # shape
    ("w = np.zeros(3, np.float32)", "[(np.ones(3), w), (np.ones(3), w)]", "ValueError"),
    ("w = np.zeros(3, np.float32); w.flags.writeable = False", "[(np.ones(3), w)]",
     "ValueError"),
    ("w = np.zeros(3, np.float32)", "[(None, w)]", "ValueError"),
]  # fmt: skip


@pytest.mark.parametrize("setup,pairs,error", BAD_INPUTS, ids=[c[0] + c[1] for c in BAD_INPUTS])
def test_apply_gradients_rejects_bad_arrays(setup, pairs, error):
    kind, text = _run_isolated(f"{setup}\nreport(lambda: Adam().apply_gradients({pairs}))")
    assert kind == error, text


def test_variables_must_keep_their_sizes():
    kind, text = _run_isolated(
        """
        o = Adam()
        o.apply_gradients([(np.ones(3), np.zeros(3, np.float32))])
        report(lambda: o.apply_gradients([(np.ones(4), np.zeros(4, np.float32))]))
        """
    )
    assert kind == "ValueError" and "variables" in text


def test_gradient_may_be_the_variable_itself():
    kind, text = _run_isolated(
        """
        w = np.ones(3, np.float32)
        report(lambda: SGD(learning_rate=0.5).apply_gradients([(w, w)]))
        assert (w == 0.5).all(), w
        """
    )
    assert kind == "ok", text
