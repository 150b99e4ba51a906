"""Fitting a linear head in the row space of ``X`` when there are fewer samples than features.

With an L2 penalty only, the minimiser of ``loss(X W + b) + 0.5 alpha ||W||^2`` lies in the span of the
rows of ``X``: a part of ``W`` orthogonal to every row leaves the scores unchanged and only adds penalty.
With the thin decomposition ``X = Z V^T`` (``V``, ``d x r``, orthonormal columns; ``Z = X V``, ``n x r``;
``r <= n``), ``W = V B`` turns the problem into the same one on the ``r`` features ``Z``, with the same
objective value and gradient norm at every point. On a bag-of-words or Fisher-vector data set of 1,500
images and 10,000-100,000 features each iteration then costs ``n x r`` instead of ``n x d``.

Everything but ``V`` comes from the Gram matrix ``K = X X^T`` alone (``GramSpace``): ``Z = U sqrt(L)`` from
its eigen-decomposition ``K = U L U^T``, and the features of other rows ``X'`` in the same basis are
``X' V = (X' X^T) U L^(-1/2)``. A cross-validated search computes one Gram matrix of all its rows and takes
each fold's from it, so that no fold reads the ``d`` features again (``selection.py``).
"""
import numpy as np

# Directions of X with a squared singular value below this share of the largest are dropped: a Gram matrix
# of float32 products defines eigenvalues down to about 1e-7 of its largest (rounding puts that much on every
# direction, see ``gram``), and the penalty keeps the weights along such directions near zero anyway.
_RELATIVE_EIGENVALUE = 1e-6
_COLUMNS = 4096  # columns of X taken at a time


def gram(X, Y=None) -> np.ndarray:
    """``X Y^T`` (``Y`` defaults to ``X``) in float64, accumulated over blocks of ``_COLUMNS`` columns whose
    products run in float32: BLAS's float32 speed, with rounding errors of one block's sum only, and never a
    float64 copy of ``X``."""
    same = Y is None
    Y = X if same else Y
    out = np.zeros((X.shape[0], Y.shape[0]))
    for start in range(0, X.shape[1], _COLUMNS):
        part = np.asarray(X[:, start:start + _COLUMNS], np.float32)
        other = part if same else np.asarray(Y[:, start:start + _COLUMNS], np.float32)
        out += part @ other.T
    return out


class GramSpace:
    """The row space of rows known by their Gram matrix ``K = X X^T``: ``features`` is ``Z`` (float32,
    ``n x r``, orthogonal columns), and ``project(X' X^T)`` gives other rows' features ``X' V``."""

    def __init__(self, K):
        values, vectors = np.linalg.eigh(np.asarray(K, np.float64))
        keep = values > max(values[-1], 0.0) * _RELATIVE_EIGENVALUE
        singular = np.sqrt(values[keep])
        self.features = (vectors[:, keep] * singular).astype(np.float32)
        self.coefficients = vectors[:, keep] / singular  # U L^(-1/2): V = X^T coefficients

    def project(self, cross) -> np.ndarray:
        """The features ``X' V`` of other rows from their products with these rows, ``cross = X' X^T``."""
        return (np.asarray(cross, np.float64) @ self.coefficients).astype(np.float32)

    def transfer(self, other: "GramSpace", cross, params):
        """Parameters ``[B, b]`` fitted in ``other``'s space taken into this one: ``V^T V' B``, where ``cross``
        is this space's rows' products with ``other``'s (``X X'^T``). Where a fold's fit starts from the
        previous fold's solution."""
        weights, bias = params
        moved = self.coefficients.T @ (np.asarray(cross, np.float64) @ (other.coefficients @ weights))
        return [moved.astype(np.float32), np.array(bias, np.float32)]


class RowSpace(GramSpace):
    """``X = Z V^T``: ``features`` is ``Z`` (float32, ``n x r``), ``basis`` is ``V`` (float32, ``d x r``).
    ``K``, when given, is ``X X^T`` computed beforehand (``gram(X)``)."""

    def __init__(self, X, K=None):
        super().__init__(gram(X) if K is None else K)
        d = X.shape[1]
        self.basis = np.empty((d, self.coefficients.shape[1]), np.float32)
        for start in range(0, d, _COLUMNS):
            block = slice(start, start + _COLUMNS)
            self.basis[block] = np.asarray(X[:, block], np.float64).T @ self.coefficients

    def reduce(self, params):
        """``[V^T W, b]`` for the linear parameters ``[W, b]`` (``W``: ``d x classes``)."""
        weights, bias = params
        return [np.ascontiguousarray(self.basis.T @ weights, np.float32), np.array(bias, np.float32)]

    def expand(self, params):
        """``[V B, b]`` for the parameters ``[B, b]`` fitted on ``features``."""
        weights, bias = params
        return [self.basis @ weights, bias]


def applies(n_samples: int, n_features: int, l1: float, full_batch: bool) -> bool:
    """Whether a fit should go through the row space: fewer rows than features, no L1 penalty (its
    minimiser is not in the row space), and a full-batch optimiser that solves to a tolerance (mini-batch
    trajectories would change with the variables)."""
    return full_batch and l1 == 0 and n_samples < n_features
