"""The one fit-and-score path: selection never sees test, the refit, augmented rows used for fitting only,
out-of-core matrices equal in-memory ones, and results kept in the store."""
import shutil

import numpy as np
import pytest
from helpers import make_image_folder

from featurepipe import matrix
from featurepipe.config import HeadConfig, TrainConfig
from featurepipe.datasets import open_dataset
from featurepipe.fitting import TrainingData, fit_and_score, head_key
from featurepipe.heads import LinearClassifier
from featurepipe.matrix import Segment, build_matrix, fit_normalization
from featurepipe.normalize import Normalization
from featurepipe.pipeline import build_pipeline
from featurepipe.runner import extract
from featurepipe.store import FeatureStore

SETTINGS = TrainConfig(selection="holdout", validation_fraction=0.25, folds=3)
HEAD = HeadConfig(name="svm", model="linear",
                  params={"loss": "squared_hinge", "optimizer": "lbfgs", "alpha": "auto", "random_state": 0})


def make_folder(root, rng):
    return make_image_folder(root, rng, per_class=(12, 6), size=24, jpeg_every=10**6)


def training_data(tmp_path, bins):
    """36 training and 18 test images' colour histograms, ``bins ** 3`` wide."""
    folder = make_folder(tmp_path / "images", np.random.default_rng(0))
    store = FeatureStore(tmp_path / "cache")
    pipeline = build_pipeline({"extractor": {"color_hist": {"bins": bins}}})
    key = extract(open_dataset(folder), pipeline, store, chunk_rows=8, progress=False).key
    return TrainingData(store, key), folder, pipeline


@pytest.fixture
def data(tmp_path):
    return training_data(tmp_path, bins=4)  # 64 features: fewer rows than features, the Gram search


def test_poisoned_test_labels_change_nothing_the_selection_sees(data, tmp_path):
    training, folder, pipeline = data
    clean = fit_and_score(training, HEAD, SETTINGS).record
    poisoned_folder = tmp_path / "poisoned"
    shutil.copytree(folder, poisoned_folder)
    for path in sorted((poisoned_folder / "test").rglob("*.png")):  # every test label shifted to another class
        target = {"red": "green", "green": "blue", "blue": "red"}[path.parent.name]
        path.rename(poisoned_folder / "test" / target / f"moved_{path.name}")
    key = extract(open_dataset(poisoned_folder), pipeline, training.store, chunk_rows=8, progress=False).key
    poisoned = fit_and_score(TrainingData(training.store, key), HEAD, SETTINGS).record
    assert poisoned["chosen"] == clean["chosen"]
    assert [r["val_accuracy"] for r in poisoned["grid"]] == [r["val_accuracy"] for r in clean["grid"]]
    assert clean["test"]["accuracy"] > 0.9 and poisoned["test"]["accuracy"] < 0.2  # test was scored, once


def test_refit_uses_every_training_row_and_can_be_skipped(data):
    training, _, _ = data
    refit = fit_and_score(training, HEAD, SETTINGS).record
    kept = fit_and_score(training, HEAD, SETTINGS.model_copy(update={"refit": False})).record
    assert refit["train"]["n"] == 36 and kept["train"]["n"] == 27 and refit["val"]["n"] == 9
    assert refit["chosen"] == kept["chosen"]


def test_results_are_kept_in_the_store(data):
    training, _, _ = data
    first = fit_and_score(training, HEAD, SETTINGS)
    again = fit_and_score(training, HEAD.model_copy(update={"params": {**HEAD.params, "verbose": True}}), SETTINGS)
    np.testing.assert_array_equal(first.model.coef_, again.model.coef_)
    assert head_key(training, HEAD, SETTINGS) != head_key(training, HEAD, SETTINGS.model_copy(update={"seed": 1}))
    assert training.store.load_head(head_key(training, HEAD, SETTINGS)) is not None


def test_out_of_core_matrix_equals_the_in_memory_one(data, monkeypatch):
    training, _, _ = data
    rows = training.train_rows[::-1]  # any order
    normalization = fit_normalization(training.store, [Segment(training.key, rows)],
                                      Normalization.from_spec(["power", "standardize"]))
    X = training.store.read(training.key).X
    reference = normalization.transform(X[np.searchsorted(np.flatnonzero(np.ones(len(X))), rows)])
    monkeypatch.setattr(matrix, "_BLOCK_BYTES", 64 * 4)       # blocks of a few rows
    monkeypatch.setattr(matrix, "_MEMORY_SHARE", 0.0)         # and on disk (memory-mapped)
    mapped = build_matrix(training.store, [Segment(training.key, rows)], normalization)
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(np.asarray(mapped), reference)
    labels = training.labels[rows]
    in_memory = LinearClassifier("squared_hinge", optimizer="lbfgs", alpha=0.01, random_state=0).fit(reference, labels)
    out_of_core = LinearClassifier("squared_hinge", optimizer="lbfgs", alpha=0.01, random_state=0).fit(mapped, labels)
    np.testing.assert_array_equal(in_memory.coef_, out_of_core.coef_)


def test_normaliser_fitted_on_blocks_equals_one_fitted_on_the_array(data, monkeypatch):
    training, _, _ = data
    monkeypatch.setattr(matrix, "_BLOCK_BYTES", 64 * 4)
    blocks = fit_normalization(training.store, [Segment(training.key, training.train_rows)],
                               Normalization.from_spec([{"standardize": {"eps": 0.01}}, "pca_whiten"]))
    whole = Normalization.from_spec([{"standardize": {"eps": 0.01}}, "pca_whiten"]).fit(
        training.store.read(training.key, "train").X)
    X = training.store.read(training.key).X
    np.testing.assert_allclose(blocks.transform(X), whole.transform(X), rtol=1e-4, atol=1e-4)


def test_augmented_rows_fit_but_never_validate(tmp_path):
    from featurepipe.extract import extract_features
    from featurepipe.config import load_config
    import yaml

    folder = make_folder(tmp_path / "images", np.random.default_rng(1))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"dataset": {"path": str(folder)}, "pipeline": {"extractor": {"raw": {"size": [8, 8]}}},
                                    "run": {"cache_dir": str(tmp_path / "cache"), "progress": False}}))
    cfg = load_config(path)
    plain = extract_features(cfg)
    flipped = extract_features(cfg, augment="hflip")
    store = FeatureStore(tmp_path / "cache")
    assert flipped.key != plain.key and flipped.n_items == 36  # the training images only, an entry of its own
    dataset = open_dataset(folder).subset("train")
    from featurepipe.datasets import read_image

    expected = np.stack([read_image(dataset.path(i))[:, ::-1] for i in range(3)])
    np.testing.assert_allclose(store.read(flipped.key).X[:3],
                               build_pipeline({"extractor": {"raw": {"size": [8, 8]}}}).transform(expected), atol=1e-6)
    training = TrainingData(store, plain.key, [flipped.key])
    record = fit_and_score(training, HEAD, SETTINGS).record
    assert record["val"]["n"] == 9 and record["train"]["n"] == 36  # originals only are scored
    segments, labels = training.segments(np.arange(4), augmented=True)
    assert [s.key for s in segments] == [plain.key, flipped.key] and len(labels) == 8


def test_a_damaged_cached_head_is_fitted_again_with_one_line(data, capsys):
    training, _, _ = data
    first = fit_and_score(training, HEAD, SETTINGS)
    folder = training.store.entry_path("heads", head_key(training, HEAD, SETTINGS))
    assert sorted(p.name for p in folder.iterdir()) == ["calibration.npz", "entry.json", "head.npz", "manifest.json",
                                                        "normalization.npz", "out_of_fold.npz"]  # an SVM: calibrated
    damaged = bytearray((folder / "head.npz").read_bytes())
    damaged[-100] ^= 1
    (folder / "head.npz").write_bytes(bytes(damaged))
    capsys.readouterr()
    again = fit_and_score(training, HEAD, SETTINGS)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "head.npz fails its SHA-256" in err[0] and err[0].endswith("fitting it again")
    np.testing.assert_array_equal(again.model.coef_, first.model.coef_)
    assert again.record["chosen"] == first.record["chosen"]
    assert fit_and_score(training, HEAD, SETTINGS).record == again.record  # stored whole again


def test_the_holdout_refit_starts_from_the_search_model(tmp_path, monkeypatch):
    """The refit on every training row is a warm start of the search's model at the chosen setting (when the
    search fits features: more rows than features)."""
    training, _, _ = training_data(tmp_path, bins=2)
    fits = []
    real = LinearClassifier.fit

    def recording(self, X, y):
        fits.append((self.warm_start, hasattr(self, "coef_"), len(X)))
        return real(self, X, y)

    monkeypatch.setattr(LinearClassifier, "fit", recording)
    record = fit_and_score(training, HEAD, SETTINGS).record
    assert fits == [(True, True, 36)] and record["train"]["n"] == 36  # the grid went through fit_path


def test_the_api_module_is_a_deprecated_alias_of_extract():
    import importlib
    import sys

    sys.modules.pop("featurepipe.api", None)
    with pytest.warns(DeprecationWarning, match="featurepipe.extract"):
        api = importlib.import_module("featurepipe.api")
    from featurepipe import extract

    assert api.extract_features is extract.extract_features
