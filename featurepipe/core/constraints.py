"""Declarative parameter constraints: each class states what its parameters may be, once, and
``check_constraints`` reports the first violation as one line, ``<param>: <what it must be>, got <value>``.

A constraint is a predicate with the words that describe it. The building blocks cover what stages and
heads need: integers and reals in ranges, options, booleans, fixed-length sequences, instances, and any
predicate with its own words.
"""
from __future__ import annotations

import numbers

from .registry import REGISTRY


class ParamError(ValueError):
    """A parameter that fails validation; the message starts with the parameter's name."""


def require(condition: bool, param: str, message: str, value) -> None:
    """Raise ``ParamError`` ``<param>: <message>, got <value>`` unless ``condition``: for rules that tie
    several parameters together."""
    if not condition:
        raise ParamError(f"{param}: {message}, got {value!r}")


class Constraint:
    """``holds(value)`` and the ``message`` that says what a valid value is."""

    message = ""

    def __init__(self, message: str | None = None):
        if message is not None:
            self.message = message

    def holds(self, value) -> bool:
        raise NotImplementedError

    def __or__(self, other: "Constraint") -> "Constraint":
        return AnyOf(self, other)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range_words(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    return f"{'<' if high_open else '<='} {high}"


def _in_range(value, low, high, low_open, high_open) -> bool:
    if low is not None and not (value > low if low_open else value >= low):
        return False
    return high is None or (value < high if high_open else value <= high)


class Integer(Constraint):
    """An integer (numpy integers too, booleans not) in ``[low, high]``."""

    def __init__(self, low=None, high=None, message=None):
        self.low, self.high = low, high
        if message is None:
            if low == 1 and high is None:
                message = "must be a positive integer"
            elif low is None and high is None:
                message = "must be an integer"
            else:
                message = f"must be an integer {_range_words(low, high, False, False)}"
        super().__init__(message)

    def holds(self, value):
        return _is_integer(value) and _in_range(value, self.low, self.high, False, False)


class Real(Constraint):
    """A real number (integers too, booleans not, NaN never) in a range whose ends may be open."""

    def __init__(self, low=None, high=None, *, low_open=False, high_open=False, message=None):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        if message is None:
            bounded = low is not None or high is not None
            message = "must be a number" + (f" {_range_words(low, high, low_open, high_open)}" if bounded else "")
        super().__init__(message)

    def holds(self, value):
        return _is_real(value) and value == value and _in_range(value, self.low, self.high, self.low_open,
                                                                 self.high_open)


class Options(Constraint):
    """One of a fixed set of values (compared with ``==``, types kept apart: ``True`` is not ``1``)."""

    def __init__(self, *values, message=None):
        self.values = values
        if message is None:
            shown = ["null" if v is None else repr(v) for v in values]
            message = (f"must be {shown[0]} or {shown[1]}" if len(values) == 2
                       else f"must be one of ({', '.join(shown)})")
        super().__init__(message)

    def holds(self, value):
        return any(_same(value, v) for v in self.values)


def _same(value, option) -> bool:
    """``value == option`` without taking a boolean for a number or an array for a scalar."""
    if option is None or value is None:
        return value is option
    if isinstance(value, bool) != isinstance(option, bool):
        return False
    try:
        return bool(value == option)
    except (TypeError, ValueError):
        return False


class Boolean(Constraint):
    message = "must be true or false"

    def holds(self, value):
        return isinstance(value, bool) or type(value).__name__ == "bool_"


class Sequence(Constraint):
    """A list or tuple of ``length`` items (any length when None, at least ``min_length``), each holding ``item``."""

    def __init__(self, item: Constraint, length: int | None = None, min_length: int = 1, message=None):
        self.item, self.length, self.min_length = item, length, min_length
        super().__init__(message or (f"must be a list of {length} values that each "
                                     f"{item.message.removeprefix('must ')}" if length else
                                     f"must be a non-empty list of values that each {item.message.removeprefix('must ')}"))

    def holds(self, value):
        if not isinstance(value, (list, tuple)):
            return False
        if (self.length is not None and len(value) != self.length) or len(value) < self.min_length:
            return False
        return all(self.item.holds(v) for v in value)


class Instance(Constraint):
    """An instance of ``cls`` (or None when ``nullable``)."""

    def __init__(self, cls, message, nullable=False):
        self.cls, self.nullable = cls, nullable
        super().__init__(message)

    def holds(self, value):
        return isinstance(value, self.cls) or (self.nullable and value is None)


class Satisfies(Constraint):
    """Any predicate, with the words that describe it."""

    def __init__(self, predicate, message):
        self.predicate = predicate
        super().__init__(message)

    def holds(self, value):
        try:
            return bool(self.predicate(value))
        except (TypeError, ValueError):
            return False


class AnyOf(Constraint):
    """Holds when one of ``constraints`` holds."""

    def __init__(self, *constraints, message=None):
        self.constraints = constraints
        super().__init__(message or " or ".join([constraints[0].message] + [c.message.removeprefix("must be ")
                                                                           for c in constraints[1:]]))

    def holds(self, value):
        return any(c.holds(value) for c in self.constraints)


NULL = Options(None)


def check_constraints(obj, constraints: dict[str, Constraint]) -> None:
    """Raise ``ParamError`` for the first attribute of ``obj`` that breaks its constraint."""
    for name, constraint in constraints.items():
        value = getattr(obj, name)
        if not constraint.holds(value):
            raise ParamError(f"{name}: {constraint.message}, got {value!r}")


class Part(Constraint):
    """A nested stage of ``kind``: a registered name, ``{name: {param: value}}`` (a config's form), or a stage
    object of that kind; ``where(factory)``, when given, narrows which ones. Names are looked up as the
    registry holds them when the value is checked, so plug-ins registered later are accepted too.

    ``build`` turns any of these forms into a new stage object, so a parent never reaches a part through
    a side door: what it computes with is what its parameters say."""

    def __init__(self, kind: str, where=None, what: str | None = None, nullable: bool = False):
        self.kind, self.where, self.what, self.nullable = kind, where, what or kind, nullable
        super().__init__()

    def _names(self) -> list[str]:
        return [name for name, factory in sorted(REGISTRY.factories(self.kind).items())
                if self.where is None or self.where(factory)]

    @property
    def message(self):
        null = "null, " if self.nullable else ""
        return (f"must be {null}a registered {self.what} ({', '.join(self._names())}), "
                f"{{name: {{parameters}}}} or a {self.kind} object")

    def _named(self, value) -> tuple[str, dict] | None:
        """``(name, params)`` of a name or a one-key mapping, None for anything else."""
        if isinstance(value, str):
            return value, {}
        if isinstance(value, dict) and len(value) == 1:
            name, params = next(iter(value.items()))
            if isinstance(name, str) and (params is None or isinstance(params, dict)):
                return name, dict(params or {})
        return None

    def holds(self, value):
        if value is None:
            return self.nullable
        named = self._named(value)
        if named is not None:
            return named[0] in self._names()
        return getattr(value, "kind", None) == self.kind and hasattr(value, "get_params") and (
            self.where is None or self.where(type(value)))

    def build(self, value, **overrides):
        """A new stage from ``value`` (None stays None), with ``overrides`` replacing its parameters; those
        that are None or that the stage does not take are dropped, so a parent can pass one set of settings
        whichever part is chosen. A stage object is copied, never changed."""
        if value is None:
            return None
        overrides = {k: v for k, v in overrides.items() if v is not None}
        named = self._named(value)
        if named is not None:
            name, params = named
            known = REGISTRY.defaults(self.kind, name)
            return REGISTRY.create(self.kind, name, **{**params, **{k: v for k, v in overrides.items() if k in known}})
        params = value.get_params(deep=False)
        part = type(value)(**{**params, **{k: v for k, v in overrides.items() if k in params}})
        part.validate_params()
        return part
