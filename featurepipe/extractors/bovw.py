"""Data-driven extractors over local descriptors: bag of visual words (k-means codebook) and Fisher vectors.

``fit`` samples descriptors from the training images only and learns, on that sample, the optional
linear map (ZCA whitening or PCA) and then the vocabulary. Everything learnt is a fitted array
attribute, so it is saved with the pipeline and enters the fingerprint: a refitted vocabulary gives new
cache keys, and ``transform`` never refits.
"""
from __future__ import annotations

import numpy as np
from sklearn.exceptions import NotFittedError

from ..local.base import Descriptor
from ..local.encodings import POOLINGS, VLAD, Fisher, HardAssignment, SoftThreshold, Triangle
from ..local.gmm import fit_gmm
from ..local.kmeans import INITS, kmeans
from ..local.patches import Patches
from ..local.pooling import NORMS, encode_images, valid_pyramid
from ..local.projections import PROJECTIONS, fit_projection, project
from ..local.sift import SIFT
from .base import Extractor, require
from .registry import register

ENCODINGS = {"triangle": Triangle, "soft_threshold": SoftThreshold, "hard": HardAssignment, "vlad": VLAD}


def _int_at_least(value, low) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low


class LocalEncoding(Extractor):
    """Base: descriptors -> optional ZCA/PCA -> vocabulary fitted on a training sample -> encoding ->
    spatial pyramid pooling. Subclasses define the vocabulary and its encoding."""

    requires_fit = True
    _vocabulary = ""  # the fitted attribute that marks a fitted extractor

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

    def _check_common(self):
        require(self.descriptor is None or isinstance(self.descriptor, Descriptor), "descriptor",
                "must be null or a descriptor such as {patches: {size: 6}}", self.descriptor)
        descriptor = self._descriptor()
        descriptor.check_params()
        require(self.projection in PROJECTIONS, "projection", f"must be one of {PROJECTIONS}", self.projection)
        if self.projection == "pca":
            require(_int_at_least(self.n_components, 1) and self.n_components <= descriptor.n_features,
                    "n_components", f"must be an integer in [1, {descriptor.n_features}] for projection 'pca'",
                    self.n_components)
        else:
            require(self.n_components is None, "n_components", "is only for projection 'pca'; use null",
                    self.n_components)
        require(isinstance(self.whiten, bool), "whiten", "must be true or false", self.whiten)
        require(isinstance(self.whiten_eps, (int, float)) and not isinstance(self.whiten_eps, bool)
                and self.whiten_eps >= 0, "whiten_eps", "must be a number >= 0", self.whiten_eps)
        require(valid_pyramid(self.pyramid), "pyramid",
                "must be a list of grid sizes such as [1, 2, 4], each dividing the largest", self.pyramid)
        require(self.normalize in NORMS, "normalize", f"must be one of {NORMS}", self.normalize)
        require(_int_at_least(self.n_samples, 2), "n_samples", "must be an integer >= 2", self.n_samples)
        require(_int_at_least(self.max_iter, 1), "max_iter", "must be a positive integer", self.max_iter)
        require(_int_at_least(self.random_state, 0), "random_state",
                "must be an integer >= 0 (fits must be reproducible)", self.random_state)

    def fit(self, images, y=None):
        """Learn the projection and the vocabulary from ``n_samples`` descriptors of ``images``."""
        self.check_params()
        rng = np.random.default_rng(self.random_state)
        samples = self._descriptor().sample(images, self.n_samples, rng)
        for stale in ("mean_", "projection_"):
            self.__dict__.pop(stale, None)
        if self.projection != "none":
            self.mean_, self.projection_ = fit_projection(samples, self.projection, self.n_components, self.whiten,
                                                          self.whiten_eps)
            samples = project(samples, self.mean_, self.projection_)
        self._fit_vocabulary(samples, rng)
        return self

    def _describe(self, batch):
        """Descriptors of a block, through the fitted projection."""
        features = self._descriptor().compute(batch)
        if self.projection == "none":
            return features
        return features._replace(values=project(features.values, self.mean_, self.projection_))

    def _transform_batch(self, batch):
        if not hasattr(self, self._vocabulary):
            raise NotFittedError(f"{self.name}: the vocabulary is learnt from training images; call fit first")
        return encode_images(self._describe, self._encoding(), batch, tuple(self.pyramid), self._pooling(),
                             self.normalize)


@register("bovw")
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

    def __init__(self, descriptor=None, projection="zca", n_components=None, whiten=False, whiten_eps=0.1,
                 n_words=1600, encoding="triangle", alpha=0.25, polarity_split=False, pooling="sum", pyramid=(2,),
                 normalize="none", n_samples=400_000, init="random", max_iter=50, batch_size=None, random_state=0):
        self.descriptor = descriptor
        self.projection = projection
        self.n_components = n_components
        self.whiten = whiten
        self.whiten_eps = whiten_eps
        self.n_words = n_words
        self.encoding = encoding
        self.alpha = alpha
        self.polarity_split = polarity_split
        self.pooling = pooling
        self.pyramid = pyramid
        self.normalize = normalize
        self.n_samples = n_samples
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.random_state = random_state

    def _default_descriptor(self):
        return Patches()

    def check_params(self):
        self._check_common()
        require(_int_at_least(self.n_words, 1), "n_words", "must be a positive integer", self.n_words)
        require(self.encoding in ENCODINGS, "encoding", f"must be one of {tuple(ENCODINGS)}", self.encoding)
        require(isinstance(self.alpha, (int, float)) and not isinstance(self.alpha, bool), "alpha",
                "must be a number", self.alpha)
        require(isinstance(self.polarity_split, bool), "polarity_split", "must be true or false",
                self.polarity_split)
        require(not self.polarity_split or self.encoding == "soft_threshold", "polarity_split",
                "needs encoding: soft_threshold", self.polarity_split)
        require(self.pooling in POOLINGS, "pooling", f"must be one of {POOLINGS}", self.pooling)
        require(self.pooling == "sum" or self.encoding != "vlad", "pooling", "must be 'sum' for vlad",
                self.pooling)
        require(self.n_samples >= self.n_words, "n_samples", f"must be at least n_words={self.n_words}",
                self.n_samples)
        require(self.init in INITS, "init", f"must be one of {INITS}", self.init)
        require(self.batch_size is None or _int_at_least(self.batch_size, 1), "batch_size",
                "must be null (full-batch k-means) or a positive integer", self.batch_size)

    def _fit_vocabulary(self, samples, rng):
        self.centroids_ = kmeans(samples, self.n_words, init=self.init, max_iter=self.max_iter,
                                 batch_size=self.batch_size, rng=rng)

    def _encoding(self):
        if self.encoding == "soft_threshold":
            return SoftThreshold(self.centroids_, self.alpha, self.polarity_split)
        return ENCODINGS[self.encoding](self.centroids_)

    def _pooling(self):
        return self.pooling


@register("pca_sift")
class PCASIFTBagOfWords(BagOfWords):
    """Bag of words over PCA-SIFT: ``bovw`` with dense SIFT (null ``descriptor``: every 4 pixels, diameters
    8 and 16) projected on its 64 leading principal axes, pooled over a 1x1 + 2x2 pyramid."""

    def __init__(self, descriptor=None, projection="pca", n_components=64, whiten=False, whiten_eps=0.1,
                 n_words=1600, encoding="triangle", alpha=0.25, polarity_split=False, pooling="sum", pyramid=(1, 2),
                 normalize="none", n_samples=400_000, init="random", max_iter=50, batch_size=None, random_state=0):
        super().__init__(descriptor, projection, n_components, whiten, whiten_eps, n_words, encoding, alpha,
                         polarity_split, pooling, pyramid, normalize, n_samples, init, max_iter, batch_size,
                         random_state)

    def _default_descriptor(self):
        return SIFT()


@register("fisher")
class FisherVector(LocalEncoding):
    """Fisher vectors (Perronnin et al. 2010) of a diagonal GMM with ``n_components`` Gaussians, fitted by
    EM on ``n_samples`` training descriptors, per cell of ``pyramid``: 2 * K * d values per cell, power-
    and L2-normalised by default. The defaults describe dense SIFT reduced to 64 dimensions by PCA."""

    _vocabulary = "means_"

    def __init__(self, descriptor=None, projection="pca", n_components=64, whiten=False, whiten_eps=0.1,
                 n_gaussians=64, pyramid=(1,), normalize="power_l2", n_samples=200_000, max_iter=100, random_state=0):
        self.descriptor = descriptor
        self.projection = projection
        self.n_components = n_components
        self.whiten = whiten
        self.whiten_eps = whiten_eps
        self.n_gaussians = n_gaussians
        self.pyramid = pyramid
        self.normalize = normalize
        self.n_samples = n_samples
        self.max_iter = max_iter
        self.random_state = random_state

    def _default_descriptor(self):
        return SIFT()

    def check_params(self):
        self._check_common()
        require(_int_at_least(self.n_gaussians, 1), "n_gaussians", "must be a positive integer", self.n_gaussians)
        require(self.n_samples >= self.n_gaussians, "n_samples",
                f"must be at least n_gaussians={self.n_gaussians}", self.n_samples)

    def _fit_vocabulary(self, samples, rng):
        self.weights_, self.means_, self.variances_ = fit_gmm(samples, self.n_gaussians, max_iter=self.max_iter,
                                                              rng=rng)

    def _encoding(self):
        return Fisher(self.weights_, self.means_, self.variances_)
