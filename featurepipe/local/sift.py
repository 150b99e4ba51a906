"""SIFT descriptors on a dense grid at several scales (``dsift``, batched numpy; or OpenCV's ``cv2.SIFT`` on the
same grid, as a reference) or on keypoints detected by OpenCV's ``cv2.SIFT``."""
from __future__ import annotations

import cv2
import numpy as np

from ..core import Boolean, Integer, Options, Real, Sequence, register, require
from ..imageops import to_grey
from .base import Descriptor, LocalFeatures
from .dsift import BIN_WIDTH_PER_SIZE, dense_sift, grid_centres, grid_positions, iter_dense_sift

MODES = ("dense", "dense_opencv", "detect")
#: The images SIFT describes: the grey image, or three colour channels (VLFeat's PHOW ``Color`` options).
COLOURS = ("grey", "rgb", "hsv", "opponent")
_EPS = np.float32(1e-12)


@register("descriptor", "sift")
class SIFT(Descriptor):
    """128-d SIFT descriptors of the grey image, L2-normalised (or RootSIFT with ``root``); with ``color``
    (dense mode), 3 x 128: one descriptor per channel of the RGB, HSV or opponent image, each normalised on its
    own and joined at every keypoint (VLFeat's PHOW ``Color``). Opponent colour (van de Sande et al. 2010) is
    ``(R - G) / sqrt 2``, ``(R + G - 2B) / sqrt 6`` and the intensity ``(R + G + B) / sqrt 3``; a grey image
    has no colour, so its first two channels describe flat images (zero descriptors) and its third is the
    grey image's SIFT: colour descriptors cost a grey data set nothing but width.

    ``mode='dense'``: upright keypoints every ``step`` pixels, once per keypoint diameter in ``sizes``
    (dense SIFT at several scales, as in VLFeat's PHOW), computed for the whole batch at once by
    ``dsift.dense_sift``: a keypoint of diameter ``size`` covers the area OpenCV's would (4 x 4 bins of
    ``1.5 * size`` pixels), on the image smoothed for its scale: ``smoothing='phow'`` blurs it to a sixth
    of the bin width (VLFeat's PHOW), a number blurs it to that Gaussian sigma at every size (1.6 is
    OpenCV's; on tiny images, where PHOW's blur at the larger sizes wipes out detail, it can be the
    better choice). ``mode='dense_opencv'``: the same grid
    described by ``cv2.SIFT.compute`` image by image, about 60-90x slower: the reference that ``dense`` is
    compared with (BENCHMARKS.md). ``mode='detect'``: OpenCV's
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
        "smoothing": Options("phow") | Real(0),
        "color": Options(*COLOURS, message=f"must be one of {COLOURS}"),
    }

    def __init__(self, mode="dense", step=4, sizes=(8, 16), root=False, max_keypoints=0, contrast_threshold=0.04,
                 smoothing="phow", color="grey"):
        self.mode = mode
        self.color = color
        self.step = step
        self.sizes = sizes
        self.root = root
        self.smoothing = smoothing
        self.max_keypoints = max_keypoints
        self.contrast_threshold = contrast_threshold

    @property
    def n_features(self):
        return 128 if self.color == "grey" else 3 * 128

    def _check_combination(self):
        require(self.color == "grey" or self.mode == "dense", "color",
                f"must be 'grey' with mode={self.mode!r}: colour descriptors are computed on the dense grid", self.color)

    def _channels(self, batch) -> list[np.ndarray]:
        """The ``(n, H, W)`` images described: the grey image, or the three channels of ``color`` (float32)."""
        if self.color == "grey":
            return [to_grey(batch)]
        rgb = np.repeat(batch, 3, axis=-1) if batch.shape[-1] == 1 else batch
        if self.color == "rgb":
            return [rgb[..., c] for c in range(3)]
        if self.color == "hsv":
            n, h, w, _ = rgb.shape
            hsv = cv2.cvtColor(np.ascontiguousarray(rgb).reshape(n * h, w, 3), cv2.COLOR_RGB2HSV_FULL).reshape(n, h, w, 3)
            return [hsv[..., c] for c in range(3)]
        r, g, b = (rgb[..., c].astype(np.float32) for c in range(3))
        return [(r - g) / np.sqrt(2), (r + g - 2 * b) / np.sqrt(6), (r + g + b) / np.sqrt(3)]

    def _normalised(self, values):
        if self.root:
            values /= np.maximum(np.abs(values).sum(axis=1, keepdims=True), _EPS)
            return np.sqrt(values, out=values)
        values /= np.maximum(np.linalg.norm(values, axis=1, keepdims=True), _EPS)
        return values

    def _sift(self):
        return cv2.SIFT_create(nfeatures=self.max_keypoints, contrastThreshold=self.contrast_threshold)

    def opencv_keypoints(self, height, width):
        """The dense grid as OpenCV keypoints (x, y from the top-left pixel's centre), size by size."""
        rows, cols = grid_centres(height, self.step), grid_centres(width, self.step)
        return [cv2.KeyPoint(float(c - 0.5), float(r - 0.5), float(size), 0.0)
                for size in self.sizes for r in rows for c in cols]

    def _bin_widths(self):
        return [BIN_WIDTH_PER_SIZE * size for size in self.sizes]

    def _dense_options(self):
        return {"smoothing": None if self.smoothing == "phow" else self.smoothing, "root": self.root}

    def _sample_block(self, batch, count, rng):
        """Dense mode: describe only ``count`` random (image, grid keypoint) pairs, not the whole grid."""
        if self.mode != "dense":
            return super()._sample_block(batch, count, rng)
        channels = self._channels(batch)
        _, h, w = channels[0].shape
        image = rng.integers(len(batch), size=count)
        point = rng.integers(len(self.sizes) * (h // self.step) * (w // self.step), size=count)
        used, which = np.unique(image, return_inverse=True)
        values = np.empty((count, self.n_features), np.float32)
        for c, channel in enumerate(channels):
            for start, block in iter_dense_sift(channel[used], self.step, self._bin_widths(), **self._dense_options()):
                rows = np.flatnonzero((which >= start) & (which < start + len(block)))
                values[rows, 128 * c:128 * (c + 1)] = block[which[rows] - start, point[rows]]
        return values

    def compute(self, batch):
        if self.mode == "dense":  # normalised (and RootSIFT) by dense_sift, channel by channel
            channels = self._channels(batch)
            n, h, w = channels[0].shape
            values = np.concatenate([dense_sift(channel, self.step, self._bin_widths(), **self._dense_options())
                                     for channel in channels], axis=2)
            positions = np.tile(grid_positions(h, w, self.step, len(self.sizes)), (n, 1))
            return LocalFeatures(values.reshape(-1, self.n_features), np.full(n, values.shape[1], np.int64), positions)
        grey = to_grey(batch)
        n, h, w = grey.shape
        sift = self._sift()
        if self.mode == "dense_opencv":
            keypoints = self.opencv_keypoints(h, w)
            values = np.empty((n, len(keypoints), 128), np.float32)
            for i, image in enumerate(grey):
                values[i] = sift.compute(image, keypoints)[1]
            values = values.reshape(-1, 128)
            counts = np.full(n, len(keypoints), np.int64)
            positions = np.tile(grid_positions(h, w, self.step, len(self.sizes)), (n, 1))
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
