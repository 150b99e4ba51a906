"""The extractors from Python, as scikit-learn users expect them: feature names that say where each value
comes from, DataFrame output (``set_output``), and the same answers as a config for nested parts and
``alpha: auto``. (Every extractor's names, one per feature, are checked in test_extractors.py.)"""
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline

import featurepipe
from featurepipe.core import ParamError
from featurepipe.extractors.hog import hog
from featurepipe.heads import LinearClassifier, MLPClassifier
from featurepipe.imageops import resize_batch
from featurepipe.normalize import Normalization
from featurepipe.pipeline import build_pipeline


@pytest.fixture
def batch():
    return np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)


def columns(extractor, out, pattern):
    """The columns of ``out`` whose feature name matches the shell-style ``pattern``."""
    import fnmatch

    return out[:, [i for i, n in enumerate(extractor.get_feature_names_out()) if fnmatch.fnmatchcase(n, pattern)]]


# -- names say where each value comes from ----------------------------------------------------------------
def test_hog_names_are_block_cell_orientation(batch):
    extractor = featurepipe.create("extractor", "hog", orientations=6, pixels_per_cell=(6, 8), cells_per_block=(2, 3))
    out = extractor.transform(batch)
    blocks = hog(batch, 6, (6, 8), (2, 3), channel_axis=-1, feature_vector=False)  # (n, rows, cols, 2, 3, 6)
    across = blocks.shape[2]
    for column in [0, 7, 41, out.shape[1] - 1]:
        b, c, o = (int(part[1:]) for part in extractor.get_feature_names_out()[column].split("_")[1:])
        np.testing.assert_array_equal(out[:, column], blocks[:, b // across, b % across, c // 3, c % 3, o])


def test_raw_names_are_row_column_channel(batch):
    extractor = featurepipe.create("extractor", "raw", size=(8, 12))
    out = extractor.transform(batch)
    assert out.shape[1] == 8 * 12 * 3
    small = resize_batch(batch, (8, 12))
    np.testing.assert_allclose(columns(extractor, out, "raw_y3_x5_c1")[:, 0], small[:, 3, 5, 1] / 255, rtol=1e-6)
    grey = featurepipe.create("extractor", "raw", size=(8, 12), grey=True)
    assert list(grey.get_feature_names_out()[:2]) == ["raw_y0_x0_c0", "raw_y0_x1_c0"]  # known before any image


def test_colour_histogram_names_are_the_bins_a_colour_falls_in():
    image = np.empty((1, 16, 16, 3), np.uint8)
    image[...] = (200, 40, 100)  # levels 3, 0, 1 of 4
    joint = featurepipe.create("extractor", "color_hist", bins=4)
    out = joint.transform(image)
    assert joint.get_feature_names_out()[out[0].argmax()] == "color_hist_cell0_r3_g0_b1"
    channels = featurepipe.create("extractor", "color_hist", bins=4, mode="channels", grid=(1, 2))
    out = channels.transform(image)
    assert set(channels.get_feature_names_out()[out[0] > 0]) == {
        f"color_hist_cell{c}_{level}" for c in (0, 1) for level in ("r3", "g0", "b1")}
    image[...] = (255, 0, 0)  # pure red: hue bin 0, top saturation and value
    hsv = featurepipe.create("extractor", "hsv_hist", bins=(8, 3, 3))
    assert hsv.get_feature_names_out()[hsv.transform(image)[0].argmax()] == "hsv_hist_cell0_h0_s2_v2"


def test_bag_of_words_names_are_word_level_cell(batch):
    bovw = featurepipe.create("extractor", "bovw", encoding="hard", pyramid=(1, 2), n_words=5, n_samples=500,
                              max_iter=5).fit(batch)
    out = bovw.transform(batch)
    assert bovw.get_feature_names_out()[0] == "bovw_w0_l0_c0"
    for word in range(5):  # the four cells of level 1 count the words of the whole image, level 0
        np.testing.assert_allclose(columns(bovw, out, f"bovw_w{word}_l1_c?").sum(axis=1),
                                   columns(bovw, out, f"bovw_w{word}_l0_c0")[:, 0])
    split = clone(bovw).set_params(encoding="soft_threshold", polarity_split=True).fit(batch)
    assert {"bovw_w4_l1_c3", "bovw_w4_neg_l1_c3"} <= set(split.get_feature_names_out())


def test_fisher_names_are_gaussian_moment_dimension(batch):
    fisher = featurepipe.create("extractor", "fisher", n_gaussians=3, n_components=4, n_samples=300, max_iter=20)
    with pytest.raises(NotFittedError, match="call fit first"):
        fisher.get_feature_names_out()
    names = fisher.fit(batch).get_feature_names_out()
    assert list(names[:2]) == ["fisher_g0_mu_d0_l0_c0", "fisher_g0_mu_d1_l0_c0"]
    assert names[3 * 4] == "fisher_g0_sigma_d0_l0_c0" and len(names) == 2 * 3 * 4


def test_names_of_concat_pipeline_and_scikit_learn_pipeline(batch):
    hog = dict(cells_per_block=(2, 2))
    pair = featurepipe.create("extractor", "concat", extractors=[
        featurepipe.create("extractor", "hog", **hog), featurepipe.create("extractor", "hog", orientations=4, **hog)])
    names = pair.fit(batch).get_feature_names_out()
    assert names[0] == "extractor0__hog_b0_c0_o0" and names[-1] == "extractor1__hog_b8_c3_o3"  # two HOGs told apart
    pipeline = build_pipeline({"preprocess": [{"resize": {"size": [16, 16]}}], "extractor": {"hog": hog}})
    assert len(pipeline.fit(batch).get_feature_names_out()) == pipeline.transform(batch).shape[1] == 36  # 16x16
    steps = make_pipeline(featurepipe.create("preprocess", "resize", size=(16, 16)),
                          featurepipe.create("extractor", "hog", **hog))
    assert list(steps.fit(batch).get_feature_names_out()) == list(pipeline.get_feature_names_out())


def test_concat_takes_the_configs_form_in_python(batch):
    """Extractors by name or ``{name: {parameters}}``, as a config writes them: the same features and identity as
    the objects, a data-driven member fitted (and its state part of the identity), a bad member refused."""
    given = featurepipe.create("extractor", "concat", extractors=[{"hog": {"cells_per_block": [2, 2]}}, "color_hist",
                                                                    {"bovw": {"descriptor": {"patches": {"size": 6}},
                                                                              "n_words": 4, "random_state": 0}}])
    objects = featurepipe.create("extractor", "concat", extractors=[
        featurepipe.create("extractor", "hog", cells_per_block=[2, 2]), featurepipe.create("extractor", "color_hist"),
        featurepipe.create("extractor", "bovw", descriptor={"patches": {"size": 6}}, n_words=4, random_state=0)])
    assert given.fingerprint() == objects.fingerprint()
    np.testing.assert_array_equal(given.fit(batch).transform(batch), objects.fit(batch).transform(batch))
    assert given.fingerprint() == objects.fingerprint() != clone(given).fingerprint()  # the fit is in the identity
    assert given.members()[2].centroids_.shape[0] == 4
    with pytest.raises(ParamError, match=r"^extractors: must be a non-empty list of extractors \(objects, registered"):
        featurepipe.create("extractor", "concat", extractors=[{"nope": {}}])


def test_names_need_images_when_the_width_follows_them(batch):
    hog = featurepipe.create("extractor", "hog")
    with pytest.raises(NotFittedError, match="^hog: the number of features follows the images"):
        hog.get_feature_names_out()
    hog.fit(batch)
    with pytest.raises(ValueError, match="^hog: images have no feature names"):
        hog.get_feature_names_out(["a", "b"])
    assert len(hog.get_feature_names_out()) == hog.transform(batch).shape[1]


# -- set_output -------------------------------------------------------------------------------------------
def test_set_output_pandas_gives_named_columns(batch):
    hog = featurepipe.create("extractor", "hog", cells_per_block=(2, 2))
    expected = hog.transform(batch)
    frame = hog.set_output(transform="pandas").transform(batch)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(hog.get_feature_names_out())
    np.testing.assert_array_equal(frame.to_numpy(), expected)
    assert isinstance(clone(hog).fit_transform(batch), pd.DataFrame)  # clone keeps the setting, as scikit-learn's
    assert isinstance(hog.features(batch), np.ndarray)  # what featurepipe's own code reads stays an array
    assert isinstance(hog.set_output(transform="default").transform(batch), np.ndarray)
    with pytest.raises(ValueError, match="^hog: set_output.*must be one of \\('default', 'pandas'\\), got 'polars'"):
        hog.set_output(transform="polars")


def test_scikit_learn_pipeline_and_global_setting_give_data_frames(batch):
    pipeline = make_pipeline(featurepipe.create("preprocess", "resize", size=(16, 16)),
                             featurepipe.create("extractor", "hsv_hist")).set_output(transform="pandas")
    frame = pipeline.fit_transform(batch)  # the resize step's images stay an array in between
    assert isinstance(frame, pd.DataFrame) and frame.columns[0] == "hsv_hist_cell0_h0_s0_v0"
    hog = featurepipe.create("extractor", "hog", cells_per_block=(2, 2))
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(hog.transform(batch), pd.DataFrame)
        assert isinstance(hog.features(batch), np.ndarray)
    assert isinstance(hog.transform(batch), np.ndarray)


# -- a config's forms from Python -------------------------------------------------------------------------
def test_a_nested_part_in_the_config_form_works_from_python(batch):
    bovw = featurepipe.create("extractor", "bovw", descriptor={"patches": {"size": 6}}, n_words=4, n_samples=300,
                              max_iter=3)
    assert bovw.get_params()["descriptor__size"] == 6
    assert bovw.fit(batch).centroids_.shape == (4, 6 * 6 * 3)  # the descriptor used has that size
    with pytest.raises(ParamError, match="^descriptor.size: must be a positive integer, got 0"):
        featurepipe.create("extractor", "bovw", descriptor={"patches": {"size": 0}})


@pytest.mark.parametrize("head, name, searcher", [(LinearClassifier, "linear", r"LinearClassifierCV\(.*alphas='auto'"),
                                                  (MLPClassifier, "mlp", "GridSearchCV")])
def test_alpha_auto_from_python_says_where_auto_works(head, name, searcher):
    X, y = make_blobs(n_samples=40, centers=2, n_features=3, random_state=0)
    message = f"^alpha: 'auto' is a grid scaled to the training rows.*config's heads.*{searcher}"
    with pytest.raises(ParamError, match=message):
        head(alpha="auto").fit(X, y)
    with pytest.raises(ParamError, match=message):
        featurepipe.create("head", name, alpha="auto")
    with pytest.raises(ParamError, match="^alpha: must be a number >= 0, got 'much'"):
        head(alpha="much").fit(X, y)


# -- normalisers: the steps between features and a head --------------------------------------------------
def test_normaliser_names_follow_their_columns():
    rows = np.array([[0.0, 0.5, 0.0], [0.0, 0.2, 0.0]], np.float32)  # only the second feature is non-zero
    kernel_map = featurepipe.create("normalizer", "kernel_map", order=2)
    out = kernel_map.fit(rows).transform(rows)
    names = kernel_map.get_feature_names_out(["a", "b", "c"])
    assert len(names) == out.shape[1] == 3 * 5 and names[0] == "a_sqrt" and names[3] == "a_cos1"
    assert {n for n, value in zip(names, out[0]) if value != 0} == {"b_sqrt", "b_cos1", "b_sin1", "b_cos2", "b_sin2"}
    assert list(featurepipe.create("normalizer", "power").fit(rows).get_feature_names_out()) == ["x0", "x1", "x2"]
    whiten = featurepipe.create("normalizer", "pca_whiten").fit(np.random.default_rng(0).random((20, 3)))
    assert list(whiten.get_feature_names_out()) == ["pca_whiten0", "pca_whiten1", "pca_whiten2"]
    with pytest.raises(NotFittedError, match="^l2: fit or transform rows first"):
        featurepipe.create("normalizer", "l2").get_feature_names_out()


def test_a_scikit_learn_pipeline_of_extractor_and_normalisers_names_its_columns(batch):
    pipeline = make_pipeline(featurepipe.create("extractor", "hsv_hist", bins=(4, 2, 2)),
                             featurepipe.create("normalizer", "power"),
                             featurepipe.create("normalizer", "kernel_map", kernel="hellinger"))
    frame = pipeline.set_output(transform="pandas").fit_transform(batch)
    assert isinstance(frame, pd.DataFrame) and frame.columns[0] == "hsv_hist_cell0_h0_s0_v0_sqrt"
    assert list(frame.columns) == list(pipeline.get_feature_names_out())
    normalization = Normalization.from_spec(["power", "l2"])
    with sklearn.config_context(transform_output="pandas"):  # featurepipe's own chain still reads arrays
        assert isinstance(normalization.fit(frame).transform(frame.to_numpy()), np.ndarray)


def test_a_normaliser_keeps_a_data_frame_s_index():
    frame = pd.DataFrame([[1.0, 3.0], [2.0, 2.0]], index=["img_a", "img_b"], columns=["u", "v"])
    out = featurepipe.create("normalizer", "l1").set_output(transform="pandas").transform(frame)
    assert list(out.index) == ["img_a", "img_b"] and list(out.columns) == ["u", "v"]
    np.testing.assert_allclose(out.to_numpy(), [[0.25, 0.75], [0.5, 0.5]])
