"""Feature matrices for the heads, read from the store a block of rows at a time.

A head trains on one float32 matrix whose rows are taken from one or more feature entries (the
training split, its augmented copies), normalised as they are read: the stored features are never
held whole, nor copied again for a normalised version or a subset. Rows are laid out so that every
subset a fit uses (the fit rows of a holdout split, then all training rows for the refit) is a
contiguous slice, a view. A matrix too large for the memory at hand is a memory-mapped file.

Rows of an entry stored at float16 (``store/precision.py``) arrive widened to float32; the matrix stays
float32, the type the heads compute in. Holding it at float16 as well would halve it again, but only
with heads whose passes over it (``X @ W``, Gram tiles, preconditioners) widen a block at a time.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

from .core.memory import available_memory
from .store import FeatureStore

_BLOCK_BYTES = 64 << 20  # stored rows read at once
_MEMORY_SHARE = 0.6      # a matrix larger than this share of the available memory goes to disk


@dataclass(frozen=True)
class Segment:
    """Rows ``rows`` (in this order) of feature entry ``key``."""

    key: str
    rows: np.ndarray


def iter_blocks(store: FeatureStore, key: str, rows: np.ndarray):
    """``(positions, block)`` pairs covering ``rows`` of entry ``key``: ``block[j]`` is the stored row
    ``rows[positions[j]]``. The entry is read once, in chunk-aligned blocks, whatever the order of ``rows``."""
    array = store.feature_array(key)
    n, d = array.shape
    rows = np.asarray(rows, np.int64)
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    chunk = array.chunks[0]
    span = max(chunk, _BLOCK_BYTES // max(4 * d, 1) // chunk * chunk)
    for start in range((ordered[0] // chunk) * chunk if len(ordered) else n, n, span):
        lo, hi = np.searchsorted(ordered, [start, start + span])
        if lo == len(ordered):
            break
        if lo == hi:
            continue
        block = store.read_rows(key, start, min(start + span, n))
        yield order[lo:hi], block[ordered[lo:hi] - start]


def allocate(n_rows: int, n_columns: int) -> np.ndarray:
    """An uninitialised float32 ``(n_rows, n_columns)`` array: in memory when it fits comfortably, else a
    memory-mapped temporary file (removed when the array is freed). Comfortably: beside the Gram matrix
    (of its columns, or of its rows when fewer) that a linear head's preconditioner may build from it."""
    size = n_rows * n_columns * 4 + 4 * (min(n_rows, n_columns) + 1) ** 2
    if size <= _MEMORY_SHARE * available_memory():
        return np.empty((n_rows, n_columns), np.float32)
    fd, path = tempfile.mkstemp(prefix="featurepipe-matrix-", suffix=".f32")
    os.close(fd)
    matrix = np.memmap(path, np.float32, "w+", shape=(n_rows, n_columns))
    os.unlink(path)  # the mapping keeps the data until the array is freed
    return matrix


def build_matrix(store: FeatureStore, segments: list[Segment], normalization) -> np.ndarray:
    """The rows of ``segments``, one after the other, through the fitted ``normalization``."""
    n = sum(len(s.rows) for s in segments)
    d = store.feature_array(segments[0].key).shape[1]
    out = allocate(n, normalization.n_outputs(d))
    offset = 0
    for segment in segments:
        for positions, block in iter_blocks(store, segment.key, segment.rows):
            out[offset + positions] = normalization.transform(block)
        offset += len(segment.rows)
    return out


def fit_normalization(store: FeatureStore, segments: list[Segment], normalization):
    """Fit ``normalization`` on the rows of ``segments``, read a block at a time (once per step that learns)."""
    return normalization.fit_blocks(lambda: (block for s in segments for _, block in iter_blocks(store, s.key, s.rows)))
