"""Shared fixtures: small image folders made with numpy and OpenCV (no data set is downloaded)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import make_image_folder


@pytest.fixture
def image_folder(tmp_path):
    """train/ and test/ splits, three classes, 32x32 PNG and JPEG files."""
    return make_image_folder(tmp_path / "images", np.random.default_rng(0))


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"
