"""Batched dense SIFT: against a per-keypoint reference and OpenCV, symmetries, contrast, batching, grid."""
import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from featurepipe.core import ParamError
from featurepipe.local import SIFT, dsift
from featurepipe.local.dsift import BIN_WIDTH_PER_SIZE, CLAMP, WINDOW, dense_sift, iter_dense_sift, smoothing_sigma


def natural(size):
    """Camera and astronaut, grey, ``size`` x ``size``."""
    images = [data.camera(), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)]
    return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in images])


def opencv(grey, step, size):
    """``cv2.SIFT.compute`` on featurepipe's dense grid, unnormalised, as the SIFT descriptor did before dsift."""
    keypoints = SIFT(step=step, sizes=(size,)).opencv_keypoints(*grey.shape[1:])
    return np.stack([cv2.SIFT_create().compute(image, keypoints)[1] for image in grey])


def cosine(a, b):
    a, b = a.reshape(-1, 128).astype(np.float64), b.reshape(-1, 128).astype(np.float64)
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def reference(image, step, bin_width, points):
    """The descriptors of ``points`` (grid row, col) from the definition, one keypoint at a time."""
    smooth = ndimage.gaussian_filter(image.astype(np.float64), smoothing_sigma(bin_width), mode="mirror")
    gx, gy = np.zeros_like(smooth), np.zeros_like(smooth)
    gx[1:-1, 1:-1] = (smooth[1:-1, 2:] - smooth[1:-1, :-2]) / 2
    gy[1:-1, 1:-1] = (smooth[:-2, 1:-1] - smooth[2:, 1:-1]) / 2  # rows point up
    magnitude, angle = np.hypot(gx, gy), np.degrees(np.arctan2(gy, gx)) % 360
    y, x = np.mgrid[:image.shape[0], :image.shape[1]]
    offsets = (np.arange(4) - 1.5) * bin_width
    window = np.exp(-0.5 * ((np.arange(4) - 1.5) / WINDOW) ** 2)
    out = []
    for r, c in points:
        centre = (np.array([r, c]) + 0.5) * step - 0.5
        d = np.zeros((4, 4, 8))
        for i, dy in enumerate(offsets):
            for j, dx in enumerate(offsets):
                spatial = (np.maximum(0, 1 - np.abs(y - centre[0] - dy) / bin_width)
                           * np.maximum(0, 1 - np.abs(x - centre[1] - dx) / bin_width))
                for o in range(8):
                    distance = np.abs((angle - 45 * o + 180) % 360 - 180) / 45
                    d[i, j, o] = window[i] * window[j] * (spatial * magnitude * np.maximum(0, 1 - distance)).sum()
        d = d.ravel() / np.linalg.norm(d)
        d = np.minimum(d, CLAMP)
        out.append(d / np.linalg.norm(d))
    return np.array(out)


def test_matches_the_definition_keypoint_by_keypoint():
    image = natural(48)[0].copy()
    image[20:28, 20:28] = 255  # a bright square: strong edges, so the 0.2 clamp bites
    step, bin_width = 4, 9.0
    grid = dense_sift(image[None], step, [bin_width])[0].reshape(12, 12, 128)
    points = [(0, 0), (5, 5), (5, 6), (6, 4), (11, 2), (3, 11)]
    expected = reference(image, step, bin_width, points)
    assert (expected > CLAMP).any(), "no descriptor was clamped"
    got = np.array([grid[p] for p in points])
    # cv2.cartToPolar's angles are within 0.3 degrees: orientation weights within 1%.
    np.testing.assert_allclose(got, expected, atol=5e-3)
    assert cosine(got, expected).min() > 0.9999


@pytest.mark.parametrize("size", [8, 16])
def test_opencv_geometry_and_layout(size):
    """With OpenCV's smoothing (sigma 1.6 at every size) the descriptors are OpenCV's on the same grid;
    the bin width ``1.5 * size`` is the one that matches."""
    grey, step = natural(64), 4
    expected = opencv(grey, step, size)
    bin_width = BIN_WIDTH_PER_SIZE * size
    same = cosine(dense_sift(grey, step, [bin_width], smoothing=1.6), expected)
    assert same.mean() > 0.99 and same.min() > 0.98  # measured 0.996 / 0.985 (size 8), 0.998 / 0.994 (16)
    for wrong in (size, 2 * size):
        assert cosine(dense_sift(grey, step, [wrong], smoothing=1.6), expected).mean() < 0.95
    # PHOW's smoothing grows with the bin width: further from OpenCV's at larger sizes.
    default = cosine(dense_sift(grey, step, [bin_width]), expected).mean()
    assert default > {8: 0.98, 16: 0.94}[size]  # measured 0.990, 0.953


@pytest.mark.parametrize("flip, orientation, axes", [
    (lambda im: im[:, :, ::-1], lambda o: (4 - o) % 8, "cols"),   # mirror left-right: 45 o -> 180 - 45 o
    (lambda im: im[:, ::-1], lambda o: (8 - o) % 8, "rows"),      # upside down: 45 o -> -45 o
    (lambda im: im.transpose(0, 2, 1), lambda o: (6 - o) % 8, "transpose"),  # 45 o -> 270 - 45 o
])
def test_flips_permute_bins_and_orientations(flip, orientation, axes):
    grey, step, sizes = natural(48), 4, [6.0, 12.0]
    d = dense_sift(grey, step, sizes).reshape(2, 2, 12, 12, 4, 4, 8)
    flipped = dense_sift(np.ascontiguousarray(flip(grey)), step, sizes).reshape(d.shape)
    if axes == "cols":
        expected = d[:, :, :, ::-1, :, ::-1]
    elif axes == "rows":
        expected = d[:, :, ::-1, :, ::-1]
    else:
        expected = d.transpose(0, 1, 3, 2, 5, 4, 6)
    expected = expected[..., orientation(np.arange(8))]
    np.testing.assert_allclose(flipped, expected, atol=2e-3)


def test_low_contrast_is_zero_and_finite():
    for shape in [(2, 32, 32), (1, 7, 13), (1, 33, 45)]:
        for level in (0, 37, 255):
            for root in (False, True):
                values = dense_sift(np.full(shape, level, np.uint8), 2, [6.0, 12.0], root=root)
                assert np.isfinite(values).all() and not values.any()
    # One grey level of contrast is not noise: descriptors that see the edge are described.
    step = np.zeros((1, 32, 32), np.uint8)
    step[:, :, 16:] = 1
    values = dense_sift(step, 4, [6.0, 24.0])
    norms = np.linalg.norm(values, axis=-1)
    assert np.allclose(norms[norms > 0], 1, atol=1e-5)
    assert (norms.reshape(2, 8, 8) > 0)[:, :, 3:5].all()


def test_unit_norm_and_root():
    """(The clamp is checked against the definition above.)"""
    grey = natural(40)
    values = dense_sift(grey, 4, [6.0, 12.0]).reshape(-1, 128)
    np.testing.assert_allclose(np.linalg.norm(values, axis=1), 1, rtol=1e-5)
    assert (values >= 0).all()
    root = dense_sift(grey, 4, [6.0, 12.0], root=True).reshape(-1, 128)
    np.testing.assert_allclose(root**2, values / values.sum(axis=1, keepdims=True), atol=1e-6)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 3 images of 30 x 22 and chunks of 50 descriptors, which split images."""
    monkeypatch.setattr(dsift, "_BLOCK_PIXELS", 3 * 30 * 22)
    monkeypatch.setattr(dsift, "_CHUNK_ROWS", 50)
    dsift._plan.cache_clear()
    yield
    dsift._plan.cache_clear()


def test_batch_equals_one_by_one(small_blocks):
    grey = np.random.default_rng(0).integers(0, 256, (20, 30, 22), dtype=np.uint8)
    step, sizes = 4, [5.0, 13.5]
    batch = dense_sift(grey, step, sizes)
    assert batch.shape == (20, 2 * 7 * 5, 128) and batch.dtype == np.float32
    single = np.concatenate([dense_sift(image[None], step, sizes) for image in grey])
    np.testing.assert_allclose(batch, single, atol=1e-6)
    blocks = list(iter_dense_sift(grey, step, sizes))
    assert len(blocks) > 1  # several blocks, the last one shorter
    np.testing.assert_allclose(np.concatenate([values for _, values in blocks]), batch, atol=1e-6)
    assert [start for start, _ in blocks] == list(np.cumsum([0] + [len(v) for _, v in blocks[:-1]]))


def test_sift_dense_grid_counts_and_positions_as_before():
    batch = np.random.default_rng(1).integers(0, 256, (3, 30, 22, 3), dtype=np.uint8)
    step, sizes = 4, (8, 12.5)
    features = SIFT(step=step, sizes=sizes).compute(batch)
    # The grid of the cv2-based implementation this replaces: centres (i + 0.5) * step, every size.
    rows, cols = (np.arange(30 // step) + 0.5) * step, (np.arange(22 // step) + 0.5) * step
    centres = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
    grid = (np.tile(centres, (len(sizes), 1)) / (30, 22)).astype(np.float32)
    np.testing.assert_array_equal(features.counts, [len(grid)] * 3)
    np.testing.assert_array_equal(features.positions, np.tile(grid, (3, 1)))
    assert features.values.shape == (3 * len(grid), 128)
    grey = cv2.cvtColor(batch.reshape(-1, 22, 3), cv2.COLOR_RGB2GRAY).reshape(3, 30, 22)
    np.testing.assert_array_equal(features.values, dense_sift(grey, step, [1.5 * s for s in sizes]).reshape(-1, 128))


def test_images_smaller_than_a_step():
    assert dense_sift(np.zeros((2, 3, 3), np.uint8), 4, [6.0]).shape == (2, 0, 128)
    assert SIFT(step=4).compute(np.zeros((2, 3, 3, 3), np.uint8)).values.shape == (0, 128)


def test_dense_opencv_mode_is_cv2_on_the_same_grid():
    grey = natural(48)
    batch = np.repeat(grey[..., None], 3, axis=-1)
    reference = SIFT(mode="dense_opencv", step=8, sizes=(8, 12), root=True).compute(batch)
    ours = SIFT(mode="dense", step=8, sizes=(8, 12), root=True).compute(batch)
    np.testing.assert_array_equal(reference.counts, ours.counts)
    np.testing.assert_array_equal(reference.positions, ours.positions)
    # The keypoints are those of the pre-dsift implementation: centres (i + 0.5) * step, size by size.
    rows = cols = (np.arange(6) + 0.5) * 8
    expected = [(c - 0.5, r - 0.5, size) for size in (8, 12) for r in rows for c in cols]
    got = [(k.pt[0], k.pt[1], k.size) for k in SIFT(step=8, sizes=(8, 12)).opencv_keypoints(48, 48)]
    assert got == expected
    raw = np.concatenate([opencv(grey, 8, 8), opencv(grey, 8, 12)], axis=1).reshape(-1, 128)
    np.testing.assert_allclose(reference.values**2, raw / raw.sum(axis=1, keepdims=True), atol=1e-6)
    assert cosine(reference.values, ours.values).mean() > 0.9


def test_smoothing_option_reaches_dense_sift_and_opencv():
    """``smoothing: 1.6`` describes every size at OpenCV's blur: closer to cv2 than PHOW's at size 16."""
    grey = natural(64)
    batch = np.repeat(grey[..., None], 3, axis=-1)
    fixed = SIFT(step=4, sizes=(8, 16), smoothing=1.6).compute(batch)
    np.testing.assert_array_equal(fixed.values, dense_sift(grey, 4, [12.0, 24.0], smoothing=1.6).reshape(-1, 128))
    reference = SIFT(mode="dense_opencv", step=4, sizes=(16,)).compute(batch).values
    large = fixed.values.reshape(len(grey), 2, -1, 128)[:, 1].reshape(-1, 128)
    phow = SIFT(step=4, sizes=(16,)).compute(batch).values
    assert cosine(large, reference).mean() > 0.99 > cosine(phow, reference).mean()
    with pytest.raises(ParamError, match="smoothing"):
        SIFT(smoothing="opencv").validate_params()
