"""Probabilities of a head that gives only scores: Platt scaling as scikit-learn's, fitted by the training flow
on out-of-fold scores, and the calibration error it removes (``metrics.ece``)."""
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from featurepipe.calibration import PlattScaling, fit_platt
from featurepipe.config import HeadConfig, TrainConfig
from featurepipe.fitting import HeadResult, TrainingData, fit_and_score
from featurepipe.heads.losses import softmax
from featurepipe.metrics import ece
from featurepipe.store import FeatureStore
from featurepipe.trained import TrainedFolderError, load_bundle, save_bundle

SVM = HeadConfig(name="svm", model="linear", params={"loss": "squared_hinge", "optimizer": "lbfgs", "alpha": 0.1,
                                                     "precondition": False, "random_state": 0})


class _Scores(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose decision values are its input: scikit-learn calibrates given scores."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def decision_function(self, X):
        return X[:, 0] if len(self.classes_) == 2 else X

    def predict(self, X):
        scores = self.decision_function(X)
        return self.classes_[(scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)]


def noisy_scores(rng, n, n_classes):
    """Scores where the true class leads on average, over-confident by a factor of 4."""
    labels = rng.integers(0, n_classes, n)
    scores = rng.normal(0, 1, (n, n_classes)) + np.eye(n_classes)[labels]
    return 4 * scores, labels


@pytest.mark.parametrize("n_classes", [2, 4])
def test_platt_scaling_gives_scikit_learns_sigmoid_probabilities(n_classes):
    scores, labels = noisy_scores(np.random.default_rng(0), 400, n_classes)
    if n_classes == 2:
        scores = scores[:, 1] - scores[:, 0]  # a head's two-class decision: classes[1] against classes[0]
    classes = np.arange(n_classes)
    ours = fit_platt(scores, labels, classes).predict_proba(scores)
    reference = CalibratedClassifierCV(FrozenEstimator(_Scores().fit(scores, labels)), method="sigmoid")
    theirs = reference.fit(scores.reshape(len(scores), -1), labels).predict_proba(scores.reshape(len(scores), -1))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    np.testing.assert_allclose(ours.sum(axis=1), 1)


def test_stored_calibration_is_checked():
    good = {"slope": np.array([-1.0, -2.0, -3.0]), "intercept": np.zeros(3)}
    assert PlattScaling.from_arrays(good, 3).slope.tolist() == [-1, -2, -3]
    assert PlattScaling.from_arrays({k: v[:1] for k, v in good.items()}, 2).slope.tolist() == [-1]
    for arrays, message in [({**good, "slope": np.array([np.nan, 1, 1])}, "slope holds non-finite numbers"),
                            ({**good, "intercept": np.zeros(4)}, "intercept is float64 [4]"),
                            ({**good, "slope": np.array([1, 2, 3])}, "slope is int64"),
                            ({"slope": good["slope"]}, "holds arrays ['slope']")]:
        with pytest.raises(ValueError, match=message.replace("[", r"\[")):
            PlattScaling.from_arrays(arrays, 3)


def test_ece_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.08, 0.92], [0.55, 0.45], [0.42, 0.58]])
    truth = np.array([0, 0, 0, 1])
    # 15 bins: (0.867, 0.933] holds rows 0 and 1 (accuracy 1/2, mean confidence 0.91), (0.533, 0.6] rows 2
    # and 3 (accuracy 1, mean confidence 0.565): 2/4 * 0.41 + 2/4 * 0.435.
    assert ece(truth, probabilities) == pytest.approx(0.4225)
    # One bin: accuracy 3/4 against mean confidence 2.95/4.
    assert ece(truth, probabilities, n_bins=1) == pytest.approx(0.0125)
    assert ece([0, 1], [[1.0, 0.0], [0.0, 1.0]]) == 0.0


def stored_features(store, X, labels, splits) -> str:
    """A feature entry holding ``X`` (one chunk), as ``extract`` leaves one."""
    key = store.key("features", test="digits")
    items = {"ids": [f"{i}.png" for i in range(len(X))], "labels": list(labels), "splits": list(splits)}
    store.open_entry(key, len(X), len(X), {}, items)
    store.write_chunk(key, 0, X.astype(np.float32), np.ones(len(X), np.int8), [])
    store.finish(key, {"n": len(X), "ok": len(X), "failed": 0})
    return key


SETTINGS = TrainConfig(selection="kfold", folds=5)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """scikit-learn's digits (1,797 8x8 images), 70% train: the training data, the SVM train fits on it with
    5 folds, the test features and labels."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    labels = np.array([f"digit {d}" for d in y])
    test = np.random.default_rng(0).random(len(X)) < 0.3
    store = FeatureStore(tmp_path_factory.mktemp("cache"))
    data = TrainingData(store, stored_features(store, X, labels, np.where(test, "test", "train")))
    return data, fit_and_score(data, SVM, SETTINGS), X[test].astype(np.float32), labels[test]


def test_platt_scaling_lowers_the_svm_calibration_error(digits):
    _, result, X_test, labels = digits
    assert result.calibration is not None  # scores only: train calibrated them
    decision = result.model.decision_function(result.normalization.transform(X_test))
    truth = np.searchsorted(result.model.classes_, labels)
    calibrated, raw = ece(truth, result.calibration.predict_proba(decision)), ece(truth, softmax(decision))
    print(f"digits, linear SVM, {len(truth)} test images: top-label ECE (15 bins) {calibrated:.4f} Platt-scaled, "
          f"{raw:.4f} softmax of the scores")
    assert calibrated < raw
    # train records the same two figures for its test rows (what its summary line and `evaluate` print)
    assert result.record["test"]["ece"] == pytest.approx(calibrated, abs=1e-6)
    assert result.record["test"]["ece_uncalibrated"] == pytest.approx(raw, abs=1e-6)


def test_the_calibration_round_trips_through_a_head_bundle_and_the_store(digits, tmp_path):
    data, result, X_test, _ = digits
    loaded = load_bundle(save_bundle(tmp_path / "svm", result))
    stored = fit_and_score(data, SVM, SETTINGS)  # the head the next `train` reuses
    for calibration in (loaded.calibration, stored.calibration):
        np.testing.assert_array_equal(calibration.slope, result.calibration.slope)
        np.testing.assert_array_equal(calibration.intercept, result.calibration.intercept)
    expected = result.calibration.predict_proba(result.model.decision_function(result.normalization.transform(X_test)))
    np.testing.assert_allclose(loaded.predict_proba(X_test), expected, rtol=1e-6)


def test_a_bundle_of_scores_without_calibration_gives_no_probabilities(digits, tmp_path):
    _, result, X_test, _ = digits
    bundle = load_bundle(save_bundle(tmp_path / "svm", HeadResult(result.model, result.normalization, result.record)))
    with pytest.raises(TrainedFolderError, match="holds no calibration"):
        bundle.predict_proba(X_test)
