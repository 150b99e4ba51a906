"""Image-to-image steps put in front of an extractor: resizing, conversion to grey, histogram equalisation,
and the flips and shifts that ``train.augment`` applies to training images."""
from __future__ import annotations

import cv2
import numpy as np

from .core import Boolean, Integer, Options, Real, Sequence, Transformer, as_batch, register
from .imageops import INTERPOLATION, resize_batch, to_grey


class Preprocessor(Transformer):
    """Base of image-to-image steps: ``transform`` maps images to images (a stacked batch when possible).

    Images are no table: a step's output stays an array whatever ``set_output`` says (scikit-learn's
    ``Pipeline.set_output`` sets every step), and it names no features.
    """

    kind = "preprocess"
    fixes_size = False  # True when every output image has the same size whatever the input

    def get_feature_names_out(self, input_features=None):
        """None: images in, images out, no feature names (so a scikit-learn pipeline asks the extractor after
        this step for its names)."""
        return None

    def transform(self, images):
        self._ensure_valid()
        batch = as_batch(images)
        if isinstance(batch, np.ndarray):
            return self._transform_batch(batch)
        return as_batch([self._transform_batch(im[None])[0] for im in batch])

    def _transform_batch(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@register("preprocess", "resize")
class Resize(Preprocessor):
    """Bring images to one ``size`` (height, width).

    ``mode='stretch'`` scales each axis independently; ``mode='crop'`` scales the shorter side to fit and
    centre-crops the rest, keeping the aspect ratio.
    """

    fixes_size = True
    _constraints = {
        "size": Sequence(Integer(1), length=2, message="must be [height, width], positive integers"),
        "mode": Options("stretch", "crop"),
        "interpolation": Options("auto", *INTERPOLATION, message=f"must be 'auto' or one of {sorted(INTERPOLATION)}"),
    }

    def __init__(self, size=(32, 32), mode="stretch", interpolation="auto"):
        self.size = size
        self.mode = mode
        self.interpolation = interpolation

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


@register("preprocess", "grey")
class Grey(Preprocessor):
    """Convert colour images to one grey channel (BT.601 luma; grey images kept as they are), so a grey data
    set stays grey: ``raw`` then gives ``H * W`` values, ``hog`` and the descriptors work on one channel."""

    def _transform_batch(self, batch):
        return to_grey(batch)[..., None]


@register("preprocess", "equalize")
class Equalize(Preprocessor):
    """Histogram equalisation, global or CLAHE, on luminance (Y of YCrCb, hue kept) or ``per_channel``."""

    _constraints = {
        "method": Options("global", "clahe"),
        "per_channel": Boolean(),
        "clip_limit": Real(0, low_open=True, message="must be a positive number"),
        "tile_grid": Sequence(Integer(1), length=2, message="must be [rows, columns], positive integers"),
    }

    def __init__(self, method="global", per_channel=False, clip_limit=2.0, tile_grid=(8, 8)):
        self.method = method
        self.per_channel = per_channel
        self.clip_limit = clip_limit
        self.tile_grid = tile_grid

    def _equalizer(self):
        if self.method == "global":
            return cv2.equalizeHist
        return cv2.createCLAHE(clipLimit=float(self.clip_limit), tileGridSize=tuple(self.tile_grid)[::-1]).apply

    def _transform_batch(self, batch):
        equalize = self._equalizer()
        out = np.empty_like(batch)
        for i, image in enumerate(batch):
            if self.per_channel or batch.shape[-1] == 1:
                for c in range(batch.shape[-1]):
                    out[i, :, :, c] = equalize(np.ascontiguousarray(image[:, :, c]))
            else:
                ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
                ycrcb[:, :, 0] = equalize(np.ascontiguousarray(ycrcb[:, :, 0]))
                out[i] = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
        return out


@register("preprocess", "hflip")
class HorizontalFlip(Preprocessor):
    """Mirror images left to right (an augmentation: ``train.augment: [hflip]``)."""

    def _transform_batch(self, batch):
        return np.ascontiguousarray(batch[:, :, ::-1])


@register("preprocess", "shift")
class Shift(Preprocessor):
    """Translate images by ``pixels`` = (rows, columns), repeating the edge pixels into the uncovered band
    (an augmentation: ``train.augment: [{shift: {pixels: [0, 2]}}]``)."""

    _constraints = {"pixels": Sequence(Integer(), length=2, message="must be [rows, columns], integers")}

    def __init__(self, pixels=(0, 2)):
        self.pixels = pixels

    def _transform_batch(self, batch):
        out = batch
        for axis, step in zip((1, 2), self.pixels):
            if step:
                size = out.shape[axis]
                source = np.clip(np.arange(size) - step, 0, size - 1)
                out = np.take(out, source, axis=axis)
        return np.ascontiguousarray(out)
