"""Resizing and equalisation against OpenCV applied image by image."""
import cv2
import numpy as np
import pytest

from featurepipe import create
from featurepipe.imageops import resize_batch, to_grey


@pytest.fixture
def batch():
    return np.random.default_rng(0).integers(0, 256, (200, 24, 40, 3), dtype=np.uint8)


@pytest.mark.parametrize("size, interpolation, flag", [((12, 20), "area", cv2.INTER_AREA),
                                                       ((48, 64), "linear", cv2.INTER_LINEAR)])
def test_resize_batch_matches_per_image_opencv(batch, size, interpolation, flag):
    out = resize_batch(batch, size, interpolation)
    expected = np.stack([cv2.resize(im, size[::-1], interpolation=flag) for im in batch])
    np.testing.assert_array_equal(out, expected)


def test_resize_crop_keeps_aspect_and_centre():
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 20:60] = 255  # a white square in the centre
    out = create("preprocess", "resize", size=(20, 20), mode="crop").transform(image[None])
    assert out.shape == (1, 20, 20, 3) and out.min() == 255  # only the centre square survives


def test_resize_mixed_sizes_gives_one_stacked_batch():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, s + (3,), dtype=np.uint8) for s in [(30, 50), (64, 64), (17, 9)]]
    out = create("preprocess", "resize", size=(16, 16)).transform(images)
    assert isinstance(out, np.ndarray) and out.shape == (3, 16, 16, 3)


def test_grey_is_bt601(batch):
    np.testing.assert_array_equal(to_grey(batch)[0], cv2.cvtColor(batch[0], cv2.COLOR_RGB2GRAY))


def test_equalize_luminance_matches_opencv(batch):
    out = create("preprocess", "equalize").transform(batch[:3])
    for image, result in zip(batch[:3], out):
        ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
        ycrcb[..., 0] = cv2.equalizeHist(ycrcb[..., 0])
        np.testing.assert_array_equal(result, cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB))


def test_clahe_per_channel_matches_opencv(batch):
    out = create("preprocess", "equalize", method="clahe", per_channel=True, clip_limit=3.0, tile_grid=(2, 4)).transform(batch[:2])
    clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(4, 2))
    for image, result in zip(batch[:2], out):
        for c in range(3):
            np.testing.assert_array_equal(result[..., c], clahe.apply(np.ascontiguousarray(image[..., c])))


def test_equalize_spreads_a_low_contrast_image():
    image = np.random.default_rng(2).integers(100, 120, (1, 32, 32, 3), dtype=np.uint8)
    out = create("preprocess", "equalize").transform(image)
    assert np.ptp(to_grey(out)) > 200 > np.ptp(to_grey(image)) + 150
