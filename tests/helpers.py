"""Helpers shared by the tests: writing small synthetic images."""
import cv2
import numpy as np


def write_rgb(path, image):
    """Write an RGB uint8 image with OpenCV (which expects BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def class_images(rng, n, size, colour):
    """``n`` noisy images dominated by one colour channel, so classes differ in colour and texture."""
    images = rng.integers(0, 90, (n, size, size, 3), dtype=np.uint8)
    images[..., colour] += rng.integers(100, 160, dtype=np.uint8)
    return images
