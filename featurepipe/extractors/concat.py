"""Several extractors side by side (e.g. HOG + HSV histogram, the classic pairing)."""
from __future__ import annotations

import numpy as np

from ..core import Part, Satisfies, Sequence, Stage, register
from ..normalize import Normalization
from .base import Extractor


def _row_wise(spec) -> bool:
    """Whether ``spec`` is a normalisation chain that learns nothing from the rows (each row on its own)."""
    return spec is None or not Normalization.from_spec(spec).learns


@register("extractor", "concat")
class Concat(Extractor):
    """Concatenate the features of ``extractors``, in order: extractor objects, or extractors in a config's
    form, a name (``"hog"``) or ``{name: {parameter: value}}``.

    ``normalize``, when given, is a chain of row-wise normalisers (as a head's ``normalize``: ``[power, l2]``,
    ``[l1, {kernel_map: {kernel: chi2}}]``) applied to each extractor's block on its own before they are
    joined: an 8,100-d HOG and a 72-d colour histogram then weigh the same in the joined row (each block's
    norm is 1 after ``l2``), where otherwise the wide block drowns the narrow one. Steps that learn from the
    training rows (``standardize``, ``pca_whiten``) belong to the head's normalisation instead."""

    _constraints = {"extractors": Sequence(Part("extractor"), message="must be a non-empty list of extractors "
                                           "(objects, registered names or {name: {parameters}})"),
                    "normalize": Satisfies(_row_wise, "must be null or a chain of normalisers that learn nothing "
                                           "from the rows (l1, l2, power, kernel_map), applied to each block")}

    def __init__(self, extractors=(), normalize=None):
        self.extractors = extractors
        self.normalize = normalize

    def block_normalization(self) -> Normalization:
        """The chain each block goes through (no step when ``normalize`` is None)."""
        return Normalization.from_spec(self.normalize, "normalize")

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
        chain = self.block_normalization()
        return np.hstack([chain.transform(e.features(batch)) for e in self.members()])

    def _feature_names(self, shape):
        """The names of each extractor's features, in order; when two extractors name features alike (two
        HOGs), prefixed by their position: ``extractor1__hog_b0_c0_o0``."""
        steps = self.block_normalization().steps
        names = []
        for e in self.members():
            part = list(e.get_feature_names_out())
            for step in steps:
                part = list(step.get_feature_names_out(part))
            names.append(part)
        if len({n for part in names for n in part}) < sum(map(len, names)):
            names = [[f"extractor{i}__{n}" for n in part] for i, part in enumerate(names)]
        return [n for part in names for n in part]
