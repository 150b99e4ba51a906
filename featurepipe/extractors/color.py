"""Colour histograms: RGB (joint or per channel) and HSV colour quantisation, with an optional spatial grid.

One ``cv2.calcHist`` call counts a chunk of images at once: an extra uint8 plane holding each pixel's
(image, grid cell) id is the histogram's first dimension, so each call returns up to 256 histograms,
already in the (image, cell, bin) order of the features. calcHist cuts the channels into equal bins
itself (``value * bins // 256``, exactly); only the first channel goes through a ``cv2.LUT``, to share the
id plane, or to take HSV's circular hue bins. HSV comes from one ``cv2.cvtColor`` over the batch.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..core import Integer, Options, Satisfies, Sequence, register
from .base import Extractor

NORMS = ("l1", "l2", "hellinger", None)
_ID_VALUES = 256  # (image, cell) ids live in one uint8 plane
MAX_CELLS = _ID_VALUES  # grid cells per image, so that one image always fits in a calcHist call


def _grid_cells(shape, grid):
    """Grid-cell index of every pixel of an ``shape`` = (H, W) image split into ``grid`` = (rows, cols)."""
    rows = np.arange(shape[0]) * grid[0] // shape[0]
    cols = np.arange(shape[1]) * grid[1] // shape[1]
    return rows[:, None] * grid[1] + cols[None, :]


def _region_ids(shape, grid, images: int, spread: int) -> np.ndarray:
    """``(image * cells + cell) * spread`` of each pixel of ``images`` stacked (H, W) images: a uint8 plane."""
    ids = np.arange(images)[:, None, None] * (grid[0] * grid[1]) + _grid_cells(shape, grid)
    return (ids * spread).astype(np.uint8).reshape(images * shape[0], shape[1])


def histograms(first: np.ndarray, batch: np.ndarray, channels, sizes, grid=(1, 1)) -> np.ndarray:
    """Joint counts per image and grid cell of the levels ``first`` and the channels of ``batch``.

    ``first`` is ``(n, H, W)`` uint8 with values below ``sizes[0]``; ``batch[..., channels]`` are
    ``(n, H, W, C)`` uint8 values cut into ``sizes[1:]`` equal bins over [0, 256) by calcHist itself.
    Returns float32 ``(n, cells * prod(sizes))``.
    """
    n, h, w = first.shape
    cells = grid[0] * grid[1]
    # When they fit, the ids share their plane with ``first``: a joint RGB or HSV histogram then stays
    # within calcHist's fast paths (at most three dimensions).
    fused = cells * sizes[0] <= _ID_VALUES
    spread = sizes[0] if fused else 1
    per_call = _ID_VALUES // (cells * spread)
    ids = _region_ids((h, w), grid, min(n, per_call), spread)
    first = first.reshape(n * h, w)
    planes = batch.reshape(n * h, w, -1)
    out = np.empty((n, cells * math.prod(sizes)), np.float32)
    for start in range(0, n, per_call):
        count = min(per_call, n - start)
        rows = slice(start * h, (start + count) * h)
        if fused:
            arrays, dims = [ids[:count * h] + first[rows]], [count * cells * sizes[0]]
        else:
            arrays, dims = [ids[:count * h], first[rows]], [count * cells, sizes[0]]
        numbers = [*range(len(dims)), *(len(dims) + ch for ch in channels)]  # channels of all arrays, in turn
        ranges = [bound for d in dims for bound in (0, d)] + [0, 256] * len(channels)
        hist = cv2.calcHist(arrays + [planes[rows]], numbers, None, dims + list(sizes[1:]), ranges)
        out[start:start + count] = hist.reshape(count, -1)
    return out


def normalise(hist: np.ndarray, norm) -> np.ndarray:
    """Row-wise L1, L2 or Hellinger (square root of L1) normalisation, in place; ``None`` keeps counts."""
    if norm == "l2":
        hist /= np.maximum(np.linalg.norm(hist, axis=1, keepdims=True), np.float32(1e-12))
    elif norm in ("l1", "hellinger"):
        hist /= np.maximum(hist.sum(axis=1, keepdims=True), np.float32(1e-12))
        if norm == "hellinger":
            np.sqrt(hist, out=hist)
    return hist


def _levels(bins: int) -> np.ndarray:
    """Level of each 8-bit value when [0, 256) is cut into ``bins`` equal bins: ``value * bins // 256``."""
    return ((np.arange(256) * bins) >> 8).astype(np.uint8)


def _channel_levels(batch: np.ndarray, channel: int, table: np.ndarray) -> np.ndarray:
    """``table`` applied to one channel of an ``(n, H, W, C)`` uint8 batch: ``(n, H, W)`` uint8."""
    n, h, w, c = batch.shape
    plane = cv2.extractChannel(batch.reshape(n * h, w, c), channel)
    return cv2.LUT(plane, table).reshape(n, h, w)


def _per_cell(prefix: str, grid, bins) -> list[str]:
    """``<prefix>_cell<k>_<bin>`` for every cell of ``grid`` (row-major) and every name in ``bins``."""
    return [f"{prefix}_cell{cell}_{name}" for cell in range(grid[0] * grid[1]) for name in bins]


_COMMON = {
    "grid": Satisfies(lambda g: Sequence(Integer(1), length=2).holds(g) and g[0] * g[1] <= MAX_CELLS,
                      f"must be [rows, cols], positive integers, at most {MAX_CELLS} cells"),
    "norm": Options(*NORMS, message=f"must be one of {NORMS}"),
}


@register("extractor", "color_hist")
class ColorHistogram(Extractor):
    """RGB histogram with ``bins`` levels per channel: ``joint`` (bins**3 colours) or per ``channels``."""

    colour_only = True
    _constraints = {"bins": Integer(1, 256), "mode": Options("joint", "channels"), **_COMMON}

    def __init__(self, bins=8, mode="joint", grid=(1, 1), norm="l1"):
        self.bins = bins
        self.mode = mode
        self.grid = grid
        self.norm = norm

    def _feature_names(self, shape):
        """``color_hist_cell0_r3_g2_b1`` (grid cell 0, joint bin of levels 3, 2, 1), or per channel
        ``color_hist_cell0_g5`` (level 5 of green)."""
        levels = range(self.bins)
        if self.mode == "joint":
            bins = [f"r{r}_g{g}_b{b}" for r in levels for g in levels for b in levels]
        else:
            bins = [f"{channel}{level}" for channel in "rgb" for level in levels]
        return _per_cell(self.name, self.grid, bins)

    def _transform_batch(self, batch):
        levels = _levels(self.bins)
        if self.mode == "joint":
            hist = histograms(_channel_levels(batch, 0, levels), batch, (1, 2), (self.bins,) * 3, self.grid)
        else:
            per_channel = [histograms(_channel_levels(batch, c, levels), batch, (), (self.bins,), self.grid)
                           for c in range(3)]
            hist = np.stack([h.reshape(len(batch), -1, self.bins) for h in per_channel], axis=2)
        return normalise(hist.reshape(len(batch), -1), self.norm)


@register("extractor", "hsv_hist")
class HSVHistogram(Extractor):
    """HSV colour quantisation: a joint hue x saturation x value histogram with ``bins`` = (h, s, v).

    Hue is circular: hue bins are centred on 0 degrees, so reds on either side of it share a bin.
    """

    colour_only = True
    _constraints = {"bins": Sequence(Integer(1, 180), length=3,
                                     message="must be [hue, saturation, value] integers in [1, 180]"), **_COMMON}

    def __init__(self, bins=(8, 3, 3), grid=(1, 1), norm="l1"):
        self.bins = bins
        self.grid = grid
        self.norm = norm

    def _feature_names(self, shape):
        """``hsv_hist_cell0_h5_s1_v2``: grid cell 0, hue bin 5 (bin 0 centred on red), saturation 1, value 2."""
        h, s, v = (range(b) for b in self.bins)
        return _per_cell(self.name, self.grid, [f"h{i}_s{j}_v{k}" for i in h for j in s for k in v])

    def _transform_batch(self, batch):
        n, h, w, _ = batch.shape
        hsv = cv2.cvtColor(batch.reshape(n * h, w, 3), cv2.COLOR_RGB2HSV).reshape(batch.shape)
        # OpenCV hue is degrees / 2 in [0, 180): bin = floor((deg + half bin) / bin width) mod nh.
        hue = ((np.arange(256) * self.bins[0] + 90) // 180 % self.bins[0]).astype(np.uint8)
        hist = histograms(_channel_levels(hsv, 0, hue), hsv, (1, 2), self.bins, self.grid)
        return normalise(hist, self.norm)
