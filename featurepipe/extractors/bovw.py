"""Data-driven extractors over local descriptors: bag of visual words (k-means codebook) and Fisher vectors.

``fit`` samples descriptors from the training images only and learns, on that sample, the optional
linear map (ZCA whitening or PCA) and then the vocabulary. Everything learnt is a fitted array
attribute, so it is saved with the pipeline and enters the fingerprint: a refitted vocabulary gives new
cache keys, and ``transform`` never refits.
"""
from __future__ import annotations

import numpy as np

from ..core import (NULL, REGISTRY, Boolean, Instance, Integer, Options, Real, Registered, Satisfies, register,
                    require, timed)
from ..local.base import Descriptor
from ..local.gmm import fit_gmm
from ..local.kmeans import INITS, kmeans
from ..local.patches import Patches
from ..local.pooling import NORMS, encode_images, valid_pyramid
from ..local.encodings import POOLINGS
from ..local.projections import PROJECTIONS, fit_projection, project
from ..local.sift import SIFT
from .base import Extractor


class LocalEncoding(Extractor):
    """Base: descriptors -> optional ZCA/PCA -> vocabulary fitted on a training sample -> encoding ->
    spatial pyramid pooling. Subclasses define the vocabulary and its encoding."""

    requires_fit = True
    _vocabulary = ""  # the fitted attribute that marks a fitted extractor
    _constraints = {
        "descriptor": Instance(Descriptor, "must be null or a descriptor such as {patches: {size: 6}}", nullable=True),
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

    def __init__(self, *, descriptor, projection, n_components, whiten, whiten_eps, pyramid, normalize, n_samples,
                 max_iter, random_state):
        self.descriptor = descriptor
        self.projection = projection
        self.n_components = n_components
        self.whiten = whiten
        self.whiten_eps = whiten_eps
        self.pyramid = pyramid
        self.normalize = normalize
        self.n_samples = n_samples
        self.max_iter = max_iter
        self.random_state = random_state

    def _default_descriptor(self) -> Descriptor:
        raise NotImplementedError

    def _fit_vocabulary(self, samples: np.ndarray, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _encoding(self):
        raise NotImplementedError

    def _pooling(self) -> str:
        return "sum"

    def _descriptor(self) -> Descriptor:
        return self.descriptor if self.descriptor is not None else self._default_descriptor()

    def _check_combination(self):
        descriptor = self._descriptor()
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
            samples = self._descriptor().sample(images, self.n_samples, rng)
        for stale in ("mean_", "projection_"):
            self.__dict__.pop(stale, None)
        if self.projection != "none":
            with timed(timings, "projection"):
                self.mean_, self.projection_ = fit_projection(samples, self.projection, self.n_components,
                                                              self.whiten, self.whiten_eps)
                samples = project(samples, self.mean_, self.projection_)
        with timed(timings, "vocabulary"):
            self._fit_vocabulary(samples, rng)
        self.fit_timings_ = timings
        return self

    def _describe(self, batch):
        """Descriptors of a block, through the fitted projection."""
        features = self._descriptor().compute(batch)
        if self.projection == "none":
            return features
        return features._replace(values=project(features.values, self.mean_, self.projection_))

    def _transform_batch(self, batch):
        if not hasattr(self, self._vocabulary):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"{self.name}: the vocabulary is learnt from training images; call fit first")
        return encode_images(self._describe, self._encoding(), batch, tuple(self.pyramid), self._pooling(),
                             self.normalize)


@register("extractor", "bovw")
class BagOfWords(LocalEncoding):
    """Bag of visual words: local descriptors encoded over a k-means codebook, pooled over a spatial pyramid.

    The defaults are the single-layer network of Coates, Lee & Ng (2011): 6x6 patches at stride 1,
    normalised, ZCA-whitened (eps 0.1), 1,600 centroids, triangle encoding, sum pooling over the four
    quadrants. ``descriptor``: null means those patches. ``projection``: ``zca``, ``pca`` (to
    ``n_components``, ``whiten`` optional) or ``none``, fitted on the sampled descriptors.
    ``encoding``: ``triangle`` (max(0, mean distance - distance)), ``soft_threshold`` (max(0, x.c/|c| -
    alpha); ``polarity_split`` adds max(0, -x.c/|c| - alpha), 2K codes), ``hard`` (word histogram) or
    ``vlad`` (residual sums, k * d values per cell). ``pyramid``: grid sizes, e.g. ``[2]`` (quadrants) or
    ``[1, 2, 4]``; ``normalize`` applies per cell. The codebook is k-means on ``n_samples`` training
    descriptors: ``init`` random or k-means++, Lloyd's algorithm for ``max_iter`` iterations, or
    mini-batch k-means (``max_iter`` epochs) when ``batch_size`` is set.
    """

    _vocabulary = "centroids_"
    _constraints = {
        **LocalEncoding._constraints,
        "n_words": Integer(1),
        "encoding": Registered("encoding", lambda f: f.vocabulary == "kmeans", "k-means encoding"),
        "alpha": Real(message="must be a number"),
        "polarity_split": Boolean(),
        "pooling": Options(*POOLINGS, message=f"must be one of {POOLINGS}"),
        "init": Options(*INITS, message=f"must be one of {INITS}"),
        "batch_size": NULL | Integer(1, message="must be null (full-batch k-means) or a positive integer"),
    }

    def __init__(self, *, descriptor=None, projection="zca", n_components=None, whiten=False, whiten_eps=0.1,
                 n_words=1600, encoding="triangle", alpha=0.25, polarity_split=False, pooling="sum", pyramid=(2,),
                 normalize="none", n_samples=400_000, init="random", max_iter=50, batch_size=None, random_state=0):
        super().__init__(descriptor=descriptor, projection=projection, n_components=n_components, whiten=whiten,
                         whiten_eps=whiten_eps, pyramid=pyramid, normalize=normalize, n_samples=n_samples,
                         max_iter=max_iter, random_state=random_state)
        self.n_words = n_words
        self.encoding = encoding
        self.alpha = alpha
        self.polarity_split = polarity_split
        self.pooling = pooling
        self.init = init
        self.batch_size = batch_size

    def _default_descriptor(self):
        return Patches()

    def _check_combination(self):
        super()._check_combination()
        require(not self.polarity_split or self.encoding == "soft_threshold", "polarity_split",
                "needs encoding: soft_threshold", self.polarity_split)
        require(self.pooling == "sum" or self.encoding != "vlad", "pooling", "must be 'sum' for vlad",
                self.pooling)
        require(self.n_samples >= self.n_words, "n_samples", f"must be at least n_words={self.n_words}",
                self.n_samples)

    def _fit_vocabulary(self, samples, rng):
        self.centroids_ = kmeans(samples, self.n_words, init=self.init, max_iter=self.max_iter,
                                 batch_size=self.batch_size, rng=rng)

    def _encoding(self):
        return REGISTRY.create("encoding", self.encoding, centroids=self.centroids_, alpha=self.alpha,
                               split=self.polarity_split, drop_unknown=True)

    def _pooling(self):
        return self.pooling


@register("extractor", "pca_sift")
class PCASIFTBagOfWords(BagOfWords):
    """Bag of words over PCA-SIFT: ``bovw`` with dense SIFT (null ``descriptor``: every 4 pixels, diameters
    8 and 16) projected on its 64 leading principal axes, pooled over a 1x1 + 2x2 pyramid."""

    def __init__(self, *, descriptor=None, projection="pca", n_components=64, whiten=False, whiten_eps=0.1,
                 n_words=1600, encoding="triangle", alpha=0.25, polarity_split=False, pooling="sum", pyramid=(1, 2),
                 normalize="none", n_samples=400_000, init="random", max_iter=50, batch_size=None, random_state=0):
        super().__init__(descriptor=descriptor, projection=projection, n_components=n_components, whiten=whiten,
                         whiten_eps=whiten_eps, n_words=n_words, encoding=encoding, alpha=alpha,
                         polarity_split=polarity_split, pooling=pooling, pyramid=pyramid, normalize=normalize,
                         n_samples=n_samples, init=init, max_iter=max_iter, batch_size=batch_size,
                         random_state=random_state)

    def _default_descriptor(self):
        return SIFT()


@register("extractor", "fisher")
class FisherVector(LocalEncoding):
    """Fisher vectors (Perronnin et al. 2010) of a diagonal GMM with ``n_components`` Gaussians, fitted by
    EM on ``n_samples`` training descriptors, per cell of ``pyramid``: 2 * K * d values per cell, power-
    and L2-normalised by default. The defaults describe dense SIFT reduced to 64 dimensions by PCA."""

    _vocabulary = "means_"
    _constraints = {**LocalEncoding._constraints, "n_gaussians": Integer(1)}

    def __init__(self, *, descriptor=None, projection="pca", n_components=64, whiten=False, whiten_eps=0.1,
                 n_gaussians=64, pyramid=(1,), normalize="power_l2", n_samples=200_000, max_iter=100, random_state=0):
        super().__init__(descriptor=descriptor, projection=projection, n_components=n_components, whiten=whiten,
                         whiten_eps=whiten_eps, pyramid=pyramid, normalize=normalize, n_samples=n_samples,
                         max_iter=max_iter, random_state=random_state)
        self.n_gaussians = n_gaussians

    def _default_descriptor(self):
        return SIFT()

    def _check_combination(self):
        super()._check_combination()
        require(self.n_samples >= self.n_gaussians, "n_samples",
                f"must be at least n_gaussians={self.n_gaussians}", self.n_samples)

    def _fit_vocabulary(self, samples, rng):
        self.weights_, self.means_, self.variances_ = fit_gmm(samples, self.n_gaussians, max_iter=self.max_iter,
                                                              rng=rng)

    def _encoding(self):
        return REGISTRY.create("encoding", "fisher", weights=self.weights_, means=self.means_,
                               variances=self.variances_)
