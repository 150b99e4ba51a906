"""`featurepipe train`, `evaluate` and `predict` end to end on a small synthetic folder."""
import csv
import json

import numpy as np
import pytest
import yaml
from helpers import class_images, write_rgb

from featurepipe.cli import EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, main
from featurepipe.heads import load_model


@pytest.fixture
def config(tmp_path, image_folder, cache_dir):
    cfg = {"dataset": {"path": str(image_folder)},
           "pipeline": {"extractor": {"color_hist": {"bins": 4}}},
           "run": {"cache_dir": str(cache_dir), "progress": False},
           "heads": [{"name": "softmax", "model": "linear", "params": {"max_iter": 100, "random_state": 0}},
                     {"name": "mlp", "model": "mlp", "params": {"hidden_layer_sizes": [16], "max_iter": 100, "learning_rate": 0.01, "random_state": 0}}],
           "train": {"validation_fraction": 0.25}, "output": str(tmp_path / "runs")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_evaluate_predict(config, tmp_path, capsys):
    assert main(["train", "--config", str(config)]) == EXIT_OK
    runs = tmp_path / "runs"
    for name in ("softmax", "mlp"):
        folder = runs / name
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["test"]["accuracy"] >= 0.9  # colour-dominated classes are easy
        # 8 training images per class: chosen by 5-fold cross-validation, then refit on all 24.
        assert metrics["selection"]["method"] == "kfold" and metrics["selection"]["splits"] == 5
        assert metrics["train"]["n"] == 24 and metrics["val"]["n"] == 24 and metrics["test"]["n"] == 12
        assert np.array(metrics["test"]["confusion_matrix"]).sum() == 12
        assert set(metrics["test"]["per_class_accuracy"]) == {"blue", "green", "red"}
        assert (folder / "curves.png").stat().st_size > 1000 and (folder / "confusion.png").exists()
        assert load_model(folder / "head.npz").n_features_in_ == metrics["feature_dim"]
    capsys.readouterr()
    assert main(["evaluate", str(runs / "mlp"), "--split", "test"]) == EXIT_OK
    expected = json.loads((runs / "mlp" / "metrics.json").read_text())["test"]["accuracy"]
    assert f"test accuracy {expected:.2%} on 12 items" in capsys.readouterr().out

    unlabelled = tmp_path / "new"
    rng = np.random.default_rng(5)
    for i, image in enumerate(class_images(rng, 3, 32, colour=2)):
        write_rgb(unlabelled / f"img{i}.png", image)
    (unlabelled / "broken.png").write_bytes(b"")
    assert main(["predict", str(runs / "softmax"), str(unlabelled), "--out", str(tmp_path / "p.csv")]) == EXIT_SKIPPED
    assert f"3 images labelled in {tmp_path / 'p.csv'}; 1 refused, listed in {tmp_path / 'p.refused.csv'}" \
        in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["path"] for r in rows] == ["img0.png", "img1.png", "img2.png"]
    assert {r["label"] for r in rows} == {"blue"}


def test_unknown_head_parameter_is_named(config, capsys):
    assert main(["train", "--config", str(config), "--set", "heads.0.params.learning_rat=0.1"]) == EXIT_USAGE
    assert "heads[0].params.learning_rat: unknown parameter of LinearClassifier" in capsys.readouterr().err


def test_verbose_shows_epoch_bars_unless_the_head_sets_verbose(config, tmp_path, capsys):
    assert main(["train", "--config", str(config), "--set", "run.progress=true"]) == EXIT_OK
    assert "loss=" not in capsys.readouterr().err  # without --verbose, no bar is left on screen
    assert main(["train", "--config", str(config), "--set", "run.progress=true", "--set", "heads.0.params.alpha=0.001",
                 "--set", "heads.1.params.verbose=false", "-v", "--output", str(tmp_path / "verbose")]) == EXIT_OK
    bars = [line for line in capsys.readouterr().err.split("\n") if "loss=" in line]
    # The softmax head's bars, one per fit (5 folds and the refit); the mlp said verbose=false.
    assert len(bars) == 6 and all("epoch" in bar for bar in bars)


def test_a_warning_is_one_line_naming_its_kind(config, capsys):
    assert main(["train", "--config", str(config), "--set", "heads.0.params.max_iter=1",
                 "--set", "heads.0.params.optimizer=lbfgs"]) == EXIT_OK
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if "ConvergenceWarning" in line]
    assert warned and all(line.startswith("featurepipe: warning: ConvergenceWarning: LinearClassifier stopped")
                          for line in warned)
    assert not any("warnings.warn" in line for line in err)


def _edit_consistently(folder, name, edit):
    """Change one array file of a trained folder and re-record its checksum, as a careful editor would."""
    import hashlib

    with np.load(folder / name) as data:
        arrays = {k: data[k] for k in data.files}
    edit(arrays)
    np.savez(folder / name, **arrays)
    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / name).read_bytes()
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_edits_that_keep_the_checksums_are_still_refused(config, tmp_path, capsys):
    """Checksums catch accidental damage; these checks catch a folder edited and re-hashed."""
    assert main(["train", "--config", str(config), "--set", "heads=[{name: softmax, model: linear}]"]) == EXIT_OK
    folder = tmp_path / "runs" / "softmax"

    def nan_weights(arrays):
        key = next(k for k, v in arrays.items() if v.dtype.kind == "f" and v.ndim == 2)
        arrays[key][0, 0] = np.nan

    def short_scaler(arrays):
        for key in arrays:
            arrays[key] = arrays[key][:1]

    def reordered_classes(arrays):
        key = next(k for k in arrays if "classes" in k)
        arrays[key] = arrays[key][::-1]

    for name, edit, expected in [("head.npz", nan_weights, "non-finite numbers"),
                                 ("head.npz", reordered_classes, "differ from the manifest's"),
                                 ("normalization.npz", short_scaler, "normalization.npz has arrays")]:
        backup = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".npz", ".json")}
        _edit_consistently(folder, name, edit)
        capsys.readouterr()
        assert main(["evaluate", str(folder)]) == EXIT_USAGE
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
        for file, data in backup.items():
            (folder / file).write_bytes(data)
    assert main(["evaluate", str(folder)]) == EXIT_OK
