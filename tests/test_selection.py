"""Model selection: splits never mix, grids expand and extend, and the choice never sees the test rows."""
import numpy as np
import pytest

from featurepipe.heads import LinearClassifier, MLPClassifier
from featurepipe.heads.grid import at_edge, choose, expand_grid, extend_grid
from featurepipe.selection import make_splits, normalization_options


def test_holdout_and_kfold_splits_are_stratified_and_disjoint():
    labels = np.repeat(["a", "b", "c"], [40, 400, 400])
    method, splits = make_splits(labels, "auto", 0.1, 5, 0)
    assert method == "kfold" and len(splits) == 5  # class "a" has fewer than 300 training images
    covered = np.concatenate([s.val for s in splits])
    assert sorted(covered) == list(range(len(labels)))
    for split in splits:
        assert not set(split.fit) & set(split.val)
        assert np.sum(labels[split.val] == "a") == 8
    method, (split,) = make_splits(np.repeat(["a", "b"], 400), "auto", 0.25, 5, 0)
    assert method == "holdout" and len(split.val) == 200 and np.sum(np.repeat(["a", "b"], 400)[split.val] == "a") == 100


def test_lists_are_grids_except_for_sequence_parameters():
    points, auto = expand_grid(MLPClassifier, {"hidden_layer_sizes": [500], "alpha": [0.1, 0.01]}, {})
    assert points == [{"hidden_layer_sizes": (500,), "alpha": 0.1}, {"hidden_layer_sizes": (500,), "alpha": 0.01}]
    points, _ = expand_grid(MLPClassifier, {"hidden_layer_sizes": [[100], [200, 50]]}, {})
    assert [p["hidden_layer_sizes"] for p in points] == [(100,), (200, 50)] and not auto


def test_auto_grid_scales_with_the_data():
    small = expand_grid(LinearClassifier, {"alpha": "auto"}, {"n_samples": 1000, "mean_square_norm": 50.0})[0]
    large = expand_grid(LinearClassifier, {"alpha": "auto"}, {"n_samples": 100000, "mean_square_norm": 50.0})[0]
    assert len(small) == 6 and small[0]["alpha"] == pytest.approx(100 * large[0]["alpha"])
    assert [p["alpha"] for p in small] == sorted((p["alpha"] for p in small), reverse=True)
    with pytest.raises(ValueError, match="params.loss: LinearClassifier has no automatic grid"):
        expand_grid(LinearClassifier, {"loss": "auto"}, {"n_samples": 10, "mean_square_norm": 1.0})


def test_a_choice_at_the_edge_extends_the_grid_beyond_it():
    points = [{"alpha": a, "verbose": False} for a in (1.0, 0.1, 0.01)]
    results = [{"normalize": "l2", "params": {"alpha": a}, "val_accuracy": acc}
               for a, acc in ((1.0, 0.9), (0.1, 0.8), (0.01, 0.7))]
    best = choose(results)
    assert best["params"] == {"alpha": 1.0} and at_edge(results, best, {"alpha"}) == ["alpha"]
    assert extend_grid(points, best["params"], ["alpha"]) == [{"alpha": 10.0, "verbose": False},
                                                               {"alpha": 100.0, "verbose": False}]
    inner = [dict(r, val_accuracy=0.95 if r["params"]["alpha"] == 0.1 else 0.5) for r in results]
    assert at_edge(inner, choose(inner), {"alpha"}) == []


def test_normalization_alternatives():
    assert normalization_options("standardize") == ["standardize"]
    assert normalization_options(["power", "l2"]) == [["power", "l2"]]
    assert normalization_options([["power", "l2"], ["standardize"]]) == [["power", "l2"], ["standardize"]]
