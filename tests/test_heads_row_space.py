"""Linear heads on fewer rows than features fit in the row space of X: the same minimum, faster."""
import numpy as np
import pytest

from featurepipe.heads import LinearClassifier
from featurepipe.heads.base import Start
from featurepipe.heads.row_space import GramSpace, RowSpace, gram


def wide(n=120, d=400, seed=0):
    """Correlated features, more of them than rows, and 4 classes."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32) @ rng.standard_normal((d, d)).astype(np.float32) * 0.05
    return X, rng.integers(0, 4, n)


def in_features(monkeypatch):
    """Fits that never use the row space, for reference."""
    monkeypatch.setattr(LinearClassifier, "_row_space", lambda self, X, full_batch: None)


def test_decomposition_reconstructs_x_with_an_orthonormal_basis():
    X, _ = wide()
    space = RowSpace(X)
    assert space.features.shape == (120, 120) and space.basis.shape == (400, 120)
    np.testing.assert_allclose(space.basis.T @ space.basis, np.eye(120), atol=1e-4)
    np.testing.assert_allclose(space.features @ space.basis.T, X, atol=1e-4 * np.abs(X).max())
    # Rank-deficient X: only the directions it spans are kept.
    low = X[:, :5] @ np.random.default_rng(1).standard_normal((5, 400)).astype(np.float32)
    assert RowSpace(low).features.shape[1] == 5


@pytest.mark.parametrize("loss", ["squared_hinge", "log_loss"])
def test_row_space_fit_reaches_the_minimum_of_the_fit_on_x(loss, monkeypatch):
    X, y = wide()
    params = dict(loss=loss, optimizer="lbfgs", alpha=1e-2, max_iter=3000, tol=1e-6, random_state=0)
    through_rows = LinearClassifier(**params).fit(X, y)
    in_features(monkeypatch)
    direct = LinearClassifier(**params).fit(X, y)
    assert through_rows.n_features_in_ == direct.n_features_in_ == 400
    assert through_rows.coef_.shape == direct.coef_.shape == (4, 400)
    np.testing.assert_allclose(through_rows.loss_curve_[-1], direct.loss_curve_[-1], rtol=1e-4)
    np.testing.assert_allclose(through_rows.coef_, direct.coef_, atol=2e-2 * np.abs(direct.coef_).max())
    np.testing.assert_allclose(through_rows.intercept_, direct.intercept_, atol=2e-2)
    assert (through_rows.predict(X) == direct.predict(X)).all()


def test_fit_path_shares_one_row_space_and_matches_single_fits(monkeypatch):
    X, y = wide()
    head = LinearClassifier("squared_hinge", optimizer="lbfgs", max_iter=3000, tol=1e-6, random_state=0)
    alphas = [1e-1, 1e-2, 1e-3]
    assert isinstance(head._path_preconditioner(X, y, alphas).row_space, RowSpace)
    path = head.fit_path(X, y, alphas)
    in_features(monkeypatch)
    for alpha, model in zip(alphas, path):
        single = LinearClassifier(**{**head.get_params(deep=False), "alpha": alpha}).fit(X, y)
        # The same minimum, to float32 precision: never a worse objective than the fit on X.
        assert model.loss_curve_[-1] <= single.loss_curve_[-1] * (1 + 1e-3) + 1e-7
        assert model.coef_.shape == (4, 400) and (model.predict(X) == single.predict(X)).mean() > 0.95


def test_not_used_with_l1_minibatch_or_tall_data():
    X, y = wide()
    head = LinearClassifier(optimizer="lbfgs")
    assert isinstance(head._row_space(X, full_batch=True), RowSpace)
    assert LinearClassifier(optimizer="lbfgs", l1=1e-3)._row_space(X, full_batch=True) is None
    assert head._row_space(X, full_batch=False) is None
    assert head._row_space(np.vstack([X] * 4), full_batch=True) is None


def test_a_preconditioner_built_on_other_rows_is_refused():
    """A refit on more rows than the search fitted must not reuse the search's row space."""
    X, y = wide()
    head = LinearClassifier(optimizer="lbfgs", max_iter=50)
    preconditioner = head._path_preconditioner(X[:100], y[:100], [1e-2])
    with pytest.raises(ValueError, match="row space of 100 rows, not of these 120"):
        head._fit(X, y, preconditioner=preconditioner)


@pytest.mark.parametrize("loss", ["squared_hinge", "log_loss"])
def test_a_gram_path_scores_new_rows_as_the_fit_on_features_does(loss):
    """Fitted from the Gram matrix alone, the path's models give held-out rows the scores of fits on X."""
    X, y = wide(n=150)
    fit, val = slice(0, 110), slice(110, None)
    head = LinearClassifier(loss, optimizer="lbfgs", max_iter=3000, tol=1e-6, random_state=0)
    alphas = [1e-1, 1e-2, 1e-3]
    K = gram(X)
    space = GramSpace(K[fit, fit])
    path = head.fit_gram_path(space, y[fit], alphas)
    projected = space.project(K[val, fit])
    for alpha, model in zip(alphas, path):
        single = LinearClassifier(**{**head.get_params(deep=False), "alpha": alpha}).fit(X[fit], y[fit])
        assert model.n_features_in_ == 110 and model.alpha == alpha
        assert model.loss_curve_[-1] <= single.loss_curve_[-1] * (1 + 1e-3)  # the same minimum, to tolerance
        expected = single.decision_function(X[val])  # to the solvers' tolerance at the flat end of the path:
        np.testing.assert_allclose(model.decision_function(projected), expected, atol=2e-2 * np.abs(expected).max())


def test_a_transferred_solution_starts_another_fold_near_its_minimum():
    """``GramSpace.transfer`` takes a fold's solution into another fold's space: it scores the rows both folds
    share as before, and a fit started there reaches the minimum of one started afresh."""
    X, y = wide(n=150)
    first, second = np.arange(0, 110), np.arange(40, 150)
    K = gram(X)
    head = LinearClassifier("squared_hinge", optimizer="lbfgs", max_iter=3000, tol=1e-5, random_state=0)
    space_a, space_b = GramSpace(K[np.ix_(first, first)]), GramSpace(K[np.ix_(second, second)])
    (model_a,) = head.fit_gram_path(space_a, y[first], [1e-2])
    moved = space_b.transfer(space_a, K[np.ix_(second, first)], model_a._network_params())
    shared = np.arange(40, 110)
    before = model_a.decision_function(space_a.project(K[np.ix_(shared, first)]))
    after = space_b.project(K[np.ix_(shared, second)]) @ moved[0] + moved[1]
    np.testing.assert_allclose(after, before, atol=1e-3 * np.abs(before).max())
    (afresh,) = head.fit_gram_path(space_b, y[second], [1e-2])
    (warm,) = head.fit_gram_path(space_b, y[second], [1e-2], start=Start(moved, model_a.classes_))
    np.testing.assert_allclose(warm.loss_curve_[-1], afresh.loss_curve_[-1], rtol=1e-4)
