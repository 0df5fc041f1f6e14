"""Weight initializers with Keras 3's names and defaults (and the Keras 1 aliases
`uniform`, `normal`, `zero`, `one`). The numbers are drawn in Rust, seeded."""

from typing import Any, Dict, Optional


class Initializer:
    """An initializer: a Rust kind plus its arguments."""

    kind = ""
    _params: Dict[str, float] = {}

    def __init__(self, seed: Optional[int] = None, **params):
        self.seed = seed
        self._params = {k: float(v) for k, v in params.items()}

    def get_config(self) -> Dict[str, Any]:
        cfg: Dict[str, Any] = dict(self._params)
        if self.kind not in ("zeros", "ones", "constant", "identity"):
            cfg["seed"] = self.seed
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({self.get_config()})"


def _cls(name: str, kind: str, defaults: Dict[str, float], seeded: bool = True):
    def __init__(self, *args, seed=None, **kwargs):
        names = list(defaults)
        if len(args) > len(names):
            raise TypeError(f"{name} takes at most {len(names)} positional arguments")
        params = dict(defaults)
        params.update(dict(zip(names, args)))
        for k, v in kwargs.items():
            if k not in defaults:
                raise ValueError(f"Unrecognized keyword arguments passed to {name}: {{'{k}': {v!r}}}")
            params[k] = v
        Initializer.__init__(self, seed=seed if seeded else None, **params)

    return type(name, (Initializer,), {"kind": kind, "__init__": __init__})


Zeros = _cls("Zeros", "zeros", {}, seeded=False)
Ones = _cls("Ones", "ones", {}, seeded=False)
Constant = _cls("Constant", "constant", {"value": 0.0}, seeded=False)
RandomUniform = _cls("RandomUniform", "random_uniform", {"minval": -0.05, "maxval": 0.05})
RandomNormal = _cls("RandomNormal", "random_normal", {"mean": 0.0, "stddev": 0.05})
TruncatedNormal = _cls("TruncatedNormal", "truncated_normal", {"mean": 0.0, "stddev": 0.05})
GlorotUniform = _cls("GlorotUniform", "glorot_uniform", {})
GlorotNormal = _cls("GlorotNormal", "glorot_normal", {})
HeUniform = _cls("HeUniform", "he_uniform", {})
HeNormal = _cls("HeNormal", "he_normal", {})
LecunUniform = _cls("LecunUniform", "lecun_uniform", {})
LecunNormal = _cls("LecunNormal", "lecun_normal", {})
Orthogonal = _cls("Orthogonal", "orthogonal", {"gain": 1.0})
Identity = _cls("Identity", "identity", {"gain": 1.0}, seeded=False)

_BY_NAME = {
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
    "random_uniform": RandomUniform, "uniform": RandomUniform, "random_normal": RandomNormal,
    "normal": RandomNormal, "truncated_normal": TruncatedNormal, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
    "identity": Identity,
}
_BY_CLASS = {c.__name__: c for c in set(_BY_NAME.values())}


def get(identifier) -> Initializer:
    """An Initializer from a name, a config dict, or an Initializer."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _BY_NAME:
            return _BY_NAME[key]()
        if identifier in _BY_CLASS:
            return _BY_CLASS[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_CLASS:
        return _BY_CLASS[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(
        f"Could not interpret initializer identifier: {identifier!r}. "
        f"Expected one of: {', '.join(sorted(_BY_NAME))}"
    )


def serialize(init: Initializer) -> Dict[str, Any]:
    return {"module": "keras.initializers", "class_name": type(init).__name__, "config": init.get_config()}


deserialize = get
