"""The search picks its solver from the data: on fewer fit rows than features a linear head's folds are fitted
from one Gram matrix, with the validation accuracies of the fits on features; heads fitted a point at a time
search a grid by successive halving."""
import numpy as np
import pytest
from helpers import stored_colour_histograms

from featurepipe.config import HeadConfig, TrainConfig
from featurepipe.fitting import fit_and_score
from featurepipe.heads import MLPClassifier
from featurepipe.selection import GRAM, PRIMAL, Search, make_splits, normalization_options

KFOLD = TrainConfig(selection="kfold", folds=3, seed=0)
SVM = HeadConfig(name="svm", model="linear", params={"loss": "squared_hinge", "optimizer": "lbfgs", "alpha": "auto",
                                                      "max_iter": 2000, "tol": 1e-6, "random_state": 0})


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """36 training images' colour histograms, 125 wide: fewer rows than features."""
    return stored_colour_histograms(tmp_path_factory.mktemp("wide"))


def search(data, head, options, monkeypatch=None, force=None):
    if force is not None:
        monkeypatch.setattr(Search, "solver", lambda self, n: force)
    _, splits = make_splits(data.labels[data.train_rows], "kfold", 0.25, 3, 0)
    from featurepipe.core import REGISTRY
    found = Search(data, REGISTRY.get("head", head.model), dict(head.params), splits, options, keep=False)
    found.run()
    return found


@pytest.mark.parametrize("options", [[["l2"]], [["standardize"]]], ids=["shared", "per-split"])
@pytest.mark.parametrize("loss", ["squared_hinge", "log_loss"])
def test_the_gram_search_scores_every_point_as_the_search_on_features(wide, options, loss, monkeypatch):
    """Same grid, same validation accuracies (a shared Gram matrix for a row-wise normalisation, one per split
    for one fitted on each split's rows)."""
    head = SVM.model_copy(update={"params": {**SVM.params, "loss": loss}})
    by_gram = search(wide, head, options)
    assert by_gram.solver(0) == GRAM
    assert by_gram.grams[0].shared == (options[0] == ["l2"])
    on_features = search(wide, head, options, monkeypatch, force=PRIMAL)
    gram_results, feature_results = by_gram.results(), on_features.results()
    assert len(gram_results) == len(feature_results)
    for a, b in zip(gram_results, feature_results):  # the same grid: the data's scale from the Gram diagonal
        assert a["params"]["alpha"] == pytest.approx(b["params"]["alpha"], rel=1e-6)
    for a, b in zip(gram_results, feature_results):
        assert np.allclose(a["val_folds"], b["val_folds"], atol=1 / 12 + 1e-9)  # at most one row of 12 apart
    assert np.mean([a["val_folds"] == b["val_folds"] for a, b in zip(gram_results, feature_results)]) >= 0.8


@pytest.mark.parametrize("options", [[["l2"]], [["standardize"]]], ids=["shared", "per-split"])
def test_the_gram_search_on_two_processes_finds_what_it_finds_in_one(wide, options):
    """The splits' chains run side by side in worker processes: same scores and the same out-of-fold decision
    values as in this process, in split order."""
    from featurepipe.core import REGISTRY
    from featurepipe.runner import map_in_processes

    _, splits = make_splits(wide.labels[wide.train_rows], "kfold", 0.25, 3, 0)
    found = {}
    for jobs in (1, 2):
        found[jobs] = Search(wide, REGISTRY.get("head", "linear"), dict(SVM.params), splits, options, keep=False,
                             map_tasks=map_in_processes(jobs))
        found[jobs].run()
    assert found[1].results() == found[2].results()
    assert found[1].decisions.keys() == found[2].decisions.keys()
    for key, values in found[1].decisions.items():
        for mine, theirs in zip(values, found[2].decisions[key], strict=True):
            np.testing.assert_array_equal(mine, theirs)


def test_the_search_on_features_fits_its_splits_on_two_processes_as_in_one(wide, monkeypatch):
    """Splits fitted side by side in worker processes (on features: an MLP, and successive halving's rounds)
    score as in this process, in split order."""
    from featurepipe.runner import map_in_processes

    _, splits = make_splits(wide.labels[wide.train_rows], "kfold", 0.25, 3, 0)
    params = {"hidden_layer_sizes": [8], "alpha": [1e-4, 1e-3, 1e-2, 1e-1], "max_iter": 30, "random_state": 0}
    found = {}
    for jobs in (1, 2):
        found[jobs] = Search(wide, MLPClassifier, params, splits, [["standardize"]], keep=False,
                             map_tasks=map_in_processes(jobs))
        found[jobs].run()
    assert found[1].solver(0) == PRIMAL and found[1].eliminated  # halving dropped points, in both
    mine, theirs = found[1].results(), found[2].results()
    assert [r["params"] for r in mine] == [r["params"] for r in theirs]
    assert np.allclose([r["val_folds"] for r in mine], [r["val_folds"] for r in theirs], atol=1 / 12 + 1e-9)
    assert found[1].decisions.keys() == found[2].decisions.keys()
    for key, values in found[1].decisions.items():
        for a, b in zip(values, found[2].decisions[key], strict=True):
            assert a.shape == b.shape and np.allclose(a, b, atol=1e-3)


def test_the_record_says_which_solver_each_option_used(wide):
    record = fit_and_score(wide, SVM, KFOLD.model_copy(update={"normalize": [["l2"], ["standardize"]]})).record
    assert record["solvers"] == [{"normalize": ["l2"], "solver": GRAM}, {"normalize": ["standardize"], "solver": GRAM}]
    tall = SVM.model_copy(update={"params": {**SVM.params, "l1": 1e-4}})  # an L1 penalty: not in the row space
    assert fit_and_score(wide, tall, KFOLD).record["solvers"][0]["solver"] == PRIMAL


def test_successive_halving_runs_the_best_third_in_full(wide, monkeypatch):
    fits = []
    real = MLPClassifier.fit

    def recording(self, X, y, sample_weight=None):
        fits.append((self.alpha, self.max_iter))
        assert self.class_weight == {"red": 2.0}  # the survivors of a round are the points as given, dict and all
        return real(self, X, y, sample_weight)

    monkeypatch.setattr(MLPClassifier, "fit", recording)
    head = HeadConfig(name="mlp", model="mlp", params={"hidden_layer_sizes": [8], "alpha": [1e-4, 1e-3, 1e-2, 1e-1],
                                                      "max_iter": 30, "random_state": 0, "class_weight": {"red": 2.0}})
    found = search(wide, head, normalization_options("standardize"))
    short = [f for f in fits if f[1] == 10]
    full = [f for f in fits if f[1] == 30]
    assert len(short) == 12 and len(full) == 6 and len({alpha for alpha, _ in full}) == 2  # 4 points x 3 folds, then 2
    results = found.results()
    dropped = [r for r in results if "eliminated_at" in r]
    assert len(dropped) == 2 and all(r["eliminated_at"] == 10 for r in dropped)
    fits.clear()
    search(wide, head.model_copy(update={"params": {**head.params, "alpha": [1e-3, 1e-2, 1e-1]}}),
           normalization_options("standardize"))
    assert len(fits) == 9 and {epochs for _, epochs in fits} == {30}  # a grid of three: every point in full
    assert found.best()["params"]["alpha"] in {alpha for alpha, _ in full}
    assert all(len(r["val_folds"]) == 3 for r in results)


def test_the_refit_reuses_the_searchs_gram_matrix_and_fits_the_same_model(wide, monkeypatch):
    import featurepipe.fitting as fitting
    from featurepipe.heads import LinearClassifier

    calls = []
    real = LinearClassifier.fit_by_gram
    monkeypatch.setattr(LinearClassifier, "fit_by_gram", lambda *a: calls.append(1) or real(*a))
    settings = KFOLD.model_copy(update={"normalize": "l2"})
    reused = fit_and_score(wide, SVM, settings).model
    assert calls == [1]
    wide.store.remove(fitting.head_key(wide, SVM, settings))  # fit it again, without the search's Gram matrix
    monkeypatch.setattr(Search, "all_rows_gram", lambda self, n: None)
    fresh = fit_and_score(wide, SVM, settings).model
    assert calls == [1] and fresh is not reused
    np.testing.assert_allclose(reused.coef_, fresh.coef_, atol=1e-3 * np.abs(fresh.coef_).max())


EXACT = ["l1", {"exact_kernel": {"kernel": "chi2"}}]


def test_a_search_refit_and_saved_head_with_an_exact_kernel(wide, tmp_path):
    from featurepipe.normalize import ExactKernel
    from featurepipe.trained import load_bundle, save_bundle

    options = [EXACT, ["l1", {"kernel_map": {"kernel": "chi2"}}]]
    record = fit_and_score(wide, SVM, KFOLD.model_copy(update={"normalize": options})).record
    assert record["solvers"][0] == {"normalize": EXACT, "solver": GRAM}
    assert min([r["normalize"] for r in record["grid"]].count(o) for o in options) >= 6  # beside the map
    exact = fit_and_score(wide, SVM, KFOLD.model_copy(update={"normalize": [EXACT]}))
    kernel = exact.normalization.steps[-1]
    assert isinstance(kernel, ExactKernel) and kernel.rows_.shape == (125, 36)
    assert exact.model.n_features_in_ == kernel.coefficients_.shape[1] and exact.record["test"]["accuracy"] > 0.8
    save_bundle(tmp_path / "bundle", exact)
    loaded = load_bundle(tmp_path / "bundle")
    rows = wide.store.feature_array(wide.key)[:]
    np.testing.assert_array_equal(loaded.model.predict(loaded.normalization.transform(rows)),
                                  exact.model.predict(exact.normalization.transform(rows)))


def test_an_exact_kernel_needs_a_head_that_fits_in_the_row_space(wide):
    mlp = HeadConfig(name="mlp", model="mlp", params={"hidden_layer_sizes": [4], "max_iter": 5})
    with pytest.raises(ValueError, match="an exact kernel needs a linear head fitted by L-BFGS"):
        search(wide, mlp, [EXACT])
    with pytest.raises(ValueError, match="exact_kernel must be the last step"):
        search(wide, SVM, [[{"exact_kernel": {}}, "l2"]])


@pytest.mark.parametrize("edit", ["rows dropped from coefficients", "negative rows", "non-finite"])
def test_an_edited_exact_kernel_is_refused(wide, tmp_path, edit):
    """A stranger's head folder whose kernel rows or coefficients were edited (and re-hashed) is refused."""
    import hashlib
    import json

    from featurepipe.trained import TrainedFolderError, load_bundle, save_bundle

    exact = fit_and_score(wide, SVM, KFOLD.model_copy(update={"normalize": [EXACT]}))
    folder = tmp_path / "bundle"
    save_bundle(folder, exact)
    with np.load(folder / "normalization.npz") as data:
        arrays = {k: data[k] for k in data.files}
    rows = next(k for k in arrays if k.endswith("rows_"))
    coefficients = next(k for k in arrays if k.endswith("coefficients_"))
    if edit == "rows dropped from coefficients":
        arrays[coefficients] = arrays[coefficients][1:]
    elif edit == "negative rows":
        arrays[rows] = -arrays[rows]
    else:
        arrays[coefficients][0, 0] = np.nan
    np.savez(folder / "normalization.npz", **arrays)
    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / "normalization.npz").read_bytes()
    manifest["files"]["normalization.npz"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest["normalization"]["shapes"] = {k: list(v.shape) for k, v in arrays.items()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TrainedFolderError):
        load_bundle(folder)
