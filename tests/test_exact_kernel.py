"""Exact additive kernels: the values of their definitions (against scikit-learn's chi2) and the empirical map
that makes them features (a search with one: ``test_search_solvers.py``)."""
import numpy as np
import pytest
from sklearn.metrics.pairwise import additive_chi2_kernel

from featurepipe.exact_kernel import additive_kernel
from featurepipe.normalize import ExactKernel


@pytest.fixture(scope="module")
def histograms():
    rng = np.random.default_rng(0)
    X = rng.random((40, 50)).astype(np.float32)
    X[X < 0.4] = 0  # sparse, as bag-of-words histograms are
    return X / X.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
def test_kernels_are_their_definitions(histograms, compiled, monkeypatch):
    if not compiled:
        monkeypatch.setattr("featurepipe.exact_kernel.find_spec", lambda name: None)
    X, Y = histograms[:25], histograms[25:]
    # sum 2xy / (x + y) = (|x|_1 + |y|_1 - sum (x - y)^2 / (x + y)) / 2; scikit-learn's is minus the last sum.
    chi2 = (X.sum(1)[:, None] + Y.sum(1)[None] + additive_chi2_kernel(X, Y)) / 2
    np.testing.assert_allclose(additive_kernel(X, Y, "chi2"), chi2, rtol=1e-5)
    intersection = np.minimum(X[:, None].astype(np.float64), Y[None]).sum(axis=2)
    np.testing.assert_allclose(additive_kernel(X, Y, "intersection"), intersection, rtol=1e-5)
    np.testing.assert_allclose(np.diag(additive_kernel(X, X, "chi2")), 1.0, rtol=1e-5)  # k(x, x) = |x|_1


def test_negative_features_are_refused(histograms):
    with pytest.raises(ValueError, match="non-negative features"):
        additive_kernel(histograms - 0.5, histograms, "chi2")


def test_the_empirical_map_reproduces_the_kernel(histograms):
    """On its training rows the map's inner products are the kernel; other rows get their products with them."""
    fit, other = histograms[:30], histograms[30:]
    step = ExactKernel("chi2").fit(fit)
    Z, W = step.transform(fit), step.transform(other)
    assert step.n_outputs(50) == Z.shape[1] <= 30
    np.testing.assert_allclose(Z @ Z.T, additive_kernel(fit, fit, "chi2"), atol=1e-4)
    np.testing.assert_allclose(W @ Z.T, additive_kernel(other, fit, "chi2"), atol=1e-4)
