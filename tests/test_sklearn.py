"""The scikit-learn estimators of `rustkeras.wrappers`: scikit-learn's own estimator checks, a
search over the build function's arguments on the digits, clone and pickle, a compiled model
as `model`, warm starts, and the errors. (The same searches on a Dask cluster: test_dask.py.)"""

import os
import pickle
import sys

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from rustkeras import Input, Model, Sequential  # noqa: E402
from rustkeras.layers import Dense  # noqa: E402
from rustkeras.optimizers import Adam  # noqa: E402
from rustkeras.utils import set_random_seed, to_categorical  # noqa: E402
from rustkeras.wrappers import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from digits_models import FIT, build_mlp, digits  # noqa: E402


def mlp(X, y, loss, out_activation="softmax", layers=(10,), seed=None):
    """Keras 3's own test model for the estimator checks: y one-hot for a classifier, one
    column or more for the others. Unseeded, each fit starts from other weights."""
    if seed is not None:
        set_random_seed(seed)
    inputs = Input(shape=(X.shape[1],))
    h = inputs
    for units in layers:
        h = Dense(units, activation="relu")(h)
    model = Model(inputs, Dense(y.shape[1] if y.ndim > 1 else 1, activation=out_activation)(h))
    model.compile(loss=loss, optimizer="rmsprop")
    return model


CHECKED = {
    "SKLearnClassifier": {"loss": "categorical_crossentropy", "layers": [20, 20, 20]},
    "SKLearnRegressor": {"loss": "mse", "out_activation": "linear"},
    "SKLearnTransformer": {"loss": "mse", "out_activation": "linear"},
}


def estimators(classes, seed=None):
    return [cls(mlp, model_kwargs={**CHECKED[name], "seed": seed}, fit_kwargs={"epochs": 5, "verbose": 0})
            for name, cls in zip(CHECKED, classes)]


# The checks a stochastic estimator fails: each fits twice (or two estimators) on the same data
# and wants the same predictions, while an unseeded build function starts every fit from other
# random weights. They all pass once the build function seeds: see the deterministic run below.
_TWO_FITS = "fits twice and compares the predictions; an unseeded network starts each fit from other weights"
EXPECTED_FAILED_CHECKS = {
    "SKLearnClassifier": {
        "check_fit_idempotent": _TWO_FITS,
        "check_classifier_data_not_an_array": _TWO_FITS + " (arrays vs. lists)",
        "check_supervised_y_2d": _TWO_FITS + " (1-D vs. column y)",
        "check_classifiers_one_label_sample_weights": (
            "wants every prediction to be the one class with nonzero weight after 5 epochs on 10 samples; the "
            "zero-weighted class keeps its output unit, and from some random starts a sample still leans to it"),
    },
    "SKLearnRegressor": {
        "check_fit_idempotent": _TWO_FITS,
        "check_regressor_data_not_an_array": _TWO_FITS + " (arrays vs. lists)",
        "check_supervised_y_2d": _TWO_FITS + " (1-D vs. column y)",
        "check_regressors_int": _TWO_FITS + " (int vs. float y)",
    },
    "SKLearnTransformer": {
        "check_fit_idempotent": _TWO_FITS,
    },
}


@parametrize_with_checks(estimators([SKLearnClassifier, SKLearnRegressor, SKLearnTransformer]),
                         expected_failed_checks=lambda e: EXPECTED_FAILED_CHECKS[type(e).__name__])
def test_scikit_learn_checks_of_the_stochastic_estimators(estimator, check):
    check(estimator)


# Seeded in the build function, a fit repeats exactly; marked deterministic, the estimators also
# get the checks scikit-learn leaves out for non-deterministic ones (the same predictions for a
# subset or a reordering of the samples, pipelines, transformers' general checks). All pass.
class SeededClassifier(SKLearnClassifier):
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class SeededRegressor(SKLearnRegressor):
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class SeededTransformer(SKLearnTransformer):
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


@parametrize_with_checks(estimators([SeededClassifier, SeededRegressor, SeededTransformer], seed=0))
def test_scikit_learn_checks_all_pass_when_the_build_function_seeds(estimator, check):
    check(estimator)


# -- on a real data set ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    return digits()


def test_cross_val_score_and_grid_search_over_the_build_functions_arguments(data):
    x, y = data
    clf = SKLearnClassifier(model=build_mlp, fit_kwargs=FIT)
    scores = cross_val_score(clf, x, y, cv=5)
    assert scores.shape == (5,) and scores.mean() > 0.9
    search = GridSearchCV(clf, {"model__units": [8, 32], "model__lr": [1e-3, 3e-3]}, cv=3).fit(x, y)
    assert search.best_params_ == {"model__units": 32, "model__lr": 3e-3} and search.best_score_ > 0.9
    best = search.best_estimator_
    assert best.model_.layers[0].units == 32 and best.model_kwargs == {"units": 32, "lr": 3e-3}
    assert clf.model_kwargs is None  # the search set its clones
    assert best.score(x, y) > 0.95 and set(best.classes_) == set(range(10))


def test_labels_come_back_as_given_and_probabilities_sum_to_one(data):
    x, y = data
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    clf = SKLearnClassifier(build_mlp, fit_kwargs=FIT).fit(x, names)
    assert list(clf.classes_) == sorted(set(names))
    pred = clf.predict(x[:50])
    assert pred.dtype.kind == "U" and np.mean(pred == names[:50]) > 0.9
    proba = clf.predict_proba(x[:50])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert np.all(clf.classes_[proba.argmax(axis=1)] == pred)
    assert clf.history_["loss"][-1] < clf.history_["loss"][0] and clf.epoch_ == FIT["epochs"]


def test_binary_decision_function_is_one_score_a_sample_positive_for_the_second_class(data):
    x, y = data
    keep = (y == 3) | (y == 8)
    clf = SKLearnClassifier(build_mlp, fit_kwargs=FIT).fit(x[keep], y[keep])
    scores = clf.decision_function(x[keep])
    assert scores.shape == (keep.sum(),)
    assert np.all(clf.predict(x[keep]) == np.where(scores > 0, 8, 3))


def test_a_pickled_estimator_predicts_the_same_after_unpickling(data):
    x, y = data
    clf = SKLearnClassifier(build_mlp, model_kwargs={"units": 16}, fit_kwargs=FIT).fit(x, y)
    blob = pickle.dumps(clf)
    assert b"rustkeras._core" not in blob  # the model travels as its .keras bytes
    back = pickle.loads(blob)
    assert back.model_ is not clf.model_ and back.get_params() == clf.get_params()
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    np.testing.assert_array_equal(back.predict(x), clf.predict(x))
    # Training goes on from the unpickled optimizer state, as it would have in the original.
    clf.set_params(warm_start=True).fit(x, y, epochs=1)
    back.set_params(warm_start=True).fit(x, y, epochs=1)
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))


def test_clone_keeps_fit_kwargs_and_fit_leaves_them_as_given(data):
    x, y = data
    fit_kwargs = {"epochs": 2, "batch_size": 64, "verbose": 0}
    clf = SKLearnClassifier(build_mlp, model_kwargs={"units": 8}, fit_kwargs=fit_kwargs)
    twin = clone(clf)
    assert twin.fit_kwargs == fit_kwargs and twin.model_kwargs == {"units": 8} and twin.model is build_mlp
    twin.fit(x, y, epochs=1)  # fit's own arguments win, for this fit only
    assert twin.epoch_ == 1 and twin.fit_kwargs == fit_kwargs and fit_kwargs == {"epochs": 2, "batch_size": 64,
                                                                                  "verbose": 0}
    assert not hasattr(clone(twin), "model_")


def test_nested_parameters_are_the_build_functions_arguments():
    clf = SKLearnClassifier(build_mlp, model_kwargs={"units": 8})
    kwargs = clf.model_kwargs
    assert clf.get_params()["model__units"] == 8 and "model__units" not in clf.get_params(deep=False)
    clf.set_params(model__lr=0.01, model__units=64)
    assert clf.model_kwargs == {"units": 64, "lr": 0.01} and kwargs == {"units": 8}
    with pytest.raises(ValueError, match=r"model__widht.*takes no argument\(s\) \['widht'\].*'units'"):
        clf.set_params(model__widht=3)
    with pytest.raises(ValueError, match="model__units.*not a build function"):
        SKLearnClassifier(mlp_instance()).set_params(model__units=3)


def mlp_instance(d=64, classes=10):
    model = Sequential([Dense(16, activation="relu", input_shape=(d,)), Dense(classes, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_compiled_model_is_copied_for_each_fit_and_warm_start_trains_on(data):
    x, y = data
    given = mlp_instance()
    before = [w.copy() for w in given.get_weights()]
    clf = SKLearnClassifier(given, fit_kwargs=FIT).fit(x, y)
    assert clf.model_ is not given and clf.score(x, y) > 0.9
    assert all(np.array_equal(a, b) for a, b in zip(before, given.get_weights()))
    assert clf.model_.get_config()["layers"][1:] == given.get_config()["layers"][1:]
    first = clf.model_
    clf.fit(x, y)
    assert clf.model_ is not first and clf.epoch_ == FIT["epochs"]  # a new copy: starts over
    clf.set_params(warm_start=True)
    trained = [w.copy() for w in clf.model_.get_weights()]
    model = clf.model_
    clf.fit(x, y, epochs=1)
    assert clf.model_ is model and clf.epoch_ == FIT["epochs"] + 1
    assert not all(np.array_equal(a, b) for a, b in zip(trained, model.get_weights()))
    twin = clone(clf)  # the model instance is copied (through its .keras bytes), weights and all
    assert twin.model is not given and all(np.array_equal(a, b) for a, b in
                                           zip(given.get_weights(), twin.model.get_weights()))


def test_regressor_predicts_the_shape_of_y_in_float64():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    w = rng.normal(size=(5, 2))
    y = x @ w

    def linear(X, y):
        set_random_seed(0)
        model = Sequential([Dense(y.shape[1], input_shape=(X.shape[1],))])
        model.compile(optimizer=Adam(learning_rate=0.05), loss="mse")
        return model

    fit = {"epochs": 20, "batch_size": 16, "verbose": 0}
    one = SKLearnRegressor(linear, fit_kwargs=fit).fit(x, y[:, 0])
    assert one.predict(x).shape == (400,) and one.predict(x).dtype == np.float64 and one.score(x, y[:, 0]) > 0.95
    two = SKLearnRegressor(linear, fit_kwargs=fit).fit(x, y)
    assert two.predict(x).shape == (400, 2) and two.score(x, y) > 0.95


def test_a_trained_transformer_feeds_a_pipeline(data):
    x, y = data

    def encoder(X, y):
        set_random_seed(0)
        inputs = Input(shape=(X.shape[1],))
        hidden = Dense(32, activation="relu")(inputs)
        model = Model(inputs, Dense(y.shape[1], activation="softmax", name="code")(hidden))
        model.compile(optimizer=Adam(learning_rate=3e-3), loss="categorical_crossentropy")
        return model

    train, test = slice(0, 1200), slice(1200, None)
    embed = SKLearnTransformer(encoder, fit_kwargs=FIT).fit(x[train], to_categorical(y[train]))
    codes = embed.transform(x[test])
    assert codes.shape == (len(x[test]), 10) and codes.dtype == np.float32
    pipe = make_pipeline(FrozenEstimator(embed), LogisticRegression(max_iter=500)).fit(x[train], y[train])
    assert pipe.score(x[test], y[test]) > 0.85


def test_errors_name_what_is_wrong(data):
    x, y = data

    def uncompiled(X, y):
        return Sequential([Dense(10, input_shape=(X.shape[1],))])

    with pytest.raises(ValueError, match="SKLearnClassifier: `model`.*not compiled"):
        SKLearnClassifier(uncompiled).fit(x, y)
    with pytest.raises(TypeError, match="must be a compiled rustkeras model.*Received: str"):
        SKLearnClassifier(lambda X, y: "a model").fit(x, y)
    with pytest.raises(TypeError, match="`model` must be a compiled rustkeras model or a function.*Received: 3"):
        SKLearnClassifier(3).fit(x, y)
    with pytest.raises(ValueError, match=r"build function 'build_mlp' takes no argument\(s\) \['depth'\]"):
        SKLearnClassifier(build_mlp, model_kwargs={"depth": 3}).fit(x, y)
    with pytest.raises(ValueError, match="`model_kwargs` have nothing to go to"):
        SKLearnClassifier(mlp_instance(), model_kwargs={"units": 3}).fit(x, y)
    with pytest.raises(ValueError, match=r"`y` has shape \(1797, 10\) but the model's output has shape \(None, 3\)"):
        SKLearnClassifier(mlp_instance(classes=3), fit_kwargs=FIT).fit(x, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        SKLearnClassifier(build_mlp).fit(x, x[:, 0] + 0.5)
    with pytest.raises(ValueError, match="requires y to be passed"):
        SKLearnTransformer(build_mlp).fit(x)
