"""Bag of visual words: local descriptors encoded over a k-means codebook, pooled over a spatial pyramid."""
from __future__ import annotations

from ..core import NULL, Boolean, Integer, Options, Part, Real, register, require
from ..local.kmeans import INITS, assign, kmeans
from .local_encoding import LocalEncoding


@register("extractor", "bovw")
class BagOfWords(LocalEncoding):
    """Bag of visual words: local descriptors encoded over a k-means codebook, pooled over a spatial pyramid.

    The defaults are the single-layer network of Coates, Lee & Ng (2011): 6x6 patches at stride 1,
    normalised, ZCA-whitened (eps 0.1), 1,600 centroids, triangle encoding, sum pooling over the four
    quadrants. ``descriptor``: null means those patches. ``projection``: ``zca``, ``pca`` (to
    ``n_components``, ``whiten`` optional) or ``none``, fitted on the sampled descriptors.
    ``encoding``: ``triangle`` (max(0, mean distance - distance)), ``soft_threshold`` (max(0, x.c/|c| -
    alpha); its ``split`` adds max(0, -x.c/|c| - alpha), 2K codes), ``hard`` (word histogram) or ``vlad``
    (residual sums, k * d values per cell); ``alpha`` and ``polarity_split``, when not null, set the
    soft threshold's ``alpha`` and ``split``. ``pooling``: ``sum`` or ``max`` over each cell. ``pyramid``:
    grid sizes, e.g. ``[2]`` (quadrants) or ``[1, 2, 4]``; ``normalize`` applies per cell. The codebook is k-means on ``n_samples`` training
    descriptors: ``init`` random or k-means++, Lloyd's algorithm for ``max_iter`` iterations, or
    mini-batch k-means (``max_iter`` epochs) when ``batch_size`` is set.
    """

    _vocabulary = "centroids_"
    _default_parts = {"descriptor": "patches"}
    _constraints = {
        **LocalEncoding._constraints,
        "n_words": Integer(1),
        "encoding": Part("encoding", lambda f: f.vocabulary == "kmeans", "k-means encoding"),
        "alpha": NULL | Real(message="must be a number"),
        "polarity_split": NULL | Boolean(),
        "init": Options(*INITS, message=f"must be one of {INITS}"),
        "batch_size": NULL | Integer(1, message="must be null (full-batch k-means) or a positive integer"),
    }

    def __init__(self, *, descriptor=None, projection="zca", n_components=None, whiten=False, whiten_eps=0.1,
                 n_words=1600, encoding="triangle", alpha=None, polarity_split=None, pooling="sum", pyramid=(2,),
                 normalize="none", n_samples=400_000, init="random", max_iter=50, batch_size=None, random_state=0):
        super().__init__(descriptor=descriptor, projection=projection, n_components=n_components, whiten=whiten,
                         whiten_eps=whiten_eps, encoding=encoding, pooling=pooling, pyramid=pyramid,
                         normalize=normalize, n_samples=n_samples, max_iter=max_iter, random_state=random_state)
        self.n_words = n_words
        self.alpha = alpha
        self.polarity_split = polarity_split
        self.init = init
        self.batch_size = batch_size

    def _part_overrides(self, name):
        return {"alpha": self.alpha, "split": self.polarity_split} if name == "encoding" else {}

    def _check_combination(self):
        super()._check_combination()
        require(not self.polarity_split or "split" in self._part("encoding").get_params(), "polarity_split",
                "needs encoding: soft_threshold", self.polarity_split)
        require(self.n_samples >= self.n_words, "n_samples", f"must be at least n_words={self.n_words}",
                self.n_samples)

    def _fit_vocabulary(self, samples, rng):
        self.centroids_ = kmeans(samples, self.n_words, init=self.init, max_iter=self.max_iter,
                                 batch_size=self.batch_size, rng=rng)

    def _vocabulary_arrays(self):
        return {"centroids": self.centroids_}

    def _nearest(self, values):
        return assign(values, self.centroids_)[0]
