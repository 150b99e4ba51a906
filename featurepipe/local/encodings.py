"""Encodings: descriptors -> codes over a vocabulary, pooled over runs of consecutive rows.

Encodings are registered stages (kind ``"encoding"``) whose parameters are their own settings; the
vocabulary they encode against is learnt by the extractor that owns them (k-means centroids or a GMM)
and given to ``bind``, which returns a fitted copy offering:

- ``pool(X, starts, pooling)``: encode the rows of ``X`` and reduce each run ``X[starts[i]:starts[i + 1]]``
  (the descriptors of one spatial cell) with ``pooling`` (a ``Pooling`` stage): ``(len(starts), n_pooled)``;
- ``finish(pooled, counts)``: turn pooled sums of cells holding ``counts`` descriptors into the final
  per-cell vector (the identity, except for Fisher vectors).

``n_codes`` is the width of the per-descriptor intermediate, which sets how many rows are encoded at
once; ``dtype`` is that of the pooled sums. The plain functions (``triangle``, ``soft_threshold``)
encode without pooling.
"""
from __future__ import annotations

import numpy as np

from ..core import Boolean, Real, Stage, register
from .gmm import gmm_posteriors
from .kmeans import assign

_FLOAT32 = np.dtype(np.float32)


class Encoding(Stage):
    """Base of encodings: ``vocabulary`` says what they are built on (``"kmeans"`` centroids or a ``"gmm"``)."""

    kind = "encoding"
    vocabulary = "kmeans"
    dtype = _FLOAT32
    sum_only = False  # True when only sums of codes mean something (residuals, moments)

    def bind(self, **vocabulary) -> "Encoding":
        """A copy of this encoding fitted to ``vocabulary`` (``centroids``, or ``weights``, ``means`` and
        ``variances``); this object is not changed."""
        bound = type(self)(**self.get_params(deep=False))
        bound.validate_params()
        bound._set_vocabulary(**vocabulary)
        return bound

    def _set_vocabulary(self, **vocabulary) -> None:
        raise NotImplementedError

    def cell_width(self, words: int, length: int) -> int:
        """Values per spatial cell for a vocabulary of ``words`` over ``length``-d descriptors."""
        return words

    def cell_names(self, words: int, length: int) -> list[str]:
        """A name for each of those values, in order: ``w17`` for word 17."""
        return [f"w{k}" for k in range(words)]

    def pool(self, X, starts, pooling):
        raise NotImplementedError

    def finish(self, pooled, counts):
        return pooled


class _DenseCodes(Encoding):
    """Encodings that compute a dense code per descriptor (``encode``), then pool the codes."""

    @property
    def n_codes(self) -> int:
        return self.n_pooled

    def encode(self, X):
        raise NotImplementedError

    def pool(self, X, starts, pooling):
        return pooling.runs(self.encode(X), starts)


@register("encoding", "triangle")
class Triangle(_DenseCodes):
    """"Triangle" k-means activation of Coates, Lee & Ng (2011): ``max(0, mean_j z_j - z_k)``, with ``z_k``
    the distance to centroid ``k``. About half the codes are zero: those of centroids farther than average."""

    def _set_vocabulary(self, centroids):
        self.centroids_ = np.asarray(centroids, np.float32)
        k, d = self.centroids_.shape
        # [x, 1, |x|^2] @ matrix = |c|^2 - 2 x.c + |x|^2: all squared distances in one matrix product.
        self.matrix_ = np.empty((d + 2, k), np.float32)
        self.matrix_[:d] = -2 * self.centroids_.T
        self.matrix_[d] = np.einsum("ij,ij->i", self.centroids_, self.centroids_)
        self.matrix_[d + 1] = 1
        self.mean_weights_ = np.full(k, 1 / k, np.float32)

    @property
    def n_pooled(self) -> int:
        return len(self.centroids_)

    def distances(self, X):
        """Distances ``(N, K)`` to the centroids and their mean per row."""
        m, d = X.shape
        rows = np.empty((m, d + 2), np.float32)
        rows[:, :d] = X
        rows[:, d] = 1
        rows[:, d + 1] = np.einsum("ij,ij->i", X, X)
        z = rows @ self.matrix_
        with np.errstate(invalid="ignore"):
            np.sqrt(z, out=z)  # NaN where rounding made a square (of a near-zero distance) negative
        mean = z @ self.mean_weights_
        broken = np.flatnonzero(np.isnan(mean))  # NaNs reach the mean, so only those rows need a look
        if len(broken):
            fixed = np.nan_to_num(z[broken], nan=0.0)
            z[broken] = fixed
            mean[broken] = fixed @ self.mean_weights_
        return z, mean

    def encode(self, X):
        z, mean = self.distances(X)
        np.subtract(mean[:, None], z, out=z)
        return np.maximum(z, 0, out=z)


@register("encoding", "soft_threshold")
class SoftThreshold(_DenseCodes):
    """``max(0, x . c_k / |c_k| - alpha)`` (Coates & Ng 2011): a linear filter bank on the unit-length
    centroids with a fixed threshold. With ``split`` (their "polarity splitting") the negative side
    ``max(0, -x . c_k / |c_k| - alpha)`` follows as K more codes, so a linear head can weigh a filter's
    two responses apart."""

    _constraints = {"alpha": Real(message="must be a number"), "split": Boolean()}

    def __init__(self, alpha=0.25, split=False):
        self.alpha = alpha
        self.split = split

    def _set_vocabulary(self, centroids):
        centroids = np.asarray(centroids, np.float32)
        norms = np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), np.float32(1e-12))
        filters = (centroids / norms).T
        self.filters_ = np.ascontiguousarray(np.hstack([filters, -filters]) if self.split else filters)

    @property
    def n_pooled(self) -> int:
        return self.filters_.shape[1]

    def cell_width(self, words, length):
        return 2 * words if self.split else words

    def cell_names(self, words, length):
        """``w17``, then with ``split`` the negative sides, ``w17_neg``."""
        positive = super().cell_names(words, length)
        return positive + [f"{name}_neg" for name in positive] if self.split else positive

    def encode(self, X):
        codes = X @ self.filters_
        codes -= np.float32(self.alpha)
        return np.maximum(codes, 0, out=codes)


@register("encoding", "hard")
class HardAssignment(Encoding):
    """Classic bag of words: each descriptor votes for its nearest centroid. Sum pooling counts the votes
    per cell (a histogram); max pooling records which words occur."""

    def _set_vocabulary(self, centroids):
        self.centroids_ = np.asarray(centroids, np.float32)

    @property
    def n_codes(self) -> int:
        return len(self.centroids_)

    @property
    def n_pooled(self) -> int:
        return len(self.centroids_)

    def pool(self, X, starts, pooling):
        k = len(self.centroids_)
        labels = assign(X, self.centroids_)[0]
        votes = np.bincount(_run_ids(starts, len(X)) * k + labels, minlength=len(starts) * k)
        return pooling.of_counts(votes.reshape(len(starts), k).astype(np.float32))


@register("encoding", "vlad")
class VLAD(HardAssignment):
    """Vector of Locally Aggregated Descriptors (Jegou et al. 2010): per centroid, the sum of the residuals
    ``x - c_k`` of the descriptors assigned to it; ``k * d`` values per cell. Sum pooling only."""

    sum_only = True

    @property
    def n_pooled(self) -> int:
        return self.centroids_.size

    def cell_width(self, words, length):
        return words * length

    def cell_names(self, words, length):
        """``w17_d5``: dimension 5 of the residuals summed at word 17."""
        return [f"w{k}_d{j}" for k in range(words) for j in range(length)]

    def pool(self, X, starts, pooling):
        import scipy.sparse as sp

        k = len(self.centroids_)
        rows = _run_ids(starts, len(X)) * k + assign(X, self.centroids_)[0]
        one_hot = sp.csr_matrix((np.ones(len(X), np.float32), (rows, np.arange(len(X)))),
                                shape=(len(starts) * k, len(X)))
        sums = np.asarray(one_hot @ X, np.float32)
        sums -= np.bincount(rows, minlength=len(starts) * k)[:, None].astype(np.float32) * np.tile(
            self.centroids_, (len(starts), 1))
        return sums.reshape(len(starts), -1)


@register("encoding", "fisher")
class Fisher(Encoding):
    """Fisher vector of a diagonal GMM (Perronnin, Sanchez & Mensink 2010): per component, the normalised
    gradients of the log-likelihood with respect to its mean and standard deviation; ``2 * K * d`` values
    per cell. Pooling sums the posterior moments (sum pooling only); ``finish`` forms the gradients.
    Moments are summed in float64: the gradient for the deviations subtracts nearly equal sums."""

    dtype = np.dtype(np.float64)
    vocabulary = "gmm"
    sum_only = True

    def _set_vocabulary(self, weights, means, variances):
        self.weights_, self.means_, self.variances_ = (np.asarray(a, np.float32) for a in (weights, means, variances))

    @property
    def n_codes(self) -> int:
        return len(self.means_)

    @property
    def n_pooled(self) -> int:
        k, d = self.means_.shape
        return k * (1 + 2 * d)

    def cell_width(self, words, length):
        return 2 * words * length

    def cell_names(self, words, length):
        """``g12_mu_d5`` (the gradient for dimension 5 of Gaussian 12's mean), then the ``g12_sigma_d5`` of the
        standard deviations."""
        return [f"g{k}_{moment}_d{j}" for moment in ("mu", "sigma") for k in range(words) for j in range(length)]

    def pool(self, X, starts, pooling):
        posteriors = gmm_posteriors(X, self.weights_, self.means_, self.variances_).astype(np.float64)
        X = X.astype(np.float64)
        moments = np.concatenate([np.ones((len(X), 1)), X, X * X], axis=1)
        bounds = np.append(starts, len(X))
        return np.stack([(posteriors[a:b].T @ moments[a:b]).ravel() for a, b in zip(bounds[:-1], bounds[1:])])

    def finish(self, pooled, counts):
        """Gradients from ``sum_t gamma_tk [1, x_t, x_t^2]``, divided by the number of descriptors ``T``."""
        k, d = self.means_.shape
        stats = pooled.reshape(*pooled.shape[:-1], k, 1 + 2 * d)
        s0, s1, s2 = stats[..., :1], stats[..., 1:1 + d], stats[..., 1 + d:]
        mean, std = self.means_, np.sqrt(self.variances_)
        total = np.maximum(counts, 1)[..., None, None]
        grad_mean = (s1 - mean * s0) / (std * total * np.sqrt(self.weights_)[:, None])
        grad_std = ((s2 - 2 * mean * s1 + mean**2 * s0) / self.variances_ - s0) / (
            total * np.sqrt(2 * self.weights_)[:, None])
        fisher = np.concatenate([grad_mean, grad_std], axis=-2).reshape(*pooled.shape[:-1], 2 * k * d)
        return fisher.astype(np.float32)


def _run_ids(starts, n_rows):
    """Index of the run of each of ``n_rows`` rows, runs beginning at ``starts``."""
    return np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n_rows)))


def triangle(X, centroids):
    """Triangle codes ``(N, K)`` of the rows of ``X``."""
    return Triangle().bind(centroids=centroids).encode(np.asarray(X, np.float32))


def soft_threshold(X, centroids, alpha, split=False):
    """Soft-threshold codes ``(N, K)`` of the rows of ``X``; ``(N, 2K)`` with ``split``."""
    return SoftThreshold(alpha, split).bind(centroids=centroids).encode(np.asarray(X, np.float32))
