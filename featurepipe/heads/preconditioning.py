"""A change of variables that lets L-BFGS train a linear head in tens of iterations.

On standardised features with many correlated columns (k-means codes, pooled histograms) the
objective of a linear head is badly conditioned: plain L-BFGS needs hundreds of full passes over
the data or more. Its curvature is close to ``alpha I + (c / n) [X 1]^T [X 1]``, where ``c`` is the
loss's curvature per sample (its ``curvature``: 2 times the share of margin violators for the squared
hinge, a fraction of 1/4 for the softmax). Optimising over ``V = L^T [W; b]``, with ``L L^T`` that matrix, makes the
curvature about the identity; the minimum is the same point, only the path to it is shorter.

A weighted fit (``weights.py``: rows weighted, scaled to mean 1) has the curvature ``alpha I + (c / n) [X 1]^T
diag(w) [X 1]``, and the preconditioners take ``weights`` to be built from it. Any invertible change of variables
leaves the minimum where it is, so the weights are not needed for a correct fit; they keep it a good one: under
``class_weight='balanced'`` a rare class's rows weigh many times a common one's, and an unweighted factor would
misjudge the curvature along the features those rows carry by that ratio.
"""
import numpy as np
from scipy.linalg import cholesky, solve_triangular
from scipy.linalg.blas import ssyrk

from ..core.memory import available_memory

_GRAM_ROWS = 2048  # rows gathered per SYRK update: the matrix is never copied whole
_GRAM_TILE = 8192  # columns per tile of a Gram matrix wider than this
# BLAS solves with a column-major factor in its transposed form run about 2.5x faster than in its plain
# form; a second, transposed copy of the factor makes both solves of an L-BFGS step the fast kind when
# it takes at most this share of the memory available (which counts the page cache that may be holding
# a memory-mapped feature matrix: the copy must not push that out).
_COPY_SHARE = 0.1


class Preconditioner:
    """A change of variables for L-BFGS: ``variables(params)`` gives the flat variables of the parameters,
    ``params(v, out)`` writes the parameters of variables ``v`` into ``out``, ``gradient(grads)`` takes
    gradients into the variables. The ``_together`` forms serve several problems sharing one preconditioner
    (``LBFGS.minimize_together``); a subclass overrides them where one call for all is cheaper.

    ``row_space``: the ``RowSpace`` whose features it was built on, which the fits it serves go through, or
    None when it was built on the features themselves (set by its constructor)."""

    row_space = None

    def params_together(self, vs, outs):
        """``params`` for each of ``vs``, written into the matching ``outs``."""
        for v, out in zip(vs, outs):
            self.params(v, out)

    def gradients_together(self, grads_list):
        """``gradient`` of each of ``grads_list``."""
        return [self.gradient(grads) for grads in grads_list]


class GramPreconditioner(Preconditioner):
    """Map the flat L-BFGS variables ``V`` to a linear head's ``[W, b]`` and gradients back.

    ``L`` is the Cholesky factor of ``alpha I + (c / n) [X 1]^T [X 1]`` (``alpha`` on the weights'
    rows only: biases are not penalised), over every row of ``X``. A sample of rows would be cheaper
    but misses the features that few rows have: their curvature, which only those rows give, goes
    missing from ``L``, and at a small ``alpha`` L-BFGS then needs hundreds of iterations more (on
    CIFAR-10's 45,000 x 8,000 PCA-SIFT words at the smallest alpha of their grid: 149 iterations with
    every row, not converged in 300 with 10,000 or 32,000 of them). ``factor`` is ``L``; ``upper`` a
    transposed copy of it when memory allows (see ``_COPY_SHARE``), else None.
    """

    def __init__(self, X, n_classes, *, alpha, curvature, weights=None):
        n, d = X.shape
        gram = _lower_gram(X, weights)
        gram *= np.float32(curvature / n)
        diagonal = np.einsum("ii->i", gram)
        diagonal[:d] += np.float32(alpha)
        diagonal += np.float32(1e-6) * diagonal.mean()  # keeps the factor defined when alpha is 0
        self.factor = _cholesky_lower(gram)
        self.upper = (np.asfortranarray(self.factor.T) if self.factor.nbytes <= _COPY_SHARE * available_memory()
                      else None)  # L^T, column-major: L x = g solved as (L^T)^T x = g
        self.shape = (d + 1, n_classes)

    def variables(self, params):
        """The flat ``V`` for the parameters ``[W, b]``."""
        return (self.factor.T @ _stacked(params)).ravel()

    def params(self, v, out):
        """Write the ``[W, b]`` of ``V`` into the arrays ``out``."""
        self.params_together([v], [out])

    def gradient(self, grads):
        """The flat gradient with respect to ``V`` from those with respect to ``[W, b]``."""
        return self.gradients_together([grads])[0]

    def params_together(self, vs, outs):
        """``params`` of several ``V`` by one triangular solve: the factor is read once for all of them."""
        columns = np.hstack([v.reshape(self.shape) for v in vs]).astype(np.float32, copy=False)
        solved = solve_triangular(self.factor, columns, lower=True, trans="T", check_finite=False)
        for out, stacked in zip(outs, np.hsplit(solved, len(vs))):
            out[0][...] = stacked[:-1]
            out[1][...] = stacked[-1]

    def gradients_together(self, grads_list):
        """``gradient`` of several ``[W, b]`` by one triangular solve."""
        columns = np.hstack([_stacked(grads) for grads in grads_list])
        if self.upper is not None:
            solved = solve_triangular(self.upper, columns, trans="T", check_finite=False)
        else:
            solved = solve_triangular(self.factor, columns, lower=True, check_finite=False)
        return [part.ravel() for part in np.hsplit(solved, len(grads_list))]


def _lower_gram(X, weights=None) -> np.ndarray:
    """The lower triangle of ``[X 1]^T diag(weights) [X 1]`` (no weights: all 1), float32, in Fortran order
    (so that Cholesky factorises it in place). Rows are gathered ``_GRAM_ROWS`` at a time; up to ``_GRAM_TILE`` columns the
    triangle is one SYRK update per block, beyond that a triangle of tiles (OpenBLAS 0.3.30's SYRK
    writes out of bounds on an output 32,001 columns wide)."""
    d = X.shape[1]
    gram = np.zeros((d + 1, d + 1), np.float32, order="F")
    block = np.ones((_GRAM_ROWS, d + 1), np.float32)  # [x 1] rows
    tiles = _lower_tiles(_tile_edges(d + 1))
    for start in range(0, len(X), _GRAM_ROWS):
        taken = X[start:start + _GRAM_ROWS]
        block[:len(taken), :d] = taken
        part = block[:len(taken)]
        if weights is not None:  # rows [x 1] times sqrt(w)
            root = np.sqrt(weights[start:start + len(taken)]).astype(np.float32)[:, None]
            part[:, :d] *= root
            part[:, d:] = root
        if len(tiles) == 1:
            ssyrk(1.0, part.T, beta=1.0, c=gram, lower=1, overwrite_c=1)
            continue
        for down, across in tiles:
            gram[down, across] += part[:, down].T @ part[:, across]
    return gram


def _cholesky_lower(gram) -> np.ndarray:
    """The lower Cholesky factor of the symmetric ``gram`` (its lower triangle read), in its place. Beyond
    ``_GRAM_TILE`` columns, right-looking by tiles: OpenBLAS 0.3.30's POTRF, like its SYRK, writes out of
    bounds on a 32,001-wide matrix."""
    n = len(gram)
    if n <= _GRAM_TILE:
        return cholesky(gram, lower=True, overwrite_a=True, check_finite=False)
    edges = _tile_edges(n)
    for k, (a, b) in enumerate(zip(edges, edges[1:])):
        corner = cholesky(gram[a:b, a:b], lower=True, check_finite=False)
        gram[a:b, a:b] = corner
        gram[a:b, b:] = 0.0
        if b == n:
            break
        panel = solve_triangular(corner, gram[b:, a:b].T, lower=True, check_finite=False).T  # L21 = A21 L11^-T
        gram[b:, a:b] = panel
        for down, across in _lower_tiles(edges[k + 1:]):  # A22 -= L21 L21^T
            gram[down, across] -= panel[down.start - b:down.stop - b] @ panel[across.start - b:across.stop - b].T
    return gram


def _tile_edges(n: int) -> list[int]:
    """Where a matrix ``n`` wide is cut into tiles of ``_GRAM_TILE`` (the last one ragged)."""
    return list(range(0, n, _GRAM_TILE)) + [n]


def _lower_tiles(edges: list[int]) -> list[tuple[slice, slice]]:
    """``(rows, columns)`` of the tiles on and below the diagonal of the square cut at ``edges``."""
    spans = [slice(a, b) for a, b in zip(edges, edges[1:])]
    return [(down, across) for i, down in enumerate(spans) for across in spans[:i + 1]]


def _stacked(pair):
    """``[W; b]``: a weight matrix with its bias vector as one more row, float32."""
    weights, bias = pair
    return np.vstack([weights, bias[None]]).astype(np.float32, copy=False)


class LowRankPreconditioner(Preconditioner):
    """The same change of variables when there are fewer rows ``m`` than features: the curvature
    ``alpha I + U U^T``, ``U = sqrt(c / m) [X 1]^T``, has rank ``m`` above ``alpha``. From the
    eigen-decomposition of the ``m x m`` matrix ``U^T U = V diag(lam) V^T`` and ``Q = U V diag(lam)^-1/2``:

        P^(+-1/2) = Q diag((lam + alpha)^(+-1/2)) Q^T + alpha^(+-1/2) (I - Q Q^T)

    (the bias is penalised here, a little: the preconditioner only has to be close). Memory is ``Q``,
    ``(d + 1) x m``, never ``(d + 1)^2``; and another ``alpha`` is only another diagonal (``for_alpha``),
    so a whole regularisation path shares one decomposition. With ``weights`` the columns of ``U`` are scaled
    by their square roots; ``row_space`` as for ``OrthogonalPreconditioner`` (``row_space_preconditioner``).
    """

    def __init__(self, X, n_classes, *, alpha, curvature, weights=None, row_space=None):
        self.row_space = row_space
        n, d = X.shape
        Z = np.ones((n, d + 1), np.float32)
        Z[:, :d] = X
        Z *= np.float32(np.sqrt(curvature / n))
        if weights is not None:
            Z *= np.sqrt(weights).astype(np.float32)[:, None]
        values, vectors = np.linalg.eigh((Z @ Z.T).astype(np.float64))
        keep = values > values.max() * 1e-7
        self.values = values[keep]
        self.basis = (Z.T @ (vectors[:, keep] / np.sqrt(self.values)).astype(np.float32))  # Q, orthonormal columns
        self.alpha = max(float(alpha), 1e-6 * float(self.values.mean()))
        self.shape = (d + 1, n_classes)

    def for_alpha(self, alpha) -> "LowRankPreconditioner":
        """The preconditioner of the same rows at another ``alpha``, sharing the decomposition."""
        other = object.__new__(LowRankPreconditioner)
        other.__dict__.update(self.__dict__, alpha=max(float(alpha), 1e-6 * float(self.values.mean())))
        return other

    def _power(self, M, sign):
        """``P^(sign / 2) M`` for a ``(d + 1) x k`` matrix ``M``."""
        inside = self.basis.T @ M
        scaled = inside * ((self.values + self.alpha) ** (sign / 2)).astype(np.float32)[:, None]
        return self.basis @ (scaled - np.float32(self.alpha ** (sign / 2)) * inside) + np.float32(self.alpha ** (sign / 2)) * M

    def variables(self, params):
        return self._power(_stacked(params), +1).ravel()

    def params(self, v, out):
        stacked = self._power(v.reshape(self.shape).astype(np.float32), -1)
        out[0][...] = stacked[:-1]
        out[1][...] = stacked[-1]

    def gradient(self, grads):
        return self._power(_stacked(grads), -1).ravel()


class OrthogonalPreconditioner(Preconditioner):
    """The same change of variables for features whose columns are orthogonal, as a ``RowSpace``'s are
    (``Z^T Z`` diagonal): ``alpha I + (c / n) [Z 1]^T [Z 1]`` is then an arrow matrix, a diagonal with a
    last row and column for the bias, and so is its Cholesky factor: a diagonal ``R`` and a last row
    ``[u^T, l]``. Applying it costs ``O(r k)`` instead of ``O(r^2 k)``, and another ``alpha`` is exact and
    free (``for_alpha``), so every fit of a regularisation path gets its own. ``row_space``: the ``RowSpace``
    whose features ``Z`` are, if any. Unweighted rows only: with weights ``Z^T W Z`` is not diagonal
    (``row_space_preconditioner``).
    """

    def __init__(self, Z, n_classes, *, alpha, curvature, row_space=None):
        self.row_space = row_space
        scale = curvature / len(Z)
        self.squares = scale * np.einsum("ij,ij->j", Z, Z, dtype=np.float64)  # diagonal of (c / n) Z^T Z
        self.sums = scale * Z.sum(axis=0, dtype=np.float64)                  # (c / n) Z^T 1
        self.bias = float(curvature)                                          # (c / n) 1^T 1
        self.shape = (Z.shape[1] + 1, n_classes)
        self._factorise(float(alpha))

    def _factorise(self, alpha):
        diagonal = self.squares + alpha
        jitter = 1e-6 * (diagonal.sum() + self.bias) / (len(diagonal) + 1)  # keeps the factor defined at alpha 0
        root = np.sqrt(diagonal + jitter)
        cross = self.sums / root
        self.root, self.cross = root.astype(np.float32)[:, None], cross.astype(np.float32)[:, None]
        self.corner = np.float32(np.sqrt(max(self.bias + jitter - cross @ cross, jitter)))

    def for_alpha(self, alpha) -> "OrthogonalPreconditioner":
        """The preconditioner of the same features at another ``alpha``."""
        other = object.__new__(OrthogonalPreconditioner)
        other.__dict__.update(self.__dict__)
        other._factorise(float(alpha))
        return other

    def variables(self, params):
        weights, bias = params
        return np.vstack([self.root * weights + self.cross * bias[None], self.corner * bias[None]]).ravel()

    def params(self, v, out):
        stacked = v.reshape(self.shape).astype(np.float32)
        bias = stacked[-1] / self.corner
        out[0][...] = (stacked[:-1] - self.cross * bias[None]) / self.root
        out[1][...] = bias

    def gradient(self, grads):
        weights, bias = grads
        top = weights / self.root
        return np.vstack([top, ((bias - self.cross[:, 0] @ top) / self.corner)[None]]).ravel()


def row_space_preconditioner(space, n_classes, *, alpha, curvature, weights=None):
    """The preconditioner of a fit on the features ``Z`` of ``space`` (a ``GramSpace`` or ``RowSpace``, set as
    its ``row_space`` when it is a ``RowSpace``), with ``for_alpha``: ``OrthogonalPreconditioner`` unweighted,
    where ``Z^T Z`` is diagonal and it is exact; ``LowRankPreconditioner`` with ``weights``, where ``Z^T W Z``
    is not: its diagonal alone lets L-BFGS stall far from the minimum when weights differ a lot (zero weights,
    repeated rows), and the exact form costs one more eigen-decomposition of an ``n x n`` matrix, as the row
    space did."""
    row_space = space if hasattr(space, "basis") else None
    if weights is None:
        return OrthogonalPreconditioner(space.features, n_classes, alpha=alpha, curvature=curvature,
                                        row_space=row_space)
    return LowRankPreconditioner(space.features, n_classes, alpha=alpha, curvature=curvature, weights=weights,
                                 row_space=row_space)


def build_preconditioner(X, n_classes, *, alpha, curvature, weights=None):
    """``GramPreconditioner`` when there are at least as many rows as features, else
    ``LowRankPreconditioner`` (a ``(d + 1)^2`` Gram matrix of, say, 80,000 features would not fit in
    memory, and has rank ``n``). At ``n = d`` the low-rank form would eigen-decompose an ``n x n`` matrix
    in float64, some 30 times the cost of the Gram matrix's Cholesky factor."""
    cls = GramPreconditioner if len(X) >= X.shape[1] else LowRankPreconditioner
    return cls(X, n_classes, alpha=alpha, curvature=curvature, weights=weights)
