"""HOG matches ``skimage.feature.hog`` on batches, including the exact corner cases of its float arithmetic."""
import numpy as np
import pytest
from skimage.feature import hog as skimage_hog

from featurepipe import create
from featurepipe.extractors import ParamError
from featurepipe.extractors.hog import kernel as hog_kernel
from featurepipe.extractors.hog import votes as hog_module
from featurepipe.extractors.hog import hog
from featurepipe.imageops import to_grey

TOLERANCE = 1e-6  # float32 output and float32 block normalisation; a misplaced vote costs far more


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def route(request, monkeypatch):
    """Every test runs on both routes for 8-bit images: numba's compiled loop (``hog_kernel``, installed
    with the test extra) and the numpy one it replaces when numba is missing."""
    if request.param == "numpy":
        monkeypatch.setattr(hog_kernel, "available", lambda: False)
    else:
        assert hog_kernel.available(), "numba is part of the test extra"
    return request.param


def skimage_rows(images, **params):
    return np.stack([skimage_hog(image, **params) for image in images]).astype(np.float32)


def assert_matches_skimage(images, **params):
    np.testing.assert_allclose(hog(images, **params), skimage_rows(images, **params), rtol=0, atol=TOLERANCE)


def random_images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def quantised_images(shape, levels, seed=0):
    """Few grey levels: many equal gradients, on bin edges (0, 45, 90, 135 degrees) and tied across channels."""
    steps = np.random.default_rng(seed).integers(0, levels, shape)
    return (steps * (255 // (levels - 1))).astype(np.uint8)


@pytest.mark.parametrize("shape, orientations, cell, block, norm", [
    ((12, 32, 32, 3), 9, (8, 8), (2, 2), "L2-Hys"),
    ((6, 33, 29, 3), 7, (7, 5), (3, 2), "L1"),
    ((6, 40, 24, 3), 12, (4, 6), (2, 3), "L1-sqrt"),
    ((6, 17, 41, 3), 4, (3, 3), (1, 1), "L2"),
    ((4, 48, 64, 3), 18, (8, 8), (3, 3), "L2-Hys"),
    ((4, 24, 24, 2), 9, (6, 6), (2, 2), "L2"),
    ((4, 24, 24, 5), 9, (6, 6), (2, 2), "L1"),
])
def test_colour_uint8_matches_skimage(shape, orientations, cell, block, norm):
    params = dict(orientations=orientations, pixels_per_cell=cell, cells_per_block=block, block_norm=norm,
                  channel_axis=-1)
    assert_matches_skimage(random_images(shape), **params)
    assert_matches_skimage(quantised_images(shape, 3), **params)


@pytest.mark.parametrize("orientations", [4, 8, 9, 12])
@pytest.mark.parametrize("levels", [2, 4])
def test_quantised_images_on_bin_edges_and_channel_ties(orientations, levels):
    images = quantised_images((8, 24, 32, 3), levels, seed=levels)
    images[:2] = images[:2, ..., :1]  # grey stored as RGB: all channels tie everywhere
    assert_matches_skimage(images, orientations=orientations, pixels_per_cell=(4, 4), cells_per_block=(2, 2),
                           block_norm="L1", channel_axis=-1)


@pytest.mark.parametrize("orientations, pair", [(67, (-110, 245)), (73, (-9, 209)), (162, (-255, 0)),
                                               (338, (-255, 0))])
def test_bin_edges_follow_skimages_float64_arithmetic(orientations, pair):
    """These gradients lie on skimage's edge ``(180 / n) * i``: float32 edges (67, 73, 162) or the exact
    ``180 * i / n`` (338) would put them in the neighbouring bin."""
    image = image_with_gradients([pair])[..., 0]
    params = dict(orientations=orientations, pixels_per_cell=(4, 4), cells_per_block=(1, 1), block_norm="L1")
    np.testing.assert_allclose(hog(image, **params), skimage_hog(image, **params), atol=TOLERANCE)


def test_flat_images_give_zero_features():
    images = np.full((3, 16, 16, 3), 77, np.uint8)
    assert not hog(images, pixels_per_cell=(4, 4), cells_per_block=(2, 2), channel_axis=-1).any()
    assert_matches_skimage(images, pixels_per_cell=(4, 4), cells_per_block=(2, 2), channel_axis=-1)


def image_with_gradients(pairs, size=12, at=5):
    """An image whose pixel (at, at) has gradient ``pairs[c]`` = (g_row, g_col) in channel ``c``."""
    image = np.zeros((size, size, len(pairs)), np.uint8)
    for channel, (g_row, g_col) in enumerate(pairs):
        image[at - 1, at, channel], image[at + 1, at, channel] = max(0, -g_row), max(0, g_row)
        image[at, at - 1, channel], image[at, at + 1, channel] = max(0, -g_col), max(0, g_col)
    return image


TIE_PARAMS = dict(orientations=9, pixels_per_cell=(4, 4), cells_per_block=(1, 1), block_norm="L1",
                  channel_axis=-1)


@pytest.mark.parametrize("first, second", [
    ((-252, -114), (-210, -180)),  # equal energy, the second a float64 ulp stronger: skimage takes it
    ((-114, -252), (-180, -210)),
    ((3, 4), (5, 0)),  # equal energy and equal hypot: skimage takes the first channel
    ((0, 5), (-4, 3)),
])
def test_equal_energy_channels_pick_skimages_channel(first, second):
    energies = [g_row**2 + g_col**2 for g_row, g_col in (first, second)]
    assert energies[0] == energies[1]
    assert skimage_hog(image_with_gradients([first, second]), **TIE_PARAMS).any()
    for pairs in ([first, second], [second, first], [(0, 0), first, second], [first, (1, 1), second]):
        image = image_with_gradients(pairs)
        np.testing.assert_allclose(hog(image, **TIE_PARAMS), skimage_hog(image, **TIE_PARAMS), atol=TOLERANCE)


def test_ulp_ties_change_the_orientation_bin():
    """The case the tie handling exists for: the first channel's bin is not skimage's."""
    first, second = (-252, -114), (-210, -180)
    assert np.hypot(*second) > np.hypot(*first)
    tied = skimage_hog(image_with_gradients([first, second]), **TIE_PARAMS)
    first_only = skimage_hog(image_with_gradients([first]), **TIE_PARAMS)
    assert np.abs(tied - first_only).max() > 0.1


def test_ulp_ties_in_a_large_batch():
    """Tied pixels spread over many images and slices, among random ones."""
    images = random_images((40, 16, 16, 3), seed=3)
    for i in range(0, 40, 3):
        images[i] = image_with_gradients([(-252, -114), (-210, -180), (7, 7)], size=16, at=3 + i % 10)
    assert_matches_skimage(images, **TIE_PARAMS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_images_match_skimage(dtype):
    images = np.random.default_rng(4).random((4, 24, 20, 3)).astype(dtype)
    assert_matches_skimage(images, orientations=9, pixels_per_cell=(6, 5), cells_per_block=(2, 2), channel_axis=-1)


@pytest.mark.parametrize("images", [random_images((4, 24, 24, 3), seed=5),
                                    np.random.default_rng(5).random((4, 24, 24, 3))])
def test_transform_sqrt_matches_skimage(images):
    assert_matches_skimage(images, pixels_per_cell=(6, 6), cells_per_block=(2, 2), transform_sqrt=True,
                           channel_axis=-1)


def test_grey_images_match_skimage():
    assert_matches_skimage(random_images((6, 30, 26), seed=6), orientations=12, pixels_per_cell=(5, 5),
                           cells_per_block=(3, 2), block_norm="L2")
    assert_matches_skimage(quantised_images((6, 30, 26), 2), pixels_per_cell=(5, 5), cells_per_block=(3, 2))


def test_block_array_and_channel_axis_follow_skimage():
    image = random_images((20, 28, 3), seed=7)
    params = dict(pixels_per_cell=(4, 4), cells_per_block=(2, 3))
    blocks = hog(image, channel_axis=-1, feature_vector=False, **params)
    np.testing.assert_allclose(blocks, skimage_hog(image, channel_axis=-1, feature_vector=False, **params),
                               atol=TOLERANCE)
    assert blocks.shape == (4, 5, 2, 3, 9) and blocks.dtype == np.float32
    first = np.moveaxis(image, -1, 0)
    np.testing.assert_allclose(hog(first, channel_axis=0, **params), hog(image, channel_axis=-1, **params))


def test_single_image_equals_its_batch_row():
    images = random_images((50, 32, 32, 3), seed=8)  # several slices of the batch
    rows = hog(images, cells_per_block=(2, 2), channel_axis=-1)
    assert rows.shape == (50, 324) and rows.dtype == np.float32
    for i in (0, 17, 49):
        np.testing.assert_array_equal(hog(images[i], cells_per_block=(2, 2), channel_axis=-1), rows[i])
    np.testing.assert_array_equal(hog(images[::-1], cells_per_block=(2, 2), channel_axis=-1), rows[::-1])


def force_bands(monkeypatch, cell_rows, cell, width, channels):
    """Make ``hog`` cut each image of ``width`` x ``channels`` into bands of ``cell_rows`` rows of cells."""
    monkeypatch.setattr(hog_module, "PART_VALUES", cell_rows * cell[0] * width * channels)


def set_gradients(image, pairs, row, col):
    """Give pixel (row, col) of ``image`` the gradient ``pairs[c]`` = (g_row, g_col) in channel ``c``."""
    for channel, (g_row, g_col) in enumerate(pairs):
        image[row - 1, col, channel], image[row + 1, col, channel] = max(0, -g_row), max(0, g_row)
        image[row, col - 1, channel], image[row, col + 1, channel] = max(0, -g_col), max(0, g_col)


@pytest.mark.parametrize("shape, cell, block, cell_rows", [
    ((3, 45, 38, 3), (4, 5), (2, 2), 2),  # 11 rows of cells: the last band is shorter; row 44 votes nowhere
    ((2, 40, 24, 3), (8, 6), (3, 2), 1),  # one row of cells per band
    ((2, 37, 30, 2), (6, 6), (2, 2), 2),
    ((2, 30, 21, 5), (5, 7), (1, 2), 3),
])
def test_images_cut_into_bands_match_skimage(monkeypatch, shape, cell, block, cell_rows):
    force_bands(monkeypatch, cell_rows, cell, shape[2], shape[3])
    params = dict(orientations=9, pixels_per_cell=cell, cells_per_block=block, block_norm="L2-Hys", channel_axis=-1)
    assert_matches_skimage(random_images(shape, seed=11), **params)
    assert_matches_skimage(quantised_images(shape, 3, seed=11), **params)


def test_grey_and_float_images_cut_into_bands_match_skimage(monkeypatch):
    force_bands(monkeypatch, 1, (6, 6), 30, 1)
    params = dict(pixels_per_cell=(6, 6), cells_per_block=(2, 2), block_norm="L2")
    assert_matches_skimage(random_images((2, 37, 30), seed=12), **params)
    assert_matches_skimage(np.random.default_rng(12).random((2, 37, 30)), **params)
    force_bands(monkeypatch, 1, (6, 6), 30, 3)
    images = random_images((2, 37, 30, 3), seed=13)
    assert_matches_skimage(images, transform_sqrt=True, channel_axis=-1, **params)
    assert_matches_skimage(images.astype(np.float32) / 255, channel_axis=-1, **params)


def test_ulp_ties_on_the_rows_next_to_band_edges(monkeypatch):
    """Tied pixels on the first and last row of bands, whose gradients need the neighbouring band's rows."""
    force_bands(monkeypatch, 2, (4, 4), 24, 3)  # bands of rows 0-7, 8-15, ...
    images = random_images((3, 40, 24, 3), seed=14)
    pairs = [(-252, -114), (-210, -180), (3, 4)]  # the first two: equal energy, the second an ulp stronger
    for i, image in enumerate(images):
        for row, col in ((7, 5 + i), (8, 10 + i), (15, 15 + i), (16, 2 + i), (31, 20)):
            set_gradients(image, pairs[i:] + pairs[:i], row, col)  # the channels in another order per image
    assert_matches_skimage(images, **TIE_PARAMS)


def test_large_single_image_matches_skimage():
    """Large enough to be cut into bands with the default part size."""
    image = random_images((250, 330, 3), seed=15)
    assert image.size > hog_module.PART_VALUES
    params = dict(pixels_per_cell=(8, 8), cells_per_block=(2, 2), channel_axis=-1)
    np.testing.assert_allclose(hog(image, **params), skimage_hog(image, **params), rtol=0, atol=TOLERANCE)
    image = quantised_images((250, 330, 3), 3, seed=15)
    np.testing.assert_allclose(hog(image, **params), skimage_hog(image, **params), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("orientations", [8, 9])
@pytest.mark.parametrize("norm", ["L1-sqrt", "L2-Hys"])
def test_blocks_gathered_either_way_match_skimage(orientations, norm):
    """8 blocks across: copied as rows of blocks for 8 orientations, as cell histograms for 9."""
    images = random_images((3, 24, 40, 3), seed=16)
    assert_matches_skimage(images, orientations=orientations, pixels_per_cell=(4, 4), cells_per_block=(2, 3),
                           block_norm=norm, channel_axis=-1)


def test_too_small_image_is_refused():
    with pytest.raises(ValueError, match="15x40 pixels is smaller than one HOG block"):
        hog(random_images((15, 40, 3)), pixels_per_cell=(8, 8), cells_per_block=(2, 2), channel_axis=-1)
    with pytest.raises(ValueError, match="smaller than one HOG block"):
        create("extractor", "hog").transform(random_images((2, 16, 16, 3)))


@pytest.mark.parametrize("param, value", [
    ("orientations", 0), ("orientations", 2.5), ("pixels_per_cell", (8,)), ("pixels_per_cell", (8, 0)),
    ("cells_per_block", (2, -1)), ("cells_per_block", "2x2"), ("block_norm", "L3"), ("transform_sqrt", 1),
    ("channel_axis", 0),
])
def test_invalid_parameters_are_named(param, value):
    with pytest.raises(ParamError, match=f"^{param}:"):
        create("extractor", "hog", **{param: value})


def test_extractor_matches_skimage_on_a_batch():
    images = random_images((10, 40, 32, 3), seed=9)
    params = dict(orientations=7, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L1-sqrt")
    features = create("extractor", "hog", **params).fit(images).transform(images)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, skimage_rows(images, channel_axis=-1, **params), atol=TOLERANCE)


def test_grey_mode_uses_bt601_luma():
    images = random_images((6, 32, 32, 3), seed=10)
    params = dict(pixels_per_cell=(8, 8), cells_per_block=(2, 2))
    grey = create("extractor", "hog", channel_axis=None, **params).transform(images)
    np.testing.assert_allclose(grey, skimage_rows(to_grey(images), **params), atol=TOLERANCE)
    colour = create("extractor", "hog", **params).transform(images)
    assert np.abs(grey - colour).max() > 0.1


@pytest.mark.parametrize("shape, orientations, cell", [
    ((5, 37, 29, 3), 9, (8, 8)),    # pixels right of and below the last whole cell vote nowhere
    ((3, 20, 24, 1), 12, (4, 3)),
    ((3, 20, 24, 4), 200, (5, 6)),  # 402 slots: the uint16 bin table
    ((2, 16, 16, 2), 9, (1, 1)),
])
def test_compiled_histograms_equal_the_numpy_route(monkeypatch, shape, orientations, cell):
    from featurepipe.extractors.hog import _cell_histograms

    images = random_images(shape, seed=21)
    if shape[-1] >= 2:  # outranked keys on the first channel, the stronger pair on the second
        set_gradients(images[0], [(-252, -114), (-210, -180)] + [(0, 0)] * (shape[-1] - 2), 5, 6)
    n_cells = (shape[1] // cell[0], shape[2] // cell[1])
    compiled = _cell_histograms(images, orientations, cell, n_cells, False)
    monkeypatch.setattr(hog_kernel, "available", lambda: False)
    np.testing.assert_allclose(compiled, _cell_histograms(images, orientations, cell, n_cells, False), rtol=1e-6, atol=0)
