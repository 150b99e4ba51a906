"""The extractor contract: a transformer from RGB uint8 images to float32 ``(n, d)`` rows."""
from __future__ import annotations

import numpy as np

from ..core import Transformer, as_batch
from ..errors import MixedSizeError


class Extractor(Transformer):
    """Base of every extractor.

    Subclasses implement ``_transform_batch(batch)`` for a stacked ``(n, H, W, C)`` uint8 batch (C = 3 for
    RGB, 1 for grey; ``colour_only`` extractors refuse grey), ``_feature_names(shape)`` for images of
    ``shape`` (H, W, C) and, when they learn from data, ``fit``. ``size_dependent`` extractors (output
    length follows the image size) refuse a mixed-size list instead of padding; the others get one
    stacked call per image size.

    ``features(images)`` is the float32 array featurepipe's own code reads; ``transform`` is the same in
    the container ``set_output`` asks for.
    """

    kind = "extractor"
    colour_only = False   # True when the features need the three colour channels (colour histograms)
    size_dependent = False
    requires_fit = False  # True for data-driven extractors (codebooks, PCA): fit on the training split

    def fit(self, images, y=None):
        """Stateless by default: validate the parameters and note the images' shape, which the feature names
        of some extractors follow (data-driven extractors learn here)."""
        self.validate_params()
        if len(images):
            self._image_shape = as_batch(images[:1])[0].shape
        return self

    def transform(self, images):
        """Features ``(n, d)`` of ``images``: float32, or a DataFrame after ``set_output(transform="pandas")``."""
        return self._as_output(self.features(images), self.get_feature_names_out)

    def features(self, images) -> np.ndarray:
        """Float32 ``(n, d)`` features of ``images``: a stacked ``(n, H, W, 3)``, ``(n, H, W, 1)`` or ``(n, H, W)``
        uint8 array, or a list of images."""
        self._ensure_valid()
        batch = as_batch(images)
        channels = {batch.shape[-1]} if isinstance(batch, np.ndarray) else {im.shape[-1] for im in batch}
        if self.colour_only and channels != {3}:
            raise ValueError(f"{self.name}: needs colour (RGB) images, got grey ones (a grey batch, or a `grey` "
                             "preprocessing step before it)")
        if len(batch):
            self._image_shape = batch[0].shape
        if isinstance(batch, np.ndarray):
            return np.asarray(self._transform_batch(batch), dtype=np.float32)
        return self._transform_mixed(batch)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """One name per feature, e.g. ``hog_b3_c2_o7`` (block 3, cell 2 of the block, orientation 7), for the
        images last fitted or transformed (their size and channels set the width of some extractors).
        Images have no input feature names: ``input_features`` must be None."""
        if input_features is not None:
            raise ValueError(f"{self.name}: images have no feature names; input_features must be None, "
                             f"got {len(input_features)} names")
        return np.asarray(self._feature_names(getattr(self, "_image_shape", None)), dtype=object)

    def _feature_names(self, shape) -> list[str]:
        """The names for images of ``shape`` (H, W, C), None when no image has been seen."""
        raise NotImplementedError

    def _needs_shape(self, shape):
        """``shape``, or ``NotFittedError`` saying why the names need images first."""
        if shape is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"{self.name}: the number of features follows the images; fit or transform "
                                 "some first")
        return shape

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
