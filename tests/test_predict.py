"""`featurepipe predict` end to end: the top-k table and its probabilities (a softmax head's own, an SVM's
Platt-scaled), one image file, the ledger of refused files beside the table, the run settings of the
invocation, and a damaged calibration refused in one line."""
import csv
import hashlib
import json
import shutil

import numpy as np
import pytest
import yaml
from helpers import class_images, make_image_folder, run_cli, write_rgb

from featurepipe.cli import EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, main
from featurepipe.head_folder import load_trained
from featurepipe.store import FeatureStore
from featurepipe.trained import load_bundle

COLUMNS = ["path", "label", "probability", "label_2", "probability_2", "label_3", "probability_3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A softmax head and an SVM trained on three colour classes (the run's config says no progress bars)."""
    root = tmp_path_factory.mktemp("trained")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"path": str(make_image_folder(root / "images", np.random.default_rng(0)))},
        "pipeline": {"extractor": {"color_hist": {"bins": 4}}},
        "run": {"cache_dir": str(root / "cache"), "progress": False}, "output": str(root / "runs"),
        "heads": [{"name": "softmax", "model": "linear", "params": {"max_iter": 100, "random_state": 0}},
                  {"name": "svm", "model": "linear", "params": {"loss": "squared_hinge", "optimizer": "lbfgs",
                                                                "alpha": 0.1, "random_state": 0}}]}))
    assert main(["train", "--config", str(config)]) == EXIT_OK
    return root / "runs"


@pytest.fixture
def images(tmp_path):
    """Two blue-dominated images, as arrays and as a folder of PNG files (lossless)."""
    arrays = class_images(np.random.default_rng(5), 2, 32, colour=2)
    for i, image in enumerate(arrays):
        write_rgb(tmp_path / "new" / f"img{i}.png", image)
    return arrays, tmp_path / "new"


def predict(*argv):
    """``featurepipe predict ARGV --no-progress`` in this process: (exit code, stdout, stderr)."""
    return run_cli("predict", *argv, "--no-progress")


def read_table(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.mark.parametrize("head", ["softmax", "svm"])
def test_the_table_ranks_every_class_by_the_probabilities_the_python_api_gives(head, runs, images, tmp_path):
    arrays, folder = images
    assert predict(runs / head, folder, "--out", tmp_path / "p.csv", "--cache-dir", tmp_path / "cache")[0] == EXIT_OK
    header, rows = read_table(tmp_path / "p.csv")
    assert header == COLUMNS  # --top-k 3 by default: here every class
    trained = load_trained(runs / head)
    expected = trained.predict_proba(trained.pipeline.transform(list(arrays)))
    classes = [str(c) for c in trained.model.classes_]
    for row, probabilities in zip(rows, expected):
        labels, chances = row[1::2], np.array(row[2::2], float)
        assert sorted(labels) == sorted(classes) and labels[0] == "blue"
        assert np.all(np.diff(chances) <= 0) and chances.sum() == pytest.approx(1, abs=2e-4)
        np.testing.assert_allclose(chances, probabilities[[classes.index(c) for c in labels]], atol=1e-4)
    assert [row[0] for row in rows] == ["img0.png", "img1.png"]


def test_the_svm_folder_holds_the_calibration_train_fitted(runs):
    store = FeatureStore(runs.parent / "cache")
    stored = [load_bundle(store.load_head(entry["key"])[1]) for entry in store.entries(("heads",))]
    fitted = next(bundle.calibration for bundle in stored if bundle.calibration is not None)
    svm, softmax = load_trained(runs / "svm"), load_trained(runs / "softmax")
    assert svm.manifest["calibration"] == "platt" and softmax.calibration is None  # softmax has its own
    np.testing.assert_array_equal(svm.calibration.slope, fitted.slope)
    np.testing.assert_array_equal(svm.calibration.intercept, fitted.intercept)


def test_top_k_sets_the_columns_and_stops_at_the_number_of_classes(runs, images, tmp_path, capsys):
    _, folder = images
    for k, columns in [("1", COLUMNS[:3]), ("2", COLUMNS[:5]), ("10", COLUMNS)]:
        assert predict(runs / "svm", folder, "--out", tmp_path / "p.csv", "--top-k", k,
                       "--cache-dir", tmp_path / "cache")[0] == EXIT_OK
        header, rows = read_table(tmp_path / "p.csv")
        assert header == columns and all(len(row) == len(columns) for row in rows)
    with pytest.raises(SystemExit) as usage:  # argparse's usage error
        main(["predict", str(runs / "svm"), str(folder), "--top-k", "0"])
    assert usage.value.code == EXIT_USAGE
    assert "--top-k: must be a whole number of 1 or more, got '0'" in capsys.readouterr().err


def test_one_image_file_is_predicted(runs, images, tmp_path):
    _, folder = images
    code, out, _ = predict(runs / "softmax", folder / "img1.png", "--out", tmp_path / "one.csv",
                           "--cache-dir", tmp_path / "cache")
    assert code == EXIT_OK and f"1 image labelled in {tmp_path / 'one.csv'}; none refused" in out
    _, rows = read_table(tmp_path / "one.csv")
    assert [(row[0], row[1]) for row in rows] == [("img1.png", "blue")]


def test_refused_files_are_listed_beside_the_table_and_counted(runs, images, tmp_path):
    _, folder = images
    (folder / "broken.png").write_bytes(b"")
    (folder / "=notes.jpg").write_bytes(b"not an image")
    out, ledger = tmp_path / "out" / "p.csv", tmp_path / "out" / "p.refused.csv"
    code, printed, _ = predict(runs / "softmax", folder, "--out", out, "--cache-dir", tmp_path / "cache")
    assert code == EXIT_SKIPPED
    assert f"2 images labelled in {out}; 2 refused, listed in {ledger}" in printed
    header, refused = read_table(ledger)
    assert header == ["path", "reason"] and [row[0] for row in refused] == ["'=notes.jpg", "broken.png"]
    assert all(row[1] for row in refused)
    # A run with nothing refused leaves no stale ledger behind.
    (folder / "broken.png").unlink()
    (folder / "=notes.jpg").unlink()
    code, printed, _ = predict(runs / "softmax", folder, "--out", out, "--cache-dir", tmp_path / "cache")
    assert code == EXIT_OK and "none refused" in printed and read_table(ledger) == (["path", "reason"], [])


def test_run_settings_come_from_the_invocation_not_the_training_run(runs, images, tmp_path):
    _, folder = images
    training_cache = runs.parent / "cache"
    before = sorted(training_cache.rglob("*"))
    for cache, quiet in [(tmp_path / "cache", []), (tmp_path / "quiet", ["--no-progress"])]:
        code, _, err = run_cli("predict", runs / "softmax", folder, "--out", tmp_path / "p.csv", "--cache-dir", cache,
                               "--jobs", "2", *quiet)
        # Progress bars unless this command says --no-progress, whatever the training run said (none).
        assert code == EXIT_OK and ("extract" in err) != bool(quiet), err
        assert list((cache / "features").iterdir())
    assert sorted(training_cache.rglob("*")) == before


def _rewrite(folder, name, arrays):
    """Replace an array file and re-record its checksum, as a careful editor would."""
    np.savez(folder / name, **arrays)
    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / name).read_bytes()
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _arrays(folder):
    with np.load(folder / "calibration.npz") as data:
        return {k: data[k] for k in data.files}


def _nan_slope(folder):
    _rewrite(folder, "calibration.npz", {**_arrays(folder), "slope": np.full(3, np.nan)})


def _short_intercept(folder):
    _rewrite(folder, "calibration.npz", {**_arrays(folder), "intercept": np.zeros(2)})


def _flipped_byte(folder):
    data = bytearray((folder / "calibration.npz").read_bytes())
    data[-30] ^= 1
    (folder / "calibration.npz").write_bytes(bytes(data))


def _unflagged(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["calibration"]
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _without_calibration(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["calibration"], manifest["files"]["calibration.npz"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "calibration.npz").unlink()


DAMAGED = [("nan-slope", _nan_slope, "calibration.npz: slope holds non-finite numbers"),
           ("short-intercept", _short_intercept, "calibration.npz: intercept is float64 [2]; a head of 3 classes"),
           ("flipped-byte", _flipped_byte, "calibration.npz was changed after training"),
           ("file-not-flagged", _unflagged, "lists 'calibration.npz', which is not a file of a trained head"),
           ("no-calibration", _without_calibration, "the head gives scores, not probabilities")]


@pytest.mark.parametrize("fault, damage, expected", DAMAGED, ids=[case[0] for case in DAMAGED])
def test_a_damaged_calibration_is_refused_in_one_line_before_any_work(fault, damage, expected, runs, images,
                                                                      tmp_path):
    head = shutil.copytree(runs / "svm", tmp_path / "svm")
    damage(head)
    code, out, err = predict(head, images[1], "--out", tmp_path / "p.csv", "--cache-dir", tmp_path / "cache")
    assert code == EXIT_USAGE and out == "" and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "p.csv").exists()
