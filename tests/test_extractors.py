"""Every registered extractor honours the contract; parametrised over the registry, so a new one is
tested automatically."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import featurepipe
from featurepipe.core import ParamError
from featurepipe.errors import MixedSizeError
from featurepipe.normalize import Normalization

# The library's extractors (tests register spies of their own, which are not held to this contract).
EXTRACTORS = [n for n in featurepipe.list("extractor")
              if featurepipe.catalog.get("extractor", n).__module__.startswith("featurepipe.")]
# Parameters that make each extractor usable on a small batch; data-driven ones get a small model.
SMALL = {"concat": lambda: {"extractors": [featurepipe.create("extractor", "hog", cells_per_block=(2, 2)),
                                           featurepipe.create("extractor", "hsv_hist")]},
         "hog": lambda: {"cells_per_block": (2, 2)},
         "bovw": lambda: {"n_words": 8, "n_samples": 500, "max_iter": 5},
         "pca_sift": lambda: {"n_words": 8, "n_samples": 500, "max_iter": 5},
         "fisher": lambda: {"n_gaussians": 4, "n_components": 16, "n_samples": 500, "max_iter": 100}}


def make(name):
    return featurepipe.create("extractor", name, **SMALL.get(name, dict)())


@pytest.fixture
def batch():
    return np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)


def test_registry_lists_the_core_extractors():
    assert {"raw", "color_hist", "hsv_hist", "hog", "concat"} <= set(EXTRACTORS)
    assert {"resize", "equalize", "hflip"} <= set(featurepipe.list("preprocess"))
    assert featurepipe.list("extractor", "h*") == ["hog", "hsv_hist"]


@pytest.mark.parametrize("name", EXTRACTORS)
def test_transform_gives_float32_rows(name, batch):
    extractor = make(name).fit(batch)
    out = extractor.transform(batch)
    assert out.dtype == np.float32 and out.ndim == 2 and out.shape[0] == len(batch)
    assert np.isfinite(out).all()
    # One image at a time gives the same rows as the stacked batch.
    np.testing.assert_allclose(np.vstack([extractor.transform(batch[i:i + 1]) for i in range(3)]), out[:3],
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize("name", EXTRACTORS)
def test_one_unique_name_per_feature(name, grey, batch):
    extractor = make(name)
    if grey and extractor.colour_only:
        return
    images = batch[..., 0] if grey else batch  # grey as scikit-learn's (n, H, W)
    out = extractor.fit(images).transform(images)
    names = extractor.get_feature_names_out()
    assert len(names) == out.shape[1] and len(set(names)) == len(names)
    assert all(isinstance(n, str) and n.isidentifier() for n in names)


# One changed, valid parameter per extractor: its fingerprint must move. A new extractor needs an entry.
CHANGED = {"raw": {"grey": True}, "color_hist": {"bins": 4}, "hsv_hist": {"bins": (4, 2, 2)},
           "hog": {"orientations": 8},
           "concat": {"extractors": [featurepipe.create("extractor", "hog", cells_per_block=(2, 2))]},
           "bovw": {"encoding": "hard"}, "pca_sift": {"n_words": 4}, "fisher": {"n_gaussians": 2}}


@pytest.mark.parametrize("name", EXTRACTORS)
def test_fingerprint_is_stable_and_follows_parameters(name, batch):
    a, b = make(name).fit(batch), make(name).fit(batch)
    assert a.fingerprint() == b.fingerprint()
    assert clone(a).fit(batch).fingerprint() == a.fingerprint()
    assert name in CHANGED, f"add a changed parameter for {name!r} to CHANGED"
    a.set_params(**CHANGED[name])
    assert a.fingerprint() != b.fingerprint()


@pytest.mark.parametrize("name, param, value", [
    ("hog", "orientations", 0), ("hog", "block_norm", "L3"), ("hog", "pixels_per_cell", (8,)),
    ("color_hist", "bins", 0), ("color_hist", "norm", "max"), ("hsv_hist", "bins", (8, 3)),
    ("raw", "size", (0, 4)), ("resize", "mode", "zoom"), ("equalize", "method", "local"),
])
def test_invalid_parameter_is_named(name, param, value):
    kind = "preprocess" if name in ("resize", "equalize") else "extractor"
    with pytest.raises(ParamError, match=f"^{param}:"):
        featurepipe.create(kind, name, **{param: value})


def test_parameters_are_checked_once_per_fit_not_on_every_transform(batch, monkeypatch):
    hog = featurepipe.create("extractor", "hog", cells_per_block=(2, 2))
    calls = []
    original = type(hog).validate_params
    monkeypatch.setattr(type(hog), "validate_params", lambda self: calls.append(1) or original(self))
    for _ in range(3):
        hog.transform(batch)
    assert calls == []  # validated when created, not again by each transform
    hog.set_params(orientations=8)
    hog.transform(batch)
    hog.transform(batch)
    assert len(calls) == 1  # a changed parameter is validated once
    hog.set_params(orientations=0)
    with pytest.raises(ParamError, match="^orientations:"):
        hog.transform(batch)  # a changed parameter is validated again


def test_mixed_sizes_refused_by_size_dependent_extractors_and_grouped_otherwise():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, s + (3,), dtype=np.uint8) for s in [(32, 32), (48, 40), (32, 32)]]
    with pytest.raises(MixedSizeError, match="resize"):
        featurepipe.create("extractor", "hog").transform(images)
    hist = featurepipe.create("extractor", "hsv_hist")
    np.testing.assert_array_equal(hist.transform(images), np.vstack([hist.transform([im]) for im in images]))


def test_rejects_what_is_not_an_image_and_grey_where_colour_is_needed():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        featurepipe.create("extractor", "hsv_hist").transform([np.zeros((8, 8, 2), np.uint8)])
    with pytest.raises(ValueError, match="needs colour"):
        featurepipe.create("extractor", "hsv_hist").transform([np.zeros((8, 8), np.uint8)])


@pytest.mark.parametrize("name", ["raw", "hog"])
def test_a_grey_batch_is_n_by_h_by_w(name):
    grey = np.random.default_rng(3).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    extractor = featurepipe.create("extractor", name)
    expected = extractor.transform(grey[..., None])
    np.testing.assert_array_equal(extractor.transform(grey), expected)
    np.testing.assert_array_equal(extractor.transform(list(grey)), expected)


def test_works_inside_a_scikit_learn_pipeline(batch):
    rng = np.random.default_rng(2)
    X = np.concatenate([batch, rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8) // 4])
    y = np.repeat([0, 1], 6)
    model = make_pipeline(featurepipe.create("extractor", "hog", cells_per_block=(2, 2)), LogisticRegression(max_iter=200))
    assert model.fit(X, y).score(X, y) == 1.0
    assert clone(model).get_params()["hog__orientations"] == 9
    assert repr(featurepipe.create("extractor", "hog", orientations=12)) == "HOG(orientations=12)"


def test_concat_normalises_each_block_on_its_own(batch):
    """``normalize: [power, l2]`` on concat: each extractor's block has unit norm in the joined row, so the
    wide HOG no longer drowns the narrow colour histogram; the result is the blocks normalised one by one."""
    members = [{"hog": {"cells_per_block": [2, 2]}}, {"hsv_hist": {"bins": [4, 2, 2]}}]
    joined = featurepipe.create("extractor", "concat", extractors=members, normalize=["power", "l2"])
    X = joined.fit(batch).transform(batch)
    hog = featurepipe.create("extractor", "hog", cells_per_block=[2, 2]).transform(batch)
    hsv = featurepipe.create("extractor", "hsv_hist", bins=[4, 2, 2]).transform(batch)
    chain = Normalization.from_spec(["power", "l2"])
    np.testing.assert_allclose(X, np.hstack([chain.transform(hog), chain.transform(hsv)]), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(X[:, :hog.shape[1]], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(X[:, hog.shape[1]:], axis=1), 1, rtol=1e-5)
    plain = featurepipe.create("extractor", "concat", extractors=members)
    assert plain.fingerprint() != joined.fingerprint()  # another setting, another cache entry


def test_concat_block_kernel_map_widens_each_block_and_the_config_check_knows(batch, tmp_path):
    from featurepipe.checks import check_pipeline
    from featurepipe.config import Config
    from featurepipe.datasets import open_dataset
    from featurepipe.pipeline import build_pipeline
    from helpers import make_image_folder

    spec = {"extractor": {"concat": {"extractors": [{"hog": {"cells_per_block": [2, 2]}}, {"color_hist": {"bins": 4}}],
                                     "normalize": ["l1", {"kernel_map": {"kernel": "chi2"}}]}}}
    pipeline = build_pipeline(spec)
    X = pipeline.fit(batch).transform(batch)
    assert X.shape[1] == 3 * (324 + 64) == len(pipeline.get_feature_names_out())
    folder = make_image_folder(tmp_path / "images", np.random.default_rng(0), per_class=(2, 1))
    cfg = Config.model_validate({"dataset": {"path": str(folder)}, "pipeline": spec})
    assert check_pipeline(pipeline, "pipeline", cfg, open_dataset(folder)) == X.shape[1]


def test_concat_refuses_a_block_normalisation_that_learns():
    with pytest.raises(ParamError, match=r"^normalize: must be null or a chain of normalisers that learn nothing"):
        featurepipe.create("extractor", "concat", extractors=["hog"], normalize=["standardize"])
