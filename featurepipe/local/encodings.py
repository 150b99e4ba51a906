"""Encodings: descriptors -> codes over a vocabulary, summed (or maxed) over runs of consecutive rows.

Each encoding object holds a fitted vocabulary and offers:

- ``pool(X, starts, how)``: encode the rows of ``X`` and reduce each run ``X[starts[i]:starts[i + 1]]``
  (the descriptors of one spatial cell) by ``'sum'`` or ``'max'``: ``(len(starts), n_pooled)``;
- ``finish(pooled, counts)``: turn pooled sums of cells holding ``counts`` descriptors into the final
  per-cell vector (the identity, except for Fisher vectors).

``n_codes`` is the width of the per-descriptor intermediate, which sets how many rows are encoded at
once; ``dtype`` is that of the pooled sums. The plain functions (``triangle``, ``soft_threshold``)
encode without pooling.
"""
from __future__ import annotations

import numpy as np

from ..core import register
from .gmm import gmm_posteriors
from .kmeans import assign

POOLINGS = ("sum", "max")
_FLOAT32 = np.dtype(np.float32)


def reduce_runs(codes, starts, how):
    """Sum or maximum of each run of rows of ``codes`` (runs begin at ``starts``): ``(len(starts), K)``.

    A loop over runs: a chunk holds only a few, and ``ufunc.reduceat`` along rows is several times slower
    than one BLAS vector-matrix product (for sums) or ``maximum.reduce`` per run.
    """
    bounds = np.append(starts, len(codes))
    if how == "sum":
        ones = np.ones(len(codes), codes.dtype)
        return np.stack([ones[:b - a] @ codes[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
    return np.stack([np.maximum.reduce(codes[a:b], axis=0) for a, b in zip(bounds[:-1], bounds[1:])])


def _run_ids(starts, n_rows):
    """Index of the run of each of ``n_rows`` rows, runs beginning at ``starts``."""
    return np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n_rows)))


@register("encoding", "triangle")
class Triangle:
    """"Triangle" k-means activation of Coates, Lee & Ng (2011): ``max(0, mean_j z_j - z_k)``, with ``z_k``
    the distance to centroid ``k``. About half the codes are zero: those of centroids farther than average."""

    dtype = _FLOAT32
    vocabulary = "kmeans"  # what the encoding is built on: k-means centroids (or a GMM)

    def __init__(self, centroids):
        self.centroids = np.asarray(centroids, np.float32)
        k, d = self.centroids.shape
        # [x, 1, |x|^2] @ matrix = |c|^2 - 2 x.c + |x|^2: all squared distances in one matrix product.
        self.matrix = np.empty((d + 2, k), np.float32)
        self.matrix[:d] = -2 * self.centroids.T
        self.matrix[d] = np.einsum("ij,ij->i", self.centroids, self.centroids)
        self.matrix[d + 1] = 1
        self.n_codes = self.n_pooled = k
        self._mean_weights = np.full(k, 1 / k, np.float32)

    def distances(self, X):
        """Distances ``(N, K)`` to the centroids and their mean per row."""
        m, d = X.shape
        rows = np.empty((m, d + 2), np.float32)
        rows[:, :d] = X
        rows[:, d] = 1
        rows[:, d + 1] = np.einsum("ij,ij->i", X, X)
        z = rows @ self.matrix
        with np.errstate(invalid="ignore"):
            np.sqrt(z, out=z)  # NaN where rounding made a square (of a near-zero distance) negative
        mean = z @ self._mean_weights
        broken = np.flatnonzero(np.isnan(mean))  # NaNs reach the mean, so only those rows need a look
        if len(broken):
            fixed = np.nan_to_num(z[broken], nan=0.0)
            z[broken] = fixed
            mean[broken] = fixed @ self._mean_weights
        return z, mean

    def encode(self, X):
        z, mean = self.distances(X)
        np.subtract(mean[:, None], z, out=z)
        return np.maximum(z, 0, out=z)

    def pool(self, X, starts, how):
        return reduce_runs(self.encode(X), starts, how)

    def finish(self, pooled, counts):
        return pooled


@register("encoding", "soft_threshold")
class SoftThreshold(Triangle):
    """``max(0, x . c_k / |c_k| - alpha)`` (Coates & Ng 2011): a linear filter bank on the unit-length
    centroids with a fixed threshold. With ``split`` (their "polarity splitting") the negative side
    ``max(0, -x . c_k / |c_k| - alpha)`` follows as K more codes, so a linear head can weigh a filter's
    two responses apart."""

    def __init__(self, centroids, alpha, split=False):
        centroids = np.asarray(centroids, np.float32)
        norms = np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), np.float32(1e-12))
        filters = (centroids / norms).T
        self.filters = np.ascontiguousarray(np.hstack([filters, -filters]) if split else filters)
        self.alpha = np.float32(alpha)
        self.n_codes = self.n_pooled = self.filters.shape[1]

    def encode(self, X):
        codes = X @ self.filters
        codes -= self.alpha
        return np.maximum(codes, 0, out=codes)


@register("encoding", "hard")
class HardAssignment:
    """Classic bag of words: each descriptor votes for its nearest centroid. Sum pooling counts the votes
    per cell (a histogram); max pooling records which words occur."""

    dtype = _FLOAT32
    vocabulary = "kmeans"

    def __init__(self, centroids):
        self.centroids = np.asarray(centroids, np.float32)
        self.n_codes = self.n_pooled = len(centroids)

    def pool(self, X, starts, how):
        k = len(self.centroids)
        labels = assign(X, self.centroids)[0]
        votes = np.bincount(_run_ids(starts, len(X)) * k + labels, minlength=len(starts) * k)
        votes = votes.reshape(len(starts), k).astype(np.float32)
        return votes if how == "sum" else np.minimum(votes, 1, out=votes)

    def finish(self, pooled, counts):
        return pooled


@register("encoding", "vlad")
class VLAD(HardAssignment):
    """Vector of Locally Aggregated Descriptors (Jegou et al. 2010): per centroid, the sum of the residuals
    ``x - c_k`` of the descriptors assigned to it; ``k * d`` values per cell. Sum pooling only."""

    def __init__(self, centroids):
        super().__init__(centroids)
        self.n_pooled = self.centroids.size

    def pool(self, X, starts, how):
        import scipy.sparse as sp

        k = len(self.centroids)
        rows = _run_ids(starts, len(X)) * k + assign(X, self.centroids)[0]
        one_hot = sp.csr_matrix((np.ones(len(X), np.float32), (rows, np.arange(len(X)))),
                                shape=(len(starts) * k, len(X)))
        sums = np.asarray(one_hot @ X, np.float32)
        sums -= np.bincount(rows, minlength=len(starts) * k)[:, None].astype(np.float32) * np.tile(
            self.centroids, (len(starts), 1))
        return sums.reshape(len(starts), -1)


@register("encoding", "fisher")
class Fisher:
    """Fisher vector of a diagonal GMM (Perronnin, Sanchez & Mensink 2010): per component, the normalised
    gradients of the log-likelihood with respect to its mean and standard deviation; ``2 * K * d`` values
    per cell. Pooling sums the posterior moments (sum pooling only); ``finish`` forms the gradients.
    Moments are summed in float64: the gradient for the deviations subtracts nearly equal sums."""

    dtype = np.dtype(np.float64)
    vocabulary = "gmm"

    def __init__(self, weights, means, variances):
        self.weights, self.means, self.variances = (np.asarray(a, np.float32) for a in (weights, means, variances))
        k, d = self.means.shape
        self.n_codes = k
        self.n_pooled = k * (1 + 2 * d)

    def pool(self, X, starts, how):
        posteriors = gmm_posteriors(X, self.weights, self.means, self.variances).astype(np.float64)
        X = X.astype(np.float64)
        moments = np.concatenate([np.ones((len(X), 1)), X, X * X], axis=1)
        bounds = np.append(starts, len(X))
        return np.stack([(posteriors[a:b].T @ moments[a:b]).ravel() for a, b in zip(bounds[:-1], bounds[1:])])

    def finish(self, pooled, counts):
        """Gradients from ``sum_t gamma_tk [1, x_t, x_t^2]``, divided by the number of descriptors ``T``."""
        k, d = self.means.shape
        stats = pooled.reshape(*pooled.shape[:-1], k, 1 + 2 * d)
        s0, s1, s2 = stats[..., :1], stats[..., 1:1 + d], stats[..., 1 + d:]
        mean, std = self.means, np.sqrt(self.variances)
        total = np.maximum(counts, 1)[..., None, None]
        grad_mean = (s1 - mean * s0) / (std * total * np.sqrt(self.weights)[:, None])
        grad_std = ((s2 - 2 * mean * s1 + mean**2 * s0) / self.variances - s0) / (
            total * np.sqrt(2 * self.weights)[:, None])
        fisher = np.concatenate([grad_mean, grad_std], axis=-2).reshape(*pooled.shape[:-1], 2 * k * d)
        return fisher.astype(np.float32)


def triangle(X, centroids):
    """Triangle codes ``(N, K)`` of the rows of ``X``."""
    return Triangle(centroids).encode(np.asarray(X, np.float32))


def soft_threshold(X, centroids, alpha, split=False):
    """Soft-threshold codes ``(N, K)`` of the rows of ``X``; ``(N, 2K)`` with ``split``."""
    return SoftThreshold(centroids, alpha, split).encode(np.asarray(X, np.float32))
