"""Local colour statistics: the colour descriptor of Sánchez, Perronnin et al.'s Fisher vectors (IJCV 2013).

A ``size x size`` patch is cut into ``grid x grid`` sub-regions, and each sub-region gives the mean and the
standard deviation of each RGB channel: 4 x 4 x 3 x 2 = 96 values by default, on the 0-1 scale. Dense SIFT
sees gradients of intensity; these see the colours themselves, so the two are complementary (the published
system concatenates a Fisher vector of each). Sub-region sums come from integral images of the whole batch,
so every patch of every image costs a few lookups.
"""
from __future__ import annotations

import numpy as np

from ..core import Integer, register, require
from .base import Descriptor, LocalFeatures


@register("descriptor", "color_stats")
class ColourStatistics(Descriptor):
    """Mean and standard deviation of R, G and B in each of ``grid x grid`` sub-regions of every ``size x
    size`` patch at ``stride`` (patches taken whole); ``3 * 2 * grid * grid`` values. A grey image (one
    channel, or three equal ones) gives its grey statistics in all three colour slots, so a data set may mix
    grey and colour images."""

    _constraints = {"size": Integer(2), "stride": Integer(1), "grid": Integer(1)}

    def __init__(self, size=16, stride=4, grid=4):
        self.size = size
        self.stride = stride
        self.grid = grid

    @property
    def n_features(self):
        return 3 * 2 * self.grid * self.grid

    def _check_combination(self):
        require(self.size % self.grid == 0, "size", f"must be a multiple of grid ({self.grid}): the sub-regions "
                "tile the patch", self.size)

    def compute(self, batch):
        n, h, w = batch.shape[:3]
        if h < self.size or w < self.size:
            raise ValueError(f"color_stats: image of {h}x{w} pixels is smaller than one {self.size}x{self.size} patch")
        rgb = np.asarray(batch, np.float32) / np.float32(255)
        if rgb.shape[-1] == 1:
            rgb = np.repeat(rgb, 3, axis=-1)
        cell = self.size // self.grid
        means, squares = (_cell_means(values, cell) for values in (rgb, rgb * rgb))
        rows = np.arange(0, h - self.size + 1, self.stride)
        cols = np.arange(0, w - self.size + 1, self.stride)
        offsets = np.arange(self.grid) * cell
        r = (rows[:, None] + offsets[None, :])[:, None, :, None]  # (rows, 1, grid, 1)
        c = (cols[:, None] + offsets[None, :])[None, :, None, :]  # (1, cols, 1, grid)
        mean = means[:, r, c]        # (n, rows, cols, grid, grid, 3)
        spread = np.sqrt(np.maximum(squares[:, r, c] - mean * mean, 0))
        values = np.stack([mean, spread], axis=-1).reshape(n * len(rows) * len(cols), self.n_features)
        centres = np.stack(np.meshgrid((rows + self.size / 2) / h, (cols + self.size / 2) / w, indexing="ij"), -1)
        positions = np.tile(centres.reshape(-1, 2).astype(np.float32), (n, 1))
        return LocalFeatures(values.astype(np.float32), np.full(n, len(rows) * len(cols), np.int64), positions)


def _cell_means(values: np.ndarray, cell: int) -> np.ndarray:
    """The mean of ``values`` (n, H, W, C) over every ``cell x cell`` window, indexed by its top-left pixel:
    (n, H - cell + 1, W - cell + 1, C), from the batch's integral image."""
    n, h, w, channels = values.shape
    integral = np.zeros((n, h + 1, w + 1, channels), np.float64)
    np.cumsum(np.cumsum(values, axis=1, dtype=np.float64), axis=2, out=integral[:, 1:, 1:])
    sums = (integral[:, cell:, cell:] - integral[:, :-cell, cell:] - integral[:, cell:, :-cell]
            + integral[:, :-cell, :-cell])
    return (sums / (cell * cell)).astype(np.float32)
