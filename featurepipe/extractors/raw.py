"""Raw pixels: the input a learned model starts from."""
from __future__ import annotations

import numpy as np

from ..imageops import resize_batch, to_grey
from ..core import NULL, Boolean, Integer, Sequence, register
from .base import Extractor


@register("extractor", "raw")
class RawPixels(Extractor):
    """Pixels scaled to [0, 1], optionally resized to ``size`` (H, W) and/or converted to grey: ``H * W * C``
    values, C the images' channels (1 after a ``grey`` step or with ``grey``)."""

    _constraints = {
        "size": NULL | Sequence(Integer(1), length=2, message="must be null or [height, width] with positive entries"),
        "grey": Boolean(),
    }

    def __init__(self, size=None, grey=False):
        self.size = size
        self.grey = grey

    @property
    def size_dependent(self):
        return self.size is None

    def _feature_names(self, shape):
        """``raw_y3_x5_c1``: the pixel at row 3, column 5, channel 1, in the order of the values."""
        if self.size is None or not self.grey:
            shape = self._needs_shape(shape)
        rows, cols = self.size if self.size is not None else shape[:2]
        channels = 1 if self.grey else shape[2]
        return [f"raw_y{y}_x{x}_c{c}" for y in range(rows) for x in range(cols) for c in range(channels)]

    def _transform_batch(self, batch):
        if self.size is not None:
            batch = resize_batch(batch, tuple(self.size))
        if self.grey:
            batch = to_grey(batch)
        return batch.reshape(len(batch), -1).astype(np.float32) * np.float32(1 / 255)
