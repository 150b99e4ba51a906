"""Colour histograms against per-pixel reference counts, OpenCV's calcHist and the HSV hue conventions."""
import cv2
import numpy as np
import pytest

from featurepipe import create
from featurepipe.extractors import ParamError


def random_images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def reference_counts(codes, n_codes, grid):
    """Loop over pixels: ``codes`` is (n, H, W, k) integer codes; per image, cells in row-major order,
    each with a histogram of ``n_codes``; all ``k`` codes of a pixel count."""
    n, h, w, _ = codes.shape
    out = np.zeros((n, grid[0] * grid[1], n_codes))
    for i in range(n):
        for r in range(h):
            for c in range(w):
                cell = (r * grid[0] // h) * grid[1] + c * grid[1] // w
                for code in codes[i, r, c]:
                    out[i, cell, code] += 1
    return out.reshape(n, -1)


def rgb_codes(images, bins, mode):
    levels = images.astype(int) * bins // 256
    if mode == "joint":
        return ((levels[..., 0] * bins + levels[..., 1]) * bins + levels[..., 2])[..., None], bins**3
    return levels + np.arange(3) * bins, 3 * bins


def hsv_codes(images, bins):
    hsv = np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2HSV) for image in images]).astype(int)
    nh, ns, nv = bins
    hue = (hsv[..., 0] * nh + 90) // 180 % nh  # bins centred on 0 degrees
    return (((hue * ns) + hsv[..., 1] * ns // 256) * nv + hsv[..., 2] * nv // 256)[..., None], nh * ns * nv


@pytest.mark.parametrize("bins, mode, grid", [
    (8, "joint", (1, 1)), (3, "joint", (2, 3)), (5, "channels", (1, 1)), (16, "channels", (3, 2)),
    (1, "joint", (2, 2)), (256, "channels", (1, 1)),
    (64, "joint", (1, 5)), (200, "channels", (2, 1)),  # too many (cell, level) ids to share a uint8 plane
])
def test_color_hist_counts_every_pixel(bins, mode, grid):
    images = random_images((3, 9, 11, 3), seed=bins)
    codes, n_codes = rgb_codes(images, bins, mode)
    counts = create("extractor", "color_hist", bins=bins, mode=mode, grid=grid, norm=None).transform(images)
    np.testing.assert_array_equal(counts, reference_counts(codes, n_codes, grid))


@pytest.mark.parametrize("bins, grid", [((8, 3, 3), (1, 1)), ((4, 2, 5), (2, 2)), ((180, 1, 1), (1, 1)),
                                        ((7, 3, 3), (3, 1))])
def test_hsv_hist_counts_every_pixel(bins, grid):
    images = random_images((3, 9, 11, 3), seed=sum(bins))
    codes, n_codes = hsv_codes(images, bins)
    counts = create("extractor", "hsv_hist", bins=bins, grid=grid, norm=None).transform(images)
    np.testing.assert_array_equal(counts, reference_counts(codes, n_codes, grid))


def test_joint_rgb_matches_calchist():
    images = random_images((40, 32, 32, 3), seed=1)
    ours = create("extractor", "color_hist", norm=None).transform(images)
    theirs = [cv2.calcHist([image], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3).ravel() for image in images]
    np.testing.assert_array_equal(ours, np.stack(theirs))


def test_large_batches_span_several_calls():
    images = random_images((70, 16, 16, 3), seed=2)  # a 4x4 grid fits 16 images in one uint8 id plane
    for name, params in (("color_hist", {"bins": 4}), ("color_hist", {"mode": "channels"}), ("hsv_hist", {})):
        extractor = create("extractor", name, grid=(4, 4), **params)
        rows = extractor.transform(images)
        np.testing.assert_array_equal(rows[[0, 31, 69]], extractor.transform(images[[0, 31, 69]]))


def pixels(colours):
    """A 1-pixel-high image of the given RGB colours."""
    return np.array(colours, np.uint8)[None]


def test_hue_is_circular_with_bins_centred_on_zero():
    """OpenCV hue is degrees / 2: 179 and 0 are both red; with 8 bins, bin 0 spans hues 169..179 and 0..11."""
    extractor = create("extractor", "hsv_hist", bins=(8, 1, 1), norm=None)
    hue_of = {0: (255, 0, 0), 11: (255, 90, 0), 12: (255, 98, 0), 168: (255, 0, 98), 169: (255, 0, 90),
              179: (255, 0, 5)}
    assert [cv2.cvtColor(pixels([c]), cv2.COLOR_RGB2HSV)[0, 0, 0] for c in hue_of.values()] == list(hue_of)
    bin_of = {hue: int(np.argmax(extractor.transform(pixels([colour])[None])[0]))
              for hue, colour in hue_of.items()}
    assert bin_of == {0: 0, 11: 0, 12: 1, 168: 7, 169: 0, 179: 0}


def test_grid_cells_hold_their_own_colours():
    image = np.zeros((4, 6, 3), np.uint8)
    image[:2, :3] = (255, 0, 0)
    image[:2, 3:] = (0, 255, 0)
    image[2:, :3] = (0, 0, 255)
    image[2:, 3:] = (255, 255, 255)
    hist = create("extractor", "color_hist", bins=2, grid=(2, 2)).transform(image[None])[0].reshape(4, 8)
    np.testing.assert_array_equal(np.argmax(hist, axis=1), [0b100, 0b010, 0b001, 0b111])
    np.testing.assert_allclose(hist.max(axis=1), 0.25)  # one row of the batch sums to 1


@pytest.mark.parametrize("name, params", [("color_hist", {}), ("color_hist", {"mode": "channels", "grid": (2, 2)}),
                                          ("hsv_hist", {"grid": (3, 1)})])
def test_norms(name, params):
    images = random_images((5, 20, 20, 3), seed=3)
    counts = create("extractor", name, norm=None, **params).transform(images)
    l1 = create("extractor", name, norm="l1", **params).transform(images)
    l2 = create("extractor", name, norm="l2", **params).transform(images)
    hellinger = create("extractor", name, norm="hellinger", **params).transform(images)
    for rows in (counts, l1, l2, hellinger):
        assert rows.dtype == np.float32
    np.testing.assert_allclose(l1.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(l1, counts / counts.sum(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(l2, axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(l2, counts / np.linalg.norm(counts, axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(hellinger, np.sqrt(l1), rtol=1e-6)


@pytest.mark.parametrize("name, param, value", [
    ("color_hist", "bins", 0), ("color_hist", "bins", 257), ("color_hist", "mode", "pairs"),
    ("color_hist", "grid", (0, 2)), ("color_hist", "grid", (17, 16)), ("color_hist", "norm", "max"),
    ("hsv_hist", "bins", (8, 3)), ("hsv_hist", "bins", (181, 3, 3)), ("hsv_hist", "grid", (2,)),
])
def test_invalid_parameters_are_named(name, param, value):
    with pytest.raises(ParamError, match=f"^{param}:"):
        create("extractor", name, **{param: value})
