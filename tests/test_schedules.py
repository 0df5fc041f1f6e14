"""Learning-rate schedules (`rustkeras.optimizers.schedules`): each against a numpy reference of
the formula Keras 3 documents and implements and against values real Keras 3 computed (a
fixture), their configs, and training with one as the learning rate (evaluated in Rust per
step, or a Python callable once per step)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rustkeras import optimizers, saving
from rustkeras.layers import Dense
from rustkeras.models import Sequential
from rustkeras.optimizers import SGD, Adam
from rustkeras.optimizers import schedules as S

STEPS = np.arange(0, 60)


def exponential(step, initial, decay_steps, rate, staircase=False):
    p = step / decay_steps
    return initial * rate ** (np.floor(p) if staircase else p)


def inverse_time(step, initial, decay_steps, rate, staircase=False):
    p = step / decay_steps
    return initial / (1 + rate * (np.floor(p) if staircase else p))


def piecewise(step, boundaries, values):
    out = values[0] * (step <= boundaries[0]) + values[-1] * (step > boundaries[-1])
    for low, high, v in zip(boundaries[:-1], boundaries[1:], values[1:-1]):
        out = out + v * ((step > low) & (step <= high))
    return out


def polynomial(step, initial, decay_steps, end=0.0001, power=1.0, cycle=False):
    if cycle:
        decay_steps = decay_steps * (1.0 if step == 0 else math.ceil(step / decay_steps))
    else:
        step = min(step, decay_steps)
    return (initial - end) * (1 - step / decay_steps) ** power + end


def cosine(step, initial, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    def decay(s, start):
        return start * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha)

    if warmup_target is None:
        return decay(min(step, decay_steps), initial)
    step = min(step, decay_steps + warmup_steps)
    if step < warmup_steps:
        return (warmup_target - initial) * step / warmup_steps + initial
    return decay(step - warmup_steps, warmup_target)


def cosine_restarts(step, initial, first, t_mul=2.0, m_mul=1.0, alpha=0.0):
    frac = step / first
    if t_mul == 1.0:
        i = math.floor(frac)
        frac -= i
    else:
        i = math.floor(math.log(1 - frac * (1 - t_mul)) / math.log(t_mul))
        frac = (frac - (1 - t_mul ** i) / (1 - t_mul)) / t_mul ** i
    return initial * ((1 - alpha) * 0.5 * m_mul ** i * (1 + math.cos(math.pi * frac)) + alpha)


CASES = [
    (S.ExponentialDecay(0.1, 7, 0.8), lambda t: exponential(t, 0.1, 7, 0.8)),
    (S.ExponentialDecay(0.1, 7, 0.8, staircase=True), lambda t: exponential(t, 0.1, 7, 0.8, True)),
    (S.InverseTimeDecay(0.5, 3, 0.25), lambda t: inverse_time(t, 0.5, 3, 0.25)),
    (S.InverseTimeDecay(0.5, 3, 0.25, staircase=True), lambda t: inverse_time(t, 0.5, 3, 0.25, True)),
    (S.PiecewiseConstantDecay([10, 20, 35], [1.0, 0.5, 0.25, 0.1]),
     lambda t: piecewise(t, [10, 20, 35], [1.0, 0.5, 0.25, 0.1])),
    (S.PolynomialDecay(0.2, 25), lambda t: polynomial(t, 0.2, 25)),
    (S.PolynomialDecay(0.2, 25, end_learning_rate=0.01, power=0.5, cycle=True),
     lambda t: polynomial(t, 0.2, 25, 0.01, 0.5, True)),
    (S.CosineDecay(0.3, 40), lambda t: cosine(t, 0.3, 40)),
    (S.CosineDecay(0.3, 40, alpha=0.1), lambda t: cosine(t, 0.3, 40, 0.1)),
    (S.CosineDecay(0.0, 30, warmup_target=0.5, warmup_steps=12),
     lambda t: cosine(t, 0.0, 30, 0.0, 0.5, 12)),
    (S.CosineDecay(0.1, 30, alpha=0.2, warmup_target=0.5, warmup_steps=12),
     lambda t: cosine(t, 0.1, 30, 0.2, 0.5, 12)),
    (S.CosineDecayRestarts(0.4, 5), lambda t: cosine_restarts(t, 0.4, 5)),
    (S.CosineDecayRestarts(0.4, 5, t_mul=1.5, m_mul=0.7, alpha=0.05),
     lambda t: cosine_restarts(t, 0.4, 5, 1.5, 0.7, 0.05)),
    (S.CosineDecayRestarts(0.4, 6, t_mul=1.0, m_mul=0.5), lambda t: cosine_restarts(t, 0.4, 6, 1.0, 0.5)),
]


@pytest.mark.parametrize("schedule,reference", CASES, ids=[repr(c[0]) for c in CASES])
def test_schedule_matches_the_keras_formula(schedule, reference):
    got = np.array([schedule(t) for t in STEPS], dtype=np.float64)
    want = np.array([reference(int(t)) for t in STEPS], dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert isinstance(schedule(3), np.float32)


@pytest.mark.parametrize("schedule", [c[0] for c in CASES], ids=[repr(c[0]) for c in CASES])
def test_config_round_trip(schedule):
    config = schedule.get_config()
    again = type(schedule).from_config(config)
    assert again.get_config() == config
    assert [float(again(t)) for t in (0, 9, 33)] == [float(schedule(t)) for t in (0, 9, 33)]
    ser = S.serialize(schedule)
    assert ser["module"] == "keras.optimizers.schedules" and ser["class_name"] == type(schedule).__name__
    assert S.deserialize(ser).get_config() == config


KERAS_CASES = {
    "exp": S.ExponentialDecay(0.1, 7, 0.8), "exp_s": S.ExponentialDecay(0.1, 7, 0.8, staircase=True),
    "inv": S.InverseTimeDecay(0.5, 3, 0.25), "inv_s": S.InverseTimeDecay(0.5, 3, 0.25, staircase=True),
    "pw": S.PiecewiseConstantDecay([10, 20, 35], [1.0, 0.5, 0.25, 0.1]),
    "poly": S.PolynomialDecay(0.2, 25),
    "poly_c": S.PolynomialDecay(0.2, 25, end_learning_rate=0.01, power=0.5, cycle=True),
    "cos": S.CosineDecay(0.3, 40), "cos_a": S.CosineDecay(0.3, 40, alpha=0.1),
    "cos_w": S.CosineDecay(0.0, 30, warmup_target=0.5, warmup_steps=12),
    "cos_wa": S.CosineDecay(0.1, 30, alpha=0.2, warmup_target=0.5, warmup_steps=12),
    "sgdr": S.CosineDecayRestarts(0.4, 5),
    "sgdr2": S.CosineDecayRestarts(0.4, 5, t_mul=1.5, m_mul=0.7, alpha=0.05),
    "sgdr1": S.CosineDecayRestarts(0.4, 6, t_mul=1.0, m_mul=0.5),
}


def test_schedules_match_values_computed_by_keras():
    """`tests/data/keras_schedules.json` holds the rates real Keras 3 computed (float32) for
    the same schedules; its `made_by` field is the script that computed them."""
    fixture = json.loads((Path(__file__).parent / "data" / "keras_schedules.json").read_text())
    assert set(fixture["values"]) == set(KERAS_CASES)
    for name, schedule in KERAS_CASES.items():
        got = [float(schedule(t)) for t in range(60)]
        np.testing.assert_allclose(got, fixture["values"][name], rtol=2e-5, atol=1e-8, err_msg=name)


def test_configs_have_keras_keys():
    assert S.ExponentialDecay(0.1, 10, 0.9).get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9, "staircase": False,
        "name": "ExponentialDecay"}
    assert S.CosineDecay(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 10, "alpha": 0.0, "name": "CosineDecay",
        "warmup_target": None, "warmup_steps": 0}
    assert S.CosineDecayRestarts(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1, "first_decay_steps": 10, "t_mul": 2.0, "m_mul": 1.0, "alpha": 0.0,
        "name": "SGDRDecay"}
    assert S.PiecewiseConstantDecay([1], [0.1, 0.01]).get_config()["name"] == "PiecewiseConstant"


def test_bad_arguments_raise_keras_errors():
    with pytest.raises(ValueError, match=r"`decay_steps` must be > 0. Received: decay_steps=0"):
        S.ExponentialDecay(0.1, 0, 0.9)
    with pytest.raises(ValueError, match="first_decay_steps"):
        S.CosineDecayRestarts(0.1, -1)
    with pytest.raises(ValueError, match="length of boundaries should be 1 less"):
        S.PiecewiseConstantDecay([1, 2], [0.1, 0.01])
    with pytest.raises(NotImplementedError, match="__call__"):
        S.LearningRateSchedule()(0)


def tiny_regression(seed=0, n=24, d=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x.sum(1, keepdims=True) * 0.5 + 0.2).astype("float32")
    return x, y


def simulate_sgd(w, b, x, y, rates, batch_size):
    """Dense(1) + MSE trained by plain SGD, batch by batch in order, with `rates[t]` at step t."""
    w, b = w.astype(np.float64), b.astype(np.float64)
    n = len(x)
    t = 0
    while t < len(rates):
        for lo in range(0, n, batch_size):
            if t == len(rates):
                break
            xb, yb = x[lo:lo + batch_size].astype(np.float64), y[lo:lo + batch_size].astype(np.float64)
            err = xb @ w + b - yb
            w = w - rates[t] * 2.0 / len(xb) * xb.T @ err
            b = b - rates[t] * 2.0 / len(xb) * err.sum(0)
            t += 1
    return w, b


@pytest.mark.parametrize("schedule", [
    S.ExponentialDecay(0.1, 3, 0.5),
    S.PiecewiseConstantDecay([2, 5], [0.1, 0.02, 0.005]),
    S.CosineDecay(0.0, 6, warmup_target=0.1, warmup_steps=3),
])
def test_fit_uses_the_schedule_at_every_step(schedule):
    x, y = tiny_regression()
    m = Sequential([Dense(1, input_shape=(3,))])
    m.compile(optimizer=SGD(learning_rate=schedule), loss="mse")
    w0, b0 = m.get_weights()
    m.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert m.optimizer.iterations == 9
    w, b = simulate_sgd(w0, b0, x, y, [float(schedule(t)) for t in range(9)], 8)
    np.testing.assert_allclose(m.get_weights()[0], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.get_weights()[1], b, rtol=1e-5, atol=1e-6)
    assert m.optimizer.learning_rate == pytest.approx(float(schedule(9)))


def test_a_python_callable_runs_once_per_step():
    x, y = tiny_regression()
    calls = []

    def of_step(step):
        calls.append(step)
        return 0.1 / (1 + step)

    m = Sequential([Dense(1, input_shape=(3,))])
    m.compile(optimizer=SGD(learning_rate=of_step), loss="mse")
    w0, b0 = m.get_weights()
    m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert calls == [0, 1, 2, 3, 4, 5]
    w, b = simulate_sgd(w0, b0, x, y, [0.1 / (1 + t) for t in range(6)], 8)
    np.testing.assert_allclose(m.get_weights()[0], w, rtol=1e-5, atol=1e-6)
    # Keras 3's form: a callable of no argument.
    m.optimizer.learning_rate = lambda: 0.0
    before = m.get_weights()
    m.train_on_batch(x[:8], y[:8])
    np.testing.assert_array_equal(m.get_weights()[0], before[0])


class HalfEachStep(S.LearningRateSchedule):
    def __init__(self, initial):
        self.initial = initial

    def __call__(self, step):
        return self.initial * 0.5 ** step

    def get_config(self):
        return {"initial": self.initial}


def test_a_schedule_of_your_own_is_called_with_the_step():
    x, y = tiny_regression()
    m = Sequential([Dense(1, input_shape=(3,))])
    m.compile(optimizer=SGD(learning_rate=HalfEachStep(0.2)), loss="mse")
    w0, b0 = m.get_weights()
    m.fit(x, y, batch_size=12, epochs=2, shuffle=False, verbose=0)
    w, _ = simulate_sgd(w0, b0, x, y, [0.2 * 0.5 ** t for t in range(4)], 12)
    np.testing.assert_allclose(m.get_weights()[0], w, rtol=1e-5, atol=1e-6)
    config = optimizers.serialize(m.optimizer)
    assert config["config"]["learning_rate"]["class_name"] == "HalfEachStep"
    again = optimizers.deserialize(config, custom_objects={"HalfEachStep": HalfEachStep})
    assert isinstance(again._schedule, HalfEachStep) and again._schedule.initial == 0.2


def test_apply_gradients_follows_the_schedule():
    schedule = S.InverseTimeDecay(1.0, 1, 1.0)
    opt = SGD(learning_rate=schedule)
    w = np.zeros(2, dtype="float32")
    for _ in range(4):
        opt.apply_gradients([(np.ones(2, dtype="float32"), w)])
    np.testing.assert_allclose(w, -(1 + 1 / 2 + 1 / 3 + 1 / 4) * np.ones(2), rtol=1e-6)
    assert opt.learning_rate == pytest.approx(1 / 5)


def test_a_schedule_is_not_settable_to_a_float_and_serializes():
    opt = Adam(learning_rate=S.PolynomialDecay(0.01, 100))
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1
    config = opt.get_config()
    assert config["learning_rate"] == {
        "module": "keras.optimizers.schedules", "class_name": "PolynomialDecay",
        "config": {"initial_learning_rate": 0.01, "decay_steps": 100, "end_learning_rate": 0.0001, "power": 1.0,
                   "cycle": False, "name": "PolynomialDecay"},
        "registered_name": None,
    }
    again = Adam.from_config(config)
    assert isinstance(again._schedule, S.PolynomialDecay)
    assert again.learning_rate == pytest.approx(0.01)
    with pytest.raises(ValueError, match="decay"):
        SGD(learning_rate=S.PolynomialDecay(0.01, 100), decay=0.1)


def test_a_registered_function_round_trips():
    @saving.register_keras_serializable(package="tests")
    def constant_rate():
        return 0.05

    opt = SGD(learning_rate=constant_rate)
    assert opt.learning_rate == pytest.approx(0.05)
    config = opt.get_config()["learning_rate"]
    assert config["class_name"] == "function" and config["registered_name"] == "tests>constant_rate"
    assert SGD.from_config(opt.get_config())._schedule is constant_rate
