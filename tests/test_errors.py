"""Bad input gives a normal Python exception with a useful message, never a crash.

Each case runs in a subprocess, so that a panic or a signal inside the Rust engine fails that
one test instead of killing pytest. The child reports the exception it raised (type and
message) as JSON; the test checks the exit status (1, not a signal), the exception type, and
that the message names the argument or layer, the expected and the received value.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

PRELUDE = """
import numpy as np
from rustkeras import activations, losses, metrics, optimizers
from rustkeras.layers import Activation, Dense, Dropout, Embedding, Flatten, Input, Reshape
from rustkeras.models import Sequential


def model(loss="mse", units=2, metrics=None):
    m = Sequential([Input((3,)), Dense(units)])
    m.compile(optimizer="sgd", loss=loss, metrics=metrics)
    return m


x = np.zeros((4, 3), "float32")
y = np.zeros((4, 2), "float32")
"""

RUNNER = """
import json, sys, traceback
src = sys.stdin.read()
try:
    exec(compile(src, "<case>", "exec"), {})
except Exception as e:
    print(json.dumps({"type": type(e).__name__, "message": str(e)}))
    sys.exit(1)
print(json.dumps({"type": None, "message": ""}))
"""


def run_case(code, backend="cpu"):
    """Runs PRELUDE + code in a fresh interpreter on `backend`; returns (returncode, type name,
    message)."""
    src = PRELUDE + textwrap.dedent(code)
    env = dict(os.environ, RUSTKERAS_BACKEND=backend)
    env.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())
    r = subprocess.run([sys.executable, "-c", RUNNER], input=src, capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode >= 0, f"killed by signal {-r.returncode}:\n{r.stderr[-2000:]}"
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not lines:
        err = r.stderr.strip().splitlines()
        key = [l for l in err if "panicked" in l or "Exception" in l or "Error" in l]
        pytest.fail(f"no Python exception reported (rc={r.returncode}): " + " | ".join((key or err)[-3:]))
    info = json.loads(lines[-1])
    return r.returncode, info["type"], info["message"]


def check(code, exc, *needles, backend="cpu"):
    rc, typ, msg = run_case(code, backend)
    assert typ is not None, f"no exception raised by: {code}"
    assert rc == 1
    assert typ == exc, f"{typ}: {msg}"
    low = msg.lower()
    for n in needles:
        assert n.lower() in low, f"{n!r} not in message: {msg}"
    return msg


def test_runner_reports_success_and_exceptions():
    rc, typ, _ = run_case("model().predict(x, verbose=0)")
    assert rc == 0 and typ is None
    check("raise ValueError('boom')", "ValueError", "boom")


# ---- data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["fit(np.zeros((4, 5), 'f'), y, verbose=0)",
                                  "evaluate(np.zeros((4, 5), 'f'), y, verbose=0)",
                                  "predict(np.zeros((4, 5), 'f'), verbose=0)",
                                  "train_on_batch(np.zeros((4, 5), 'f'), y)",
                                  "predict_on_batch(np.zeros((4, 5), 'f'))"])
def test_wrong_input_shape(call):
    # names the layer, the expected shape and the received one
    check(f"model().{call}", "ValueError", '"dense', "(None, 3)", "(4, 5)")


def test_wrong_input_rank():
    check("model().predict(np.zeros((4, 3, 1), 'f'), verbose=0)", "ValueError", "(None, 3)", "(4, 3, 1)")
    check("model().predict(np.zeros(3, 'f'), verbose=0)", "ValueError", "(None, 3)", "(3,)")


def test_wrong_target_shape():
    check("model().fit(x, np.zeros((4, 3), 'f'), verbose=0)", "ValueError", "y", "(4, 3)", "(None, 2)")


@pytest.mark.parametrize("call", ["fit(x, np.zeros((5, 2), 'f'), verbose=0)",
                                  "evaluate(x, np.zeros((3, 2), 'f'), verbose=0)",
                                  "train_on_batch(x, np.zeros((5, 2), 'f'))"])
def test_mismatched_x_y_lengths(call):
    check(f"model().{call}", "ValueError", "x sizes: 4", "y sizes:")


def test_mismatched_sample_weight_length():
    check("model().fit(x, y, sample_weight=np.ones(3), verbose=0)", "ValueError", "sample_weight", "(4,)", "(3,)")


@pytest.mark.parametrize("call", ["fit(np.zeros((0, 3), 'f'), np.zeros((0, 2), 'f'), verbose=0)",
                                  "evaluate(np.zeros((0, 3), 'f'), np.zeros((0, 2), 'f'), verbose=0)",
                                  "predict(np.zeros((0, 3), 'f'), verbose=0)",
                                  "predict_on_batch(np.zeros((0, 3), 'f'))"])
def test_empty_arrays(call):
    check(f"model().{call}", "ValueError", "x", "0 samples")


def test_empty_lists():
    check("model().fit([], [], verbose=0)", "ValueError", "(None, 3)", "(0,)")


@pytest.mark.parametrize("code,arg", [
    ("model().fit(np.array([['a', 'b', 'c']] * 4), y, verbose=0)", "x"),
    ("model().predict(np.array([['a', 'b', 'c']] * 4), verbose=0)", "x"),
    ("model().fit(np.array([[object()] * 3] * 4, dtype=object), y, verbose=0)", "x"),
    ("model().fit(x, np.array([['a', 'b']] * 4), verbose=0)", "y"),
    ("model().fit([[1, 2, 3], [1, 2]], y[:2], verbose=0)", "x"),
    ("model().fit(x, y, sample_weight=['a'] * 4, verbose=0)", "sample_weight"),
])
def test_non_numeric_data(code, arg):
    msg = check(code, "TypeError", f"`{arg}`", "numeric")
    assert "received" in msg.lower()


def test_y_none():
    check("model().fit(x, None, verbose=0)", "ValueError", "`y`", "None")


# ---- names ---------------------------------------------------------------------------------


def test_unknown_loss():
    check("model(loss='foo')", "ValueError", "loss", "'foo'", "mean_squared_error")


def test_unknown_optimizer():
    check("Sequential([Input((3,)), Dense(2)]).compile(optimizer='foo', loss='mse')", "ValueError",
          "optimizer", "foo")


def test_unknown_optimizer_lists_expected_names():
    check("optimizers.get('foo')", "ValueError", "optimizer", "foo", "adam", "rmsprop")


@pytest.mark.parametrize("code", ["Dense(2, activation='foo')", "Activation('foo')", "activations.get('foo')"])
def test_unknown_activation(code):
    check(code, "ValueError", "activation", "'foo'", "relu")


def test_unknown_metric():
    check("model(metrics=['foo'])", "ValueError", "metric", "'foo'", "accuracy")


def test_unknown_layer_class_in_config():
    check("from rustkeras import layers; layers.get('Conv9D')", "ValueError", "layer", "Conv9D")


# ---- layer arguments -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "'a'", "2.5", "None"])
def test_dense_bad_units(value):
    msg = check(f"Dense(units={value})", "ValueError", "units", "positive integer")
    assert f"units={value}" in msg


@pytest.mark.parametrize("code,arg", [("LeakyReLU(negative_slope=float('nan'))", "negative_slope"),
                                      ("LeakyReLU(negative_slope=float('inf'))", "negative_slope"),
                                      ("LeakyReLU(negative_slope=True)", "negative_slope"),
                                      ("ELU(alpha=float('nan'))", "alpha"), ("ELU(alpha=-float('inf'))", "alpha"),
                                      ("BatchNormalization(epsilon=float('nan'))", "epsilon"),
                                      ("BatchNormalization(epsilon=float('inf'))", "epsilon")])
def test_layers_reject_non_finite_parameters(code, arg):
    # A NaN slope was accepted and gave numbers no definition gives (found by tests/test_fuzz.py).
    check(f"from rustkeras.layers import BatchNormalization, ELU, LeakyReLU; {code}", "ValueError", arg, "finite")


@pytest.mark.parametrize("value", ["1.5", "-0.1", "1.0", "'a'"])
def test_dropout_bad_rate(value):
    msg = check(f"Dropout(rate={value})", "ValueError", "rate", "between 0 and 1")
    assert f"rate={value}" in msg


def test_dropout_bad_rate_keras1_alias():
    check("Dropout(p=2)", "ValueError", "rate", "rate=2")


@pytest.mark.parametrize("code,layer", [("Dense(2, foo=1)", "Dense"), ("Dropout(0.5, foo=1)", "Dropout"),
                                        ("Activation('relu', foo=1)", "Activation")])
def test_unknown_layer_keyword(code, layer):
    check(code, "ValueError", layer, "foo")


def test_bad_input_shape():
    check("Dense(2, input_shape=(-1,))", "ValueError", "Dense", "input_shape", "(-1,)")


def test_bad_reshape_target():
    check("Sequential([Input((6,)), Reshape((4, -1))])", "ValueError", "reshape", "(None, 6)", "(4, -1)")


@pytest.mark.parametrize("code,arg", [("Input((2.5,))", "input_shape"), ("Dense(2, input_shape=(3.0,))", "input_shape"),
                                      ("Reshape((2.5, 2))", "target_shape"), ("Reshape(('2', 2))", "target_shape")])
def test_fractional_dimensions(code, arg):
    # They were truncated (Input((2.5,)) made a model of 2 features; found by tests/test_fuzz.py).
    check(code, "ValueError", arg, "integer")


def test_reshape_to_none_is_an_unknown_dimension():
    # As in Keras (a TypeError from int(None) before).
    rc, typ, msg = run_case("assert Sequential([Input((6,)), Reshape((None, 2))]).output_shape == (None, 3, 2)")
    assert (rc, typ) == (0, None), msg


@pytest.mark.parametrize("code,needle", [
    ("Dense(2, kernel_constraint='max_norm')", "kernel_constraint"),
    ("Dropout(0.5, noise_shape=(1, 3))", "noise_shape"),
    ("model().compile(optimizer='sgd', loss='mse', sample_weight_mode='temporal')", "sample_weight_mode"),
    ("losses.SparseCategoricalCrossentropy(ignore_class=0)", "ignore_class"),
])
def test_unsupported_keras_arguments(code, needle):
    check(code, "NotImplementedError", needle)


# ---- fit / evaluate / predict arguments --------------------------------------------------


@pytest.mark.parametrize("method", ["fit(x, y, ", "evaluate(x, y, ", "predict(x, "])
def test_unknown_keyword_to_fit_evaluate_predict(method):
    check(f"model().{method}foo=1, verbose=0)", "TypeError", "foo", method.split("(")[0])


def test_unknown_keyword_to_compile():
    check("Sequential([Input((3,)), Dense(2)]).compile(optimizer='sgd', loss='mse', foo=1)", "ValueError",
          "compile", "foo")


@pytest.mark.parametrize("call", ["fit(x, y, verbose=0)", "evaluate(x, y, verbose=0)", "train_on_batch(x, y)",
                                  "test_on_batch(x, y)"])
def test_before_compile(call):
    check(f"Sequential([Input((3,)), Dense(2)]).{call}", "ValueError", "compile")


def test_compile_without_loss():
    check("Sequential([Input((3,)), Dense(2)]).compile(optimizer='sgd')", "ValueError", "loss", "None")


@pytest.mark.parametrize("call", ["fit(x, y, verbose=0)", "train_on_batch(x, y)"])
def test_compiled_without_optimizer_evaluates_but_does_not_train(call):
    # Keras 3 accepts compile(optimizer=None) for evaluate and predict; training then needs an
    # optimizer (an AttributeError before; found by tests/test_fuzz.py).
    rc, typ, msg = run_case("""
        m = Sequential([Input((3,)), Dense(2)])
        m.compile(optimizer=None, loss="mse", metrics=["mae"])
        assert len(m.evaluate(x, y, verbose=0)) == 2 and m.predict(x, verbose=0).shape == (4, 2)
        import os, tempfile
        path = os.path.join(tempfile.mkdtemp(), "m.keras")
        m.save(path)
        """)
    assert (rc, typ) == (0, None), msg
    check(f"m = Sequential([Input((3,)), Dense(2)]); m.compile(optimizer=None, loss='mse'); m.{call}", "ValueError",
          call.split("(")[0], "optimizer=None")


@pytest.mark.parametrize("labels,bad", [("[0, 1, 2, 1]", "2"), ("[0, 1, -1, 1]", "-1"), ("[0, 1, 0.5, 1]", "0.5")])
def test_sparse_labels_out_of_range(labels, bad):
    msg = check(f"model(loss='sparse_categorical_crossentropy').fit(x, np.array({labels}), verbose=0)",
                "ValueError", "labels", "[0, 2)")
    assert bad in msg.split("Received")[-1]


def test_sparse_loss_function_label_out_of_range():
    check("print(losses.sparse_categorical_crossentropy(np.array([5, 0]), np.eye(3)[:2]))", "ValueError", "5")


def test_metric_shape_mismatch():
    check("print(metrics.categorical_accuracy(np.eye(3)[:2], np.eye(4)[:2]))", "ValueError", "(None, 3)",
          "(None, 4)")


def test_loss_function_shape_mismatch():
    check("losses.mse(np.zeros((2, 3)), np.zeros((2, 4)))", "ValueError", "mean_squared_error", "3", "4")
    check("losses.mse(np.zeros(3), np.zeros(4))", "ValueError", "3", "4")


@pytest.mark.parametrize("code", ["activations.softmax(np.zeros((2, 0)))",
                                  "losses.categorical_crossentropy(np.zeros((2, 0)), np.zeros((2, 0)))"])
def test_zero_width_last_axis(code):
    check(code, "ValueError")


@pytest.mark.parametrize("code,expected,received", [
    ("model().set_weights([np.zeros((3, 3)), np.zeros(2)])", "(3, 2)", "(3, 3)"),
    ("model().set_weights([np.zeros((3, 2)), np.zeros(5)])", "(2,)", "(5,)"),
    ("model().layers[0].set_weights([np.zeros((2, 2)), np.zeros(2)])", "(3, 2)", "(2, 2)"),
])
def test_set_weights_wrong_shape(code, expected, received):
    check(code, "ValueError", '"dense', expected, received)


@pytest.mark.parametrize("code,expected,received", [
    ("model().set_weights([np.zeros((3, 2))])", "expecting 2", "length 1"),
    ("model().set_weights([np.zeros((3, 2)), np.zeros(2), np.zeros(2)])", "expecting 2", "length 3"),
    ("model().layers[0].set_weights([])", "expecting 2", "length 0"),
])
def test_set_weights_wrong_count(code, expected, received):
    check(code, "ValueError", "set_weights", expected, received)


@pytest.mark.parametrize("value", ["1.0", "-0.2", "1.5"])
def test_bad_validation_split(value):
    msg = check(f"model().fit(x, y, validation_split={value}, verbose=0)", "ValueError", "validation_split", "(0, 1)")
    assert f"validation_split={value}" in msg


def test_validation_split_leaving_no_training_samples():
    check("model().fit(x[:1], y[:1], validation_split=0.5, verbose=0)", "ValueError", "validation_split", "1 samples")


def test_validation_split_not_a_number():
    check("model().fit(x, y, validation_split='a', verbose=0)", "ValueError", "validation_split", "'a'")


def test_bad_validation_data():
    check("model().fit(x, y, validation_data=(x,), verbose=0)", "ValueError", "validation_data", "(x_val, y_val)")
    check("model().fit(x, y, validation_data=(np.zeros((2, 4), 'f'), y[:2]), verbose=0)", "ValueError",
          "(None, 3)", "(2, 4)")


@pytest.mark.parametrize("call", ["fit(x, y, batch_size=0, verbose=0)", "fit(x, y, batch_size=-3, verbose=0)",
                                  "fit(x, y, batch_size=2.5, verbose=0)", "predict(x, batch_size=0, verbose=0)",
                                  "predict(x, batch_size=-2, verbose=0)"])
def test_bad_batch_size(call):
    value = call.split("batch_size=")[1].split(",")[0]
    check(f"model().{call}", "ValueError", "batch_size", "integer > 0", f"batch_size={value}")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bad_batch_size_evaluate(value):
    check(f"model().evaluate(x, y, batch_size={value}, verbose=0)", "ValueError", "batch_size", "integer > 0")


@pytest.mark.parametrize("call", ["evaluate(x, y, batch_size=2.5", "predict(x, batch_size=2.5",
                                  "predict(x, batch_size='a'"])
def test_non_integer_batch_size_evaluate_predict(call):
    check(f"model().{call}, verbose=0)", "ValueError", "batch_size", "integer > 0")


def test_bad_epochs():
    check("model().fit(x, y, epochs=-1, verbose=0)", "ValueError", "epochs", "epochs=-1")


@pytest.mark.parametrize("arg,value", [("validation_freq", "0"), ("validation_freq", "2.5"), ("initial_epoch", "-1"),
                                       ("initial_epoch", "1.5")])
def test_bad_validation_freq_and_initial_epoch(arg, value):
    # validation_freq=0 leaked a ZeroDivisionError, and a negative initial_epoch ran an epoch -1
    # (found by tests/test_fuzz.py).
    check(f"model().fit(x, y, epochs=2, validation_data=(x, y), {arg}={value}, verbose=0)", "ValueError", arg,
          value)


def test_validation_freq_as_a_list_of_epochs():
    rc, typ, msg = run_case("""
        h = model().fit(x, y, epochs=3, validation_data=(x, y), validation_freq=[1, 3], verbose=0).history
        assert len(h["loss"]) == 3 and len(h["val_loss"]) == 2
        """)
    assert (rc, typ) == (0, None), msg


def test_bad_verbose():
    check("model().fit(x, y, verbose=5)", "ValueError", "verbose", "verbose=5")


# -- memory: sizes no machine has give MemoryError before anything is allocated ---------------


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_a_weight_larger_than_memory(backend):
    check("Sequential([Input((3,)), Dense(10**12)])", "MemoryError", 'layer "dense"', '"kernel"',
          "(3, 1000000000000)", "12.0 TB", "available", backend=backend)


def test_an_input_shape_larger_than_memory_can_address():
    check("Sequential([Input((10**10, 10**10)), Flatten(), Dense(1)])", "MemoryError", "input_shape",
          "(10000000000, 10000000000)")


@pytest.mark.parametrize("layer,arg", [
    ("UpSampling1D(size=2**64)", "size"),            # an OverflowError leaked from the conversion
    ("UpSampling1D(size=2**62)", "size"),            # the output length wrapped around to 0
    ("Conv1D(2, 2, strides=2**64)", "strides"),
    ("MaxPooling1D(2, strides=2**64)", "strides"),
    ("Conv1D(2, 2**40, dilation_rate=2**40, padding='same')", "kernel_size"),
    ("Conv1DTranspose(2, 2, strides=2**62)", "strides"),
    ("ZeroPadding1D(2**63)", "padding"),
    ("Cropping1D((0, 2**64))", "cropping"),
])
def test_sizes_beyond_int32_are_value_errors(layer, arg):
    # Found by tests/test_fuzz.py: kernel sizes, strides, dilations, pool sizes, upsampling
    # factors and paddings are at most 2**31 - 1 (Keras' backends hold them as int32).
    check(f"from rustkeras.layers import *; Sequential([Input((4, 2)), {layer}])", "ValueError", arg,
          "at most 2147483647")


@pytest.mark.parametrize("layers,name", [
    ("Input((2**40, 2)), UpSampling1D(2**30)", "up_sampling1d"),
    ("Input((2**59, 1)), Conv1DTranspose(1, 2, strides=2**30)", "conv1d_transpose"),
    ("Input(((2**63 - 1) // 4, 1)), ZeroPadding1D(1)", "zero_padding1d"),
])
def test_outputs_beyond_what_memory_can_address_are_memory_errors(layers, name):
    # The engine's shape arithmetic would wrap around: the layer checks its output first.
    check(f"from rustkeras.layers import *; Sequential([{layers}])", "MemoryError", name,
          "more values per sample than memory can address")


def test_a_batch_whose_activations_exceed_memory_names_the_batch_size_and_the_layer():
    # 10**6 rows of a 10**7-wide layer: 40 TB of activations, refused when the pass is planned.
    check("""
        m = Sequential([Input((3,)), Dense(10**7, name="wide"), Dense(1)])
        m.compile(optimizer="sgd", loss="mse")
        m.fit(np.zeros((10**6, 3), "f"), np.zeros((10**6, 1), "f"), batch_size=10**6, verbose=0)
        """, "MemoryError", "batch of 1000000 samples", "batch_size", 'layer "wide"', "TB")


def test_predict_outputs_larger_than_memory():
    check("""
        m = Sequential([Input((3,)), Dense(10**7)])
        m.predict(np.zeros((10**6, 3), "f"), batch_size=4, verbose=0)
        """, "MemoryError", "predict", "output", "(shape [1000000, 10000000])", "TB")


def test_a_gpu_batch_larger_than_a_buffer_is_a_value_error():
    check("""
        m = Sequential([Input((3,)), Dense(200000), Dense(1)])
        m.compile(optimizer="sgd", loss="mse")
        m.fit(np.zeros((5000, 3), "f"), np.zeros((5000, 1), "f"), batch_size=5000, verbose=0)
        """, "ValueError", "smaller batch size", backend="gpu")


def test_the_process_goes_on_after_a_memory_error():
    rc, typ, msg = run_case("""
        try:
            Sequential([Input((3,)), Dense(10**12)])
        except MemoryError:
            pass
        m = model()
        m.fit(x, y, verbose=0)
        assert m.predict(x, verbose=0).shape == (4, 2)
        """)
    assert (rc, typ) == (0, None), msg


# -- labels and indices: checked on the host before any kernel runs, on both devices -----------


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_sparse_labels_and_embedding_indices_out_of_range_on_each_device(backend):
    check("model(loss='sparse_categorical_crossentropy', units=3).fit(x, np.array([0, 1, 2, 3]), verbose=0)",
          "ValueError", "labels", "[0, 3)", "3", backend=backend)
    check("""
        m = Sequential([Input((2,)), Embedding(5, 3), Flatten(), Dense(1)])
        m.compile(optimizer="sgd", loss="mse")
        m.fit(np.array([[1, 9]]), np.zeros((1, 1)), verbose=0)
        """, "ValueError", 'layer "embedding"', "[0, 5)", "9", backend=backend)
    check("Sequential([Input((2,)), Embedding(5, 3)]).predict(np.array([[1.5, 2]]), verbose=0)", "ValueError",
          "integers", "1.5", backend=backend)


# -- the forms data comes in: each gives what float32 C-ordered arrays give -------------------


def test_every_numeric_form_of_the_data_trains_like_float32_arrays():
    rc, typ, msg = run_case("""
        import pandas as pd
        from rustkeras.utils import set_random_seed
        rng = np.random.default_rng(0)
        xi = rng.integers(0, 5, size=(16, 3))
        yi = rng.integers(0, 2, size=(16, 2))
        def run(xd, yd):
            set_random_seed(3)
            m = model()
            h = m.fit(xd, yd, epochs=2, batch_size=4, shuffle=False, verbose=0).history["loss"]
            return h, m.predict(xd, verbose=0)
        ref_h, ref_p = run(xi.astype("float32"), yi.astype("float32"))
        wide = np.zeros((16, 6), "float64"); wide[:, ::2] = xi
        forms = {
            "int64": (xi, yi), "int8": (xi.astype("int8"), yi.astype("uint8")),
            "float64": (xi.astype("float64"), yi.astype("float64")),
            "float16": (xi.astype("float16"), yi.astype("float16")),
            "bool y": (xi.astype("float32"), yi.astype(bool)),
            "lists": (xi.tolist(), yi.tolist()),
            "non-contiguous": (wide[:, ::2], yi),
            "fortran": (np.asfortranarray(xi.astype("float32")), np.asfortranarray(yi)),
            "pandas": (pd.DataFrame(xi, columns=list("abc")), pd.DataFrame(yi)),
        }
        for name, (xd, yd) in forms.items():
            h, p = run(xd, yd)
            np.testing.assert_allclose(h, ref_h, rtol=1e-6, err_msg=name)
            np.testing.assert_allclose(p, ref_p, rtol=1e-6, err_msg=name)
        """)
    assert (rc, typ) == (0, None), msg


@pytest.mark.parametrize("code,needle", [
    ("model().fit(np.array([[1, 'a', 3]] * 4, dtype=object), y, verbose=0)", "dtype object"),
    ("model().fit(x.astype(complex), y, verbose=0)", "complex128"),
    ("model().fit([[1, 2, 3], [1, 2]], y[:2], verbose=0)", "inhomogeneous"),
    ("import pandas as pd; model().fit(pd.DataFrame({'a': [1, 2, 3, 4], 'b': list('uvuv'), 'c': [0.] * 4}), y,"
     " verbose=0)", "dtype object"),
])
def test_non_numeric_forms_name_x_and_what_was_received(code, needle):
    check(code, "TypeError", "`x`", needle)


@pytest.mark.parametrize("bs", ["100", "10**30"])
def test_a_batch_size_larger_than_the_data_is_one_batch(bs):
    rc, typ, msg = run_case(f"""
        m = model()
        h = m.fit(x, y, batch_size={bs}, epochs=2, verbose=0).history
        assert len(h["loss"]) == 2
        assert m.predict(x, batch_size={bs}, verbose=0).shape == (4, 2)
        assert len(m.evaluate(x, y, batch_size={bs}, verbose=0, return_dict=True)) == 1
        """)
    assert (rc, typ) == (0, None), msg
