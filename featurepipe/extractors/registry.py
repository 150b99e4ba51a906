"""Name -> class registry for extractors and preprocessing steps (in the manner of timm's models)."""
from __future__ import annotations

import fnmatch
import inspect

_REGISTRY: dict[str, type] = {}


def register(name: str, kind: str = "extractor"):
    """Class decorator: make ``cls`` available to configs and ``create_extractor`` as ``name``."""

    def decorate(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"extractor name {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        cls.name = name
        cls.kind = kind
        _REGISTRY[name] = cls
        return cls

    return decorate


def list_extractors(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Sorted registered names matching the shell-style ``pattern``; ``kind`` filters to 'extractor' or 'preprocess'."""
    return sorted(n for n, c in _REGISTRY.items() if fnmatch.fnmatch(n, pattern) and kind in (None, c.kind))


def get_extractor_class(name: str) -> type:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown extractor {name!r}; registered: {', '.join(list_extractors())}") from None


def extractor_defaults(name: str) -> dict:
    """The constructor parameters of ``name`` with their defaults (``inspect.Parameter.empty`` when required)."""
    sig = inspect.signature(get_extractor_class(name).__init__)
    return {p.name: p.default for p in list(sig.parameters.values())[1:]}


def create_extractor(name: str, **params):
    """Instantiate a registered extractor; unknown or invalid parameters raise ``ValueError`` naming them."""
    cls = get_extractor_class(name)
    known = extractor_defaults(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{name}: unknown parameter {unknown[0]!r}; valid: {', '.join(known)}")
    obj = cls(**params)
    obj.check_params()
    return obj
