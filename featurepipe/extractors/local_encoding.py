"""The base of data-driven extractors over local descriptors (bag of words, Fisher vectors).

``fit`` samples descriptors from the training images only and learns, on that sample, the optional
linear map (ZCA whitening or PCA) and then the vocabulary. Everything learnt is a fitted array
attribute, so it is saved with the pipeline and enters the fingerprint: a refitted vocabulary gives new
cache keys, and ``transform`` never refits.
"""
from __future__ import annotations

import numpy as np

from ..core import NULL, Boolean, Integer, Options, Part, Real, Satisfies, as_batch, require, timed
from ..core.progress import progress_bar
from ..local.pooling import NORMS, encode_images, valid_pyramid
from ..local.projections import PROJECTIONS, fit_projection, project
from .base import Extractor


class LocalEncoding(Extractor):
    """Base: descriptors -> optional ZCA/PCA -> vocabulary fitted on a training sample -> encoding ->
    spatial pyramid pooling. The descriptor and the encoding are nested stages (parameters that take a
    name, ``{name: {params}}`` or an object); subclasses fit the vocabulary the encoding is bound to."""

    requires_fit = True
    _vocabulary = ""  # the fitted attribute that marks a fitted extractor
    _constraints = {
        "descriptor": Part("descriptor", nullable=True),
        "pooling": Part("pooling"),
        "projection": Options(*PROJECTIONS, message=f"must be one of {PROJECTIONS}"),
        "n_components": NULL | Integer(1),
        "whiten": Boolean(),
        "whiten_eps": Real(0, message="must be a number >= 0"),
        "pyramid": Satisfies(valid_pyramid, "must be a list of grid sizes such as [1, 2, 4], each dividing the largest"),
        "normalize": Options(*NORMS, message=f"must be one of {NORMS}"),
        "n_samples": Integer(2),
        "max_iter": Integer(1),
        "random_state": Integer(0, message="must be an integer >= 0 (fits must be reproducible)"),
    }

    def __init__(self, *, descriptor, projection, n_components, whiten, whiten_eps, encoding, pooling, pyramid,
                 normalize, n_samples, max_iter, random_state):
        self.descriptor = descriptor
        self.encoding = encoding
        self.pooling = pooling
        self.projection = projection
        self.n_components = n_components
        self.whiten = whiten
        self.whiten_eps = whiten_eps
        self.pyramid = pyramid
        self.normalize = normalize
        self.n_samples = n_samples
        self.max_iter = max_iter
        self.random_state = random_state

    def _fit_vocabulary(self, samples: np.ndarray, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _vocabulary_arrays(self) -> dict:
        """The fitted vocabulary as ``Encoding.bind`` takes it."""
        raise NotImplementedError

    def _check_combination(self):
        encoding = self._part("encoding")
        require(self._part("pooling").name == "sum" or not encoding.sum_only, "pooling",
                f"must be 'sum' for {encoding.name}", self.pooling)
        descriptor = self._part("descriptor")
        if self.projection == "pca":
            require(self.n_components is not None and self.n_components <= descriptor.n_features, "n_components",
                    f"must be an integer in [1, {descriptor.n_features}] for projection 'pca'", self.n_components)
        else:
            require(self.n_components is None, "n_components", "is only for projection 'pca'; use null",
                    self.n_components)

    def fit(self, images, y=None):
        """Learn the projection and the vocabulary from ``n_samples`` descriptors of ``images``; the time of
        each phase goes to ``fit_timings_`` (seconds: sample, projection, vocabulary)."""
        self.validate_params()
        rng = np.random.default_rng(self.random_state)
        timings = {}
        with timed(timings, "sample"):
            samples = self._part("descriptor").sample(images, self.n_samples, rng)
        if self.projection == "pca":
            require(self.n_components <= samples.shape[1], "n_components",
                    f"must be at most the descriptors' length {samples.shape[1]}", self.n_components)
        for stale in ("mean_", "projection_"):
            self.__dict__.pop(stale, None)
        if self.projection != "none":
            with timed(timings, "projection"), progress_bar(1, f"{self.projection.upper()} projection", "fit") as bar:
                self.mean_, self.projection_ = fit_projection(samples, self.projection, self.n_components,
                                                              self.whiten, self.whiten_eps)
                samples = project(samples, self.mean_, self.projection_)
                bar.update()
        with timed(timings, "vocabulary"):
            self._fit_vocabulary(samples, rng)
        self.fit_timings_ = timings
        return self

    def _describe(self, batch):
        """Descriptors of a block, through the fitted projection."""
        features = self._part("descriptor").compute(batch)
        if self.projection == "none":
            return features
        return features._replace(values=project(features.values, self.mean_, self.projection_))

    def _check_fitted(self):
        if not hasattr(self, self._vocabulary):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"{self.name}: the vocabulary is learnt from training images; call fit first")

    def nearest_words(self, images):
        """The descriptors of ``images`` (``LocalFeatures``, through the fitted projection) and, for each one,
        its vocabulary entry (the nearest centroid, or the most probable Gaussian): the visual-word map that
        ``featurepipe show`` draws."""
        self._ensure_valid()
        self._check_fitted()
        features = self._describe(as_batch(images))
        return features, self._nearest(features.values)

    def _nearest(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def vocabulary_size(self) -> int:
        """Entries of the fitted vocabulary: centroids or Gaussians."""
        self._check_fitted()
        return len(getattr(self, self._vocabulary))

    def _feature_names(self, shape):
        """``bovw_w17_l1_c2``: word 17 (its encoding's name for each value of a cell, see ``cell_names``) in
        cell 2 (row-major) of pyramid level 1 (the second grid of ``pyramid``)."""
        self._check_fitted()
        words, length = getattr(self, self._vocabulary).shape
        values = self._part("encoding").cell_names(words, length)
        return [f"{self.name}_{value}_l{level}_c{cell}" for level, grid in enumerate(self.pyramid)
                for cell in range(grid * grid) for value in values]

    def _transform_batch(self, batch):
        self._check_fitted()
        encoding = self._part("encoding").bind(**self._vocabulary_arrays())
        return encode_images(self._describe, encoding, batch, tuple(self.pyramid), self._part("pooling"),
                             self.normalize)
