"""LinearClassifierCV: the config's ``alpha: auto`` search from Python -- the same grid, folds and choice as
``featurepipe train``, scores a hand-written loop of fits reproduces, and a scikit-learn estimator."""
import numpy as np
import pytest
from helpers import stored_colour_histograms
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold
from sklearn.utils.estimator_checks import estimator_checks_generator

import featurepipe
from featurepipe.config import HeadConfig, TrainConfig
from featurepipe.core import ParamError
from featurepipe.heads import LinearClassifier, LinearClassifierCV, MLPClassifier
from featurepipe.heads.cv import _ArraySearch
from featurepipe.heads.grid import GRAM, PRIMAL

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SVM = dict(loss="squared_hinge", optimizer="lbfgs", max_iter=2000, tol=1e-6, random_state=0)


@pytest.fixture(scope="module")
def edge():
    """Three classes whose best auto alpha lies above the grid: the search extends it twice."""
    X, y = make_classification(150, 20, n_informative=8, n_classes=3, random_state=0)
    return X.astype(np.float32), y


def hand_written_scores(X, y, alphas, splits, **params):
    """Accuracy of ``LinearClassifier(alpha=a, **params)`` fitted on each split's training rows, per alpha."""
    return np.array([[LinearClassifier(alpha=a, **params).fit(X[fit], y[fit]).score(X[val], y[val])
                      for fit, val in splits] for a in alphas])


def test_the_auto_grid_extends_beyond_its_edge_and_scores_as_a_hand_written_loop(edge):
    X, y = edge
    model = LinearClassifierCV(LinearClassifier(**SVM), cv=3, random_state=0).fit(X, y)
    grid = model.alphas_[:6]
    # The grid's largest was best, then the larger of the two above it: two more above that.
    np.testing.assert_allclose(model.alphas_[6:], grid[0] * np.sqrt(10) ** np.arange(1, 5), rtol=1e-12)
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    expected = hand_written_scores(X, y, model.alphas_, splits, **SVM)
    folds = np.column_stack([model.cv_results_[f"split{k}_test_score"] for k in range(3)])
    np.testing.assert_allclose(folds, expected, atol=1e-12)
    assert model.alpha_ == model.alphas_[np.argmax(expected.mean(axis=1))]  # first of equals, in search order
    assert model.alpha_ == model.alphas_[7] and model.best_score_ > folds[:6].mean(axis=1).max()
    assert model.cv_results_["rank_test_score"][model.best_index_] == 1
    np.testing.assert_allclose(model.cv_results_["std_test_score"], expected.std(axis=1), atol=1e-12)
    cold = LinearClassifier(alpha=model.alpha_, **SVM).fit(X, y)  # the refit starts warm, ends at the same model
    np.testing.assert_allclose(model.best_estimator_.coef_, cold.coef_, atol=1e-3 * np.abs(cold.coef_).max())
    np.testing.assert_array_equal(model.predict(X), model.best_estimator_.predict(X))


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """36 training images' colour histograms (125 wide) in a store, and their l2-normalised matrix."""
    from featurepipe.matrix import build_matrix, fit_normalization
    from featurepipe.normalize import Normalization

    data = stored_colour_histograms(tmp_path_factory.mktemp("stored"))
    store = data.store
    segments, y = data.segments(np.arange(len(data.train_rows)), augmented=False)
    X = build_matrix(store, segments, fit_normalization(store, segments, Normalization.from_spec("l2")))
    return data, np.asarray(X), y


@pytest.mark.parametrize("params, solver", [({}, GRAM), ({"precondition": False}, PRIMAL)])
def test_the_same_search_as_a_configs_alpha_auto(stored, params, solver, monkeypatch):
    """On the same rows, folds and seed, the config's search and the CV search the same grid (extension
    included), score each fold alike and choose the same alpha, by the same solver."""
    from featurepipe.fitting import fit_and_score

    data, X, y = stored
    solvers = []
    real = _ArraySearch.solver
    monkeypatch.setattr(_ArraySearch, "solver", lambda self, n: solvers.append(real(self, n)) or solvers[-1])
    head = HeadConfig(name="svm", model="linear", params={**SVM, **params, "alpha": "auto"})
    record = fit_and_score(data, head, TrainConfig(selection="kfold", folds=3, seed=0, normalize="l2")).record
    model = LinearClassifierCV(LinearClassifier(**SVM, **params), cv=3, random_state=0).fit(X, y)
    assert record["solvers"][0]["solver"] == solver and set(solvers) == {solver}
    np.testing.assert_allclose(model.alphas_, [r["params"]["alpha"] for r in record["grid"]], rtol=1e-6)
    folds = np.column_stack([model.cv_results_[f"split{k}_test_score"] for k in range(3)])
    np.testing.assert_allclose(folds, [r["val_folds"] for r in record["grid"]], atol=1e-12)
    assert model.alpha_ == pytest.approx(record["chosen"]["params"]["alpha"], rel=1e-6)


def test_fewer_rows_than_features_search_by_gram_as_on_features(monkeypatch):
    X, y = make_classification(60, 200, n_informative=10, n_classes=3, random_state=1)
    calls = []
    for name in ("fit_gram_path", "fit_by_gram"):
        real = getattr(LinearClassifier, name)
        monkeypatch.setattr(LinearClassifier, name,
                            lambda *a, real=real, name=name, **k: calls.append(name) or real(*a, **k))
    by_gram = LinearClassifierCV(LinearClassifier(**SVM), cv=3, random_state=0).fit(X, y)
    assert set(calls) == {"fit_gram_path", "fit_by_gram"}
    calls.clear()
    monkeypatch.setattr(_ArraySearch, "solver", lambda self, n: PRIMAL)
    on_features = LinearClassifierCV(LinearClassifier(**SVM), cv=3, random_state=0).fit(X, y)
    assert calls == []
    np.testing.assert_allclose(by_gram.alphas_, on_features.alphas_, rtol=1e-5)
    a, b = (np.column_stack([m.cv_results_[f"split{k}_test_score"] for k in range(3)]) for m in (by_gram, on_features))
    np.testing.assert_allclose(a, b, atol=1 / 20 + 1e-9)  # at most one validation row of 20 apart
    assert np.mean(a == b) >= 0.8 and by_gram.alpha_ == pytest.approx(on_features.alpha_, rel=1e-5)
    assert np.mean(by_gram.predict(X) == on_features.predict(X)) >= 0.95


def test_an_explicit_list_of_alphas_is_searched_as_given(edge):
    X, y = edge
    model = LinearClassifierCV(LinearClassifier(**SVM), alphas=np.array([10.0, 1.0, 0.1, 1.0]), cv=3,
                               random_state=0).fit(X, y)
    np.testing.assert_array_equal(model.alphas_, [10.0, 1.0, 0.1])  # once each; no extension, wherever the best lies
    assert model.cv_results_["params"] == [{"alpha": 10.0}, {"alpha": 1.0}, {"alpha": 0.1}]
    assert model.alpha_ in (10.0, 1.0, 0.1) and model.best_estimator_.alpha == model.alpha_


@pytest.mark.parametrize("cv", [KFold(4), "generator"], ids=["splitter", "iterable"])
def test_a_custom_splitter_gives_the_folds(edge, cv):
    X, y = edge
    splits = list(KFold(4).split(X, y) if cv != "generator" else ShuffleSplit(3, random_state=0).split(X, y))
    given = cv if cv != "generator" else ((fit, val) for fit, val in splits)
    model = LinearClassifierCV(LinearClassifier(**SVM), alphas=[1.0, 0.1], cv=given).fit(X, y)
    expected = hand_written_scores(X, y, [1.0, 0.1], splits, **SVM)
    folds = np.column_stack([model.cv_results_[f"split{k}_test_score"] for k in range(len(splits))])
    np.testing.assert_allclose(folds, expected, atol=1e-12)
    assert f"split{len(splits)}_test_score" not in model.cv_results_


@pytest.mark.parametrize("loss", ["log_loss", "squared_hinge", "hinge"])
def test_probabilities_only_for_log_loss(edge, loss):
    X, y = edge
    model = LinearClassifierCV(LinearClassifier(loss=loss, optimizer="lbfgs"), alphas=[1.0], cv=2)
    assert hasattr(model, "predict_proba") == (loss == "log_loss")
    model.fit(X, y)
    assert hasattr(model, "predict_proba") == (loss == "log_loss")
    if loss == "log_loss":
        np.testing.assert_allclose(model.predict_proba(X), model.best_estimator_.predict_proba(X))
    assert hasattr(LinearClassifierCV(), "predict_proba")  # the default head is log_loss


@pytest.mark.parametrize("params, message", [
    ({"alphas": []}, "^alphas: must be 'auto' or a non-empty list of numbers >= 0, got \\[\\]$"),
    ({"alphas": [1.0, -1.0]}, "^alphas: must be 'auto' or a non-empty list of numbers >= 0, got \\[1.0, -1.0\\]$"),
    ({"alphas": "much"}, "^alphas: must be 'auto' or a non-empty list of numbers >= 0, got 'much'$"),
    ({"cv": 1}, "^cv: must be an integer >= 2, a cross-validation splitter or an iterable of \\(train, test\\)"),
    ({"estimator": MLPClassifier()}, "^estimator: must be a LinearClassifier or None, got MLPClassifier\\(\\)$"),
])
def test_bad_parameters_fail_in_fit_naming_themselves(edge, params, message):
    with pytest.raises(ParamError, match=message):
        LinearClassifierCV(**params).fit(*edge)


def test_exported_from_the_package():
    assert featurepipe.LinearClassifierCV is LinearClassifierCV


def test_each_fold_fits_its_slice_of_sample_weight(edge, monkeypatch):
    X, y = edge
    weights = np.arange(1.0, len(y) + 1.0)
    seen = []
    real = LinearClassifier.fit_path
    monkeypatch.setattr(LinearClassifier, "fit_path",
                        lambda self, X, y, alphas, **k: seen.append(k["sample_weight"]) or real(self, X, y, alphas, **k))
    LinearClassifierCV(LinearClassifier(**SVM), alphas=[1.0], cv=3, random_state=0).fit(X, y, sample_weight=weights)
    splits = StratifiedKFold(3, shuffle=True, random_state=0).split(X, y)
    for fold_weights, (fit, _) in zip(seen, splits):
        np.testing.assert_array_equal(fold_weights, weights[np.sort(fit)])


def _marks(name):
    """The checks that cannot hold, and why."""
    if name == "check_sample_weight_equivalence_on_dense_data":
        return [pytest.mark.xfail(strict=False, reason="not for a cross-validation: a repeated row's copies fall in "
                                  "different folds, a weight of 2 does not (scikit-learn marks LogisticRegressionCV alike)")]
    return []


def _conformance_checks():
    """scikit-learn's checks, without the array-API one (as tests/test_heads_sklearn_api.py)."""
    for estimator in (LinearClassifierCV(LinearClassifier(loss="squared_hinge", optimizer="lbfgs"), cv=3),
                      LinearClassifierCV(alphas=[1e-2, 1e-4], cv=2)):
        for est, check in estimator_checks_generator(estimator):
            name = getattr(check, "func", check).__name__
            if name != "check_array_api_input":
                yield pytest.param(est, check, id=f"{est!r}-{name}", marks=_marks(name))


@pytest.mark.parametrize("estimator, check", list(_conformance_checks()))
def test_sklearn_conformance(estimator, check):
    check(estimator)


def test_a_mini_batch_refit_is_the_fit_at_the_chosen_alpha(edge):
    """Adam ends where its start and schedule take it: the CV's refit starts afresh, as ``fit`` does, so the
    model it keeps is ``LinearClassifier(alpha=alpha_).fit(X, y)``, not a continuation of a fold's model."""
    X, y = edge
    template = LinearClassifier(max_iter=20, random_state=0)
    model = LinearClassifierCV(template, alphas=[1e-3, 1e-2], cv=3, random_state=0).fit(X, y)
    alone = clone(template).set_params(alpha=model.alpha_).fit(X, y)
    np.testing.assert_array_equal(model.best_estimator_.coef_, alone.coef_)
