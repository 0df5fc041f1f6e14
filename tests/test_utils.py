"""rustkeras.utils against hand-written numpy expectations."""

import random
import sys
import types

import numpy as np
import pytest

from rustkeras.utils import normalize, set_random_seed, to_categorical


# ---- to_categorical ---------------------------------------------------------


def test_to_categorical_vector():
    got = to_categorical([0, 2, 1, 2], num_classes=3)
    want = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_to_categorical_infers_num_classes_from_max_label():
    got = to_categorical(np.array([3, 0]))
    np.testing.assert_array_equal(got, [[0, 0, 0, 1], [1, 0, 0, 0]])


def test_to_categorical_squeezes_trailing_axis_of_one():
    got = to_categorical(np.array([[1], [0]]), num_classes=2)
    assert got.shape == (2, 2)
    np.testing.assert_array_equal(got, [[0, 1], [1, 0]])


def test_to_categorical_keeps_other_axes():
    labels = np.array([[0, 1, 2], [2, 1, 0]])
    got = to_categorical(labels, num_classes=4)
    assert got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got[1, 0], [0, 0, 1, 0])
    np.testing.assert_array_equal(got.argmax(-1), labels)


def test_to_categorical_scalar_and_single_column():
    assert to_categorical(2, num_classes=3).shape == (3,)
    # A lone trailing 1 that is the only axis is a label, not an axis to drop.
    np.testing.assert_array_equal(to_categorical(np.array([1]), num_classes=2), [[0, 1]])


def test_to_categorical_dtype_and_uint8_labels():
    got = to_categorical(np.array([9, 0], dtype=np.uint8), num_classes=10, dtype="int32")
    assert got.dtype == np.int32
    assert got.shape == (2, 10)
    assert got[0, 9] == 1 and got[1, 0] == 1 and got.sum() == 2


def test_to_categorical_accepts_integral_floats():
    np.testing.assert_array_equal(to_categorical([1.0, 0.0]), [[0, 1], [1, 0]])


def test_to_categorical_rejects_negative_label():
    with pytest.raises(ValueError, match="`y`"):
        to_categorical([0, -1, 2], num_classes=3)


def test_to_categorical_rejects_label_not_below_num_classes():
    with pytest.raises(ValueError, match="`num_classes`.*num_classes=3"):
        to_categorical([0, 3], num_classes=3)


def test_to_categorical_rejects_bad_num_classes():
    with pytest.raises(ValueError, match="`num_classes`"):
        to_categorical([0, 1], num_classes=0)
    with pytest.raises(ValueError, match="`num_classes`"):
        to_categorical([0, 1], num_classes=2.5)


def test_to_categorical_rejects_fractional_labels():
    with pytest.raises(ValueError, match="`y`"):
        to_categorical([0.5, 1.0])


# ---- normalize --------------------------------------------------------------


def test_normalize_l2_last_axis():
    x = np.array([[3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(normalize(x), [[0.6, 0.8], [1.0, 0.0]])


def test_normalize_zero_rows_stay_zero():
    x = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    got = normalize(x)
    np.testing.assert_array_equal(got, [[0, 0, 0], [0, 1, 0]])
    assert np.all(np.isfinite(got))


def test_normalize_l1_and_axis_0():
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(normalize(x, axis=0, order=1), [[0.25, 0.25], [0.75, 0.75]])
    np.testing.assert_allclose(normalize(x, axis=1, order=1), [[1 / 3, 2 / 3], [1 / 3, 2 / 3]])


def test_normalize_matches_formula_on_3d_input():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5)).astype(np.float32)
    want = x / np.sqrt((x**2).sum(axis=1, keepdims=True))
    got = normalize(x, axis=1)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_normalize_does_not_modify_input():
    x = np.array([[3.0, 4.0]])
    normalize(x)
    np.testing.assert_array_equal(x, [[3.0, 4.0]])


# ---- set_random_seed --------------------------------------------------------


@pytest.fixture
def fake_core(monkeypatch):
    """Stands in for the compiled engine, recording the seeds it is given,
    so that Python's and numpy's seeding are tested on their own."""
    import rustkeras

    calls = []
    core = types.ModuleType("rustkeras._core")
    core.set_seed = calls.append
    monkeypatch.setitem(sys.modules, "rustkeras._core", core)
    monkeypatch.setattr(rustkeras, "_core", core, raising=False)
    return calls


def test_set_random_seed_makes_python_and_numpy_reproducible(fake_core):
    set_random_seed(1234)
    first = (random.random(), np.random.rand(3).tolist())
    set_random_seed(1234)
    second = (random.random(), np.random.rand(3).tolist())
    set_random_seed(4321)
    other = (random.random(), np.random.rand(3).tolist())
    assert first == second
    assert first != other
    assert fake_core == [1234, 1234, 4321]


def test_set_random_seed_accepts_numpy_integers(fake_core):
    set_random_seed(np.int64(7))
    assert fake_core == [7] and type(fake_core[0]) is int


@pytest.mark.parametrize("seed", [1.5, "3", None, True])
def test_set_random_seed_rejects_non_integers(seed, fake_core):
    with pytest.raises(TypeError, match="`seed`"):
        set_random_seed(seed)
    assert fake_core == []


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_set_random_seed_rejects_out_of_range(seed, fake_core):
    with pytest.raises(ValueError, match="`seed`"):
        set_random_seed(seed)
    assert fake_core == []


def test_set_random_seed_seeds_the_engine(monkeypatch):
    # The real engine must provide set_seed: this fails (it does not skip)
    # while `rustkeras._core` lacks it.
    from rustkeras import _core

    assert hasattr(_core, "set_seed"), "rustkeras._core has no set_seed(seed)"
    calls = []
    monkeypatch.setattr(_core, "set_seed", calls.append)
    set_random_seed(99)
    assert calls == [99]
    monkeypatch.undo()
    set_random_seed(99)  # the real engine accepts it
