"""The change of variables behind preconditioned L-BFGS: exact round trip and chain rule."""
import numpy as np
import pytest

from featurepipe.heads import preconditioning
from featurepipe.heads.preconditioning import GramPreconditioner


def make(alpha=0.1):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 6)).astype(np.float32) @ rng.standard_normal((6, 6)).astype(np.float32)
    return X, GramPreconditioner(X, 3, alpha=alpha, curvature=0.6)


def test_factor_is_that_of_the_penalised_curvature():
    X, preconditioner = make()
    ones = np.hstack([X, np.ones((len(X), 1), np.float32)]).astype(np.float64)
    expected = 0.6 / len(X) * ones.T @ ones + np.diag([0.1] * 6 + [0.0])
    L = preconditioner.factor.astype(np.float64)
    np.testing.assert_allclose(L @ L.T, expected, rtol=1e-4, atol=1e-4)


def test_variables_round_trip_to_the_parameters():
    _, preconditioner = make()
    rng = np.random.default_rng(1)
    params = [rng.standard_normal((6, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]
    out = [np.zeros_like(p) for p in params]
    preconditioner.params(preconditioner.variables(params), out)
    for got, want in zip(out, params):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("memory", ["plenty", "none"])
def test_gradient_follows_the_chain_rule(memory, monkeypatch):
    # f(V) = <G, W(V)> + <h, b(V)> is linear in V, so its gradient is exact by finite differences. With
    # memory to spare the gradient's solve uses a transposed copy of the factor, else the factor itself.
    if memory == "none":
        monkeypatch.setattr(preconditioning, "available_memory", lambda: 0)
    _, preconditioner = make()
    assert (preconditioner.upper is None) == (memory == "none")
    rng = np.random.default_rng(2)
    G, h = rng.standard_normal((6, 3)), rng.standard_normal(3)
    out = [np.zeros((6, 3), np.float32), np.zeros(3, np.float32)]

    def f(v):
        preconditioner.params(v, out)
        return float(np.sum(G * out[0]) + h @ out[1])

    v = rng.standard_normal(21)
    numeric = np.array([(f(v + e) - f(v - e)) / 2 for e in np.eye(21)])
    analytic = preconditioner.gradient([G.astype(np.float32), h.astype(np.float32)])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-4)


def test_a_feature_few_rows_have_keeps_its_curvature():
    # A feature that 3 rows of 20,000 have (a rare visual word). A sample of half the rows, rescaled, gives
    # it 0, 2 or 4 rows' worth of curvature instead of 3: at a small alpha the whitened curvature is then
    # 0.75 there (the old 10,000-row sample with this seed), or ~50,000 when the sample misses all three.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 5)).astype(np.float32)
    X[:, 4] = 0
    X[[3, 9_000, 17_000], 4] = 30
    preconditioner = GramPreconditioner(X, 3, alpha=1e-6, curvature=0.6)
    ones = np.hstack([X, np.ones((len(X), 1), np.float32)]).astype(np.float64)
    curvature = 0.6 / len(X) * ones.T @ ones + np.diag([1e-6] * 5 + [0.0])
    L = preconditioner.factor.astype(np.float64)
    whitened = np.linalg.solve(L, np.linalg.solve(L, curvature).T)
    np.testing.assert_allclose(np.linalg.eigvalsh(whitened), 1.0, rtol=1e-3)


def make_low_rank(alpha=0.1):
    from featurepipe.heads.preconditioning import LowRankPreconditioner

    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 30)).astype(np.float32) @ rng.standard_normal((30, 60)).astype(np.float32)
    return X, LowRankPreconditioner(X, 3, alpha=alpha, curvature=0.6)


def test_low_rank_form_is_the_penalised_curvature_when_rows_are_few():
    X, preconditioner = make_low_rank()
    Z = np.hstack([X, np.ones((len(X), 1), np.float32)]).astype(np.float64)
    expected = 0.6 / len(X) * Z.T @ Z + 0.1 * np.eye(61)
    half = preconditioner._power(np.eye(61, dtype=np.float32), +1).astype(np.float64)
    np.testing.assert_allclose(half @ half, expected, rtol=1e-3, atol=1e-3)
    inverse_half = preconditioner._power(np.eye(61, dtype=np.float32), -1).astype(np.float64)
    np.testing.assert_allclose(inverse_half @ half, np.eye(61), atol=1e-3)


def test_low_rank_round_trip_chain_rule_and_other_alphas():
    _, preconditioner = make_low_rank()
    rng = np.random.default_rng(4)
    params = [rng.standard_normal((60, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]
    out = [np.zeros_like(p) for p in params]
    # float32: the further alpha lies below the curvature's eigenvalues, the more the round trip rounds.
    for p, tolerance in ((preconditioner, 1e-3), (preconditioner.for_alpha(0.001), 5e-3)):
        p.params(p.variables(params), out)
        for got, want in zip(out, params):
            np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
    G = rng.standard_normal((61, 3)).astype(np.float32)
    # f(V) = <G, theta(V)>, theta = P^-1/2 V: its gradient P^-1/2 G is what gradient() returns.
    expected = preconditioner._power(G, -1).ravel()
    np.testing.assert_allclose(preconditioner.gradient([G[:-1], G[-1]]), expected, rtol=1e-6)


def test_wide_features_get_the_low_rank_form_and_fit_as_without_it():
    from featurepipe.heads import LinearClassifier
    from featurepipe.heads.preconditioning import LowRankPreconditioner

    rng = np.random.default_rng(5)
    X = rng.standard_normal((120, 400)).astype(np.float32)
    y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 1)
    head = LinearClassifier("squared_hinge", optimizer="lbfgs", alpha=0.05, tol=1e-7, max_iter=2000)
    assert isinstance(head._build_preconditioner(X, 3, None, head.alpha), LowRankPreconditioner)
    with_it = head.fit(X, y)
    without = LinearClassifier("squared_hinge", optimizer="lbfgs", alpha=0.05, tol=1e-7, max_iter=5000,
                               precondition=False).fit(X, y)
    np.testing.assert_allclose(with_it.coef_, without.coef_, atol=2e-3)
    assert with_it.n_iter_ < without.n_iter_


def test_orthogonal_columns_give_the_gram_factor_as_a_diagonal_and_a_row():
    """On a RowSpace's features (orthogonal columns) the arrow-shaped factor is the Gram preconditioner's,
    for every alpha, and round-trips and follows the chain rule as it does."""
    from featurepipe.heads.preconditioning import OrthogonalPreconditioner
    from featurepipe.heads.row_space import RowSpace

    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 80)).astype(np.float32) + 0.5
    Z = RowSpace(X).features
    orthogonal = OrthogonalPreconditioner(Z, 3, alpha=1.0, curvature=0.6)
    params = [rng.standard_normal((Z.shape[1], 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]
    for alpha in (1.0, 1e-2):
        exact = GramPreconditioner(Z, 3, alpha=alpha, curvature=0.6)
        arrow = orthogonal.for_alpha(alpha)
        np.testing.assert_allclose(arrow.variables(params), exact.variables(params), rtol=1e-3, atol=1e-3)
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
        np.testing.assert_allclose(arrow.gradient(grads), exact.gradient(grads), rtol=1e-3, atol=1e-3)
        out = [np.zeros_like(p) for p in params]
        arrow.params(arrow.variables(params), out)
        for got, want in zip(out, params):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_as_many_rows_as_features_get_the_gram_form():
    # At n = d the low-rank form would eigen-decompose a d x d matrix in float64 (32,000 features: hours,
    # and a crash in OpenBLAS). One row fewer than the features takes the low-rank form.
    from featurepipe.heads.preconditioning import LowRankPreconditioner, build_preconditioner

    X = np.random.default_rng(4).standard_normal((20, 20)).astype(np.float32)
    assert isinstance(build_preconditioner(X, 3, alpha=0.1, curvature=0.6), GramPreconditioner)
    assert isinstance(build_preconditioner(X[:19], 3, alpha=0.1, curvature=0.6), LowRankPreconditioner)


def test_a_wide_gram_matrix_is_assembled_from_tiles_as_one_syrk_would(monkeypatch):
    # Beyond _GRAM_TILE columns the Gram matrix is built as a triangle of tiles (OpenBLAS's SYRK crashes on
    # a 32,001-wide output); here the tiles are 3 columns wide, so 7 columns make a triangle of 3 x 3 tiles.
    X, whole = make()
    monkeypatch.setattr(preconditioning, "_GRAM_TILE", 3)
    _, tiled = make()
    np.testing.assert_allclose(tiled.factor, whole.factor, rtol=1e-5, atol=1e-6)


def test_a_wide_factor_is_computed_by_tiles_as_one_cholesky_would(monkeypatch):
    # Beyond _GRAM_TILE columns the factor is a right-looking Cholesky by tiles (OpenBLAS's POTRF crashes
    # on a 32,001-wide matrix): 3-column tiles over a 25-column matrix, ragged at the end.
    rng = np.random.default_rng(5)
    A = rng.standard_normal((40, 25))
    spd = (A.T @ A / 40 + 0.1 * np.eye(25)).astype(np.float32)
    monkeypatch.setattr(preconditioning, "_GRAM_TILE", 3)
    tiled = preconditioning._cholesky_lower(np.asfortranarray(spd))
    np.testing.assert_allclose(tiled, np.linalg.cholesky(spd.astype(np.float64)), rtol=1e-4, atol=1e-5)
