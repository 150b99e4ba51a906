"""Fitting a linear head in the row space of ``X`` when there are fewer samples than features.

With an L2 penalty only, the minimiser of ``loss(X W + b) + 0.5 alpha ||W||^2`` lies in the span of the
rows of ``X``: a part of ``W`` orthogonal to every row leaves the scores unchanged and only adds penalty.
With the thin decomposition ``X = Z V^T`` (``V``, ``d x r``, orthonormal columns; ``Z = X V``, ``n x r``;
``r <= n``), ``W = V B`` turns the problem into the same one on the ``r`` features ``Z``, with the same
objective value and gradient norm at every point. On a bag-of-words or Fisher-vector data set of 1,500
images and 10,000-100,000 features each iteration then costs ``n x r`` instead of ``n x d``.
"""
import numpy as np

# Directions of X with a squared singular value below this share of the largest are dropped: float32
# features do not define them, and the penalty keeps the weights along them near zero anyway.
_RELATIVE_EIGENVALUE = 1e-10
_COLUMNS = 4096  # columns of X taken to float64 at a time


class RowSpace:
    """``X = Z V^T``: ``features`` is ``Z`` (float32, ``n x r``), ``basis`` is ``V`` (float32, ``d x r``)."""

    def __init__(self, X):
        n, d = X.shape
        blocks = [slice(start, start + _COLUMNS) for start in range(0, d, _COLUMNS)]
        gram = np.zeros((n, n))  # in float64, a block of columns at a time: never a float64 copy of X
        for block in blocks:
            part = np.asarray(X[:, block], np.float64)
            gram += part @ part.T
        values, vectors = np.linalg.eigh(gram)
        keep = values > max(values[-1], 0.0) * _RELATIVE_EIGENVALUE
        singular = np.sqrt(values[keep])
        self.features = (vectors[:, keep] * singular).astype(np.float32)
        coefficients = vectors[:, keep] / singular
        self.basis = np.empty((d, len(singular)), np.float32)
        for block in blocks:
            self.basis[block] = np.asarray(X[:, block], np.float64).T @ coefficients

    def reduce(self, params):
        """``[V^T W, b]`` for the linear parameters ``[W, b]`` (``W``: ``d x classes``)."""
        weights, bias = params
        return [np.ascontiguousarray(self.basis.T @ weights, np.float32), np.array(bias, np.float32)]

    def expand(self, params):
        """``[V B, b]`` for the parameters ``[B, b]`` fitted on ``features``."""
        weights, bias = params
        return [self.basis @ weights, bias]


def applies(X, l1: float, full_batch: bool) -> bool:
    """Whether a fit should go through the row space: fewer rows than features, no L1 penalty (its
    minimiser is not in the row space), and a full-batch optimiser that solves to a tolerance (mini-batch
    trajectories would change with the variables)."""
    return full_batch and l1 == 0 and X.shape[0] < X.shape[1]
