"""Extractors, each registered by name (kind ``"extractor"``); importing this package fills the registry.
``featurepipe.list("extractor")`` and ``featurepipe.create("extractor", name, ...)`` reach them."""
from ..core import ParamError
from .base import Extractor
from . import raw, color, hog, concat, bovw, pca_sift, fisher  # noqa: F401  (each registers its extractors)

__all__ = ["Extractor", "ParamError"]
