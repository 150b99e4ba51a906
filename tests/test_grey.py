"""A grey data set stays grey: the `grey` step gives one channel, and raw, HOG, patches, SIFT and the
pipelines take it without tripling it; colour-only extractors refuse it with one line."""
import numpy as np
import pytest
from skimage.feature import hog as skimage_hog

import featurepipe
from featurepipe.pipeline import build_pipeline
from featurepipe.runner import extract
from featurepipe.store import FeatureStore
from featurepipe.datasets import open_dataset
from helpers import write_rgb


@pytest.fixture
def grey_rgb():
    """Grey images stored as three equal channels, as decoding a grey PNG gives them."""
    plane = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    return plane, np.repeat(plane[..., None], 3, axis=3)


def test_grey_step_keeps_one_channel_exactly(grey_rgb):
    plane, rgb = grey_rgb
    out = featurepipe.create("preprocess", "grey").transform(rgb)
    assert out.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(out[..., 0], plane)  # equal channels give their value exactly


def test_raw_on_grey_gives_h_times_w_features(grey_rgb):
    plane, rgb = grey_rgb
    pipeline = build_pipeline({"preprocess": [{"grey": {}}], "extractor": {"raw": {}}})
    features = pipeline.transform(rgb)
    assert features.shape == (5, 28 * 28)
    np.testing.assert_allclose(features, plane.reshape(5, -1) / 255, rtol=1e-6)


def test_hog_on_grey_matches_skimage(grey_rgb):
    plane, rgb = grey_rgb
    grey = featurepipe.create("preprocess", "grey").transform(rgb)
    ours = featurepipe.create("extractor", "hog", cells_per_block=(2, 2), pixels_per_cell=(7, 7)).transform(grey)
    theirs = np.stack([skimage_hog(p, pixels_per_cell=(7, 7), cells_per_block=(2, 2)) for p in plane])
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_descriptors_take_one_channel(grey_rgb):
    _, rgb = grey_rgb
    grey = featurepipe.create("preprocess", "grey").transform(rgb)
    patches = featurepipe.create("descriptor", "patches", size=4, stride=4).compute(grey)
    assert patches.values.shape[1] == 16
    assert featurepipe.create("descriptor", "sift", step=8, sizes=(8,)).compute(grey).values.shape[1] == 128
    bovw = featurepipe.create("extractor", "bovw", n_words=4, n_samples=200, max_iter=3).fit(grey)
    assert bovw.centroids_.shape == (4, 36) and bovw.transform(grey).shape == (5, 16)


def test_colour_histograms_refuse_grey_with_one_line(grey_rgb):
    grey = featurepipe.create("preprocess", "grey").transform(grey_rgb[1])
    with pytest.raises(ValueError, match=r"hsv_hist: needs colour .* \(a grey batch, or a `grey` preprocessing step"):
        featurepipe.create("extractor", "hsv_hist").transform(grey)


def test_a_grey_folder_through_extract(tmp_path, grey_rgb):
    plane, rgb = grey_rgb
    for i, image in enumerate(rgb):
        write_rgb(tmp_path / "data" / "train" / "digit" / f"{i}.png", image)
    dataset = open_dataset(tmp_path / "data")
    pipeline = build_pipeline({"preprocess": [{"grey": {}}], "extractor": {"raw": {}}})
    store = FeatureStore(tmp_path / "cache")
    result = extract(dataset, pipeline, store, progress=False)
    assert store.read(result.key).X.shape == (5, 784)
