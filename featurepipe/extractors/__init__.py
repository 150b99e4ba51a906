"""Extractors, each registered by name (kind ``"extractor"``); importing this package fills the registry."""
from ..core import REGISTRY, ParamError
from .base import Extractor
from . import raw, color, hog, concat, bovw, pca_sift, fisher  # noqa: F401  (each registers its extractors)


def list_extractors(pattern: str = "*") -> list[str]:
    """Registered extractor names matching ``pattern`` (``featurepipe.list("extractor", pattern)``)."""
    return REGISTRY.names("extractor", pattern)


def create_extractor(name: str, **params) -> Extractor:
    """A registered extractor (``featurepipe.create("extractor", name, **params)``)."""
    return REGISTRY.create("extractor", name, **params)


__all__ = ["Extractor", "ParamError", "create_extractor", "list_extractors"]
