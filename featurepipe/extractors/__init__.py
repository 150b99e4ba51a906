"""Extractors, each registered by name; importing this package fills the registry."""
from .registry import create_extractor, extractor_defaults, get_extractor_class, list_extractors, register
from .base import Extractor, ParamError
from . import raw, color, hog, concat, bovw  # noqa: F401  (each registers its extractors)
from .. import preprocess  # noqa: F401,E402  (registers resize and equalize)

__all__ = ["Extractor", "ParamError", "create_extractor", "extractor_defaults", "get_extractor_class",
           "list_extractors", "register"]
