"""Deprecated: ``featurepipe.extract`` (extraction) and ``featurepipe.train`` (training) replace this module."""
import warnings

from .extract import augmented, build_config_pipeline, config_dataset, extract_features, fitted_pipeline, recipe

warnings.warn("featurepipe.api is deprecated: import from featurepipe.extract", DeprecationWarning, stacklevel=2)

__all__ = ["augmented", "build_config_pipeline", "config_dataset", "extract_features", "fitted_pipeline", "recipe"]
