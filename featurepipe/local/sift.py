"""SIFT descriptors on a dense grid at several scales (``dsift``, batched numpy) or on keypoints detected by
OpenCV's ``cv2.SIFT``."""
from __future__ import annotations

import cv2
import numpy as np

from ..core import Boolean, Integer, Options, Real, Sequence, register
from ..imageops import to_grey
from .base import Descriptor, LocalFeatures
from .dsift import BIN_WIDTH_PER_SIZE, dense_sift, grid_positions, iter_dense_sift

MODES = ("dense", "detect")
_EPS = np.float32(1e-12)


@register("descriptor", "sift")
class SIFT(Descriptor):
    """128-d SIFT descriptors of the grey image, L2-normalised (or RootSIFT with ``root``).

    ``mode='dense'``: upright keypoints every ``step`` pixels, once per keypoint diameter in ``sizes``
    (dense SIFT at several scales, as in VLFeat's PHOW), computed for the whole batch at once by
    ``dsift.dense_sift``: a keypoint of diameter ``size`` covers the area OpenCV's would (4 x 4 bins of
    ``1.5 * size`` pixels), on the image smoothed for its scale. ``mode='detect'``: OpenCV's
    difference-of-Gaussians keypoints with their orientation, at most ``max_keypoints`` per image (0 keeps
    all). RootSIFT (Arandjelovic & Zisserman 2012) L1-normalises then takes square roots, so Euclidean
    distance between descriptors becomes the Hellinger kernel.
    """

    _constraints = {
        "mode": Options(*MODES, message=f"must be one of {MODES}"),
        "step": Integer(1),
        "sizes": Sequence(Real(0, low_open=True), message="must be a non-empty list of keypoint diameters > 0"),
        "root": Boolean(),
        "max_keypoints": Integer(0),
        "contrast_threshold": Real(0, low_open=True, message="must be > 0"),
    }

    def __init__(self, mode="dense", step=4, sizes=(8, 16), root=False, max_keypoints=0, contrast_threshold=0.04):
        self.mode = mode
        self.step = step
        self.sizes = sizes
        self.root = root
        self.max_keypoints = max_keypoints
        self.contrast_threshold = contrast_threshold

    @property
    def n_features(self):
        return 128

    def _normalised(self, values):
        if self.root:
            values /= np.maximum(np.abs(values).sum(axis=1, keepdims=True), _EPS)
            return np.sqrt(values, out=values)
        values /= np.maximum(np.linalg.norm(values, axis=1, keepdims=True), _EPS)
        return values

    def _sift(self):
        return cv2.SIFT_create(nfeatures=self.max_keypoints, contrastThreshold=self.contrast_threshold)

    def _bin_widths(self):
        return [BIN_WIDTH_PER_SIZE * size for size in self.sizes]

    def _sample_block(self, batch, count, rng):
        """Dense mode: describe only ``count`` random (image, grid keypoint) pairs, not the whole grid."""
        if self.mode != "dense":
            return super()._sample_block(batch, count, rng)
        grey = to_grey(batch)
        _, h, w = grey.shape
        image = rng.integers(len(grey), size=count)
        point = rng.integers(len(self.sizes) * (h // self.step) * (w // self.step), size=count)
        used, which = np.unique(image, return_inverse=True)
        values = np.empty((count, 128), np.float32)
        for start, block in iter_dense_sift(grey[used], self.step, self._bin_widths(), root=self.root):
            rows = np.flatnonzero((which >= start) & (which < start + len(block)))
            values[rows] = block[which[rows] - start, point[rows]]
        return values

    def compute(self, batch):
        grey = to_grey(batch)
        n, h, w = grey.shape
        if self.mode == "dense":  # normalised (and RootSIFT) by dense_sift
            values = dense_sift(grey, self.step, self._bin_widths(), root=self.root)
            positions = np.tile(grid_positions(h, w, self.step, len(self.sizes)), (n, 1))
            return LocalFeatures(values.reshape(-1, 128), np.full(n, values.shape[1], np.int64), positions)
        else:
            sift = self._sift()
            parts, where, counts = [], [], np.zeros(n, np.int64)
            for i in range(n):
                found, described = sift.detectAndCompute(grey[i], None)
                if found:
                    parts.append(described)
                    where.append([(k.pt[1] + 0.5, k.pt[0] + 0.5) for k in found])
                    counts[i] = len(found)
            values = np.concatenate(parts).astype(np.float32) if parts else np.empty((0, 128), np.float32)
            positions = (np.concatenate(where) / (h, w)) if where else np.empty((0, 2))
            positions = np.clip(positions, 0, np.nextafter(1, 0)).astype(np.float32)
        return LocalFeatures(self._normalised(values), counts, positions)
