"""Features stored at float16 (``pipeline.storage``): read back as float32 within float16's rounding, keyed
apart from float32, refused when they do not fit, checked against the type recorded, resumed after a kill,
and a head trained on them predicts as one trained on float32."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import make_image_folder, run_cli, write_rgb

from featurepipe.store import DamagedEntryError, FeatureStore
from featurepipe.store.precision import PrecisionError, narrow

ROOT = Path(__file__).resolve().parents[1]
HOG = {"hog": {"pixels_per_cell": [4, 4], "cells_per_block": [2, 2]}}


def write_config(root: Path, data: Path, storage: str, extractor=None, **run) -> Path:
    """A config of HOG (or ``extractor``) features of ``data`` stored at ``storage``, one softmax head."""
    cfg = {"dataset": {"path": str(data)},
           "pipeline": {"extractor": extractor or HOG, "storage": storage},
           "run": {"cache_dir": str(root / "cache"), "progress": False, "chunk_size": 6, **run},
           "train": {"selection": "holdout", "validation_fraction": 0.5},
           "heads": [{"name": "softmax", "model": "linear", "params": {"alpha": 0.1, "max_iter": 100, "random_state": 0}}],
           "output": str(root / f"runs-{storage}")}
    path = root / f"{storage}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    return make_image_folder(tmp_path / "data", np.random.default_rng(0), per_class=(6, 2), size=16)


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def feature_keys(cache: Path) -> dict[str, str]:
    """storage -> key of the feature entries in ``cache``."""
    return {e["storage"]: e["key"] for e in FeatureStore(cache).entries(("features",))}


def test_a_float16_entry_is_keyed_apart_and_reads_back_as_float32_within_its_rounding(tmp_path, data):
    for storage in ("float32", "float16"):
        assert run_cli("extract", "--config", write_config(tmp_path, data, storage))[0] == 0
    store, keys = FeatureStore(tmp_path / "cache"), feature_keys(tmp_path / "cache")
    assert set(keys) == {"float32", "float16"} and keys["float32"] != keys["float16"]
    assert store.feature_array(keys["float16"]).dtype == np.float16
    exact, rounded = store.read(keys["float32"]).X, store.read(keys["float16"]).X
    assert exact.dtype == rounded.dtype == np.float32 and exact.shape == rounded.shape
    # float16 keeps 11 significant bits: half a unit in the last place is 2**-11 of a value (2**-25 below 2**-14)
    assert np.all(np.abs(rounded - exact) <= 2.0**-11 * np.abs(exact) + 2.0**-25)
    assert not np.array_equal(rounded, exact)  # it was stored at float16, not passed through
    from featurepipe.matrix import iter_blocks

    rows = np.arange(len(exact))[::-1]
    assert all(block.dtype == np.float32 for _, block in iter_blocks(store, keys["float16"], rows))
    listed = run_cli("cache", "ls", "--cache-dir", tmp_path / "cache")[1]
    d = exact.shape[1]
    for storage, key in keys.items():
        assert f" 24 x {d} {storage} " in next(line for line in listed.splitlines() if line.startswith(f"features   {key}"))
    assert store.verify(keys["float16"]) == []


def test_values_float16_cannot_hold_are_refused_in_one_line(tmp_path):
    """Counts of a 260x260 image's pixels in one bin (67,600) are beyond float16's 65,504: never stored as inf."""
    for i in range(3):
        write_rgb(tmp_path / "big" / "train" / "a" / f"{i}.png", np.full((260, 260, 3), 40 * i, np.uint8))
    counts = {"color_hist": {"bins": 1, "norm": None}}
    code, out, err = run_cli("extract", "--config", write_config(tmp_path, tmp_path / "big", "float16", counts))
    line = one_line(err)
    assert code == 1 and "pipeline.storage: float16" in line and "extractor color_hist" in line and "67600" in line
    [key] = feature_keys(tmp_path / "cache").values()
    assert not FeatureStore(tmp_path / "cache").status(key).any()  # nothing of the refused chunk was committed
    assert run_cli("extract", "--config", write_config(tmp_path, tmp_path / "big", "float32", counts))[0] == 0


@pytest.mark.parametrize("value", [np.nan, np.inf, -65505.0])
def test_narrowing_refuses_what_float16_would_change(value):
    rows = np.array([[1.0, value]], np.float32)
    with pytest.raises(PrecisionError):
        narrow(rows, "float16")
    assert np.array_equal(narrow(np.array([[-65504.0, 1.0]], np.float32), "float16"), [[-65504.0, 1.0]])
    assert narrow(rows, "float32") is rows  # float32 entries keep what they always kept


def test_features_not_of_the_recorded_type_are_refused(tmp_path, data):
    """An entry whose array says float32 where the entry records float16 is never read as either."""
    cfg = write_config(tmp_path, data, "float16")
    assert run_cli("extract", "--config", cfg)[0] == 0
    store, [key] = FeatureStore(tmp_path / "cache"), feature_keys(tmp_path / "cache").values()
    meta = store.path(key) / "features" / "zarr.json"
    meta.write_text(meta.read_text().replace('"float16"', '"float32"'))
    with pytest.raises(DamagedEntryError, match="features stored as 'float32' where the entry records float16"):
        store.read(key)
    code, out, err = run_cli("cache", "export", key, "--to", tmp_path / "x.npz", "--cache-dir", tmp_path / "cache")
    assert code == 1 and "records float16 (edited or damaged); run `featurepipe extract`" in one_line(err)
    assert "chunk" not in err and not (tmp_path / "x.npz").exists()
    store.set_attrs(key, storage=["float16"])  # a recorded precision that is no precision: data, listed as "?"
    [problem] = store.verify(key)
    assert problem.startswith("records the precision ['float16'], none of float32, float16 (edited or damaged)")
    assert " x 324 ? " in run_cli("cache", "ls", "--cache-dir", tmp_path / "cache")[1]


def test_a_float16_extract_killed_mid_commit_resumes_to_the_same_entry(tmp_path, data):
    """SIGKILL after chunk 1's features are written, before its status: the next run recomputes that chunk
    and ends with the features of an uninterrupted run, bit for bit."""
    kill_at_second_commit = (
        "import os, signal, sys; import featurepipe.store.features as f; write, done = f.write_json_atomic, []; "
        "f.write_json_atomic = lambda *a: os.kill(os.getpid(), signal.SIGKILL) if done else done.append(write(*a)); "
        "from featurepipe.cli import main; sys.exit(main(sys.argv[1:]))")
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    cfg = write_config(tmp_path, data, "float16")
    run = subprocess.run([sys.executable, "-c", kill_at_second_commit, "extract", "--config", str(cfg),
                          "--cache-dir", str(killed)], capture_output=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == -signal.SIGKILL
    store, [key] = FeatureStore(killed), feature_keys(killed).values()
    assert store.status(key)[:6].all() and not store.status(key)[6:].any() and not store.is_complete(key)
    for cache in (killed, clean):
        code, out, _ = run_cli("extract", "--config", cfg, "--cache-dir", cache)
        assert code == 0 and "24 ok" in out
    assert feature_keys(clean) == {"float16": key}
    assert store.read(key).X.tobytes() == FeatureStore(clean).read(key).X.tobytes()
    assert store.verify(key) == []


def test_a_bench_pipeline_keys_its_features_at_its_own_precision(tmp_path, data):
    """``bench.pipelines.NAME.storage`` reaches the config each cell extracts with (``BenchPipelineConfig.pipeline``)."""
    from featurepipe.config import load_config

    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump({"dataset": {"path": str(data)}, "bench": {"pipelines": {"hog": {"extractor": HOG}}}}))
    cfg = load_config(path, ["bench.pipelines.hog.storage=float16"])
    assert cfg.bench.pipelines["hog"].pipeline().storage == "float16"


def predictions(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path, newline="")))


def test_a_head_trained_on_float16_features_predicts_as_on_float32(tmp_path, data):
    """``train`` then ``predict`` end to end at both precisions: the same test accuracy and the same labels,
    their probabilities within 0.02 (the features differ by float16's rounding, at most 2**-11 of a value, which
    standardising the columns that barely vary magnifies)."""
    outcome = {}
    for storage in ("float32", "float16"):
        cfg = write_config(tmp_path, data, storage)
        assert run_cli("train", "--config", cfg)[0] == 0
        head = tmp_path / f"runs-{storage}" / "softmax"
        code, _, _ = run_cli("predict", head, data / "test", "--out", tmp_path / f"{storage}.csv",
                             "--cache-dir", tmp_path / "cache", "--no-progress")
        assert code == 0
        outcome[storage] = json.loads((head / "metrics.json").read_text())["test"], predictions(tmp_path / f"{storage}.csv")
    assert set(feature_keys(tmp_path / "cache")) == {"float32", "float16"}
    (exact, exact_rows), (rounded, rounded_rows) = outcome["float32"], outcome["float16"]
    assert rounded["accuracy"] == exact["accuracy"] and rounded["confusion_matrix"] == exact["confusion_matrix"]
    assert [r["label"] for r in rounded_rows] == [r["label"] for r in exact_rows] and len(exact_rows) == 6
    assert all(abs(float(a["probability"]) - float(b["probability"])) <= 0.02 for a, b in zip(exact_rows, rounded_rows))
