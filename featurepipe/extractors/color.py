"""Colour histograms: RGB (joint or per channel) and HSV colour quantisation, with an optional spatial grid.

Each pixel gets an integer code (its colour bin, offset by its grid cell and its image) and one
``bincount`` builds every histogram of the batch at once.
"""
from __future__ import annotations

import cv2
import numpy as np

from .base import Extractor, require
from .registry import register

NORMS = ("l1", "l2", "hellinger", None)


def _grid_cells(shape, grid):
    """Grid-cell index of every pixel of an ``shape`` = (H, W) image split into ``grid`` = (rows, cols)."""
    rows = np.arange(shape[0]) * grid[0] // shape[0]
    cols = np.arange(shape[1]) * grid[1] // shape[1]
    return rows[:, None] * grid[1] + cols[None, :]


def histograms(codes: np.ndarray, n_codes: int, grid=(1, 1), norm="l1") -> np.ndarray:
    """Histograms of integer ``codes`` (n, H, W[, k]) in [0, n_codes), per grid cell, normalised per image.

    A trailing axis ``k`` holds several codes per pixel (one per channel); they share the histogram.
    """
    n, h, w = codes.shape[:3]
    cells = grid[0] * grid[1]
    offset = _grid_cells((h, w), grid) * n_codes
    if codes.ndim == 4:
        offset = offset[..., None]
    index = codes + offset + (np.arange(n) * (cells * n_codes)).reshape((n,) + (1,) * (codes.ndim - 1))
    hist = np.bincount(index.ravel(), minlength=n * cells * n_codes).reshape(n, -1).astype(np.float32)
    return normalise(hist, norm)


def normalise(hist: np.ndarray, norm) -> np.ndarray:
    """Row-wise L1, L2 or Hellinger (square root of L1) normalisation; ``None`` keeps counts."""
    if norm is None:
        return hist
    if norm == "l2":
        return hist / np.maximum(np.linalg.norm(hist, axis=1, keepdims=True), np.float32(1e-12))
    hist = hist / np.maximum(hist.sum(axis=1, keepdims=True), np.float32(1e-12))
    return np.sqrt(hist) if norm == "hellinger" else hist


def _check_common(extractor):
    require(isinstance(extractor.grid, (list, tuple)) and len(extractor.grid) == 2
            and all(isinstance(g, int) and g > 0 for g in extractor.grid),
            "grid", "must be [rows, cols], positive integers", extractor.grid)
    require(extractor.norm in NORMS, "norm", f"must be one of {NORMS}", extractor.norm)


@register("color_hist")
class ColorHistogram(Extractor):
    """RGB histogram with ``bins`` levels per channel: ``joint`` (bins**3 colours) or per ``channels``."""

    def __init__(self, bins=8, mode="joint", grid=(1, 1), norm="l1"):
        self.bins = bins
        self.mode = mode
        self.grid = grid
        self.norm = norm

    def check_params(self):
        require(isinstance(self.bins, int) and 1 <= self.bins <= 256, "bins", "must be an integer in [1, 256]",
                self.bins)
        require(self.mode in ("joint", "channels"), "mode", "must be 'joint' or 'channels'", self.mode)
        _check_common(self)

    def _transform_batch(self, batch):
        levels = ((np.arange(256) * self.bins) >> 8).astype(np.int32)[batch]
        if self.mode == "joint":
            codes = (levels[..., 0] * self.bins + levels[..., 1]) * self.bins + levels[..., 2]
            return histograms(codes, self.bins**3, self.grid, self.norm)
        return histograms(levels + np.arange(3) * self.bins, 3 * self.bins, self.grid, self.norm)


@register("hsv_hist")
class HSVHistogram(Extractor):
    """HSV colour quantisation: a joint hue x saturation x value histogram with ``bins`` = (h, s, v).

    Hue is circular: hue bins are centred on 0 degrees, so reds on either side of it share a bin.
    """

    def __init__(self, bins=(8, 3, 3), grid=(1, 1), norm="l1"):
        self.bins = bins
        self.grid = grid
        self.norm = norm

    def check_params(self):
        require(isinstance(self.bins, (list, tuple)) and len(self.bins) == 3
                and all(isinstance(b, int) and 1 <= b <= 180 for b in self.bins),
                "bins", "must be [hue, saturation, value] integers in [1, 180]", self.bins)
        _check_common(self)

    def _transform_batch(self, batch):
        n, h, w, _ = batch.shape
        hsv = cv2.cvtColor(batch.reshape(n * h, w, 3), cv2.COLOR_RGB2HSV).reshape(n, h, w, 3)
        nh, ns, nv = self.bins
        # OpenCV hue is degrees / 2 in [0, 180): bin = floor((deg + half bin) / bin width) mod nh.
        hue_bin = ((np.arange(180) * nh + 90) // 180 % nh).astype(np.int32)
        sat_bin = ((np.arange(256) * ns) >> 8).astype(np.int32)
        val_bin = ((np.arange(256) * nv) >> 8).astype(np.int32)
        codes = (hue_bin[hsv[..., 0]] * ns + sat_bin[hsv[..., 1]]) * nv + val_bin[hsv[..., 2]]
        return histograms(codes, nh * ns * nv, self.grid, self.norm)
