"""Shared fixtures: small image folders made with numpy and OpenCV (no data set is downloaded)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import class_images, write_rgb


@pytest.fixture
def image_folder(tmp_path):
    """train/ and test/ splits, three classes, 32x32 PNG and JPEG files."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for split, count in (("train", 8), ("test", 4)):
        for colour, name in enumerate(("red", "green", "blue")):
            for i, image in enumerate(class_images(rng, count, 32, colour)):
                write_rgb(root / split / name / f"{name}_{i}.{'png' if i % 2 else 'jpg'}", image)
    return root


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"
