"""The change of variables behind preconditioned L-BFGS: exact round trip and chain rule."""
import numpy as np

from featurepipe.heads.preconditioning import GramPreconditioner


def make(max_rows=1000, alpha=0.1):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 6)).astype(np.float32) @ rng.standard_normal((6, 6)).astype(np.float32)
    return X, GramPreconditioner(X, 3, alpha=alpha, curvature=0.6, rng=rng, max_rows=max_rows)


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


def test_gradient_follows_the_chain_rule():
    # f(V) = <G, W(V)> + <h, b(V)> is linear in V, so its gradient is exact by finite differences.
    _, preconditioner = make()
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


def test_gram_is_estimated_from_a_row_sample_when_asked():
    X, full = make(max_rows=1000)
    _, sampled = make(max_rows=200)
    assert not np.allclose(full.factor, sampled.factor)
    ratio = np.diag(sampled.factor) / np.diag(full.factor)
    assert np.all((ratio > 0.7) & (ratio < 1.3))
