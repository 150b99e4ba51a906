"""scripts/coates_cifar10.py end to end on a tiny folder: mirrors aligned with their images, one test score."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from featurepipe import api
from featurepipe.config import load_config
from featurepipe.datasets import read_image
from featurepipe.store import FeatureStore

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "coates_cifar10.py"


@pytest.fixture(scope="module")
def coates():
    spec = importlib.util.spec_from_file_location("coates_cifar10", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(coates, monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["coates_cifar10.py", *args])
    coates.main()
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_scatter_puts_each_row_where_asked(coates):
    source = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    destination = np.array([4, -1, 0, 1, -1, 2, 3, -1, -1, -1])
    out = np.zeros((5, 3), np.float32)
    coates.scatter(source, destination, out)
    np.testing.assert_array_equal(out, source[[2, 3, 5, 6, 0]])


def test_mirrors_are_aligned_and_test_is_scored_once(coates, image_folder, cache_dir, tmp_path, monkeypatch, capsys):
    config = tmp_path / "bovw.yaml"
    config.write_text(yaml.safe_dump({"dataset": {"path": str(image_folder)}, "pipeline": {"extractor": {"bovw": {
        "descriptor": {"patches": {"stride": 2}}, "n_words": 8, "n_samples": 600, "max_iter": 10}}}}))
    common = ["--config", str(config), "--data", str(image_folder), "--cache-dir", str(cache_dir),
              "--val-per-class", "2", "--jobs", "1", "--flip"]

    only = run(coates, monkeypatch, capsys, *common, "--C", "1", "10", "--validation-only")
    assert [r["C"] for r in only["validation"]] == [1.0, 10.0] and "test" not in only

    report = run(coates, monkeypatch, capsys, *common, "--C", "1")
    assert report["dim"] == 4 * 8 and 0 <= report["test"] <= 1 and report["C"] == 1.0

    # Row i of the mirror file is the features of the i-th training image flipped left-right.
    cfg = load_config(config, [f"run.cache_dir={cache_dir}", "run.progress=false"])
    dataset = api.config_dataset(cfg)
    store = FeatureStore(cache_dir)
    train = store.read(report["key"], split="train")
    mirrors = np.load(store.path(report["key"]) / "flipped_train.npy")
    pipeline = api.fitted_pipeline(cfg, dataset, store)
    for i in (0, 5, len(train.ids) - 1):
        image = np.asarray(pipeline.prepare([read_image(str(dataset.root / train.ids[i]))]))
        np.testing.assert_allclose(mirrors[i], pipeline.extractor.transform(image[:, :, ::-1])[0],
                                   rtol=1e-5, atol=1e-4)
        assert not np.allclose(mirrors[i], train.X[i])
