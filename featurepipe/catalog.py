"""``featurepipe.list`` and ``featurepipe.create``: every pluggable kind through the one registry.

The registry is filled by the modules that define each kind; this module knows which, and imports
them on first use, so that listing the feature side never loads scikit-learn.
"""
from __future__ import annotations

import builtins
import importlib
import warnings

from .core import REGISTRY

#: The module that registers each kind.
PROVIDERS = {
    "preprocess": "featurepipe.preprocess",
    "extractor": "featurepipe.extractors",
    "descriptor": "featurepipe.local",
    "encoding": "featurepipe.local",
    "pooling": "featurepipe.local",
    "normalizer": "featurepipe.normalize",
    "head": "featurepipe.heads",
    "loss": "featurepipe.heads",
    "activation": "featurepipe.heads",
    "optimizer": "featurepipe.heads",
    "schedule": "featurepipe.heads",
}
#: Kinds whose modules load without scikit-learn: what ``featurepipe list`` shows by default.
FEATURE_KINDS = ("preprocess", "extractor", "descriptor", "encoding", "pooling", "normalizer")


def kinds() -> builtins.list[str]:
    return builtins.list(PROVIDERS)


def _load(kind: str) -> None:
    if kind not in PROVIDERS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(PROVIDERS)}")
    importlib.import_module(PROVIDERS[kind])


def list(kind: str = "extractor", pattern: str = "*") -> builtins.list[str]:  # noqa: A001 -- the public name
    """Registered names of ``kind`` matching the shell-style ``pattern``."""
    _load(kind)
    return REGISTRY.names(kind, pattern)


def create(kind: str, name: str, **params):
    """A new ``name`` of ``kind`` with ``params``; unknown or invalid parameters raise ``ValueError`` naming them."""
    _load(kind)
    return REGISTRY.create(kind, name, **params)


def get(kind: str, name: str):
    """The class (or factory) registered as ``name`` of ``kind``."""
    _load(kind)
    return REGISTRY.get(kind, name)


def defaults(kind: str, name: str) -> dict:
    """The parameters of ``name`` of ``kind`` with their defaults (presets applied)."""
    _load(kind)
    return REGISTRY.defaults(kind, name)


#: Names of the per-kind helpers that ``list`` / ``create`` replaced: ``old name -> (verb, kind)``.
DEPRECATED = {"list_extractors": ("list", "extractor"), "create_extractor": ("create", "extractor")}


def deprecated(name: str):
    """The old helper ``name`` as a function that warns and calls ``list`` or ``create`` of its kind."""
    verb, kind = DEPRECATED[name]

    def alias(*args, **kwargs):
        warnings.warn(f"featurepipe.{name} is deprecated; use featurepipe.{verb}({kind!r}, ...)", FutureWarning,
                      stacklevel=2)
        return (list if verb == "list" else create)(kind, *args, **kwargs)

    alias.__name__ = alias.__qualname__ = name
    alias.__doc__ = f"Deprecated: ``featurepipe.{verb}({kind!r}, ...)``."
    return alias
