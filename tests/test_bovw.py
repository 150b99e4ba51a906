"""The bovw / pca_sift / fisher extractors: end to end by hand, fitted state in the fingerprint, configs,
and fitting on the training split only."""
import hashlib

import numpy as np
import pytest
import yaml
from sklearn.exceptions import NotFittedError

from featurepipe.cli import EXIT_OK, main
from featurepipe.datasets import open_dataset, read_image
from featurepipe import create
from featurepipe.extractors import ParamError
from featurepipe.local import SIFT, Patches, triangle
from featurepipe.pipeline import build_pipeline
from featurepipe.runner import fit_pipeline
from featurepipe.store import FeatureStore

SMALL = dict(n_words=8, n_samples=600, max_iter=10)


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)


def test_bovw_equals_patches_triangle_and_quadrant_sums_by_hand(images):
    bovw = create("extractor", "bovw", descriptor=Patches(size=3, normalize=False), projection="none", **SMALL)
    bovw.fit(images)
    image = images[:1, :8, :8]
    got = bovw.transform(image)[0]
    # 6 x 6 patch positions; centres at rows (i + 1.5) / 8, so rows 0-2 are the top quadrants.
    patches = np.array([image[0, r:r + 3, c:c + 3].ravel() for r in range(6) for c in range(6)], np.float32)
    codes = triangle(patches, bovw.centroids_).reshape(6, 6, 8)
    quadrants = [codes[:3, :3], codes[:3, 3:], codes[3:, :3], codes[3:, 3:]]
    np.testing.assert_allclose(got, np.concatenate([q.sum(axis=(0, 1)) for q in quadrants]), rtol=1e-5, atol=1e-4)


def test_fitted_state_is_in_the_fingerprint_and_transform_never_refits(images):
    bovw = create("extractor", "bovw", descriptor=Patches(stride=2), **SMALL)
    with pytest.raises(NotFittedError, match="call fit first"):
        bovw.transform(images)
    bovw.fit(images[:6])
    fingerprint, centroids = bovw.fingerprint(), bovw.centroids_.copy()
    bovw.transform(images[6:])
    assert bovw.fingerprint() == fingerprint and np.array_equal(bovw.centroids_, centroids)
    refit = create("extractor", "bovw", descriptor=Patches(stride=2), **SMALL).fit(images[6:])
    assert refit.fingerprint() != fingerprint  # same parameters, new codebook: new cache key
    bovw.projection_[0, 0] += 1e-3  # the fitted whitening counts too
    assert bovw.fingerprint() != fingerprint


@pytest.mark.parametrize("encoding, pooling, pyramid, per_cell", [
    ("triangle", "max", (1, 2), 8), ("soft_threshold", "sum", (2,), 8), ("hard", "sum", (1, 2, 4), 8),
    ("vlad", "sum", (1,), 8 * 108), ("soft_threshold_split", "sum", (2,), 16)])
def test_encodings_and_pyramids_give_the_advertised_length(images, encoding, pooling, pyramid, per_cell):
    split = encoding.endswith("_split")
    bovw = create("extractor", "bovw", encoding=encoding.removesuffix("_split"), polarity_split=split, pooling=pooling,
                            pyramid=pyramid, **SMALL).fit(images)
    out = bovw.transform(images[:3])
    assert out.shape == (3, sum(g * g for g in pyramid) * per_cell) and np.isfinite(out).all()
    if encoding == "hard":  # word histograms: every level counts each of the 27 x 27 patches once
        for level in (slice(0, 8), slice(8, 40), slice(40, 168)):
            np.testing.assert_array_equal(out[:, level].sum(1), 729)


def test_fisher_vectors_are_normalised_per_cell(images):
    fisher = create("extractor", "fisher", descriptor=SIFT(sizes=(8,)), n_components=8, n_gaussians=4,
                              n_samples=600, pyramid=(1, 2)).fit(images)
    out = fisher.transform(images[:3]).reshape(3, 5, 2 * 4 * 8)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1, rtol=1e-5)
    assert fisher.means_.shape == (4, 8) and abs(fisher.weights_.sum() - 1) < 1e-5


def test_pca_sift_defaults_to_pca_64_dense_sift(images):
    model = create("extractor", "pca_sift", n_words=8, n_samples=600, max_iter=5).fit(images)
    assert model.projection_.shape == (128, 64)
    np.testing.assert_allclose(model.projection_.T @ model.projection_, np.eye(64), atol=1e-4)
    assert model.centroids_.shape == (8, 64) and model.transform(images[:2]).shape == (2, 40)


def test_images_of_several_sizes(images):
    bovw = create("extractor", "bovw", descriptor=Patches(stride=3), **SMALL).fit(images)
    mixed = [images[0], images[1, :20, :24], images[2]]
    np.testing.assert_allclose(bovw.transform(mixed), np.vstack([bovw.transform([im]) for im in mixed]),
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name, param, value", [
    ("bovw", "encoding", "sparse"), ("bovw", "pooling", "mean"), ("bovw", "pyramid", (2, 3)),
    ("bovw", "n_samples", 100), ("bovw", "random_state", None), ("bovw", "init", "kmeans"),
    ("bovw", "batch_size", 0), ("bovw", "normalize", "l3"), ("bovw", "descriptor", "hog"),
    ("bovw", "descriptor", {"patches": {"size": 0}}),
    ("bovw", "projection", "ica"), ("bovw", "n_components", 8), ("bovw", "polarity_split", True), ("pca_sift", "n_components", 129),
    ("fisher", "n_gaussians", 0), ("fisher", "pyramid", ()),
])
def test_invalid_parameters_are_named(name, param, value):
    with pytest.raises(ParamError, match=f"^{param}[:.]"):  # a nested part's own parameter: descriptor.size
        create("extractor", name, **{param: value})
    with pytest.raises(ParamError, match="^pooling: must be 'sum' for vlad"):
        create("extractor", "bovw", encoding="vlad", pooling="max")


def _digest(image):
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def test_no_test_image_is_ever_seen_by_a_fit(image_folder, cache_dir, tmp_path, monkeypatch):
    fitted_on = []
    sample = Patches.sample

    def spy(self, images, n, rng):
        fitted_on.extend(_digest(im) for im in images)
        return sample(self, images, n, rng)

    monkeypatch.setattr(Patches, "sample", spy)
    dataset = open_dataset(image_folder)
    digests = {split: sorted(_digest(read_image(dataset.path(i))) for i in np.flatnonzero(dataset.split_mask(split)))
               for split in ("train", "test")}
    spec = {"extractor": {"bovw": {"descriptor": {"patches": {"stride": 2}}, **SMALL, "n_samples": 300}}}
    fit_pipeline(build_pipeline(spec), dataset, progress=False)
    assert sorted(fitted_on) == digests["train"] and not set(fitted_on) & set(digests["test"])

    fitted_on.clear()  # the command line: fits on train, then encodes both splits
    config = tmp_path / "bovw.yaml"
    config.write_text(yaml.safe_dump({"dataset": {"path": str(image_folder)}, "pipeline": spec,
                                      "run": {"cache_dir": str(cache_dir), "chunk_size": 8, "progress": False}}))
    assert main(["extract", "--config", str(config)]) == EXIT_OK
    assert sorted(fitted_on) == digests["train"]
    store = FeatureStore(cache_dir)
    key = store.entries()[0]["key"]
    assert store.read(key, split="test").X.shape == (12, 4 * 8)

    fitted_on.clear()  # features deleted: the saved fit (centroids, whitening) is reused, not refitted
    assert main(["cache", "rm", key, "--cache-dir", str(cache_dir)]) == EXIT_OK
    assert main(["extract", "--config", str(config)]) == EXIT_OK
    assert fitted_on == [] and store.entries()[0]["key"] == key


@pytest.mark.parametrize("name, params", [
    ("bovw", {}), ("bovw", {"encoding": "soft_threshold", "polarity_split": True}),
    ("bovw", {"encoding": "vlad", "projection": "pca", "n_components": 10, "pyramid": [1, 2]}),
    ("fisher", {"n_gaussians": 3, "n_components": 8}), ("pca_sift", {"n_components": 8})],
    ids=["triangle", "soft-threshold-split", "vlad-pyramid", "fisher", "pca-sift"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # a 3-iteration GMM, on purpose
def test_the_width_a_config_check_expects_is_the_features_width(images, name, params):
    """``checks`` refuses a chunk size by the features' width before any fit: it must be the real one."""
    from featurepipe.checks import _vocabulary_width

    small = {"n_words": 8, "max_iter": 2} if name != "fisher" else {"max_iter": 3}
    extractor = create("extractor", name, n_samples=300, **small, **params)
    expected = _vocabulary_width(extractor, "pipeline.extractor")
    assert extractor.fit(images).transform(images).shape[1] == expected
