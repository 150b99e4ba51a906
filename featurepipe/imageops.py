"""Batched image operations shared by preprocessing steps and extractors."""
from __future__ import annotations

import cv2
import numpy as np

INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
                  "nearest": cv2.INTER_NEAREST}
_CV_MAX_CHANNELS = 510  # cv2.resize takes up to 512 channels: 170 RGB images side by side


def to_grey(batch: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an ``(n, H, W, 3)`` RGB uint8 batch, in one OpenCV call."""
    n, h, w, _ = batch.shape
    return cv2.cvtColor(batch.reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY).reshape(n, h, w)


def resize_batch(batch: np.ndarray, size: tuple[int, int], interpolation: str = "auto") -> np.ndarray:
    """Resize every image of an ``(n, H, W, C)`` batch to ``size`` = (height, width).

    Images are laid side by side along the channel axis so OpenCV resizes up to 170 at a time.
    ``auto`` is area averaging when shrinking and bilinear when enlarging.
    """
    n, h, w, c = batch.shape
    if (h, w) == tuple(size):
        return batch
    if interpolation == "auto":
        interpolation = "area" if size[0] <= h and size[1] <= w else "linear"
    flag = INTERPOLATION[interpolation]
    out = np.empty((n, size[0], size[1], c), batch.dtype)
    step = _CV_MAX_CHANNELS // c
    for start in range(0, n, step):
        part = batch[start:start + step]
        stacked = np.ascontiguousarray(part.transpose(1, 2, 0, 3).reshape(h, w, -1))
        resized = cv2.resize(stacked, (size[1], size[0]), interpolation=flag)
        out[start:start + step] = resized.reshape(size[0], size[1], len(part), c).transpose(2, 0, 1, 3)
    return out
