"""The first hour with featurepipe, end to end: what extract says next, what train prints (one line per head,
a table with 95% intervals), one folder per run, a test split held out from class folders, a missing test
split and an extraction where every image failed as one line each; and the Wilson interval itself."""
import json
import shutil
from collections import Counter

import numpy as np
import pytest
import yaml
from helpers import make_image_folder, run_cli

from featurepipe.datasets import open_dataset
from featurepipe.metrics import wilson_interval

HEADS = [{"name": "softmax", "model": "linear", "params": {"max_iter": 100, "random_state": 0}},
         {"name": "svm", "model": "linear", "params": {"loss": "squared_hinge", "optimizer": "lbfgs",
                                                       "alpha": [0.1, 1.0], "max_iter": 100, "random_state": 0}}]


def write_config(tmp_path, data, **dataset) -> str:
    cfg = {"dataset": {"path": str(data), **dataset}, "pipeline": {"extractor": {"color_hist": {"bins": 4}}},
           "run": {"cache_dir": str(tmp_path / "cache"), "progress": False}, "heads": HEADS,
           "output": str(tmp_path / "runs")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture
def config(tmp_path, image_folder):
    return write_config(tmp_path, image_folder)


def test_wilson_interval_against_hand_computed_values():
    # p = 0.8, n = 10, z = 1.96: centre (p + z^2/2n) / (1 + z^2/n) = 0.71674, half-width
    # z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2) = 0.22658.
    assert wilson_interval(8, 10) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27754), abs=1e-5)  # not a point at 0%
    assert wilson_interval(10, 10) == pytest.approx((0.72246, 1.0), abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_extract_says_what_to_run_next_and_where(config, tmp_path):
    code, out, err = run_cli("extract", "--config", config)
    assert code == 0, err
    line = out.strip().splitlines()[-1]
    assert line.startswith(f"features in {tmp_path / 'cache' / 'features'}")
    assert f"next: featurepipe train --config {config}" in line
    assert f"(heads softmax, svm, written to {tmp_path / 'runs'})" in line


def test_train_prints_a_line_per_head_and_a_table_with_intervals(config, tmp_path):
    code, out, err = run_cli("train", "--config", config)
    assert code == 0, err
    assert err == ""  # no warnings, no bars
    lines = out.strip().splitlines()
    # A line per head, the table's header, a row per head and the line saying what the intervals are.
    assert len(lines) == 2 + 1 + 2 + 1, out
    assert not any("split " in line for line in lines)
    softmax = json.loads((tmp_path / "runs" / "softmax" / "metrics.json").read_text())
    test = softmax["test"]
    low, high = wilson_interval(round(test["accuracy"] * test["n"]), test["n"])
    assert test["interval_95"] == pytest.approx([low, high])
    shown = f"{test['accuracy']:.1%} [{100 * low:.1f}, {100 * high:.1f}]"
    assert lines[0].startswith("softmax: ") and f"test {shown}" in lines[0]
    assert lines[2].split() == ["head", "chosen", "validation", "(95%)", "test", "(95%)", "time"]
    assert lines[3].startswith("softmax ") and shown in lines[3]
    assert lines[4].startswith("svm ") and "alpha=" in lines[4]


def test_verbose_train_prints_every_split(config, tmp_path):
    code, out, _ = run_cli("train", "--config", config, "-v")
    assert code == 0
    # 8 training images per class: 5-fold cross-validation; the svm's grid has two alphas.
    assert sum(line.startswith("  split ") for line in out.splitlines()) == 5 + 5 * 2


def test_a_run_folder_is_not_replaced_without_force(config, tmp_path):
    assert run_cli("train", "--config", config)[0] == 0
    before = (tmp_path / "runs" / "softmax" / "metrics.json").read_bytes()
    code, out, err = run_cli("train", "--config", config)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'runs'} already holds a run; pass --force" in err
    assert (tmp_path / "runs" / "softmax" / "metrics.json").read_bytes() == before
    code, out, err = run_cli("train", "--config", config, "--force")
    assert code == 0 and "softmax: " in out and "from the cache" in out
    assert run_cli("train", "--config", config, "--output", tmp_path / "second")[0] == 0


def test_test_fraction_splits_class_folders_stratified_and_seeded(tmp_path):
    data = make_image_folder(tmp_path / "split", np.random.default_rng(0), per_class=(10, 10))
    for split in ("train", "test"):  # one folder of 20 images per class, no splits
        for folder in (data / split).iterdir():
            for file in folder.iterdir():
                (data / folder.name).mkdir(exist_ok=True)
                file.rename(data / folder.name / f"{split}_{file.name}")
        shutil.rmtree(data / split)
    dataset = open_dataset(data)
    assert dataset.splits is None
    held = dataset.hold_out_test(0.25, seed=3)
    assert Counter(zip(held.splits, held.labels)) == {(split, label): count for label in ("red", "green", "blue")
                                                      for split, count in (("train", 15), ("test", 5))}
    assert held_out_ids(held) == held_out_ids(dataset.hold_out_test(0.25, seed=3))
    assert held_out_ids(held) != held_out_ids(dataset.hold_out_test(0.25, seed=4))

    config = write_config(tmp_path, data, test_fraction=0.25)
    code, out, err = run_cli("train", "--config", config, "--set", "train.seed=3")
    assert code == 0, err
    metrics = json.loads((tmp_path / "runs" / "softmax" / "metrics.json").read_text())
    assert metrics["test"]["n"] == 15 and metrics["train"]["n"] == 45
    code, out, err = run_cli("evaluate", tmp_path / "runs" / "softmax")  # finds the same split again
    assert code == 0 and f"{metrics['test']['accuracy']:.2%} on 15 items" in out


def held_out_ids(dataset) -> set:
    return {i for i, split in zip(dataset.ids, dataset.splits) if split == "test"}


def test_a_missing_test_split_is_one_line(tmp_path, image_folder):
    shutil.rmtree(image_folder / "test")  # train/ alone
    code, out, _ = run_cli("extract", "--config", write_config(tmp_path, image_folder))
    assert code == 0 and "next: featurepipe train" not in out  # extract does not send one to a refusal
    assert out.strip().splitlines()[-1].endswith("training needs a test split: test/<class>/ folders, or set "
                                                 "dataset.test_fraction in " + write_config(tmp_path, image_folder)
                                                 + " (e.g. --set dataset.test_fraction=0.2)")
    code, out, err = run_cli("train", "--config", write_config(tmp_path, image_folder))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "has no test split" in err and "dataset.test_fraction" in err and "nan" not in err
    (image_folder / "train").rename(tmp_path / "classes")  # class folders alone
    code, out, err = run_cli("train", "--config", write_config(tmp_path, tmp_path / "classes"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "has no test split" in err


def test_an_extraction_where_every_image_failed_is_an_error(tmp_path, image_folder):
    for path in image_folder.rglob("*.*"):
        path.write_bytes(b"not an image")
    config = write_config(tmp_path, image_folder)
    code, out, err = run_cli("extract", "--config", config)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "none of the 36 images could be read; the first: " in err and "errors.csv" in err
    assert "no header of a format" in err  # the first file's own reason
    code, out, err = run_cli("train", "--config", config)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "none of the 36 images could be read" in err
