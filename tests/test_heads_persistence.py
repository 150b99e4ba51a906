"""Saving and loading heads: identical predictions, no pickle, clear errors on foreign files."""
import json
import zipfile

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError

from featurepipe.fingerprint import to_json
from featurepipe.heads import LinearClassifier, MLPClassifier, load_model, save_model
from featurepipe.heads.optimizers import SGD
from featurepipe.heads.persistence import FORMAT_VERSION
from featurepipe.heads.schedules import CosineSchedule, LinearWarmup, Schedule

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)
    return X.astype(np.float32), y


@pytest.mark.parametrize(
    "model",
    [
        LinearClassifier(loss="squared_hinge", max_iter=5),
        MLPClassifier((7, 5), activation="maxout", dropout=0.1, early_stopping=True, max_iter=5),
        MLPClassifier(
            (6,), optimizer=SGD(momentum=0.9), schedule=LinearWarmup(CosineSchedule(5), 2), max_iter=5
        ),
    ],
    ids=["linear", "deep-maxout", "optimizer-objects"],
)
@pytest.mark.parametrize("labels", [None, np.array(["b", "a", "c"])], ids=["ints", "strings"])
def test_round_trip_predicts_identically(model, labels, blobs, tmp_path):
    X, y = blobs
    y = y if labels is None else labels[y]
    model.set_params(random_state=0).fit(X, y)
    save_model(model, tmp_path / "head.npz")
    loaded = load_model(tmp_path / "head.npz")

    assert type(loaded) is type(model)
    assert to_json(loaded.get_params(deep=False)) == to_json(model.get_params(deep=False))
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    np.testing.assert_array_equal(loaded.decision_function(X), model.decision_function(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.history_ == model.history_ and loaded.n_iter_ == model.n_iter_
    assert loaded.validation_scores_ == model.validation_scores_


def test_feature_names_survive(blobs, tmp_path):
    model = LinearClassifier(max_iter=3).fit(*blobs)
    # What fitting on a DataFrame with these columns sets.
    model.feature_names_in_ = np.array(["hue", "edge", "blob", "dot"], dtype=object)
    save_model(model, tmp_path / "head.npz")
    loaded = load_model(tmp_path / "head.npz")
    assert loaded.feature_names_in_.dtype == object
    np.testing.assert_array_equal(loaded.feature_names_in_, model.feature_names_in_)


def test_file_is_plain_arrays_and_json(blobs, tmp_path):
    save_model(MLPClassifier((5,), max_iter=2).fit(*blobs), tmp_path / "head.npz")
    with np.load(tmp_path / "head.npz", allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
        metadata = json.loads(data["metadata"].item())
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["estimator"] == "MLPClassifier"
    assert metadata["params"]["hidden_layer_sizes"] == [5]


def rewrite_metadata(path, **changes):
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    metadata = json.loads(arrays["metadata"].item())
    metadata.update(changes)
    arrays["metadata"] = np.array(json.dumps(metadata))
    with open(path, "wb") as file:
        np.savez(file, **arrays)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"format_version": FORMAT_VERSION + 1}, "upgrade featurepipe"),
        ({"format_version": "1.0"}, "unknown head format version"),
        ({"format": "something.else"}, "not a featurepipe head file"),
        ({"estimator": "RandomForestClassifier"}, "unknown estimator"),
    ],
)
def test_foreign_or_newer_files_fail_clearly(changes, message, blobs, tmp_path):
    path = tmp_path / "head.npz"
    save_model(LinearClassifier(max_iter=2).fit(*blobs), path)
    rewrite_metadata(path, **changes)
    with pytest.raises(ValueError, match=message):
        load_model(path)


def test_npz_without_metadata_is_refused(tmp_path):
    np.savez(tmp_path / "weights.npz", W=np.zeros(3))
    with pytest.raises(ValueError, match="not a featurepipe head file"):
        load_model(tmp_path / "weights.npz")


def test_save_refuses_what_it_cannot_write_without_pickle(blobs, tmp_path):
    with pytest.raises(NotFittedError):
        save_model(LinearClassifier(), tmp_path / "head.npz")
    class Unregistered(Schedule):
        def __call__(self, t):
            return 1.0

    model = LinearClassifier(schedule=Unregistered(), max_iter=2).fit(*blobs)
    with pytest.raises(TypeError, match="cannot save parameter schedule"):
        save_model(model, tmp_path / "head.npz")
    assert not (tmp_path / "head.npz").exists()


def test_save_replaces_an_existing_file_whole(blobs, tmp_path):
    path = tmp_path / "head.npz"
    save_model(MLPClassifier((30,), max_iter=2).fit(*blobs), path)
    save_model(LinearClassifier(max_iter=2).fit(*blobs), path)
    assert isinstance(load_model(path), LinearClassifier)
    assert [p.name for p in tmp_path.iterdir()] == ["head.npz"]
    assert zipfile.is_zipfile(path)


@pytest.mark.parametrize("class_weight", [{"pairs": [[[1, 2], 3]]}, {"pairs": [[1, 2, 3]]}, {"pairs": [[0, "x"]]}])
def test_an_edited_class_weight_is_refused_on_load(tmp_path, class_weight):
    """A stranger's head file whose ``class_weight`` is not a dict of labels to finite weights: refused as a
    ValueError or TypeError (which the head-folder loader reports as damaged), never a head that loads."""
    from featurepipe.heads.persistence import model_from_arrays

    X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    path = tmp_path / "head.npz"
    save_model(LinearClassifier(class_weight={0: 2.0}, optimizer="lbfgs").fit(X, np.repeat([0, 1, 2], 10)), path)
    data = dict(np.load(path))
    metadata = json.loads(data["metadata"].item())
    metadata["params"]["class_weight"] = class_weight
    data["metadata"] = np.array(json.dumps(metadata))
    with pytest.raises((ValueError, TypeError)):
        model_from_arrays(data, "head.npz")
