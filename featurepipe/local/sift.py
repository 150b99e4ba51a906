"""SIFT descriptors (OpenCV's ``cv2.SIFT``) on a dense grid at several scales or on detected keypoints."""
from __future__ import annotations

import cv2
import numpy as np

from ..core import Boolean, Integer, Options, Real, Sequence, register
from ..imageops import to_grey
from .base import Descriptor, LocalFeatures

MODES = ("dense", "detect")
_EPS = np.float32(1e-12)


def _dense_grid(h: int, w: int, step: int, sizes) -> tuple[list, np.ndarray]:
    """Upright keypoints centred on a ``step``-pixel grid, every grid point at every size, and their
    relative (row, col) centres."""
    rows = (np.arange(h // step) + 0.5) * step
    cols = (np.arange(w // step) + 0.5) * step
    centres = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
    keypoints = [cv2.KeyPoint(float(c - 0.5), float(r - 0.5), float(size), 0.0)
                 for size in sizes for r, c in centres]
    positions = (np.tile(centres, (len(sizes), 1)) / (h, w)).astype(np.float32)
    return keypoints, positions


@register("descriptor", "sift")
class SIFT(Descriptor):
    """128-d SIFT descriptors of the grey image, L2-normalised (or RootSIFT with ``root``).

    ``mode='dense'``: upright keypoints every ``step`` pixels, once per keypoint diameter in ``sizes``
    (dense SIFT at several scales, as in VLFeat's PHOW). ``mode='detect'``: OpenCV's difference-of-Gaussians
    keypoints with their orientation, at most ``max_keypoints`` per image (0 keeps all). RootSIFT
    (Arandjelovic & Zisserman 2012) L1-normalises then takes square roots, so Euclidean distance between
    descriptors becomes the Hellinger kernel.
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

    def _sample_block(self, batch, count, rng):
        """Dense mode: describe only ``count`` random (image, grid keypoint) pairs, not the whole grid."""
        if self.mode != "dense":
            return super()._sample_block(batch, count, rng)
        grey = to_grey(batch)
        keypoints, _ = _dense_grid(*grey.shape[1:], self.step, self.sizes)
        image, point = rng.integers(len(grey), size=count), rng.integers(len(keypoints), size=count)
        values = np.empty((count, 128), np.float32)
        sift = self._sift()
        for i in np.unique(image):
            rows = np.flatnonzero(image == i)
            values[rows] = sift.compute(grey[i], [keypoints[p] for p in point[rows]])[1]
        return self._normalised(values)

    def compute(self, batch):
        grey = to_grey(batch)
        n, h, w = grey.shape
        sift = self._sift()
        if self.mode == "dense":
            keypoints, grid = _dense_grid(h, w, self.step, self.sizes)
            values = np.empty((n, len(keypoints), 128), np.float32)
            for i in range(n):
                values[i] = sift.compute(grey[i], keypoints)[1]
            counts = np.full(n, len(keypoints), np.int64)
            values, positions = values.reshape(-1, 128), np.tile(grid, (n, 1))
        else:
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
