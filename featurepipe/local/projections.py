"""Linear maps fitted on sampled descriptors: ZCA whitening and PCA reduction (optionally whitened).

Both are ``y = (x - mean) @ matrix``, with the eigen-decomposition of the sample covariance done in
float64 and the result stored in float32. Any descriptor can go through either.
"""
from __future__ import annotations

import numpy as np

PROJECTIONS = ("none", "zca", "pca")


def _eigen(samples: np.ndarray):
    """Mean and eigen-decomposition (eigenvalues descending) of the covariance of ``samples`` (n, d)."""
    x = np.asarray(samples, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least two samples of shape (n, d), got {x.shape}")
    mean = x.mean(axis=0)
    x = x - mean
    values, vectors = np.linalg.eigh(x.T @ x / (len(x) - 1))
    return mean, np.maximum(values[::-1], 0.0), vectors[:, ::-1]


def fit_zca(samples: np.ndarray, eps: float):
    """ZCA whitening ``(mean, W)``: ``W = V diag(1 / sqrt(lambda + eps)) V^T`` (Coates et al. use eps 0.1).

    With ``eps`` small against the eigenvalues the whitened samples have identity covariance; ZCA is the
    whitening closest to the input, so whitened patches still look like patches.
    """
    mean, values, vectors = _eigen(samples)
    matrix = (vectors / np.sqrt(values + eps)) @ vectors.T
    return mean.astype(np.float32), matrix.astype(np.float32)


def fit_pca(samples: np.ndarray, n_components: int, whiten: bool = False, eps: float = 1e-8):
    """PCA ``(mean, P)`` with ``P`` of shape ``(d, n_components)``: the leading principal axes.

    ``whiten`` divides each axis by ``sqrt(lambda + eps)`` so projections have unit variance.
    """
    mean, values, vectors = _eigen(samples)
    if n_components > len(values):
        raise ValueError(f"n_components={n_components} exceeds the descriptor length {len(values)}")
    matrix = vectors[:, :n_components]
    if whiten:
        matrix = matrix / np.sqrt(values[:n_components] + eps)
    return mean.astype(np.float32), matrix.astype(np.float32)


def fit_projection(samples: np.ndarray, kind: str, n_components: int | None = None, whiten: bool = False,
                   eps: float = 0.1):
    """``(mean, matrix)`` of ``kind`` ``'zca'`` (whitening regularised by ``eps``) or ``'pca'``."""
    if kind == "zca":
        return fit_zca(samples, eps)
    if kind == "pca":
        return fit_pca(samples, n_components, whiten, eps)
    raise ValueError(f"projection must be 'zca' or 'pca', got {kind!r}")


def project(values: np.ndarray, mean: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``(values - mean) @ matrix`` in float32."""
    return (np.asarray(values, np.float32) - mean) @ matrix
