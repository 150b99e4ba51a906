"""Several extractors side by side (e.g. HOG + HSV histogram, the classic pairing)."""
from __future__ import annotations

import numpy as np

from ..core import Part, Sequence, Stage, register
from .base import Extractor


@register("extractor", "concat")
class Concat(Extractor):
    """Concatenate the features of ``extractors``, in order: extractor objects, or extractors in a config's
    form, a name (``"hog"``) or ``{name: {parameter: value}}``."""

    _constraints = {"extractors": Sequence(Part("extractor"), message="must be a non-empty list of extractors "
                                           "(objects, registered names or {name: {parameters}})")}

    def __init__(self, extractors=()):
        self.extractors = extractors

    def members(self) -> list:
        """The extractors as objects: those given as objects themselves (fitted in place, as before), those given
        by name or ``{name: params}`` built once for the list as it is (a new list builds them again)."""
        given = list(self.extractors)
        if getattr(self, "_built_for", None) != repr(given):
            self._built = [e if isinstance(e, Stage) else self._constraints["extractors"].item.build(e) for e in given]
            self._built_for = repr(given)
        return self._built

    def parts(self) -> dict:
        return {"extractors": self.members()}

    @property
    def colour_only(self):
        return any(e.colour_only for e in self.members())

    @property
    def size_dependent(self):
        return any(e.size_dependent for e in self.members())

    @property
    def requires_fit(self):
        return any(e.requires_fit for e in self.members())

    def fit(self, images, y=None):
        self.validate_params()
        for e in self.members():
            e.fit(images, y)
        return self

    def _transform_batch(self, batch):
        return np.hstack([e.features(batch) for e in self.members()])

    def _feature_names(self, shape):
        """The names of each extractor's features, in order; when two extractors name features alike (two
        HOGs), prefixed by their position: ``extractor1__hog_b0_c0_o0``."""
        names = [list(e.get_feature_names_out()) for e in self.members()]
        if len({n for part in names for n in part}) < sum(map(len, names)):
            names = [[f"extractor{i}__{n}" for n in part] for i, part in enumerate(names)]
        return [n for part in names for n in part]
