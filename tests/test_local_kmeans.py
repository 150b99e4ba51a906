"""k-means: assignment, agreement with scikit-learn's Lloyd, inits, mini-batch, empty clusters."""
import numpy as np
import pytest
from sklearn.cluster import KMeans

from featurepipe.local.kmeans import _lloyd, assign, kmeans


def blobs(rng, centres, n_per=300, spread=0.05):
    points = np.concatenate([c + spread * rng.standard_normal((n_per, centres.shape[1])) for c in centres])
    return points.astype(np.float32)


def test_assign_is_the_nearest_centroid():
    rng = np.random.default_rng(0)
    X, C = rng.standard_normal((1000, 7), dtype=np.float32), rng.standard_normal((13, 7), dtype=np.float32)
    distances = ((X[:, None] - C[None]) ** 2).sum(-1)
    labels, nearest = assign(X, C, chunk_rows=128)
    np.testing.assert_array_equal(labels, distances.argmin(1))
    np.testing.assert_allclose(nearest, distances.min(1), rtol=1e-4, atol=1e-5)


def test_lloyd_matches_scikit_learn_from_the_same_start():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3000, 10), dtype=np.float32)
    start = X[:20].copy()
    ours = _lloyd(X, start.copy(), max_iter=30)
    theirs = KMeans(20, init=start, n_init=1, max_iter=30, tol=0, algorithm="lloyd").fit(X).cluster_centers_
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("batch_size", [None, 256])
def test_kmeans_plus_plus_recovers_separated_clusters(batch_size):
    rng = np.random.default_rng(2)
    centres = rng.uniform(-10, 10, (6, 5)).astype(np.float32)
    X = rng.permutation(blobs(rng, centres))
    found = kmeans(X, 6, init="k-means++", max_iter=30, batch_size=batch_size, rng=np.random.default_rng(3))
    assert found.dtype == np.float32 and found.shape == (6, 5)
    gaps = np.linalg.norm(centres[:, None] - found[None], axis=-1).min(axis=1)
    assert gaps.max() < 0.1


def test_random_init_converges_to_a_fixed_point():
    rng = np.random.default_rng(2)
    X = blobs(rng, rng.uniform(-10, 10, (6, 5)).astype(np.float32))
    found = kmeans(X, 6, init="random", max_iter=100, rng=np.random.default_rng(3))
    labels = assign(X, found)[0]
    means = np.stack([X[labels == k].mean(axis=0) for k in range(6)])  # also: no cluster is empty
    np.testing.assert_allclose(found, means, atol=1e-5)


def test_emptied_cluster_is_relocated_not_lost():
    rng = np.random.default_rng(4)
    X = blobs(rng, np.array([[0, 0], [5, 5], [10, 0]], np.float32))
    start = np.array([[0, 0], [0, 0], [5, 5]], np.float32)  # two identical: one gets nothing at first
    centroids = _lloyd(X, start, max_iter=20)
    counts = np.bincount(assign(X, centroids)[0], minlength=3)
    assert (counts == 300).all()


def test_same_seed_same_codebook_and_sample_size_checked():
    X = np.random.default_rng(5).standard_normal((500, 4), dtype=np.float32)
    a = kmeans(X, 8, rng=np.random.default_rng(7), max_iter=5)
    np.testing.assert_array_equal(a, kmeans(X, 8, rng=np.random.default_rng(7), max_iter=5))
    assert not np.array_equal(a, kmeans(X, 8, rng=np.random.default_rng(8), max_iter=5))
    with pytest.raises(ValueError, match="at least n_clusters=600 samples"):
        kmeans(X, 600)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3-iteration GMMs, on purpose
def test_vocabulary_fits_show_progress_only_when_their_caller_asks(capsys):
    from tqdm import tqdm

    from featurepipe.core.progress import shown_by
    from featurepipe.local.gmm import fit_gmm

    X = np.random.default_rng(6).standard_normal((400, 4), dtype=np.float32)
    kmeans(X, 8, init="k-means++", max_iter=3)
    fit_gmm(X, 3, max_iter=3)
    assert capsys.readouterr().err == ""  # a stage alone prints nothing
    with shown_by(tqdm):
        kmeans(X, 8, init="k-means++", max_iter=3)
        kmeans(X, 8, max_iter=2, batch_size=100)
        fit_gmm(X, 3, max_iter=3)
    shown = capsys.readouterr().err
    assert "k-means++ init: 100%" in shown and "| 7/7 " in shown  # the other 7 centres
    assert "k-means: " in shown and "mini-batch k-means: 100%" in shown and "| 8/8 " in shown  # 2 passes x 4
    assert "GMM (EM): " in shown and "/3 " in shown


def test_extract_shows_the_codebook_fit_unless_told_not_to(tmp_path, image_folder, cache_dir):
    import yaml
    from helpers import run_cli

    config = tmp_path / "bovw.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"path": str(image_folder)}, "run": {"cache_dir": str(cache_dir)},
        "pipeline": {"extractor": {"bovw": {"descriptor": {"patches": {"size": 6, "stride": 2}}, "n_words": 8,
                                            "n_samples": 2000, "max_iter": 5, "pyramid": [1]}}}}))
    code, _, quiet = run_cli("extract", "--config", config, "--no-progress")
    assert code == 0 and quiet == ""
    code, _, shown = run_cli("extract", "--config", config, "--set", "pipeline.extractor.bovw.random_state=1")
    assert code == 0 and "k-means: " in shown and "load for fit" in shown
