"""What every registered part shares -- extractors, preprocessing steps, descriptors, encodings, poolings,
normalisers, heads, losses, activations, optimisers and schedules: scikit-learn's parameter protocol,
declarative validation, fitted state and an identity.

Stages follow scikit-learn's estimator conventions (``__init__`` only stores parameters, validation
happens once per fit, fitted attributes end in ``_``) and work inside its pipelines and ``clone``, but
do not import scikit-learn: listing or building a pipeline stays fast.

A stage's nested parts are its parameters: stage objects, or the names and ``{name: params}`` mappings
a ``Part`` constraint declares. ``parts()`` builds them, so the identity (``describe``, ``code_version``,
``fingerprint``) covers every stage a computation uses and the code that defines it.
"""
from __future__ import annotations

import inspect
import re
import sys

from ..fingerprint import classes_code_version, digest
from .constraints import ParamError, Part, check_constraints
from .registry import REGISTRY


class Stage:
    """Base of registered stages.

    Subclasses set ``kind``, declare ``_constraints`` (parameter name -> ``Constraint``) and, for rules
    that tie parameters together, override ``_check_combination``. Parameters that are stages themselves
    (or lists of them) are validated with their owner. ``_default_parts`` names the part a ``Part``
    parameter left at None stands for.
    """

    kind = "stage"
    _constraints: dict = {}
    #: Where a stage with an ``auto_grid`` searches it from Python (``_refuse_searched_auto``).
    _auto_from_python = "scikit-learn's GridSearchCV over a list of values"
    _default_parts: dict = {}
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
        """The parameters; with ``deep``, those of every nested part too (``part__param``), a part given by
        name or ``{name: params}`` included, so the whole tree shows."""
        params = {name: getattr(self, name) for name in self._get_param_names()}
        if deep:
            for name, value in list(params.items()):
                part = value if hasattr(value, "get_params") and not isinstance(value, type) else self._named_part(name)
                if part is not None:
                    params.update({f"{name}__{k}": v for k, v in part.get_params(deep=True).items()})
        return params

    def _named_part(self, name: str):
        """The stage a ``Part`` parameter given by name (or ``{name: params}``, or None for the default) stands
        for, with its own settings; None when it is no such parameter or names nothing valid."""
        constraint = self._constraints.get(name)
        if not isinstance(constraint, Part):
            return None
        value = getattr(self, name)
        try:
            return constraint.build(self._default_parts.get(name) if value is None else value)
        except (TypeError, ValueError):
            return None

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
            part = getattr(self, name)
            if not hasattr(part, "get_params"):  # a part given by name becomes its object, to take the settings
                part = self._named_part(name)
                if part is None:
                    raise ValueError(f"{type(self).__name__}: {name} has no parameters to set")
                setattr(self, name, part)
            part.set_params(**sub_params)
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
        self._refuse_searched_auto()
        check_constraints(self, self._constraints)
        parts = self.parts()  # a part given as {name: params} is built, and so checked, here
        self._check_combination()
        for part in parts.values():
            for item in part if isinstance(part, list) else [part]:
                item.validate_params()
        self._validated = _snapshot(self)

    def _refuse_searched_auto(self) -> None:
        """``'auto'`` for a parameter this stage does not take it for, on a stage with an ``auto_grid`` (a
        head's ``alpha``): that grid is scaled to the training rows, so only a search over them can use it.
        One line says where that search is (from Python: ``_auto_from_python``)."""
        if not hasattr(type(self), "auto_grid"):
            return
        for name, constraint in self._constraints.items():
            value = getattr(self, name)
            if isinstance(value, str) and value == "auto" and not constraint.holds(value):
                raise ParamError(f"{name}: 'auto' is a grid scaled to the training rows, which only a search has "
                                 f"(`{name}: auto` in a config's heads, for featurepipe train and bench; from Python, "
                                 f"{self._auto_from_python}); give a number, got 'auto'")

    def _check_combination(self) -> None:
        """Rules that tie several parameters together (``require``); none by default."""

    def _ensure_valid(self) -> None:
        """Validate unless the parameters are those validated last: ``transform`` of a stage that needs
        no fit checks its parameters once, not on every call."""
        if getattr(self, "_validated", None) != _snapshot(self):
            self.validate_params()

    # -- nested parts ----------------------------------------------------------------------------------
    def _part(self, name: str):
        """The stage parameter ``name`` stands for, built anew (``Part.build``) with this stage's overrides of
        its settings (``_part_overrides``): what computations use, and what the identity describes."""
        value = getattr(self, name)
        if value is None:
            value = self._default_parts.get(name)
        return self._constraints[name].build(value, **self._part_overrides(name))

    def _part_overrides(self, name: str) -> dict:
        """Settings of the part ``name`` that parameters of this stage replace (a head's learning rate for its
        optimiser); None values keep the part's own."""
        return {}

    def parts(self) -> dict:
        """``name -> stage`` (or list of stages) for every parameter that is a nested stage."""
        found = {}
        for name, value in self.get_params(deep=False).items():
            if isinstance(self._constraints.get(name), Part):
                try:
                    part = self._part(name)
                except ParamError as e:
                    raise ParamError(f"{name}.{e}") from None
                if part is not None:
                    found[name] = part
            elif isinstance(value, Stage):
                found[name] = value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Stage) for v in value):
                found[name] = list(value)
        return found

    def fitted_state(self) -> dict:
        """Fitted attributes (public names ending in ``_``), which enter the fingerprint."""
        return {k: v for k, v in vars(self).items()
                if k.endswith("_") and not k.startswith("_") and k not in self._volatile_state}

    def describe(self) -> dict:
        """JSON-able identity: registered name, parameters with nested parts described in full (a part given
        by name is described with its defaults filled), and fitted state."""
        params = self.get_params(deep=False)
        for name, part in self.parts().items():
            params[name] = [p.describe() for p in part] if isinstance(part, list) else part.describe()
        return {"name": self.name, "params": params, "state": self.fitted_state()}

    def code_version(self) -> str:
        """The version of the code behind this stage and every stage nested in it: the modules that define
        their classes (base classes included) and every featurepipe module those import."""
        return classes_code_version(tuple(type(s) for _, s in iter_stages(self)))

    def fingerprint(self) -> str:
        """Stable hash of name, parameters, fitted state and the version of the code behind them."""
        return digest({"stage": self.describe(), "code": self.code_version()})


def _snapshot(stage: Stage) -> str:
    """The parameters as text: equal snapshots mean nothing was set since the last validation."""
    return repr(sorted(stage.get_params(deep=False).items(), key=lambda kv: kv[0]))


#: The containers ``set_output(transform=...)`` offers (scikit-learn's names; "polars" is not one of them).
OUTPUTS = ("default", "pandas")


class Transformer(Stage):
    """A stage that maps data to data (``transform``): preprocessing steps, extractors, normalisers.

    Those whose output is features also take scikit-learn's ``set_output``: they name their columns
    (``get_feature_names_out``) and hand their ``transform`` result to ``_as_output``.
    """

    def fit(self, X, y=None):
        """Stateless by default: validate the parameters (data-driven stages learn here)."""
        self.validate_params()
        return self

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)

    def set_output(self, *, transform=None):
        """scikit-learn's output API: ``transform="pandas"`` makes ``transform`` and ``fit_transform`` return a
        DataFrame whose columns are ``get_feature_names_out()``; ``"default"`` an array; None keeps the setting.
        Unset, scikit-learn's global ``transform_output`` (``sklearn.set_config``) decides."""
        if transform is not None:
            if transform not in OUTPUTS:
                raise ValueError(f"{self.name}: set_output(transform=...) must be one of {OUTPUTS}, got {transform!r}")
            self._sklearn_output_config = {"transform": transform}  # the attribute scikit-learn's clone copies
        return self

    def _as_output(self, X, names, given=None):
        """``X``, or a DataFrame of it with the columns ``names()`` when ``set_output`` asks for one (with the
        index of ``given``, the input, when that is a DataFrame)."""
        setting = _output_setting(self)
        if setting == "default":
            return X
        if setting != "pandas":
            raise ValueError(f"{self.name}: output {setting!r} (scikit-learn's transform_output) is not offered; "
                             f"one of {OUTPUTS}")
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(f"{self.name}: set_output(transform='pandas') needs pandas: pip install pandas") from None
        index = given.index if isinstance(given, pd.DataFrame) else None
        return pd.DataFrame(X, index=index, columns=names(), copy=False)


def _output_setting(stage: Stage) -> str:
    """The container ``stage``'s output goes in: its own ``set_output``, else scikit-learn's global setting
    (which nobody can have set while scikit-learn is not loaded, so it is not loaded to read it)."""
    own = getattr(stage, "_sklearn_output_config", {}).get("transform")
    if own is not None:
        return own
    sklearn = sys.modules.get("sklearn")
    return sklearn.get_config()["transform_output"] if hasattr(sklearn, "get_config") else "default"


def iter_stages(stage: Stage, prefix: str = ""):
    """(dotted path, stage) of ``stage`` and every stage nested in it (``Stage.parts``), depth first."""
    yield prefix, stage
    for name, part in stage.parts().items():
        for i, item in enumerate(part) if isinstance(part, list) else [(None, part)]:
            yield from iter_stages(item, f"{prefix}{name}{'' if i is None else f'.{i}'}.")


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


_STATE_NAME = re.compile(r"[a-z][a-z0-9_]*[a-z0-9]_")


def _is_state_name(stage: Stage, name: str) -> bool:
    """Whether ``name`` can be a fitted attribute of ``stage``: public, one trailing underscore, neither one
    of its parameters nor anything its class defines (no dunder, private, method or property name)."""
    return (_STATE_NAME.fullmatch(name) is not None and name not in stage._get_param_names()
            and not hasattr(type(stage), name))


def restore_state(stage: Stage, arrays: dict, values: dict, fingerprint: str | None, where) -> Stage:
    """Set what ``stage_state`` gave on a stage built from the same spec; ``ValueError`` naming ``where``
    when a saved name has no stage, or when the result does not have the saved ``fingerprint``."""
    stages = dict(iter_stages(stage))
    for dotted, value in {**values, **arrays}.items():
        prefix, _, name = dotted.rpartition(".")
        sub = stages.get(prefix + "." if prefix else "")
        if sub is None or not _is_state_name(sub, name):
            raise ValueError(f"{where}: the saved state does not belong to this {stage.kind} (no {dotted!r})")
        setattr(sub, name, value)
    if fingerprint is not None and stage.fingerprint() != fingerprint:
        raise ValueError(f"{where}: the saved state does not belong to this {stage.kind} (fingerprint differs)")
    return stage
