"""Normalisers: hand-checked values, kernel maps against scikit-learn and the kernels they approximate."""
import numpy as np
import pytest
from sklearn.kernel_approximation import AdditiveChi2Sampler

import featurepipe
from featurepipe.normalize import AdditiveKernelMap, Normalization


@pytest.fixture
def histograms():
    X = np.random.default_rng(0).random((40, 30)).astype(np.float32)
    return X / X.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("steps, interval", [(1, 0.8), (2, 0.5), (3, 0.4)])
def test_chi2_map_matches_scikit_learn(histograms, steps, interval):
    ours = AdditiveKernelMap("chi2", order=steps - 1, period=2 * np.pi / interval, window="uniform")
    theirs = AdditiveChi2Sampler(sample_steps=steps, sample_interval=interval)
    np.testing.assert_allclose(ours.fit(histograms).transform(histograms), theirs.fit_transform(histograms),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel, exact, tolerance", [
    ("chi2", lambda x, y: (2 * x * y / (x + y)).sum(-1), 0.01),
    ("intersection", lambda x, y: np.minimum(x, y).sum(-1), 0.06),
    ("hellinger", lambda x, y: np.sqrt(x * y).sum(-1), 1e-5),
])
def test_kernel_maps_approximate_their_kernels(histograms, kernel, exact, tolerance):
    X, Y = histograms[:20], histograms[20:]
    mapped = AdditiveKernelMap(kernel, order=3).fit(X)
    approx = mapped.transform(X) @ mapped.transform(Y).T
    truth = exact(X[:, None, :], Y[None, :, :])
    assert np.abs(approx - truth).max() < tolerance * truth.mean()


def test_hand_checked_values():
    X = np.array([[3.0, -4.0], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(featurepipe.create("normalizer", "l2").transform(X), [[0.6, -0.8], [1, 0]])
    np.testing.assert_allclose(featurepipe.create("normalizer", "l1").transform(X), [[3 / 7, -4 / 7], [1, 0]])
    np.testing.assert_allclose(featurepipe.create("normalizer", "power").transform(X), [[3 ** 0.5, -2], [1, 0]])
    standard = featurepipe.create("normalizer", "standardize").fit(X)
    np.testing.assert_allclose(standard.transform(X), [[1, -1], [-1, 1]])
    coates = featurepipe.create("normalizer", "standardize", eps=0.01).fit(X)
    np.testing.assert_allclose(coates.scale_, np.sqrt([1 + 0.01, 4 + 0.01]), rtol=1e-6)


def test_pca_whitening_decorrelates_to_unit_variance():
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((500, 5)) @ rng.standard_normal((5, 5))).astype(np.float32)
    white = featurepipe.create("normalizer", "pca_whiten", eps=0.0).fit(X).transform(X)
    np.testing.assert_allclose(np.cov(white, rowvar=False, bias=True), np.eye(5), atol=1e-3)


def test_chain_from_a_config_spec_and_its_width():
    chain = Normalization.from_spec(["l1", {"kernel_map": {"kernel": "chi2", "order": 2}}])
    assert chain.n_outputs(30) == 150 and not chain.learns
    with pytest.raises(ValueError, match=r"normalize\[0\].order: must be an integer in \[0, 10\]"):
        Normalization.from_spec([{"kernel_map": {"order": 11}}])
    with pytest.raises(ValueError, match=r"normalize\[0\]: unknown normalizer 'zca'"):
        Normalization.from_spec(["zca"])
