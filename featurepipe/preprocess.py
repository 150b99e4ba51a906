"""Image-to-image steps put in front of an extractor: resizing and histogram equalisation."""
from __future__ import annotations

import cv2
import numpy as np
from sklearn.base import TransformerMixin

from .extractors.base import Stage, as_batch, require
from .extractors.registry import register
from .imageops import INTERPOLATION, resize_batch

class Preprocessor(TransformerMixin, Stage):
    """Base of image-to-image steps: ``transform`` maps images to images (a stacked batch when possible)."""

    kind = "preprocess"
    fixes_size = False  # True when every output image has the same size whatever the input

    def transform(self, images):
        self.check_params()
        batch = as_batch(images)
        if isinstance(batch, np.ndarray):
            return self._transform_batch(batch)
        return as_batch([self._transform_batch(im[None])[0] for im in batch])

    def _transform_batch(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@register("resize", kind="preprocess")
class Resize(Preprocessor):
    """Bring images to one ``size`` (height, width).

    ``mode='stretch'`` scales each axis independently; ``mode='crop'`` scales the shorter side to fit and
    centre-crops the rest, keeping the aspect ratio.
    """

    fixes_size = True

    def __init__(self, size=(32, 32), mode="stretch", interpolation="auto"):
        self.size = size
        self.mode = mode
        self.interpolation = interpolation

    def check_params(self):
        require(isinstance(self.size, (list, tuple)) and len(self.size) == 2
                and all(isinstance(s, int) and s > 0 for s in self.size),
                "size", "must be [height, width], positive integers", self.size)
        require(self.mode in ("stretch", "crop"), "mode", "must be 'stretch' or 'crop'", self.mode)
        require(self.interpolation == "auto" or self.interpolation in INTERPOLATION, "interpolation",
                f"must be 'auto' or one of {sorted(INTERPOLATION)}", self.interpolation)

    def _transform_batch(self, batch):
        size = tuple(self.size)
        if self.mode == "crop":
            h, w = batch.shape[1:3]
            scale = max(size[0] / h, size[1] / w)
            inner = (max(size[0], round(h * scale)), max(size[1], round(w * scale)))
            batch = resize_batch(batch, inner, self.interpolation)
            top, left = (inner[0] - size[0]) // 2, (inner[1] - size[1]) // 2
            batch = batch[:, top:top + size[0], left:left + size[1]]
        return np.ascontiguousarray(resize_batch(batch, size, self.interpolation))


@register("equalize", kind="preprocess")
class Equalize(Preprocessor):
    """Histogram equalisation, global or CLAHE, on luminance (Y of YCrCb, hue kept) or ``per_channel``."""

    def __init__(self, method="global", per_channel=False, clip_limit=2.0, tile_grid=(8, 8)):
        self.method = method
        self.per_channel = per_channel
        self.clip_limit = clip_limit
        self.tile_grid = tile_grid

    def check_params(self):
        require(self.method in ("global", "clahe"), "method", "must be 'global' or 'clahe'", self.method)
        require(isinstance(self.per_channel, bool), "per_channel", "must be true or false", self.per_channel)
        require(isinstance(self.clip_limit, (int, float)) and self.clip_limit > 0, "clip_limit",
                "must be a positive number", self.clip_limit)
        require(isinstance(self.tile_grid, (list, tuple)) and len(self.tile_grid) == 2
                and all(isinstance(t, int) and t > 0 for t in self.tile_grid),
                "tile_grid", "must be [rows, columns], positive integers", self.tile_grid)

    def _equalizer(self):
        if self.method == "global":
            return cv2.equalizeHist
        return cv2.createCLAHE(clipLimit=float(self.clip_limit), tileGridSize=tuple(self.tile_grid)[::-1]).apply

    def _transform_batch(self, batch):
        equalize = self._equalizer()
        out = np.empty_like(batch)
        for i, image in enumerate(batch):
            if self.per_channel:
                for c in range(3):
                    out[i, :, :, c] = equalize(np.ascontiguousarray(image[:, :, c]))
            else:
                ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
                ycrcb[:, :, 0] = equalize(np.ascontiguousarray(ycrcb[:, :, 0]))
                out[i] = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
        return out
