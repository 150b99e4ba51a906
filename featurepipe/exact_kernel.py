"""Exact additive kernels between feature rows (``normalize.ExactKernel`` makes them a linear head's features).

``kernel_map`` approximates the chi2 and intersection kernels by explicit features three times as wide
(VLFeat's homogeneous kernel maps); here the kernels are computed exactly, as VLFeat's ``vl_alldist2``
does, for every pair of rows: ``chi2(x, y) = sum_i 2 x_i y_i / (x_i + y_i)``, ``intersection(x, y) =
sum_i min(x_i, y_i)``, on non-negative features (L1-normalised histograms). ``normalize.ExactKernel`` turns a kernel
into features through the training rows' Gram matrix (the empirical kernel map: ``k(x, X) U L^(-1/2)`` from
``K = U L U^T``), so that a linear head on them is the kernel SVM or kernel logistic regression on the span of
the training rows, and a search fits its folds from one kernel matrix (``selection.Grams``). It costs
``n^2 d`` kernel terms and keeps the ``n`` training rows with the head.
"""
from __future__ import annotations

import functools
from importlib.util import find_spec

import numpy as np


_ROWS = 256  # rows of X per block of the numpy route


def additive_kernel(X, Y, kernel: str) -> np.ndarray:
    """``k(x_i, y_j)`` for every row of ``X`` and ``Y`` (float64, ``len(X) x len(Y)``); ``ValueError`` on a
    negative value, where these kernels are not defined. Compiled with numba when it is installed (``featurepipe
    [fast]``): both cores, vectorised; else numpy, a block of rows at a time."""
    X, Y = (np.ascontiguousarray(A, np.float32) for A in (X, Y))
    for A in (X, Y):
        if A.size and A.min() < 0:
            raise ValueError(f"the exact {kernel} kernel needs non-negative features (e.g. after l1 or a histogram); "
                             f"found {float(A.min()):.3g}")
    out = np.empty((len(X), len(Y)))
    if find_spec("numba") is not None:
        _compiled(kernel)(X, Y, out)
        return out
    for start in range(0, len(X), _ROWS):
        a = X[start:start + _ROWS, None, :]
        if kernel == "chi2":
            out[start:start + _ROWS] = (2 * a * Y[None] / (a + Y[None] + np.float32(1e-30))).sum(axis=2, dtype=np.float64)
        else:
            out[start:start + _ROWS] = np.minimum(a, Y[None]).sum(axis=2, dtype=np.float64)
    return out


@functools.cache
def _compiled(kernel: str):
    """The loop of ``kernel`` over every pair of rows, compiled (once per process): rows of ``X`` shared between
    the cores, the sum over features vectorised in float32 (``fastmath`` lets it keep several partial sums, so
    its rounding stays near that of a float32 Gram matrix's products, which ``GramSpace`` allows for)."""
    import numba

    prange = numba.prange

    def chi2(X, Y, out):
        for i in prange(X.shape[0]):
            for j in range(Y.shape[0]):
                total = np.float32(0.0)
                for k in range(X.shape[1]):
                    a, b = X[i, k], Y[j, k]
                    total += np.float32(2.0) * a * b / (a + b + np.float32(1e-30))  # 0 where both are 0
                out[i, j] = total

    def intersection(X, Y, out):
        for i in prange(X.shape[0]):
            for j in range(Y.shape[0]):
                total = np.float32(0.0)
                for k in range(X.shape[1]):
                    a, b = X[i, k], Y[j, k]
                    total += a if a < b else b
                out[i, j] = total

    loop = {"chi2": chi2, "intersection": intersection}[kernel]
    return numba.njit(parallel=True, fastmath=True, nogil=True, boundscheck=False)(loop)
