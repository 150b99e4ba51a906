"""Several extractors side by side (e.g. HOG + HSV histogram, the classic pairing)."""
from __future__ import annotations

import numpy as np

from ..core import Sequence, Instance, register
from .base import Extractor


@register("extractor", "concat")
class Concat(Extractor):
    """Concatenate the features of ``extractors`` (a list of extractor objects), in order."""

    _constraints = {"extractors": Sequence(Instance(Extractor, "be an extractor"),
                                           message="must be a non-empty list of extractors")}

    def __init__(self, extractors=()):
        self.extractors = extractors

    @property
    def size_dependent(self):
        return any(e.size_dependent for e in self.extractors)

    @property
    def requires_fit(self):
        return any(e.requires_fit for e in self.extractors)

    def fit(self, images, y=None):
        self.validate_params()
        for e in self.extractors:
            e.fit(images, y)
        return self

    def _transform_batch(self, batch):
        return np.hstack([e.transform(batch) for e in self.extractors])
