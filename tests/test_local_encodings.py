"""Encodings and pooling against hand-computed small cases."""
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from featurepipe.local import pooling
from featurepipe.local.base import LocalFeatures
from featurepipe.local.encodings import VLAD, Fisher, HardAssignment, Triangle, soft_threshold, triangle
from featurepipe.local.pooling import MaxPooling, SumPooling
from featurepipe.local.gmm import gmm_posteriors
from featurepipe.local.pooling import normalise, pool_cells, pyramid

CENTROIDS = np.array([[0.0], [1.0], [4.0]], np.float32)


def test_triangle_by_hand():
    # x = 0: distances 0, 1, 4, mean 5/3 -> 5/3, 2/3, 0.  x = 3: distances 3, 2, 1, mean 2 -> 0, 0, 1.
    np.testing.assert_allclose(triangle([[0.0], [3.0]], CENTROIDS), [[5 / 3, 2 / 3, 0], [0, 0, 1]], atol=1e-6)
    # Two dimensions: distances from (3, 4) to (0, 0), (3, 0), (3, 4) are 5, 4, 0, mean 3.
    np.testing.assert_allclose(triangle([[3.0, 4.0]], [[0, 0], [3, 0], [3, 4]]), [[0, 0, 3]], atol=1e-5)


def test_triangle_of_a_descriptor_on_a_centroid():
    # Float32 rounding of |x|^2 + |c|^2 - 2 x.c can go below zero when x = c (with OpenBLAS, by -5e-4 for
    # the third centroid): its distance must come out as 0, not NaN.
    centroids = (np.random.default_rng(0).standard_normal((3, 4)) * 30).astype(np.float32)
    X = np.concatenate([centroids, [[1.0, 2.0, 3.0, 4.0]]]).astype(np.float32)
    exact = np.linalg.norm(X[:, None].astype(np.float64) - centroids, axis=-1)
    expected = np.maximum(exact.mean(axis=1, keepdims=True) - exact, 0)
    np.testing.assert_allclose(triangle(X, centroids), expected, atol=0.05)


def test_soft_threshold_by_hand():
    # Filters are unit-length centroids: (1, 0) and (0, 1); x = (2, -1), alpha 0.5 -> 1.5, 0.
    np.testing.assert_allclose(soft_threshold([[2.0, -1.0]], [[3, 0], [0, 0.5]], 0.5), [[1.5, 0]])


def test_polarity_split_adds_the_negative_responses_by_hand():
    # Responses (2, -1): positive side (1.5, 0), negative side max(0, (-2, 1) - 0.5) = (0, 0.5).
    codes = soft_threshold([[2.0, -1.0]], [[3, 0], [0, 0.5]], 0.5, split=True)
    np.testing.assert_allclose(codes, [[1.5, 0, 0, 0.5]])


def test_hard_assignment_counts_and_presence():
    X = np.array([[0.2], [0.9], [3.0], [0.1], [5.0]], np.float32)  # words 0, 1, 2 | 0, 2
    starts = np.array([0, 3])
    np.testing.assert_array_equal(HardAssignment().bind(centroids=CENTROIDS).pool(X, starts, SumPooling()), [[1, 1, 1], [1, 0, 1]])
    X2 = np.array([[0.1], [0.2], [4.0]], np.float32)
    np.testing.assert_array_equal(HardAssignment().bind(centroids=CENTROIDS).pool(X2, np.array([0]), SumPooling()), [[2, 0, 1]])
    np.testing.assert_array_equal(HardAssignment().bind(centroids=CENTROIDS).pool(X2, np.array([0]), MaxPooling()), [[1, 0, 1]])


def test_vlad_residual_sums_by_hand():
    centroids = np.array([[0.0, 0.0], [10.0, 10.0]], np.float32)
    X = np.array([[1, 2], [2, 0], [9, 9], [11, 13]], np.float32)
    # Run 0: (1, 2) + (2, 0) to word 0 -> (3, 2); nothing to word 1.  Run 1: (-1, -1) + (1, 3) -> (0, 2).
    np.testing.assert_allclose(VLAD().bind(centroids=centroids).pool(X, np.array([0, 2]), SumPooling()), [[3, 2, 0, 0], [0, 0, 0, 2]])


def test_gmm_posteriors_match_scikit_learn():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(m, s, (200, 3)) for m, s in [(-2, 0.5), (1, 1.0), (4, 0.3)]]).astype(np.float32)
    gmm = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    ours = gmm_posteriors(X, gmm.weights_, gmm.means_, gmm.covariances_)
    np.testing.assert_allclose(ours, gmm.predict_proba(X), atol=1e-4)


def test_fisher_vector_matches_its_definition():
    rng = np.random.default_rng(1)
    w, mu, var = np.array([0.3, 0.7]), rng.normal(size=(2, 4)), rng.uniform(0.5, 2, (2, 4))
    X = rng.normal(size=(50, 4)).astype(np.float32)
    fisher = Fisher().bind(weights=w, means=mu, variances=var)
    got = fisher.finish(fisher.pool(X, np.array([0]), SumPooling()), np.array([50]))[0]
    gamma = GaussianMixture(2, covariance_type="diag", weights_init=w, means_init=mu, precisions_init=1 / var)
    gamma._initialize(X.astype(np.float64), np.ones((50, 2)) / 2)  # set the parameters without fitting
    gamma.weights_, gamma.means_, gamma.covariances_ = w, mu, var
    gamma.precisions_cholesky_ = 1 / np.sqrt(var)
    post = gamma.predict_proba(X.astype(np.float64))
    u = (X[:, None, :] - mu) / np.sqrt(var)  # (T, K, d)
    grad_mu = (post[..., None] * u).sum(0) / (50 * np.sqrt(w)[:, None])
    grad_sigma = (post[..., None] * (u**2 - 1)).sum(0) / (50 * np.sqrt(2 * w)[:, None])
    np.testing.assert_allclose(got, np.concatenate([grad_mu.ravel(), grad_sigma.ravel()]), atol=1e-4)


def features(values, counts, positions):
    return LocalFeatures(np.asarray(values, np.float32), np.asarray(counts), np.asarray(positions, np.float32))


def test_quadrant_sum_and_max_pooling_by_hand():
    # Image 0: three descriptors in the top-left, top-right and bottom-right quadrants; image 1: two in
    # the bottom-left. Hard assignment over CENTROIDS: words 0, 2, 1 | 1, 1.
    f = features([[0.0], [4.0], [1.0], [1.1], [0.9]], [3, 2],
                 [[0.1, 0.1], [0.2, 0.7], [0.9, 0.6], [0.8, 0.3], [0.6, 0.0]])
    cells, counts = pool_cells(f, HardAssignment().bind(centroids=CENTROIDS), 2, SumPooling())
    expected = np.zeros((2, 4, 3))
    expected[0, 0, 0] = expected[0, 1, 2] = expected[0, 3, 1] = 1
    expected[1, 2, 1] = 2
    np.testing.assert_array_equal(cells, expected)
    np.testing.assert_array_equal(counts, [[1, 1, 0, 1], [0, 0, 2, 0]])
    levels, level_counts = pyramid(cells, counts, 2, (1, 2), SumPooling())
    np.testing.assert_array_equal(levels[:, 0], [[1, 1, 1], [0, 2, 0]])  # the 1x1 level first
    np.testing.assert_array_equal(levels[:, 1:], expected)
    np.testing.assert_array_equal(level_counts[:, 0], [3, 2])
    cells, _ = pool_cells(f, HardAssignment().bind(centroids=CENTROIDS), 2, MaxPooling())
    np.testing.assert_array_equal(cells[1, 2], [0, 1, 0])
    np.testing.assert_array_equal(pyramid(cells, counts, 2, (1,), MaxPooling())[0][1, 0], [0, 1, 0])


def test_pooling_does_not_depend_on_chunk_size(monkeypatch):
    rng = np.random.default_rng(2)
    counts = np.array([40, 0, 25])
    f = features(rng.normal(size=(65, 5)), counts, rng.uniform(0, 1, (65, 2)))
    encoding = Triangle().bind(centroids=rng.normal(size=(7, 5)).astype(np.float32))
    whole = pool_cells(f, encoding, 4, SumPooling())[0]
    direct = np.zeros_like(whole)
    image = np.repeat(np.arange(3), counts)
    np.add.at(direct, (image, pooling.cell_ids(f.positions, 4)), triangle(f.values, encoding.centroids_))
    np.testing.assert_allclose(whole, direct, rtol=1e-5, atol=1e-5)
    largest = pool_cells(f, encoding, 4, MaxPooling())[0]
    monkeypatch.setattr(pooling, "_CHUNK_BYTES", 4 * 7 * 3)  # three rows at a time: runs cross chunks
    np.testing.assert_allclose(pool_cells(f, encoding, 4, SumPooling())[0], whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pool_cells(f, encoding, 4, MaxPooling())[0], largest, rtol=1e-5, atol=1e-5)
    assert (largest > 0).any() and (largest < whole - 1e-3).any()


@pytest.mark.parametrize("norm, expected", [("l1", [0.75, -0.25]), ("l2", [0.9486833, -0.3162278]),
                                            ("power_l2", [np.sqrt(3) / 2, -0.5]), ("none", [3, -1])])
def test_normalisation(norm, expected):
    np.testing.assert_allclose(normalise(np.array([[3.0, -1.0]], np.float32), norm)[0], expected, rtol=1e-6)
    assert np.isfinite(normalise(np.zeros((1, 2), np.float32), norm)).all()


def test_a_gmm_fit_whose_component_collapses_in_float32_is_fitted_in_float64():
    """Thousands of identical descriptors (flat image regions; a grey image's colour channels) far from the
    origin: scikit-learn's float32 EM computes a negative variance and refuses; the fit goes on in float64."""
    from featurepipe.local.gmm import fit_gmm

    rng = np.random.default_rng(0)
    X = np.vstack([np.full((3000, 16), 0.3), rng.normal(size=(300, 16)) * 0.05 + 0.3]).astype(np.float32) + 1000
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(8, covariance_type="diag", reg_covar=1e-6, random_state=0).fit(X)
    weights, means, variances = fit_gmm(X, 8, rng=np.random.default_rng(0))
    assert weights.dtype == np.float32 and np.isclose(weights.sum(), 1) and (variances > 0).all()
    assert weights.max() > 0.5  # the flat descriptors' own component
