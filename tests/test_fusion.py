"""Late fusion (``fusion.py``, ``fused_folder.py``): the weights are chosen on the training split only, a
member that is noise gets no weight, two members seeing complementary halves of the signal fuse into a
better head; the config is refused in one line when a fusion names what it cannot fuse; a bench with a
late pipeline and `train` + `compare` with a late head, end to end."""
import json

import numpy as np
import pytest
import yaml
from helpers import run_cli, stored_colour_histograms

from featurepipe.calibration import OutOfFold
from featurepipe.cli import EXIT_OK, EXIT_USAGE
from featurepipe.config import ConfigError, HeadConfig, TrainConfig
from featurepipe.fitting import fit_and_score, head_key
from featurepipe.fusion import Member, choose_weights, fit_fusion, fused_log_proba, log_probabilities, weight_grid
from featurepipe.summary import grid_text


def test_the_weight_grid_covers_the_simplex():
    grid = weight_grid(3)
    assert len(grid) == 66 and np.allclose(grid.sum(axis=1), 1) and (grid >= 0).all()
    assert len({tuple(np.round(w, 6)) for w in grid}) == 66  # each weighting once
    assert [list(w) for w in weight_grid(2)[[0, -1]]] == [[0.0, 1.0], [1.0, 0.0]]


def _fused_members(root, poison_test_labels: bool):
    """A softmax and a hinge-loss head on 36 training images' colour histograms, fused; with
    ``poison_test_labels``, every test image's label replaced by another class's before anything is fitted."""
    data = stored_colour_histograms(root)
    if poison_test_labels:
        classes = np.array(data.classes)
        shifted = (np.searchsorted(classes, data.labels[data.test_rows]) + 1) % len(classes)
        data.labels = data.labels.astype(object)
        data.labels[data.test_rows] = classes[shifted]
    train = TrainConfig(selection="kfold", folds=3)
    heads = [HeadConfig(name="softmax", model="linear", params={"alpha": 0.01, "max_iter": 60, "random_state": 0}),
             HeadConfig(name="svm", model="linear", params={"loss": "hinge", "alpha": 0.1, "max_iter": 60,
                                                            "random_state": 0})]
    for head in heads:
        fit_and_score(data, head, train)
    members = [Member(h.name, head_key(data, h, train), data) for h in heads]
    return fit_fusion("fused", members), members


def test_test_labels_never_reach_the_choice_of_weights(tmp_path):
    clean, _ = _fused_members(tmp_path / "clean", poison_test_labels=False)
    poisoned, _ = _fused_members(tmp_path / "poisoned", poison_test_labels=True)
    # Every weighting tried scores the same on the training split: the test labels changed nothing there ...
    assert poisoned.record["grid"] == clean.record["grid"] and list(poisoned.weights) == list(clean.weights)
    assert poisoned.record["val"] == clean.record["val"] and poisoned.record["train"] == clean.record["train"]
    # ... while the test score saw them: every test label is wrong now.
    clean_test, poisoned_test = clean.record["test"]["accuracy"], poisoned.record["test"]["accuracy"]
    assert clean_test > 0.5 and poisoned_test < clean_test
    assert len(clean.record["grid"]) == 11 and clean.record["val"]["n"] == 36  # k-fold: every training row once


def test_a_stored_fusion_is_reused_and_follows_its_members(tmp_path):
    first, members = _fused_members(tmp_path, poison_test_labels=False)
    again = fit_fusion("fused", members)
    assert again.cached and not first.cached and again.record["grid"] == first.record["grid"]
    data, train = members[0].data, TrainConfig(selection="kfold", folds=3)
    other = HeadConfig(name="softmax", model="linear", params={"alpha": 0.1, "max_iter": 60, "random_state": 0})
    fit_and_score(data, other, train)
    changed = fit_fusion("fused", [Member("softmax", head_key(data, other, train), data), members[1]])
    assert not changed.cached  # a changed member is a new fusion, never the stored one


def test_members_validated_on_other_rows_are_refused_in_one_line(tmp_path):
    data = stored_colour_histograms(tmp_path)
    head = HeadConfig(name="softmax", model="linear", params={"max_iter": 30, "random_state": 0})
    members = []
    for seed in (0, 1):  # other folds
        train = TrainConfig(selection="kfold", folds=3, seed=seed)
        fit_and_score(data, head, train)
        members.append(Member(f"seed{seed}", head_key(data, head, train), data))
    with pytest.raises(ConfigError, match=r"^late fusion fused: members 'seed0' and 'seed1' were not fitted and "
                                          r"validated on the same images; fuse heads of one data set with the same "
                                          r"train settings \(selection, folds, seed\)$"):
        fit_fusion("fused", members)


@pytest.mark.parametrize("arrays, expected", [
    ({"decision": np.zeros((3, 2))}, "holds arrays ['decision'], not ['decision', 'rows']"),
    ({"decision": np.zeros((3, 2)), "rows": np.arange(3)}, "decision is float64 [3, 2]; 3 rows of a head of 3 classes"),
    ({"decision": np.full((3, 3), np.inf), "rows": np.arange(3)}, "decision holds non-finite numbers"),
    ({"decision": np.zeros((3, 3)), "rows": np.array([0, 1, 1])}, "rows is int64 [3]; it must be distinct"),
])
def test_stored_out_of_fold_scores_are_read_by_their_schema(arrays, expected):
    with pytest.raises(ValueError) as refused:
        OutOfFold.from_arrays(arrays, n_classes=3)
    assert str(refused.value).startswith(expected)


def _noisy_log_probas(rng, truth, n_classes, strength):
    """Log-probabilities of a member whose scores favour the true class by ``strength`` (0: pure noise)."""
    logits = rng.normal(size=(len(truth), n_classes))
    logits[np.arange(len(truth)), truth] += strength
    return log_probabilities(logits)


def test_a_member_that_is_noise_gets_no_weight():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 400)
    informative, noise = _noisy_log_probas(rng, truth, 4, 2.5), _noisy_log_probas(rng, truth, 4, 0.0)
    best, tried = choose_weights(np.stack([noise, informative]), truth)
    assert tried[best]["weights"][0] <= 0.1  # noise first: its weight, at most one step of the grid
    best, tried = choose_weights(np.stack([informative, noise]), truth)
    assert tried[best]["weights"][1] <= 0.1
    assert len(tried) == 11 and {"weights", "accuracy", "log_loss"} == set(tried[0])


def test_members_that_see_complementary_halves_fuse_into_a_better_head():
    """Four classes, (a, b) in {0, 1}^2: one member's features tell a, the other's b. Alone each is right about
    half the time; fused, nearly always. Members are logistic regressions; their out-of-fold scores from
    5-fold cross-validation on train choose the weights, the test images are scored once."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    rng = np.random.default_rng(1)

    def problem(n):
        y = rng.integers(0, 4, n)
        a, b = y // 2, y % 2
        return (a[:, None] * 2.0 + rng.normal(size=(n, 3)), b[:, None] * 2.0 + rng.normal(size=(n, 3))), y

    (train_a, train_b), y_train = problem(600)
    (test_a, test_b), y_test = problem(400)
    members = [LogisticRegression(max_iter=500) for _ in range(2)]
    out_of_fold = np.stack([np.log(cross_val_predict(m, X, y_train, cv=5, method="predict_proba"))
                            for m, X in zip(members, (train_a, train_b))])
    best, tried = choose_weights(out_of_fold, y_train)
    on_test = np.stack([np.log(m.fit(X, y_train).predict_proba(T)) for m, X, T in
                        zip(members, (train_a, train_b), (test_a, test_b))])
    alone = [np.mean(member.argmax(axis=1) == y_test) for member in on_test]
    fused = np.mean(fused_log_proba(on_test, tried[best]["weights"]).argmax(axis=1) == y_test)
    assert max(alone) < 0.6 and fused >= max(alone) + 0.25
    assert 0 < tried[best]["weights"][0] < 1  # both halves count


# -- the command line ------------------------------------------------------------------------------------
def _train_config(tmp_path, image_folder, heads):
    config = {"dataset": {"path": str(image_folder)},
              "pipeline": {"extractor": {"color_hist": {"bins": 4}}},
              "run": {"cache_dir": str(tmp_path / "cache"), "progress": False},
              "train": {"selection": "kfold", "folds": 3},
              "heads": heads, "output": str(tmp_path / "runs")}
    path = tmp_path / "late.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


SOFTMAX = {"name": "colour", "model": "linear", "params": {"max_iter": 60, "random_state": 0}}
HOG = {"name": "hog", "model": "linear", "params": {"max_iter": 60, "random_state": 0},
       "pipeline": {"extractor": {"hog": {"pixels_per_cell": [16, 16], "cells_per_block": [1, 1]}}}}


@pytest.mark.parametrize("late, expected", [
    (["colour", "nothing"], "heads[2].late: no head named 'nothing' (the heads: 'colour', 'hog', 'fused')"),
    (["colour", "fused"], "heads[2].late: 'fused' is a late fusion itself; fuse the heads it fuses instead"),
    (["colour"], "heads[2].late: a late fusion takes 2 to 5 heads, not 1"),
    (["colour", "colour"], "heads[2].late: names 'colour' twice"),
])
def test_a_late_head_naming_what_it_cannot_fuse_is_refused_in_one_line(late, expected, tmp_path, image_folder):
    path = _train_config(tmp_path, image_folder, [SOFTMAX, HOG, {"name": "fused", "late": late}])
    code, out, err = run_cli("train", "--config", path)
    assert code == EXIT_USAGE and err.strip() == f"featurepipe: config error: {expected}"
    assert not (tmp_path / "runs").exists()


def test_a_head_with_model_and_late_is_refused_in_one_line(tmp_path, image_folder):
    path = _train_config(tmp_path, image_folder, [SOFTMAX, {**HOG, "late": ["colour", "hog"]}])
    code, _, err = run_cli("train", "--config", path)
    assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1
    assert "heads.1: Value error, give exactly one of model (a registered head) and late" in err


def test_a_bench_late_pipeline_of_unknown_members_is_refused_in_one_line(tmp_path, image_folder):
    config = {"dataset": {"path": str(image_folder)}, "run": {"cache_dir": str(tmp_path / "cache"), "progress": False},
              "bench": {"pipelines": {"colour": {"extractor": {"color_hist": {"bins": 4}}},
                                      "fused": {"late": ["colour", "hsv"]}}},
              "heads": [SOFTMAX]}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = run_cli("bench", "--config", path)
    assert code == EXIT_USAGE
    assert err.strip() == ("featurepipe: config error: bench.pipelines.fused.late: no pipeline named 'hsv' "
                           f"(the pipelines: 'colour', 'fused')")


def test_bench_with_a_late_pipeline_on_the_demo(tmp_path):
    config = {"dataset": {"builtin": "demo"}, "run": {"cache_dir": str(tmp_path / "cache"), "progress": False},
              "bench": {"pipelines": {
                  "colour": {"extractor": {"color_hist": {"bins": 4}}},
                  "hog": {"preprocess": [{"resize": {"size": [32, 32]}}],
                          "extractor": {"hog": {"pixels_per_cell": [16, 16], "cells_per_block": [1, 1]}}},
                  "fused": {"late": ["colour", "hog"]}}},
              "heads": [{"name": "softmax", "model": "linear", "params": {"max_iter": 40, "random_state": 0}}]}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "report"
    code, log, _ = run_cli("bench", "--config", path, "--output", out)
    assert code == EXIT_OK and "[3/3] fused x softmax:" in log
    rows = {r["pipeline"]: r for r in json.loads((out / "results.json").read_text())}
    fused = rows["fused"]
    assert fused["kind"] == "late fusion"
    assert fused["feature_dim"] == rows["colour"]["feature_dim"] + rows["hog"]["feature_dim"]
    weights = fused["chosen"]["params"]["weights"]
    assert len(weights) == 2 and sum(weights) == pytest.approx(1)
    grid = fused["grid"]
    assert len(grid) == 11 and all({"val_accuracy", "val_log_loss"} <= set(g) for g in grid)
    chosen = min(grid, key=lambda g: g["val_log_loss"])
    assert chosen["params"]["weights"] == weights and chosen["val_accuracy"] == fused["val_accuracy"]
    # the fusion costs what its members cost, and more
    assert fused["cost_seconds"] >= rows["colour"]["cost_seconds"] + rows["hog"]["cost_seconds"]
    assert fused["test_n"] == rows["colour"]["test_n"] and "vs_best_p" in fused
    table = (out / "results.md").read_text()
    assert "| fused | softmax | late fusion |" in table
    code, again, _ = run_cli("bench", "--config", path, "--output", out)
    assert code == EXIT_OK and again.count(": cached (test") == 3


@pytest.fixture
def fused_run(tmp_path, image_folder):
    """`featurepipe train` of a colour histogram head, a HOG head on its own pipeline and their fusion."""
    path = _train_config(tmp_path, image_folder, [SOFTMAX, HOG, {"name": "fused", "late": ["colour", "hog"]}])
    code, out, err = run_cli("train", "--config", path)
    assert code == EXIT_OK, err
    return tmp_path / "runs", out


def test_train_writes_the_fusion_and_compare_pairs_it_with_a_member(fused_run):
    run, out = fused_run
    assert "fused: weights=[" in out and "chosen on 3-fold cross-validation" in out
    metrics = json.loads((run / "fused" / "metrics.json").read_text())
    assert [m["name"] for m in metrics["members"]] == ["colour", "hog"] and len(metrics["grid"]) == 11
    assert metrics["test"]["interval_95"][0] <= metrics["test"]["accuracy"]
    assert sorted(p.name for p in (run / "fused" / "members").iterdir()) == ["colour", "hog"]
    chosen = next(line for line in grid_text(metrics).splitlines() if line.endswith("<- chosen"))  # train -v
    assert f"log loss {min(g['val_log_loss'] for g in metrics['grid']):.4f} <- chosen" in chosen
    code, text, _ = run_cli("compare", run / "fused", run / "colour")
    assert code == EXIT_OK
    first = text.splitlines()[0]
    recorded = metrics["test"]["accuracy"]
    # scored again from the members' folders and the cache, the fusion labels the test images as at training
    assert first == f"A: {run / 'fused'}: test accuracy {recorded:.2%} (recorded at training: {recorded:.2%})"


def test_predict_and_evaluate_refuse_a_fusion_in_one_line(fused_run, image_folder):
    run, _ = fused_run
    for command in (["predict", run / "fused", image_folder / "test" / "red"], ["evaluate", run / "fused"]):
        code, _, err = run_cli(*command)
        assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1
        assert f"a late fusion of several heads: `featurepipe compare` takes it whole; predict and evaluate take one " \
               f"head, such as one of the folders in {run / 'fused' / 'members'}" in err


def _set_weights(folder):
    np.savez(folder / "fusion.npz", weights=np.array([0.0, 1.0]))


def _edit_member(folder):
    manifest = folder / "members" / "hog" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"feature_dim"', '"feature_dim" ', 1))


def _extra_member(folder):
    (folder / "members" / "stranger").mkdir()


def _unknown_key(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "run": {"scheduler": "tcp://example"}}))


@pytest.mark.parametrize("damage, expected", [
    (_set_weights, "fusion.npz was changed after training"),
    (_edit_member, "members/hog was changed after training"),
    (_extra_member, "members/ holds ['colour', 'hog', 'stranger'], the manifest lists ['colour', 'hog']"),
    (_unknown_key, "manifest.json: run: Extra inputs are not permitted"),
])
def test_a_damaged_fusion_folder_is_refused_in_one_line(damage, expected, fused_run):
    run, _ = fused_run
    damage(run / "fused")
    code, _, err = run_cli("compare", run / "fused", run / "colour")
    assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1 and expected in err


def test_a_stored_head_answers_to_the_name_it_is_asked_by(tmp_path):
    """A bench cell and a `train` head of the same settings share a stored head: each sees its own name."""
    data = stored_colour_histograms(tmp_path)
    head = HeadConfig(name="softmax", model="linear", params={"max_iter": 30, "random_state": 0})
    fit_and_score(data, head, TrainConfig())
    again = fit_and_score(data, head.model_copy(update={"name": "colour"}), TrainConfig())
    assert again.record["head"] == "colour"
