"""scikit-learn estimators on rustkeras models, Keras 3's `keras.wrappers`: `SKLearnClassifier`,
`SKLearnRegressor` and `SKLearnTransformer`.

    from rustkeras.wrappers import SKLearnClassifier
    from sklearn.model_selection import GridSearchCV

    def build(X, y, units=32):            # called as build(X=X, y=y, **model_kwargs)
        model = Sequential([Dense(units, activation="relu", input_shape=(X.shape[1],)),
                            Dense(y.shape[1], activation="softmax")])   # y arrives one-hot
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    clf = SKLearnClassifier(model=build, fit_kwargs={"epochs": 10, "verbose": 0})
    GridSearchCV(clf, {"model__units": [32, 64]}, cv=3).fit(x, y)

scikit-learn (1.6 or newer) is an optional dependency: importing rustkeras or this module does
not import it; the first use of one of these names does, and raises ImportError naming
scikit-learn where it is missing.
"""

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rustkeras.wrappers import _sklearn  # imports scikit-learn, or says it is missing

    value = getattr(_sklearn, name)
    globals()[name] = value
    return value
