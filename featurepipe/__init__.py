"""featurepipe: classical image features, a feature cache, numpy heads and one benchmark."""
import os as _os

from ._version import __version__

# OpenCV reads its decoding limit once, when it loads: set it before any featurepipe module imports it, so
# the decompression-bomb limit (Pillow's, 89,478,485 pixels) holds for every format and every caller.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "89478485")

# Heavy parts (scikit-learn, OpenCV) load on first use, so `featurepipe` on the command line starts fast.
_LAZY = {
    "list": "featurepipe.catalog",
    "create": "featurepipe.catalog",
    "register": "featurepipe.core",
    "Extractor": "featurepipe.extractors",
    "build_pipeline": "featurepipe.pipeline",
    "FeaturePipeline": "featurepipe.pipeline",
    "FeatureStore": "featurepipe.store",
    "LinearClassifier": "featurepipe.heads",
    "LinearClassifierCV": "featurepipe.heads",
    "MLPClassifier": "featurepipe.heads",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    from .catalog import DEPRECATED, deprecated  # the old per-kind helpers, now featurepipe.list / create

    if name in DEPRECATED:
        return deprecated(name)
    raise AttributeError(f"module 'featurepipe' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
