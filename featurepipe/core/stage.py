"""What every pipeline stage shares (preprocessing steps, extractors, descriptors, normalisers):
scikit-learn's parameter protocol, declarative validation, fitted state and a stable fingerprint.

Stages follow scikit-learn's estimator conventions (``__init__`` only stores parameters, validation
happens once per fit, fitted attributes end in ``_``) and work inside its pipelines and ``clone``, but
do not import scikit-learn: listing or building a pipeline stays fast.
"""
from __future__ import annotations

import inspect

from ..fingerprint import digest, modules_code_version
from .constraints import check_constraints
from .registry import REGISTRY


class Stage:
    """Base of registered stages.

    Subclasses set ``kind``, declare ``_constraints`` (parameter name -> ``Constraint``) and, for rules
    that tie parameters together, override ``_check_combination``. Parameters that are stages themselves
    (or lists of them) are validated with their owner.
    """

    kind = "stage"
    _constraints: dict = {}
    #: Fitted attributes that describe the fit but do not change its output (timings): kept out of the
    #: fingerprint, so that a refit with the same result keeps its cache keys.
    _volatile_state = ("fit_timings_",)

    # -- scikit-learn's parameter protocol -------------------------------------------------------------
    @classmethod
    def _get_param_names(cls) -> list[str]:
        if cls.__init__ is object.__init__:
            return []
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return sorted(p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep: bool = True) -> dict:
        params = {name: getattr(self, name) for name in self._get_param_names()}
        if deep:
            for name, value in list(params.items()):
                if hasattr(value, "get_params") and not isinstance(value, type):
                    params.update({f"{name}__{k}": v for k, v in value.get_params(deep=True).items()})
        return params

    def set_params(self, **params):
        valid = self._get_param_names()
        nested: dict[str, dict] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"{type(self).__name__}: unknown parameter {name!r}; valid: {', '.join(valid)}")
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self):
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = []
        for name, value in self.get_params(deep=False).items():
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = bool(value == default) and type(value) is type(default)
            except (TypeError, ValueError):
                same = False
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- identity --------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The name the class is registered under (its class name when unregistered)."""
        return REGISTRY.name_of(self.kind, type(self)) or type(self).__name__

    # -- validation ------------------------------------------------------------------------------------
    def validate_params(self) -> None:
        """Raise ``ParamError`` naming the first invalid parameter, of this stage or of a nested one."""
        check_constraints(self, self._constraints)
        self._check_combination()
        for value in self.get_params(deep=False).values():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, Stage):
                    item.validate_params()
        self._validated = _snapshot(self)

    def _check_combination(self) -> None:
        """Rules that tie several parameters together (``require``); none by default."""

    def _ensure_valid(self) -> None:
        """Validate unless the parameters are those validated last: ``transform`` of a stage that needs
        no fit checks its parameters once, not on every call."""
        if getattr(self, "_validated", None) != _snapshot(self):
            self.validate_params()

    # -- fitting ---------------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Stateless by default: validate the parameters (data-driven stages learn here)."""
        self.validate_params()
        return self

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)

    def fitted_state(self) -> dict:
        """Fitted attributes (public names ending in ``_``), which enter the fingerprint."""
        return {k: v for k, v in vars(self).items()
                if k.endswith("_") and not k.startswith("_") and k not in self._volatile_state}

    def describe(self) -> dict:
        """JSON-able identity: registered name, parameters and fitted state (nested stages recurse)."""
        return {"name": self.name, "params": self.get_params(deep=False), "state": self.fitted_state()}

    def code_version(self) -> str:
        """The version of the code behind this stage and those nested in it: their classes' modules and
        every featurepipe module those import (``fingerprint.modules_code_version``)."""
        return modules_code_version(tuple(sorted({type(s).__module__ for _, s in iter_stages(self)})))

    def fingerprint(self) -> str:
        """Stable hash of name, parameters, fitted state and the version of the code behind them."""
        return digest({"stage": self.describe(), "code": self.code_version()})


def _snapshot(stage: Stage) -> str:
    """The parameters as text: equal snapshots mean nothing was set since the last validation."""
    return repr(sorted(stage.get_params(deep=False).items(), key=lambda kv: kv[0]))


def iter_stages(stage: Stage, prefix: str = ""):
    """(dotted path, stage) of ``stage`` and every stage nested in its parameters, depth first."""
    yield prefix, stage
    for name, value in stage.get_params(deep=False).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(values):
            if isinstance(item, Stage):
                sub = f"{name}.{i}" if isinstance(value, (list, tuple)) else name
                yield from iter_stages(item, f"{prefix}{sub}.")


def stage_state(stage: Stage) -> tuple[dict, dict]:
    """The fitted state of ``stage`` and its nested stages as (arrays, other JSON values), keyed by dotted
    stage path + attribute name: what ``restore_state`` sets again on a stage built from the same spec."""
    import numpy as np

    arrays, values = {}, {}
    for prefix, sub in iter_stages(stage):
        for name, value in sub.fitted_state().items():
            if isinstance(value, np.ndarray):
                arrays[prefix + name] = value
            else:
                values[prefix + name] = value.item() if isinstance(value, np.generic) else value
    return arrays, values


def restore_state(stage: Stage, arrays: dict, values: dict, fingerprint: str | None, where) -> Stage:
    """Set what ``stage_state`` gave on a stage built from the same spec; ``ValueError`` naming ``where``
    when a saved name has no stage, or when the result does not have the saved ``fingerprint``."""
    stages = dict(iter_stages(stage))
    for dotted, value in {**values, **arrays}.items():
        prefix, _, name = dotted.rpartition(".")
        sub = stages.get(prefix + "." if prefix else "")
        if sub is None or not name.endswith("_"):
            raise ValueError(f"{where}: the saved state does not belong to this {stage.kind} (no {dotted!r})")
        setattr(sub, name, value)
    if fingerprint is not None and stage.fingerprint() != fingerprint:
        raise ValueError(f"{where}: the saved state does not belong to this {stage.kind} (fingerprint differs)")
    return stage
