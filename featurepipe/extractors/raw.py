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

    def _transform_batch(self, batch):
        if self.size is not None:
            batch = resize_batch(batch, tuple(self.size))
        if self.grey:
            batch = to_grey(batch)
        return batch.reshape(len(batch), -1).astype(np.float32) * np.float32(1 / 255)
