"""One registry for every pluggable kind, in the manner of timm's registries.

Kinds: extractor, preprocess, descriptor, encoding, normalizer, head, loss, activation, optimizer and
schedule. A name maps to a factory (usually a class) and, optionally, preset parameters, so that one
class can be registered under several names (``"momentum"`` is ``SGD`` with ``momentum=0.9``).
This module knows nothing of the kinds themselves; ``featurepipe.catalog`` knows which module fills
which kind.
"""
from __future__ import annotations

import fnmatch
import inspect


class Registry:
    """``kind -> name -> (factory, preset parameters)``."""

    def __init__(self):
        self._entries: dict[str, dict[str, tuple[object, dict]]] = {}

    def register(self, kind: str, name: str, factory=None, **preset):
        """Make ``factory`` available as ``name`` of ``kind``; a class decorator when ``factory`` is omitted.

        ``preset`` parameters are what the name implies; ``create`` lets the caller override them.
        A factory that declares a ``kind`` attribute must be registered under that kind.
        """

        def add(factory):
            declared = getattr(factory, "kind", kind)
            if isinstance(declared, str) and declared != kind:
                raise ValueError(f"{factory.__qualname__} is a {declared}, not a {kind}")
            entries = self._entries.setdefault(kind, {})
            if name in entries and entries[name] != (factory, preset):
                raise ValueError(f"{kind} name {name!r} is already registered by {entries[name][0].__qualname__}")
            entries[name] = (factory, dict(preset))
            return factory

        return add if factory is None else add(factory)

    def kinds(self) -> list[str]:
        return sorted(self._entries)

    def names(self, kind: str, pattern: str = "*") -> list[str]:
        """Sorted names of ``kind`` matching the shell-style ``pattern``."""
        return sorted(fnmatch.filter(self._entries.get(kind, {}), pattern))

    def _entry(self, kind: str, name) -> tuple[object, dict]:
        try:
            return self._entries[kind][name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {kind} {name!r}; registered: {', '.join(self.names(kind))}") from None

    def get(self, kind: str, name: str):
        """The factory registered as ``name``; ``ValueError`` naming the registered ones when unknown."""
        return self._entry(kind, name)[0]

    def has(self, kind: str, name) -> bool:
        return isinstance(name, str) and name in self._entries.get(kind, {})

    def name_of(self, kind: str, factory) -> str | None:
        """The name ``factory`` is registered under without presets (its own name), or None."""
        for name, (registered, preset) in self._entries.get(kind, {}).items():
            if registered is factory and not preset:
                return name
        return None

    def factories(self, kind: str) -> dict[str, object]:
        """``name -> factory`` of every entry of ``kind``."""
        return {name: factory for name, (factory, _) in self._entries.get(kind, {}).items()}

    def defaults(self, kind: str, name: str) -> dict:
        """Parameters of ``name`` with their defaults (``inspect.Parameter.empty`` when required), presets applied."""
        factory, preset = self._entry(kind, name)
        return {**signature_defaults(factory), **preset}

    def create(self, kind: str, name: str, *, drop_unknown: bool = False, **params):
        """Build ``name`` with its presets overridden by ``params``.

        Unknown parameters raise ``ValueError`` naming them, or are dropped with ``drop_unknown`` (so a
        caller can pass one set of settings whichever entry is chosen). The result's parameters are
        validated when it can validate them (``validate_params``), so a bad value fails here, early.
        """
        factory, preset = self._entry(kind, name)
        known = signature_defaults(factory)
        unknown = sorted(set(params) - set(known))
        if unknown and not drop_unknown:
            raise ValueError(f"{name}: unknown parameter {unknown[0]!r}; valid: {', '.join(known)}")
        obj = factory(**{**preset, **{k: v for k, v in params.items() if k in known}})
        if hasattr(obj, "validate_params"):
            obj.validate_params()
        return obj


def signature_defaults(factory) -> dict:
    """Named parameters of a class's ``__init__`` (or a function) with their defaults."""
    target = factory.__init__ if isinstance(factory, type) else factory
    parameters = list(inspect.signature(target).parameters.values())
    if isinstance(factory, type):
        parameters = parameters[1:]  # self
    return {p.name: p.default for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


REGISTRY = Registry()
register = REGISTRY.register
