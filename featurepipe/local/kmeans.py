"""k-means codebooks in float32: Lloyd's algorithm, or mini-batch k-means for large samples.

Assignment is the costly step: ``argmin_k ||c_k||^2 - 2 x.c_k`` for row chunks of the sample, one BLAS
matrix product per chunk (so it uses every BLAS thread), with ``||c_k||^2`` folded into the product by
a column of ones. Memory is the sample plus one chunk of scores. The init and the iterations report their
progress (``core.progress``: silent unless the caller shows it).
"""
from __future__ import annotations

import numpy as np

from ..core.progress import progress_bar

INITS = ("k-means++", "random")
_CHUNK_ROWS = 8192


def assign(X: np.ndarray, centroids: np.ndarray, chunk_rows: int = _CHUNK_ROWS):
    """Nearest centroid of each row of ``X`` and the squared distance to it."""
    n, d = X.shape
    scores_matrix = np.empty((d + 1, len(centroids)), np.float32)
    scores_matrix[:d] = -2 * centroids.T
    scores_matrix[d] = np.einsum("ij,ij->i", centroids, centroids)
    labels = np.empty(n, np.int64)
    distances = np.empty(n, np.float32)
    rows = np.empty((min(chunk_rows, n), d + 1), np.float32)
    rows[:, d] = 1
    for start in range(0, n, chunk_rows):
        x = X[start:start + chunk_rows]
        m = len(x)
        rows[:m, :d] = x
        scores = rows[:m] @ scores_matrix
        labels[start:start + m] = best = scores.argmin(axis=1)
        distances[start:start + m] = scores[np.arange(m), best] + np.einsum("ij,ij->i", x, x)
    return labels, np.maximum(distances, 0, out=distances)


def _cluster_sums(X, labels, k):
    """Per-cluster sums of rows (one sparse product) and counts."""
    import scipy.sparse as sp

    one_hot = sp.csr_matrix((np.ones(len(X), np.float32), (labels, np.arange(len(X)))), shape=(k, len(X)))
    return np.asarray(one_hot @ X, np.float32), np.bincount(labels, minlength=k)


def _init_random(X, k, rng):
    return X[np.sort(rng.choice(len(X), k, replace=False))].copy()


def _init_kmeans_plus_plus(X, k, rng, chunk_rows=_CHUNK_ROWS):
    """Greedy k-means++ (Arthur & Vassilvitskii 2007, with scikit-learn's 2 + log k trials per centre)."""
    trials = 2 + int(np.log(k))
    squares = np.einsum("ij,ij->i", X, X)
    centres = np.empty((k, X.shape[1]), np.float32)
    first = rng.integers(len(X))
    centres[0] = X[first]
    closest = np.maximum(squares - 2 * (X @ X[first]) + squares[first], 0)
    with progress_bar(k - 1, "k-means++ init", "centre") as bar:
        for c in range(1, k):
            cumulative = np.cumsum(closest, dtype=np.float64)
            candidates = np.minimum(np.searchsorted(cumulative, rng.random(trials) * cumulative[-1]), len(X) - 1)
            distances = squares[:, None] - 2 * (X @ X[candidates].T) + squares[candidates]
            np.maximum(distances, 0, out=distances)
            np.minimum(distances, closest[:, None], out=distances)
            best = distances.sum(axis=0, dtype=np.float64).argmin()
            closest = np.ascontiguousarray(distances[:, best])
            centres[c] = X[candidates[best]]
            bar.update()
    return centres


def _lloyd(X, centroids, max_iter):
    """Full-batch iterations until ``max_iter`` or until no assignment changes; an emptied cluster
    restarts at the sample farthest from its centroid."""
    k = len(centroids)
    previous = None
    with progress_bar(max_iter, "k-means", "iteration") as bar:
        for _ in range(max_iter):
            labels, distances = assign(X, centroids)
            if previous is not None and np.array_equal(labels, previous):
                bar.set_postfix_str("converged")
                break
            sums, counts = _cluster_sums(X, labels, k)
            filled = counts > 0
            centroids[filled] = sums[filled] / counts[filled, None]
            empty = np.flatnonzero(~filled)
            if len(empty):
                centroids[empty] = X[np.argpartition(distances, -len(empty))[-len(empty):]]
            previous = labels
            bar.update()
    return centroids


def _minibatch(X, centroids, max_iter, batch_size, rng):
    """Mini-batch k-means (Sculley 2010): ``max_iter`` passes over shuffled batches; each centroid moves
    to the running mean of the samples assigned to it so far."""
    k = len(centroids)
    seen = np.zeros(k, np.float64)
    with progress_bar(max_iter * -(-len(X) // batch_size), "mini-batch k-means", "batch") as bar:
        for _ in range(max_iter):
            order = rng.permutation(len(X))
            for start in range(0, len(X), batch_size):
                batch = X[np.sort(order[start:start + batch_size])]
                labels, _ = assign(batch, centroids)
                sums, counts = _cluster_sums(batch, labels, k)
                hit = counts > 0
                seen[hit] += counts[hit]
                step = (sums[hit] - counts[hit, None] * centroids[hit]) / seen[hit, None]
                centroids[hit] += step.astype(np.float32)
                bar.update()
    return centroids


def kmeans(X: np.ndarray, n_clusters: int, *, init: str = "k-means++", max_iter: int = 50,
           batch_size: int | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Centroids ``(n_clusters, d)`` float32 of the rows of ``X``.

    ``init``: ``'k-means++'`` or ``'random'`` (distinct random rows). ``batch_size``: None runs Lloyd's
    algorithm for at most ``max_iter`` iterations; an integer runs ``max_iter`` epochs of mini-batch
    k-means instead, for samples too large for full passes.
    """
    X = np.ascontiguousarray(X, np.float32)
    rng = np.random.default_rng(rng)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if len(X) < n_clusters:
        raise ValueError(f"k-means needs at least n_clusters={n_clusters} samples, got {len(X)}")
    centroids = _init_random(X, n_clusters, rng) if init == "random" else _init_kmeans_plus_plus(X, n_clusters, rng)
    if batch_size is None:
        return _lloyd(X, centroids, max_iter)
    return _minibatch(X, centroids, max_iter, batch_size, rng)
