"""Histogram of Oriented Gradients over whole batches, numerically matching ``skimage.feature.hog``.

skimage loops over cells and orientation bins image by image. Here each step is one array operation
over a slice of the batch. For 8-bit images every gradient is an integer pair (g_row, g_col) in
[-255, 255]^2, so it is coded as one integer ``key`` (computed for all channels by one OpenCV
filter) and everything skimage derives from it -- its float64 ``hypot``, its orientation bin with
skimage's own float32 bin edges -- comes from lookup tables built with skimage's formulas. Pixels on a
bin edge and channels that tie therefore land exactly where skimage puts them. Cell histograms are one
``bincount``; block normalisation works on the cell array.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..imageops import to_grey
from .base import Extractor, require
from .registry import register

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")
_EPS = 1e-5  # skimage's block-normalisation epsilon
_SLICE_PIXELS = 1 << 16  # images per slice: about this many pixels, so temporaries stay in cache

# key = (g_row + 255) * 511 + (g_col + 255), in [0, 511**2).
_SPAN = 511
_KEY_BITS = 18  # 511**2 < 2**18
_KEY_MASK = (1 << _KEY_BITS) - 1
_CHANNEL_BITS = 2  # channel priority (first channel wins ties) sits between the key and the rank
_KEY_KERNEL = np.array([[0, -_SPAN, 0], [-1, 0, 1], [0, _SPAN, 0]], np.float32)


@lru_cache(maxsize=None)
def _bin_edges(orientations: int) -> np.ndarray:
    """Lower bin edges as skimage's Cython computes them: float32(180 / n) * i in float32."""
    width = np.float32(180.0 / orientations)
    return np.array([width * np.float32(i) for i in range(orientations + 1)], dtype=np.float64)


def _orientation_bins(g_row: np.ndarray, g_col: np.ndarray, orientations: int) -> np.ndarray:
    """Bin index of each gradient's unsigned orientation; ``orientations`` marks a pixel in no bin."""
    angle = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    return np.searchsorted(_bin_edges(orientations), angle, side="right") - 1


@lru_cache(maxsize=1)
def _key_tables():
    """Per key: float32 magnitude, and ``rank << (key bits + channel bits) | key``.

    The rank orders keys by skimage's float64 ``hypot``, so a maximum over channels of the packed value
    picks the channel skimage's ``argmax`` picks.
    """
    g = np.arange(-255, 256, dtype=np.float64)
    magnitude = np.hypot(g[:, None], g[None, :]).ravel()
    rank = np.unique(magnitude, return_inverse=True)[1].astype(np.int64)
    packed = (rank << (_KEY_BITS + _CHANNEL_BITS)) | np.arange(magnitude.size)
    return magnitude.astype(np.float32), packed


@lru_cache(maxsize=None)
def _key_bins(orientations: int) -> np.ndarray:
    g = np.arange(-255, 256, dtype=np.float64)
    return _orientation_bins(g[:, None], g[None, :], orientations).astype(np.intp).ravel()


def _gradient_keys(plane: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Gradient keys of ``(n, H, W)`` uint8 planes over the cells' area ``rows x cols``.

    One ``filter2D`` over the planes stacked vertically; its reflected border already gives skimage's
    zero gradient on the outer rows and columns, and each image's first and last rows are redone
    without their neighbour's rows.
    """
    n, h, w = plane.shape
    keys = cv2.filter2D(plane.reshape(n * h, w), cv2.CV_32F, _KEY_KERNEL, delta=255 * _SPAN + 255,
                        borderType=cv2.BORDER_REFLECT_101).reshape(n, h, w)
    edge_rows = [0, h - 1] if rows == h else [0]
    edges = plane[:, edge_rows].astype(np.float32)
    keys[:, edge_rows] = 255 * _SPAN + 255
    keys[:, edge_rows, 1:-1] += edges[:, :, 2:] - edges[:, :, :-2]
    return keys[:, :rows, :cols].astype(np.int64)


def _integer_gradients(images: np.ndarray, rows: int, cols: int):
    """Per pixel of the cells' area: (magnitude, key) of skimage's chosen channel, for uint8 images."""
    magnitude, packed = _key_tables()
    best = None
    for channel in range(images.shape[-1]):
        ranked = packed[_gradient_keys(np.ascontiguousarray(images[..., channel]), rows, cols)]
        ranked |= (images.shape[-1] - 1 - channel) << _KEY_BITS
        best = ranked if best is None else np.maximum(best, ranked, out=best)
    keys = best & _KEY_MASK
    return magnitude[keys], keys


def _float_gradients(images: np.ndarray, transform_sqrt: bool, rows: int, cols: int):
    """Per pixel of the cells' area: (magnitude, g_row, g_col) of the strongest channel, in float64."""
    dtype = np.float32 if images.dtype == np.float32 else np.float64
    images = np.sqrt(images, dtype=dtype) if transform_sqrt else images.astype(dtype, copy=False)
    g_row = np.zeros(images.shape, dtype)
    g_col = np.zeros(images.shape, dtype)
    g_row[:, 1:-1] = images[:, 2:] - images[:, :-2]
    g_col[:, :, 1:-1] = images[:, :, 2:] - images[:, :, :-2]
    pick = np.hypot(g_row, g_col).argmax(axis=-1)[..., None]
    g_row, g_col = (np.take_along_axis(g, pick, -1)[:, :rows, :cols, 0].astype(np.float64) for g in (g_row, g_col))
    return np.hypot(g_col, g_row), g_row, g_col


def _cell_histograms(images, orientations, cell, n_cells, transform_sqrt):
    """Per-cell orientation histograms ``(n, cells_r, cells_c, orientations)``, float64, / cell area."""
    n = images.shape[0]
    rows, cols = n_cells[0] * cell[0], n_cells[1] * cell[1]
    if images.dtype == np.uint8 and not transform_sqrt:
        magnitude, keys = _integer_gradients(images, rows, cols)
        bins = _key_bins(orientations)[keys]
    else:
        magnitude, g_row, g_col = _float_gradients(images, transform_sqrt, rows, cols)
        bins = _orientation_bins(g_row, g_col, orientations)
    # One bincount: index = ((image * cells + cell) * (orientations + 1) + bin); the extra bin is dropped.
    cell_id = (np.arange(rows)[:, None] // cell[0]) * n_cells[1] + np.arange(cols)[None, :] // cell[1]
    per_image = n_cells[0] * n_cells[1] * (orientations + 1)
    bins += cell_id * (orientations + 1) + (np.arange(n) * per_image)[:, None, None]
    hist = np.bincount(bins.ravel(), weights=magnitude.ravel(), minlength=n * per_image)
    hist = hist.reshape(n, n_cells[0], n_cells[1], orientations + 1)[..., :orientations]
    return hist / (cell[0] * cell[1])


def _block_sum(x, block):
    """Sum of ``x`` (n, cells_r, cells_c) over every ``block`` window: (n, blocks_r, blocks_c)."""
    return sliding_window_view(x, block, axis=(1, 2)).sum(axis=(-2, -1))


def _normalise_blocks(hist, block, block_norm):
    """Overlapping blocks of cells, each normalised as skimage does: (n, br, bc, b_r, b_c, orientations)."""
    blocks = sliding_window_view(hist, block, axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    if block_norm in ("L1", "L1-sqrt"):
        norm = _block_sum(np.abs(hist).sum(-1), block) + _EPS
        out = blocks / norm[..., None, None, None]
        return np.sqrt(out) if block_norm == "L1-sqrt" else out
    norm = np.sqrt(_block_sum(np.square(hist).sum(-1), block) + _EPS**2)
    out = blocks / norm[..., None, None, None]
    if block_norm == "L2-Hys":
        out = np.minimum(out, 0.2)
        out /= np.sqrt(np.square(out).sum(axis=(3, 4, 5)) + _EPS**2)[..., None, None, None]
    return out


def hog(images, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3), block_norm="L2-Hys",
        transform_sqrt=False, channel_axis=None, feature_vector=True):
    """HOG of one image or a batch, with ``skimage.feature.hog``'s parameters and output.

    ``images`` is one image (``(H, W)``, or ``(H, W, C)`` with ``channel_axis=-1``) or a batch with one
    more leading axis. Colour images take, per pixel, the gradient of the channel with the largest
    magnitude. Returns float32 ``(n, d)`` for a batch (``(d,)`` for one image) when ``feature_vector``,
    else the ``(n, blocks_r, blocks_c, b_r, b_c, orientations)`` block array.
    """
    images = np.asarray(images)
    single = images.ndim == (2 if channel_axis is None else 3)
    if single:
        images = images[None]
    if channel_axis is None:
        images = images[..., None]
    elif channel_axis not in (-1, images.ndim - 2):
        images = np.moveaxis(images, channel_axis + (1 if channel_axis >= 0 else 0), -1)
    cell, block = tuple(pixels_per_cell), tuple(cells_per_block)
    n_cells = (images.shape[1] // cell[0], images.shape[2] // cell[1])
    if n_cells[0] < block[0] or n_cells[1] < block[1]:
        raise ValueError(f"image of {images.shape[1]}x{images.shape[2]} pixels is smaller than one HOG block "
                         f"({block[0] * cell[0]}x{block[1] * cell[1]} pixels)")
    step = max(1, _SLICE_PIXELS // (images.shape[1] * images.shape[2]))
    hist = np.concatenate([_cell_histograms(images[i:i + step], orientations, cell, n_cells, transform_sqrt)
                           for i in range(0, len(images), step)])
    out = _normalise_blocks(hist, block, block_norm).astype(np.float32)
    if feature_vector:
        out = out.reshape(len(out), -1)
    return out[0] if single else out


def _positive_pair(value):
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and v > 0 for v in value)


@register("hog")
class HOG(Extractor):
    """Histogram of Oriented Gradients (Dalal & Triggs), with ``skimage.feature.hog``'s parameters.

    ``channel_axis=-1`` takes colour gradients (per pixel, the strongest channel); ``None`` works on the
    BT.601 luminance.
    """

    size_dependent = True

    def __init__(self, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3), block_norm="L2-Hys",
                 transform_sqrt=False, channel_axis=-1):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.transform_sqrt = transform_sqrt
        self.channel_axis = channel_axis

    def check_params(self):
        require(isinstance(self.orientations, (int, np.integer)) and 1 <= self.orientations <= 360,
                "orientations", "must be an integer in [1, 360]", self.orientations)
        require(_positive_pair(self.pixels_per_cell), "pixels_per_cell", "must be [rows, cols] > 0",
                self.pixels_per_cell)
        require(_positive_pair(self.cells_per_block), "cells_per_block", "must be [rows, cols] > 0",
                self.cells_per_block)
        require(self.block_norm in BLOCK_NORMS, "block_norm", f"must be one of {BLOCK_NORMS}", self.block_norm)
        require(isinstance(self.transform_sqrt, bool), "transform_sqrt", "must be true or false",
                self.transform_sqrt)
        require(self.channel_axis in (-1, None), "channel_axis", "must be -1 (colour) or null (grey)",
                self.channel_axis)

    def _transform_batch(self, batch):
        if self.channel_axis is None:
            batch = to_grey(batch)
        return hog(batch, self.orientations, self.pixels_per_cell, self.cells_per_block, self.block_norm,
                   self.transform_sqrt, None if self.channel_axis is None else -1)
