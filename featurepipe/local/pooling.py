"""Spatial pooling: encode local descriptors and sum (or max) their codes over a spatial pyramid's cells.

How the codes of one cell become one vector is a registered stage (kind ``"pooling"``): ``sum`` or ``max``.

A pyramid level ``g`` splits the image into a ``g x g`` grid (``(2,)`` is the four quadrants of Coates et
al.; ``(1, 2, 4)`` Lazebnik et al.'s pyramid). A descriptor belongs to the cell holding its centre. The
descriptors of a block of images are sorted by (image, cell of the finest grid), so each cell is a run
of consecutive rows; rows are encoded a chunk at a time, small enough for the codes to stay in cache,
and each run reduced as soon as it is encoded. Coarser levels are sums (or maxima) of finer cells.
"""
from __future__ import annotations

import numpy as np

from ..core import Stage, register
from .base import LocalFeatures

NORMS = ("none", "l1", "l2", "power_l2")
_BLOCK_PIXELS = 1 << 16   # images per block: about this many pixels, so one block's descriptors stay small
_CHUNK_BYTES = 1 << 21    # rows encoded at once: about 2 MiB of codes, the L2 cache of one core
_EPS = np.float32(1e-12)


class Pooling(Stage):
    """Base of poolings: how codes of the descriptors in one cell, and cells of a finer grid, combine."""

    kind = "pooling"

    def runs(self, codes: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """One row per run of rows of ``codes`` (runs begin at ``starts``): ``(len(starts), K)``."""
        raise NotImplementedError

    def merge(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Two pooled results of the same cells as one."""
        raise NotImplementedError

    def cells(self, x: np.ndarray, axis) -> np.ndarray:
        """Pooled cells combined along ``axis`` (finer cells into a coarser one)."""
        raise NotImplementedError

    def of_counts(self, votes: np.ndarray) -> np.ndarray:
        """The pooled one-hot codes of cells holding ``votes`` descriptors per word."""
        raise NotImplementedError


@register("pooling", "sum")
class SumPooling(Pooling):
    """The sum of the codes: word histograms, and the statistics Fisher vectors and VLAD are built from."""

    def runs(self, codes, starts):
        # A loop over runs: a chunk holds only a few, and ``ufunc.reduceat`` along rows is several times
        # slower than one BLAS vector-matrix product per run.
        bounds = np.append(starts, len(codes))
        ones = np.ones(len(codes), codes.dtype)
        return np.stack([ones[:b - a] @ codes[a:b] for a, b in zip(bounds[:-1], bounds[1:])])

    def merge(self, a, b):
        return a + b

    def cells(self, x, axis):
        return np.sum(x, axis=axis)

    def of_counts(self, votes):
        return votes


@register("pooling", "max")
class MaxPooling(Pooling):
    """The largest code per word: which words occur (Coates & Ng's max pooling of k-means features)."""

    def runs(self, codes, starts):
        bounds = np.append(starts, len(codes))
        return np.stack([np.maximum.reduce(codes[a:b], axis=0) for a, b in zip(bounds[:-1], bounds[1:])])

    def merge(self, a, b):
        return np.maximum(a, b)

    def cells(self, x, axis):
        return np.max(x, axis=axis)

    def of_counts(self, votes):
        return np.minimum(votes, 1, out=votes)


def valid_pyramid(levels) -> bool:
    """A non-empty list of grid sizes, each dividing the finest (so cells nest)."""
    return (isinstance(levels, (list, tuple)) and len(levels) > 0
            and all(isinstance(g, (int, np.integer)) and not isinstance(g, bool) and g > 0 for g in levels)
            and all(max(levels) % g == 0 for g in levels))


def cell_ids(positions: np.ndarray, grid: int) -> np.ndarray:
    """Row-major index of the ``grid x grid`` cell holding each relative (row, col) position."""
    cell = np.minimum((positions * grid).astype(np.int64), grid - 1)
    return cell[:, 0] * grid + cell[:, 1]


def pool_cells(features: LocalFeatures, encoding, grid: int, pooling: Pooling):
    """Pooled codes ``(n, grid * grid, n_pooled)`` and descriptor counts ``(n, grid * grid)`` per cell."""
    n, cells = len(features.counts), grid * grid
    image = np.repeat(np.arange(n), features.counts)
    segment = image * cells + cell_ids(features.positions, grid)
    order = np.argsort(segment, kind="stable")
    segment, values = segment[order], features.values[order]
    pooled = np.zeros((n * cells, encoding.n_pooled), encoding.dtype)
    rows = max(1, _CHUNK_BYTES // (4 * encoding.n_codes))
    for start in range(0, len(values), rows):
        chunk = segment[start:start + rows]
        starts = np.flatnonzero(np.concatenate(([True], chunk[1:] != chunk[:-1])))
        part = encoding.pool(values[start:start + rows], starts, pooling)
        ids = chunk[starts]  # distinct, so fancy-index updates are exact
        pooled[ids] = pooling.merge(pooled[ids], part)
    counts = np.bincount(segment, minlength=n * cells)
    return pooled.reshape(n, cells, -1), counts.reshape(n, cells)


def pyramid(cells: np.ndarray, counts: np.ndarray, grid: int, levels, pooling: Pooling):
    """Cells of every level from the finest ``grid``: ``(n, sum g^2, n_pooled)`` and their counts."""
    n, _, width = cells.shape
    out, out_counts = [], []
    for g in levels:
        step = grid // g
        out.append(pooling.cells(cells.reshape(n, g, step, g, step, width), axis=(2, 4)).reshape(n, g * g, width))
        out_counts.append(counts.reshape(n, g, step, g, step).sum(axis=(2, 4)).reshape(n, g * g))
    return np.concatenate(out, axis=1), np.concatenate(out_counts, axis=1)


def normalise(x: np.ndarray, norm: str) -> np.ndarray:
    """Normalise along the last axis: L1, L2, or signed square root then L2 (Perronnin et al. 2010)."""
    if norm == "none":
        return x
    if norm == "l1":
        return x / np.maximum(np.abs(x).sum(axis=-1, keepdims=True), _EPS)
    if norm == "power_l2":
        x = np.sign(x) * np.sqrt(np.abs(x))
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), _EPS)


def encode_images(describe, encoding, batch: np.ndarray, levels, pooling: Pooling, norm: str = "none"):
    """Features ``(n, sum g^2 * d_cell)`` of a stacked uint8 batch: ``describe(block) -> LocalFeatures``,
    encoding, pyramid pooling, then per-cell normalisation; a block of images at a time."""
    grid = max(levels)
    step = max(1, _BLOCK_PIXELS // (batch.shape[1] * batch.shape[2]))
    out = []
    for start in range(0, len(batch), step):
        cells, counts = pool_cells(describe(batch[start:start + step]), encoding, grid, pooling)
        cells, counts = pyramid(cells, counts, grid, levels, pooling)
        out.append(normalise(encoding.finish(cells, counts), norm).reshape(len(cells), -1))
    return np.concatenate(out).astype(np.float32, copy=False)
