"""Where the scikit-learn estimators and `rustkeras.utils.cross_validate` get their models: a
fresh copy of a compiled model (its architecture and compile, new weights, as Keras 3's
`clone_model` gives), or a build function called the way Keras 3's wrappers call it,
`model(X=X, y=y, **model_kwargs)`. Needs no scikit-learn."""

import inspect
from typing import Any, Callable, Dict, Optional


def _trainer():
    from rustkeras.models.training import Trainer

    return Trainer


def is_model(value) -> bool:
    return isinstance(value, _trainer())


def check_compiled(model, who: str):
    """`model` if it is a compiled rustkeras model; else TypeError / ValueError naming `who`."""
    if not is_model(model):
        raise TypeError(f"{who} must be a compiled rustkeras model (or return one). "
                        f"Received: {type(model).__name__}")
    if model.__dict__.get("_compile_args") is None:
        raise ValueError(f"{who}: the model '{model.name}' is not compiled. Call "
                         "`model.compile(optimizer=..., loss=...)` before handing it over (in the build function).")
    return model


def accepted_arguments(build_fn: Callable) -> Optional[set]:
    """The keyword arguments `build_fn` takes, or None when it takes any (`**kwargs`, or a
    callable whose signature Python cannot read)."""
    try:
        params = inspect.signature(build_fn).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {name for name, p in params.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def call_build_fn(build_fn: Callable, X, y, kwargs: Optional[Dict[str, Any]], who: str):
    """`build_fn(X=X, y=y, **kwargs)`, checked to return a compiled model. X and y are passed
    when the function takes them (Keras 3 passes them always; a function of no arguments, or of
    its own arguments only, works here too)."""
    kwargs = dict(kwargs or {})
    accepted = accepted_arguments(build_fn)
    if accepted is not None:
        unknown = sorted(k for k in kwargs if k not in accepted)
        if unknown:
            raise ValueError(f"{who}: the build function {getattr(build_fn, '__name__', build_fn)!r} takes no "
                             f"argument(s) {unknown}. It takes: {sorted(accepted)}")
    data = {name: value for name, value in (("X", X), ("y", y)) if accepted is None or name in accepted}
    return check_compiled(build_fn(**data, **kwargs), f"{who} (the value the build function returned)")


def fresh_copy(model, who: str):
    """A new model of `model`'s architecture and compile, with newly initialized weights."""
    from rustkeras._saving import keras_config
    from rustkeras.models import _pickle

    check_compiled(model, who)
    copy = _pickle.from_config(keras_config.model_entry(model), _pickle.user_objects(model))
    return check_compiled(copy, f"{who} (its copy, compiled from its compile config)")
