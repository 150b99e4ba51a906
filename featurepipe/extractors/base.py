"""The extractor contract: a transformer from RGB uint8 images to float32 ``(n, d)`` rows."""
from __future__ import annotations

import numpy as np

from ..core import Transformer, as_batch
from ..errors import MixedSizeError


class Extractor(Transformer):
    """Base of every extractor.

    Subclasses implement ``_transform_batch(batch)`` for a stacked ``(n, H, W, C)`` uint8 batch (C = 3 for
    RGB, 1 for grey; ``colour_only`` extractors refuse grey) and,
    when they learn from data, ``fit``. ``size_dependent`` extractors (output length follows the image
    size) refuse a mixed-size list instead of padding; the others get one stacked call per image size.
    """

    kind = "extractor"
    colour_only = False   # True when the features need the three colour channels (colour histograms)
    size_dependent = False
    requires_fit = False  # True for data-driven extractors (codebooks, PCA): fit on the training split

    def transform(self, images):
        self._ensure_valid()
        batch = as_batch(images)
        channels = {batch.shape[-1]} if isinstance(batch, np.ndarray) else {im.shape[-1] for im in batch}
        if self.colour_only and channels != {3}:
            raise ValueError(f"{self.name}: needs colour (RGB) images, got grey ones; drop the `grey` step")
        if isinstance(batch, np.ndarray):
            return np.asarray(self._transform_batch(batch), dtype=np.float32)
        return self._transform_mixed(batch)

    def _transform_mixed(self, images):
        shapes = sorted({im.shape[:2] for im in images})
        if self.size_dependent:
            raise MixedSizeError(
                f"{self.name}: output length depends on image size and the images have {len(shapes)} sizes "
                f"(e.g. {shapes[0]} and {shapes[-1]}); put a `resize` step in front")
        out = None
        for shape in shapes:
            idx = [i for i, im in enumerate(images) if im.shape[:2] == shape]
            rows = np.asarray(self._transform_batch(np.stack([images[i] for i in idx])), dtype=np.float32)
            if out is None:
                out = np.empty((len(images), rows.shape[1]), np.float32)
            out[idx] = rows
        return out

    def _transform_batch(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError
