"""Fisher vectors of a diagonal Gaussian mixture over local descriptors."""
from __future__ import annotations

from ..core import Integer, Part, register, require
from ..local.gmm import fit_gmm, gmm_posteriors
from .local_encoding import LocalEncoding


@register("extractor", "fisher")
class FisherVector(LocalEncoding):
    """Fisher vectors (Perronnin et al. 2010) of a diagonal GMM with ``n_gaussians`` Gaussians, fitted by
    EM on ``n_samples`` training descriptors, per cell of ``pyramid``: 2 * K * d values per cell, power-
    and L2-normalised by default. The defaults describe dense SIFT (null ``descriptor``) reduced to 64
    dimensions by PCA. ``encoding`` is an encoding of a GMM (``fisher``); pooling sums."""

    _vocabulary = "means_"
    _default_parts = {"descriptor": "sift"}
    _constraints = {**LocalEncoding._constraints, "n_gaussians": Integer(1),
                    "encoding": Part("encoding", lambda f: f.vocabulary == "gmm", "GMM encoding")}

    def __init__(self, *, descriptor=None, projection="pca", n_components=64, whiten=False, whiten_eps=0.1,
                 n_gaussians=64, encoding="fisher", pooling="sum", pyramid=(1,), normalize="power_l2",
                 n_samples=200_000, max_iter=100, random_state=0):
        super().__init__(descriptor=descriptor, projection=projection, n_components=n_components, whiten=whiten,
                         whiten_eps=whiten_eps, encoding=encoding, pooling=pooling, pyramid=pyramid,
                         normalize=normalize, n_samples=n_samples, max_iter=max_iter, random_state=random_state)
        self.n_gaussians = n_gaussians

    def _check_combination(self):
        super()._check_combination()
        require(self.n_samples >= self.n_gaussians, "n_samples",
                f"must be at least n_gaussians={self.n_gaussians}", self.n_samples)

    def _fit_vocabulary(self, samples, rng):
        self.weights_, self.means_, self.variances_ = fit_gmm(samples, self.n_gaussians, max_iter=self.max_iter,
                                                              rng=rng)

    def _vocabulary_arrays(self):
        return {"weights": self.weights_, "means": self.means_, "variances": self.variances_}

    def _nearest(self, values):
        return gmm_posteriors(values, self.weights_, self.means_, self.variances_).argmax(axis=1)
