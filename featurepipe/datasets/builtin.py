"""A built-in demo data set, cut from images that scikit-image and scikit-learn ship: nothing is downloaded.

Six classes -- three textures (brick, grass, gravel) and three photographs (cat, coffee, flower) -- as
crops of random size and position. Training crops come from the left 60% of each source image and test
crops from the rest, so no pixel is shared across the split. Sizes vary (40 to 96 pixels), so
pipelines need a ``resize`` step, as on real folders.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

DEMO_CLASSES = ("brick", "grass", "gravel", "cat", "coffee", "flower")
_COUNTS = {"train": 40, "test": 15}


def _sources() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_image

    grey = lambda im: np.repeat(im[..., None], 3, axis=2)  # noqa: E731
    return {"brick": grey(data.brick()), "grass": grey(data.grass()), "gravel": grey(data.gravel()),
            "cat": data.chelsea(), "coffee": data.coffee(), "flower": load_sample_image("flower.jpg")}


def write_demo(root, seed: int = 0) -> Path:
    """Write the demo image folder (``train/<class>``, ``test/<class>``) at ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for name, image in _sources().items():
        h, w = image.shape[:2]
        cut = int(w * 0.6)
        for split, count in _COUNTS.items():
            lo, hi = (0, cut) if split == "train" else (cut, w)
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                size = int(rng.integers(40, 97))
                size = min(size, hi - lo, h)
                y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(lo, hi - size + 1))
                crop = image[y:y + size, x:x + size]
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                ext = ".png" if split == "train" else ".jpg"
                cv2.imwrite(str(folder / f"{name}_{i:03d}{ext}"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return root
