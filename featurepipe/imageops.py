"""Batched image operations shared by preprocessing steps and extractors."""
from __future__ import annotations

import cv2
import numpy as np

INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
                  "nearest": cv2.INTER_NEAREST}


def to_grey(batch: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma ``(n, H, W)`` of an ``(n, H, W, 3)`` RGB uint8 batch, in one OpenCV call (a grey
    ``(n, H, W, 1)`` batch as it is). Equal channels give their value exactly."""
    n, h, w, c = batch.shape
    if c == 1:
        return batch[..., 0]
    return cv2.cvtColor(batch.reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY).reshape(n, h, w)


def resize_batch(batch: np.ndarray, size: tuple[int, int], interpolation: str = "auto") -> np.ndarray:
    """Resize every image of an ``(n, H, W, C)`` batch to ``size`` = (height, width).

    One OpenCV call per image: laying images side by side along the channel axis would be faster but
    takes another OpenCV code path that rounds differently, and a batch must equal its images one by one.
    ``auto`` is area averaging when shrinking and bilinear when enlarging.
    """
    n, h, w, c = batch.shape
    if (h, w) == tuple(size):
        return batch
    if interpolation == "auto":
        interpolation = "area" if size[0] <= h and size[1] <= w else "linear"
    flag = INTERPOLATION[interpolation]
    out = np.empty((n, size[0], size[1], c), batch.dtype)
    for i, image in enumerate(batch):
        out[i] = cv2.resize(image, (size[1], size[0]), interpolation=flag).reshape(out.shape[1:])
    return out
