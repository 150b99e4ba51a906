"""The extractor contract: a scikit-learn transformer from RGB uint8 images to float32 ``(n, d)`` rows."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ..errors import MixedSizeError
from ..fingerprint import code_version, digest


def as_batch(images):
    """Return ``images`` as one stacked ``(n, H, W, 3)`` uint8 array when all share a shape, else as a list."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected images of shape (n, H, W, 3), got {images.shape}")
        return np.ascontiguousarray(images, dtype=np.uint8) if images.dtype != np.uint8 else images
    images = list(images)
    for i, im in enumerate(images):
        if not (isinstance(im, np.ndarray) and im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8):
            desc = f"{im.dtype} {im.shape}" if isinstance(im, np.ndarray) else type(im).__name__
            raise ValueError(f"image {i}: expected an HxWx3 uint8 RGB array, got {desc}")
    if images and all(im.shape == images[0].shape for im in images):
        return np.stack(images)
    return images


class ParamError(ValueError):
    """An extractor parameter that fails validation; the message starts with the parameter's name."""


def require(condition: bool, param: str, message: str, value) -> None:
    if not condition:
        raise ParamError(f"{param}: {message}, got {value!r}")


class Stage(BaseEstimator):
    """What extractors and preprocessing steps share: parameter checks and a stable identity."""

    name = "stage"
    kind = "stage"

    def check_params(self) -> None:
        """Raise ``ParamError`` naming the first invalid parameter."""

    def fit(self, images, y=None):
        """Stateless by default: check the parameters (data-driven stages learn here)."""
        self.check_params()
        return self

    def fitted_state(self) -> dict:
        """Fitted attributes (names ending in ``_``), which enter the fingerprint."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def describe(self) -> dict:
        """JSON-able identity: registered name, parameters and fitted state (nested stages recurse)."""
        return {"name": self.name, "params": self.get_params(deep=False), "state": self.fitted_state()}

    def fingerprint(self) -> str:
        """Stable hash of name, parameters, fitted state and the feature code's version."""
        return digest({"stage": self.describe(), "code": code_version()})


class Extractor(TransformerMixin, Stage):
    """Base of every extractor.

    Subclasses implement ``_transform_batch(batch)`` for a stacked ``(n, H, W, 3)`` uint8 batch and,
    when they learn from data, ``fit``. ``size_dependent`` extractors (output length follows the image
    size) refuse a mixed-size list instead of padding; the others get one stacked call per image size.
    """

    kind = "extractor"
    size_dependent = False
    requires_fit = False  # True for data-driven extractors (codebooks, PCA): fit on the training split

    def transform(self, images):
        self.check_params()
        batch = as_batch(images)
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

