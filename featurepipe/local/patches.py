"""Raw pixel patches: the descriptor of Coates, Lee & Ng (2011), with their brightness/contrast normalisation.

(Their ZCA whitening is learnt from training patches, so it is the extractor's ``projection='zca'``.)"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core import Boolean, Integer, Real, register
from .base import Descriptor, LocalFeatures


@register("descriptor", "patches")
class Patches(Descriptor):
    """Every ``size x size`` patch at ``stride``, as a vector of ``size * size * C`` pixel values (C = 3
    for colour images, 1 for grey).

    ``normalize`` subtracts each patch's mean and divides by ``sqrt(var + norm_eps)`` (brightness and
    contrast normalisation; ``norm_eps`` is on the 0-255 pixel scale and keeps flat patches from being
    blown up). Patches are taken whole: ``(H - size) // stride + 1`` positions per axis.
    """

    _constraints = {"size": Integer(1), "stride": Integer(1), "normalize": Boolean(),
                    "norm_eps": Real(0, message="must be >= 0")}

    def __init__(self, size=6, stride=1, normalize=True, norm_eps=10.0):
        self.size = size
        self.stride = stride
        self.normalize = normalize
        self.norm_eps = norm_eps

    @property
    def n_features(self):
        """Length of one descriptor of a colour image (a third of it for grey ones)."""
        return self.size * self.size * 3

    def _windows(self, batch):
        """Strided view ``(n, rows, cols, 3, size, size)`` of every patch position."""
        n, h, w, _ = batch.shape
        if h < self.size or w < self.size:
            raise ValueError(f"patches: image of {h}x{w} pixels is smaller than one {self.size}x{self.size} patch")
        return sliding_window_view(batch, (self.size, self.size), axis=(1, 2))[:, ::self.stride, ::self.stride]

    def _normalised(self, values):
        """Per-patch brightness and contrast normalisation, in place on float32 rows."""
        if self.normalize:
            values -= values.mean(axis=1, keepdims=True)
            variance = np.einsum("ij,ij->i", values, values) / values.shape[1]
            values *= (1.0 / np.sqrt(variance + np.float32(self.norm_eps)))[:, None]
        return values

    def compute(self, batch):
        windows = self._windows(batch)
        n, rows, cols = windows.shape[:3]
        values = np.empty((n, rows, cols, self.size, self.size, batch.shape[-1]), np.float32)
        values[...] = windows.transpose(0, 1, 2, 4, 5, 3)
        values = self._normalised(values.reshape(n * rows * cols, -1))
        h, w = batch.shape[1:3]
        centre = self.size / 2
        grid = np.stack(np.meshgrid((np.arange(rows) * self.stride + centre) / h,
                                    (np.arange(cols) * self.stride + centre) / w, indexing="ij"), -1)
        positions = np.tile(grid.reshape(-1, 2).astype(np.float32), (n, 1))
        return LocalFeatures(values, np.full(n, rows * cols, np.int64), positions)

    def _sample_block(self, batch, count, rng):
        """``count`` patches at random images and positions of a block, without computing the others."""
        windows = self._windows(batch)
        n, rows, cols = windows.shape[:3]
        picked = windows[rng.integers(n, size=count), rng.integers(rows, size=count), rng.integers(cols, size=count)]
        return self._normalised(picked.transpose(0, 2, 3, 1).reshape(count, -1).astype(np.float32))
