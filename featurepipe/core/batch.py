"""Image batches: a stacked ``(n, H, W, C)`` uint8 array when every image has one shape, else a list.

Images are ``HxWx3`` RGB or, after a ``grey`` step, ``HxWx1`` grey: a grey data set stays one channel. As in
scikit-learn, the first axis counts samples: a 3-D array is a batch of grey images ``(n, H, W)``, and a
list may hold ``HxW`` grey images."""
from __future__ import annotations

import numpy as np


def as_batch(images):
    """Return ``images`` as one stacked ``(n, H, W, C)`` uint8 array (C = 3 or 1) when all share a shape,
    else as a list."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"expected images of shape (n, H, W, 3), (n, H, W, 1) or (n, H, W), got {images.shape}")
        return np.ascontiguousarray(images, dtype=np.uint8) if images.dtype != np.uint8 else images
    images = [im[..., None] if isinstance(im, np.ndarray) and im.ndim == 2 else im for im in images]
    for i, im in enumerate(images):
        if not (isinstance(im, np.ndarray) and im.ndim == 3 and im.shape[2] in (1, 3) and im.dtype == np.uint8):
            desc = f"{im.dtype} {im.shape}" if isinstance(im, np.ndarray) else type(im).__name__
            raise ValueError(f"image {i}: expected an HxWx3 uint8 RGB (or HxW or HxWx1 grey) array, got {desc}")
    if images and all(im.shape == images[0].shape for im in images):
        return np.stack(images)
    return images
