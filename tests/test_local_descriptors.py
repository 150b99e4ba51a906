"""Local descriptors: patch layout and normalisation, ZCA whitening, SIFT, PCA, sampling and the registry."""
import numpy as np
import pytest

import featurepipe
from featurepipe.local import SIFT, Patches, fit_pca, fit_zca, project
from featurepipe.local.base import draw_samples
from featurepipe.pipeline import SpecError, build_stage


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)


def test_patches_layout_and_positions(images):
    raw = Patches(size=6, stride=1, normalize=False).compute(images[:2])
    assert raw.values.shape == (2 * 27 * 27, 108) and raw.values.dtype == np.float32
    np.testing.assert_array_equal(raw.counts, [729, 729])
    # Row r * 27 + c of image 1 is the patch at (r, c), pixels in (row, col, channel) order.
    np.testing.assert_array_equal(raw.values[729 + 5 * 27 + 7], images[1, 5:11, 7:13].ravel())
    np.testing.assert_allclose(raw.positions[5 * 27 + 7], [(5 + 3) / 32, (7 + 3) / 32])
    strided = Patches(size=6, stride=4).compute(images[:1])
    assert strided.values.shape == (7 * 7, 108)


def test_patch_normalisation_by_hand(images):
    patch = images[0, :6, :6].astype(np.float64).ravel()
    expected = (patch - patch.mean()) / np.sqrt(patch.var() + 10)
    got = Patches(size=6, norm_eps=10.0).compute(images[:1]).values[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_whitening_makes_patch_covariance_identity(images):
    rng = np.random.default_rng(1)
    raw = Patches(normalize=False).sample(images, 20_000, rng)
    mean, matrix = fit_zca(raw, eps=0.0)
    np.testing.assert_allclose(np.cov(project(raw, mean, matrix), rowvar=False), np.eye(108), atol=1e-3)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-4)  # ZCA: the symmetric whitening, closest to identity
    # Normalised patches sum to zero, so their covariance lacks the constant direction: whitening gives
    # the identity on its complement.
    normalised = Patches().sample(images, 20_000, rng)
    white = project(normalised, *fit_zca(normalised, eps=1e-6))
    constant = np.full((108, 1), 108 ** -0.5)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(108) - constant @ constant.T, atol=2e-3)
    # A larger eps shrinks the weak directions instead of blowing them up (Coates et al. use 0.1).
    assert np.cov(project(normalised, *fit_zca(normalised, eps=0.1)), rowvar=False).trace() < 107


def test_patch_sampling_draws_real_patches(images):
    drawn = Patches(normalize=False).sample(images, 50, np.random.default_rng(0))
    every = Patches(normalize=False).compute(images).values
    assert drawn.shape == (50, 108)
    assert all((every == row).all(axis=1).any() for row in drawn)


def test_patches_refuse_small_images(images):
    with pytest.raises(ValueError, match="smaller than one 6x6 patch"):
        Patches().compute(images[:1, :4, :4])


def test_dense_sift_grid_scales_and_norms(images):
    features = SIFT(step=4, sizes=(8, 16)).compute(images[:3])
    assert features.values.shape == (3 * 2 * 64, 128)
    np.testing.assert_array_equal(features.counts, [128] * 3)
    np.testing.assert_allclose(np.linalg.norm(features.values, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(features.positions[:2], [[2 / 32, 2 / 32], [2 / 32, 6 / 32]])
    root = SIFT(step=4, sizes=(8, 16), root=True).compute(images[:3]).values
    assert (root >= 0).all()
    np.testing.assert_allclose((root**2).sum(axis=1), 1, rtol=1e-5)  # sqrt of an L1-normalised vector
    np.testing.assert_allclose(root**2, features.values / features.values.sum(axis=1, keepdims=True), atol=1e-6)
    # Flat images give zero descriptors, as with OpenCV (not normalised smoothing noise), never NaN.
    flat = SIFT(step=4, sizes=(8, 16), root=True).compute(np.full((2, 32, 32, 3), 90, np.uint8))
    assert flat.values.shape == (2 * 128, 128) and not flat.values.any()


def test_dense_sift_sampling_draws_grid_descriptors(images):
    sift = SIFT(step=8, sizes=(8, 16), root=True)
    drawn = sift.sample(images[:4], 40, np.random.default_rng(0))
    every = sift.compute(images[:4]).values
    assert drawn.shape == (40, 128)
    assert all(np.abs(every - row).max(axis=1).min() < 1e-6 for row in drawn)


@pytest.mark.parametrize("color", ["rgb", "hsv", "opponent"])
def test_colour_sift_is_one_grey_sift_per_channel(images, color):
    """Each 128-d part of a colour descriptor is the dense SIFT of that channel's image (as a grey image of its
    own); sampling draws whole grid descriptors of that width."""
    import cv2

    sift = SIFT(step=8, sizes=(8,), root=True, color=color)
    values = sift.compute(images[:3]).values
    assert values.shape == (3 * 16, 384) and sift.n_features == 384
    rgb = images[:3].astype(np.float32)
    channels = {"rgb": [rgb[..., c] for c in range(3)],
                "hsv": [np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2HSV_FULL) for im in images[:3]])[..., c]
                        for c in range(3)],
                "opponent": [(rgb[..., 0] - rgb[..., 1]) / np.sqrt(2), (rgb[..., 0] + rgb[..., 1] - 2 * rgb[..., 2])
                             / np.sqrt(6), rgb.sum(axis=-1) / np.sqrt(3)]}[color]
    for c, channel in enumerate(channels):
        alone = SIFT(step=8, sizes=(8,), root=True).compute(channel[..., None].astype(np.float32)).values
        np.testing.assert_allclose(values[:, 128 * c:128 * (c + 1)], alone, atol=1e-5)
    drawn = sift.sample(images[:3], 20, np.random.default_rng(0))
    assert drawn.shape == (20, 384) and all(np.abs(values - row).max(axis=1).min() < 1e-6 for row in drawn)


def test_opponent_sift_of_a_grey_image_is_its_grey_sift_and_flat_colour(images):
    grey = images[..., :1]
    opponent = SIFT(step=8, sizes=(8,), color="opponent").compute(grey).values
    assert not opponent[:, :256].any()  # no colour: zero descriptors, not NaN
    np.testing.assert_allclose(opponent[:, 256:], SIFT(step=8, sizes=(8,)).compute(grey).values, atol=1e-5)


def test_colour_sift_needs_the_dense_grid():
    with pytest.raises(featurepipe.core.ParamError, match="^color: must be 'grey' with mode='detect'"):
        SIFT(mode="detect", color="rgb").validate_params()


def test_detected_sift_keypoints():
    image = np.zeros((1, 64, 64, 3), np.uint8)
    for r, c in [(16, 16), (16, 44), (44, 30)]:
        image[0, r - 5:r + 5, c - 5:c + 5] = 255
    features = SIFT(mode="detect").compute(image)
    assert features.counts[0] == len(features.values) > 0
    assert ((features.positions >= 0) & (features.positions < 1)).all()
    empty = SIFT(mode="detect").compute(np.zeros((2, 32, 32, 3), np.uint8))
    assert empty.values.shape == (0, 128) and empty.counts.tolist() == [0, 0]


def test_pca_reduces_and_whitens(images):
    samples = SIFT(step=4, sizes=(8,)).sample(images, 1000, np.random.default_rng(0))
    mean, matrix = fit_pca(samples, 16)
    assert matrix.shape == (128, 16)
    np.testing.assert_allclose(matrix.T @ matrix, np.eye(16), atol=1e-5)
    reduced = project(samples, mean, matrix)
    variances = reduced.var(axis=0)
    assert (np.diff(variances) <= 1e-6).all()  # leading axes first
    assert variances.sum() > 0.5 * samples.var(axis=0).sum()  # 16 of 128 axes keep most of the variance
    white = project(samples, *fit_pca(samples, 16, whiten=True))
    np.testing.assert_allclose(white.var(axis=0, ddof=1), 1, rtol=1e-3)
    with pytest.raises(ValueError, match="exceeds the descriptor length 128"):
        fit_pca(samples, 200)


def test_sampling_is_proportional_and_bounded():
    rng = np.random.default_rng(0)
    images = [np.zeros((16, 16, 3), np.uint8)] * 30 + [np.full((24, 20, 3), 7, np.uint8)] * 10
    seen = []

    def sample_block(block, count, rng):
        seen.append((block.shape, count))
        return np.full((count, 2), block[0, 0, 0, 0], np.float32)

    samples = draw_samples(images, 400, rng, sample_block, max_images=8)
    assert len(samples) == 400 and (samples == 7).sum() == 2 * 100  # 10 of 40 images give a quarter
    assert max(shape[0] for shape, _ in seen) <= 8 and {shape[1:3] for shape, _ in seen} == {(16, 16), (24, 20)}


def test_descriptor_registry_and_nested_config():
    assert featurepipe.list("descriptor") == ["color_stats", "patches", "sift"]
    assert isinstance(featurepipe.create("descriptor", "sift", root=True), SIFT)
    with pytest.raises(ValueError, match="unknown descriptor 'hog'"):
        featurepipe.create("descriptor", "hog")
    stage = build_stage({"bovw": {"descriptor": {"sift": {"root": True, "sizes": [8, 12]}}, "projection": "pca",
                                  "n_components": 32}}, "pipeline.extractor")
    assert isinstance(stage.descriptor, SIFT) and stage.descriptor.sizes == (8, 12)
    with pytest.raises(SpecError, match=r"^pipeline\.extractor\.bovw\.descriptor\.patches\.size: must be a positive"):
        build_stage({"bovw": {"descriptor": {"patches": {"size": 0}}}}, "pipeline.extractor")
    with pytest.raises(SpecError, match=r"n_components: must be an integer in \[1, 128\]"):
        build_stage({"pca_sift": {"n_components": 200}}, "pipeline.extractor")


def test_colour_statistics_by_hand(images):
    """Each patch's sub-region means and standard deviations of R, G and B, against a plain loop."""
    from featurepipe.local import ColourStatistics

    stats = ColourStatistics(size=8, stride=4, grid=2)
    found = stats.compute(images[:2])
    assert found.values.shape == (2 * 7 * 7, 24) and stats.n_features == 24
    expected = []
    for image in images[:2].astype(np.float64) / 255:
        for top in range(0, 25, 4):
            for left in range(0, 25, 4):
                cells = [image[top + 4 * i:top + 4 * i + 4, left + 4 * j:left + 4 * j + 4].reshape(-1, 3)
                         for i in range(2) for j in range(2)]
                expected.append(np.stack([[c.mean(axis=0), c.std(axis=0)] for c in cells]).transpose(0, 2, 1).ravel())
    np.testing.assert_allclose(found.values, np.array(expected), atol=1e-5)
    np.testing.assert_allclose(found.positions[:2], [[4 / 32, 4 / 32], [4 / 32, 8 / 32]])


def test_colour_statistics_of_a_grey_image_fill_every_colour_slot(images):
    from featurepipe.local import ColourStatistics

    grey = images[:2, ..., :1]
    one = ColourStatistics(size=8, stride=8, grid=2).compute(grey).values.reshape(-1, 4, 3, 2)
    np.testing.assert_array_equal(one[:, :, 0], one[:, :, 1])
    np.testing.assert_array_equal(one[:, :, 0], one[:, :, 2])
    with pytest.raises(featurepipe.core.ParamError, match="^size: must be a multiple of grid"):
        ColourStatistics(size=10, grid=4).validate_params()


@pytest.mark.parametrize("extractor", ["bovw", "fisher"])
def test_colour_statistics_under_bag_of_words_and_fisher_vectors(images, extractor):
    vocabulary = {"n_words": 4} if extractor == "bovw" else {"n_gaussians": 2, "projection": "pca", "n_components": 8}
    built = featurepipe.create("extractor", extractor, descriptor={"color_stats": {"size": 8, "stride": 4}},
                               n_samples=500, random_state=0, **vocabulary)
    X = built.fit(images).transform(images)
    assert X.shape[0] == len(images) and np.isfinite(X).all() and X.shape[1] == len(built.get_feature_names_out())
