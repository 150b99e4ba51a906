"""Several extractors side by side (e.g. HOG + HSV histogram, the classic pairing)."""
from __future__ import annotations

import numpy as np

from .base import Extractor, require
from .registry import register


@register("concat")
class Concat(Extractor):
    """Concatenate the features of ``extractors`` (a list of extractor objects), in order."""

    def __init__(self, extractors=()):
        self.extractors = extractors

    @property
    def size_dependent(self):
        return any(e.size_dependent for e in self.extractors)

    @property
    def requires_fit(self):
        return any(e.requires_fit for e in self.extractors)

    def check_params(self):
        require(len(self.extractors) > 0 and all(isinstance(e, Extractor) for e in self.extractors),
                "extractors", "must be a non-empty list of extractors", self.extractors)
        for e in self.extractors:
            e.check_params()

    def fit(self, images, y=None):
        self.check_params()
        for e in self.extractors:
            e.fit(images, y)
        return self

    def _transform_batch(self, batch):
        return np.hstack([e.transform(batch) for e in self.extractors])
