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
    def colour_only(self):
        return any(e.colour_only for e in self.extractors)

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
        return np.hstack([e.features(batch) for e in self.extractors])

    def _feature_names(self, shape):
        """The names of each extractor's features, in order; when two extractors name features alike (two
        HOGs), prefixed by their position: ``extractor1__hog_b0_c0_o0``."""
        names = [list(e.get_feature_names_out()) for e in self.extractors]
        if len({n for part in names for n in part}) < sum(map(len, names)):
            names = [[f"extractor{i}__{n}" for n in part] for i, part in enumerate(names)]
        return [n for part in names for n in part]
