"""Extraction end to end: cache reuse, keys, the error ledger, resume after SIGKILL, Dask, fit on train only."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from featurepipe.datasets import open_dataset
from featurepipe.core import register
from featurepipe.extractors import Extractor
from featurepipe.pipeline import build_pipeline
from featurepipe.errors import ExtractError
from featurepipe.runner import extract, fit_pipeline
from featurepipe.store import FeatureStore
from helpers import write_rgb

HOG_HSV = {"extractor": {"concat": {"extractors": [{"hog": {"cells_per_block": [2, 2]}}, {"hsv_hist": {}}]}}}


def reference_features(dataset, pipeline):
    from featurepipe.datasets import read_image

    return pipeline.transform([read_image(dataset.path(i)) for i in range(len(dataset))])


def test_extract_matches_direct_transform_and_is_reused(image_folder, cache_dir):
    ds, pipe, store = open_dataset(image_folder), build_pipeline(HOG_HSV), FeatureStore(cache_dir)
    first = extract(ds, pipe, store, chunk_rows=5, progress=False)
    assert (first.n_ok, first.n_failed, first.computed) == (36, 0, 36)
    fs = store.read(first.key)
    np.testing.assert_array_equal(fs.X, reference_features(ds, pipe))
    assert list(fs.ids) == list(ds.ids) and list(fs.labels) == list(ds.labels)
    assert store.read(first.key, "test").X.shape[0] == 12
    again = extract(ds, build_pipeline(HOG_HSV), store, chunk_rows=5, progress=False)
    assert again.key == first.key and again.computed == 0
    assert store.verify(first.key) == []


def test_any_change_gives_a_new_key(image_folder, cache_dir):
    store = FeatureStore(cache_dir)
    base = extract(open_dataset(image_folder), build_pipeline(HOG_HSV), store, progress=False).key
    spec = {"extractor": {"concat": {"extractors": [{"hog": {"cells_per_block": [2, 2], "orientations": 8}},
                                                    {"hsv_hist": {}}]}}}
    assert extract(open_dataset(image_folder), build_pipeline(spec), store, progress=False).key != base
    write_rgb(image_folder / "train" / "red" / "red_0.jpg", np.full((32, 32, 3), 7, np.uint8))
    changed = extract(open_dataset(image_folder), build_pipeline(HOG_HSV), store, progress=False)
    assert changed.key != base and changed.computed == 36


def add_bad_files(root):
    (root / "train" / "red" / "empty.png").write_bytes(b"")
    (root / "train" / "red" / "text.jpg").write_text("not an image")
    good = (root / "train" / "green" / "green_0.jpg").read_bytes()
    (root / "train" / "green" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    write_rgb(root / "test" / "blue" / "tiny.png", np.zeros((5, 5, 3), np.uint8))  # smaller than a HOG block


def test_bad_files_go_to_the_ledger_and_the_rest_is_kept(image_folder, cache_dir):
    add_bad_files(image_folder)
    ds, store = open_dataset(image_folder), FeatureStore(cache_dir)
    result = extract(ds, build_pipeline(HOG_HSV), store, chunk_rows=7, progress=False)
    assert (result.n_items, result.n_ok, result.n_failed) == (40, 36, 4)
    ledger = result.ledger.read_text().splitlines()
    assert ledger[0] == "path,reason" and len(ledger) == 5
    reasons = {os.path.basename(line.split(",")[0]): line for line in ledger[1:]}
    assert "empty" in reasons["empty.png"] and "truncated" in reasons["truncated.jpg"]
    assert "not a decodable image" in reasons["text.jpg"] and "smaller than one HOG block" in reasons["tiny.png"]
    fs = store.read(result.key)
    assert len(fs.ids) == 36 and not any("tiny" in i or "empty" in i for i in fs.ids)


def test_on_error_fail_stops_with_the_file_named(image_folder, cache_dir):
    add_bad_files(image_folder)
    with pytest.raises(ExtractError, match="truncated.jpg: truncated JPEG"):  # the first bad file in order
        extract(open_dataset(image_folder), build_pipeline(HOG_HSV), FeatureStore(cache_dir), on_error="fail",
                progress=False)


def test_mixed_sizes_without_resize_is_a_clear_error(image_folder, cache_dir):
    write_rgb(image_folder / "train" / "red" / "big.png", np.zeros((64, 48, 3), np.uint8))
    with pytest.raises(ExtractError, match="put a `resize` step in front"):
        extract(open_dataset(image_folder), build_pipeline(HOG_HSV), FeatureStore(cache_dir), progress=False)
    spec = {"preprocess": [{"resize": {"size": [32, 32]}}], **HOG_HSV}
    assert extract(open_dataset(image_folder), build_pipeline(spec), FeatureStore(cache_dir),
                   progress=False).n_ok == 37


KILL_SCRIPT = """
import sys, time
from featurepipe.datasets import open_dataset
from featurepipe.pipeline import build_pipeline
from featurepipe.store import FeatureStore
import featurepipe.runner as runner
slow = runner.process_chunk
def process_chunk(*args):
    time.sleep(0.2)  # 18 chunks take several seconds, so the kill lands mid-run even on a loaded machine
    return slow(*args)
runner.process_chunk = process_chunk
runner.extract(open_dataset(sys.argv[1]), build_pipeline({spec!r}), FeatureStore(sys.argv[2]), chunk_rows=2,
               progress=False)
"""


def test_resume_after_sigkill_is_bit_identical(image_folder, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(spec=HOG_HSV))
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(image_folder), str(killed)], cwd=os.getcwd())
    status = killed / "features"
    deadline = time.time() + 60
    # Two chunk records mean the first chunk is fully committed (the main process writes chunks in turn).
    while time.time() < deadline and len(list(status.glob("*/chunks/*.json"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = FeatureStore(killed)
    key = next(status.iterdir()).name
    assert not store.is_complete(key)
    done_before = int((store.status(key) != 0).sum())
    assert 0 < done_before < 36
    resumed = extract(open_dataset(image_folder), build_pipeline(HOG_HSV), store, chunk_rows=2, progress=False)
    assert resumed.key == key and resumed.computed == 36 - done_before
    clean = FeatureStore(tmp_path / "clean")
    fresh = extract(open_dataset(image_folder), build_pipeline(HOG_HSV), clean, chunk_rows=2, progress=False)
    assert fresh.key == key
    assert store.read(key).X.tobytes() == clean.read(key).X.tobytes()
    assert store.verify(key) == []


def test_parallel_loky_and_dask_match_serial(image_folder, tmp_path):
    import distributed

    ds = open_dataset(image_folder)
    serial = FeatureStore(tmp_path / "serial")
    key = extract(ds, build_pipeline(HOG_HSV), serial, chunk_rows=6, progress=False).key
    loky = FeatureStore(tmp_path / "loky")
    extract(ds, build_pipeline(HOG_HSV), loky, chunk_rows=6, jobs=2, progress=False)
    np.testing.assert_array_equal(loky.read(key).X, serial.read(key).X)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = FeatureStore(tmp_path / "dask")
        extract(ds, build_pipeline(HOG_HSV), dask, chunk_rows=6, jobs=2, backend="dask",
                scheduler=cluster.scheduler_address, progress=False)
    np.testing.assert_array_equal(dask.read(key).X, serial.read(key).X)


@register("extractor", "spy_mean_colour")
class SpyMeanColour(Extractor):
    """Test-only data-driven extractor: remembers the mean colour of what it was fitted on."""

    requires_fit = True

    def fit(self, images, y=None):
        self.fitted_mean_ = np.mean([im.mean(axis=(0, 1)) for im in images], axis=0)
        return self

    def _transform_batch(self, batch):
        return batch.mean(axis=(1, 2)) - self.fitted_mean_


def test_fit_sees_the_training_split_only(image_folder, cache_dir):
    for i in range(4):  # test images unlike any training image: if a fit saw them, the mean would move
        write_rgb(image_folder / "test" / "red" / f"white_{i}.png", np.full((32, 32, 3), 255, np.uint8))
    ds = open_dataset(image_folder)
    pipeline = build_pipeline({"extractor": {"spy_mean_colour": {}}})
    fit_pipeline(pipeline, ds, progress=False)
    from featurepipe.datasets import read_image

    train_mean = np.mean([read_image(ds.path(i)).mean(axis=(0, 1)) for i in np.flatnonzero(ds.split_mask("train"))],
                         axis=0)
    np.testing.assert_allclose(pipeline.extractor.fitted_mean_, train_mean, rtol=1e-6)
    assert extract(ds, pipeline, FeatureStore(cache_dir), progress=False).n_ok == 40


def test_fitted_state_round_trips_and_a_fit_is_reused(image_folder, tmp_path):
    import yaml

    from featurepipe.extract import extract_features, fitted_pipeline
    from featurepipe.config import load_config
    from featurepipe.core import restore_state, stage_state

    ds = open_dataset(image_folder)
    spec = {"extractor": {"spy_mean_colour": {}}}
    fitted = build_pipeline(spec)
    fit_pipeline(fitted, ds, progress=False)
    restored = restore_state(build_pipeline(spec), *stage_state(fitted), fitted.fingerprint(), "test")
    np.testing.assert_array_equal(restored.extractor.fitted_mean_, fitted.extractor.fitted_mean_)
    assert restored.fingerprint() == fitted.fingerprint()

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"dataset": {"path": str(image_folder)}, "pipeline": spec,
                                      "run": {"cache_dir": str(tmp_path / "cache"), "progress": False}}))
    cfg = load_config(config)
    first = extract_features(cfg)
    calls = []
    original = SpyMeanColour.fit
    SpyMeanColour.fit = lambda self, images, y=None: calls.append(1) or original(self, images, y)
    try:
        again, _, _ = fitted_pipeline(cfg, ds, FeatureStore(cfg.run.cache_dir))
        assert calls == [] and again.fingerprint() == fitted.fingerprint()  # loaded, not refitted
        write_rgb(image_folder / "train" / "red" / "extra.png", np.zeros((32, 32, 3), np.uint8))
        refit = extract_features(cfg)  # a changed training set gets a new fit and a new entry
        assert calls == [1] and refit.key != first.key
    finally:
        SpyMeanColour.fit = original


def test_same_length_different_shapes_are_refused(tmp_path, cache_dir):
    rng = np.random.default_rng(3)
    for i, shape in enumerate([(64, 48), (48, 64), (64, 48)]):  # HOG gives both shapes the same length
        write_rgb(tmp_path / "img" / "a" / f"{i}.png", rng.integers(0, 256, shape + (3,), dtype=np.uint8))
    with pytest.raises(ExtractError, match="several sizes"):
        extract(open_dataset(tmp_path / "img"), build_pipeline({"extractor": {"hog": {}}}), FeatureStore(cache_dir),
                progress=False)
    with pytest.raises(ExtractError, match="earlier chunks had"):  # one size per chunk, but not the same
        extract(open_dataset(tmp_path / "img"), build_pipeline({"extractor": {"hog": {}}}),
                FeatureStore(tmp_path / "other"), chunk_rows=1, progress=False)


def test_data_driven_extractor_inside_concat_is_fitted(image_folder, cache_dir):
    spec = {"extractor": {"concat": {"extractors": [{"hsv_hist": {}}, {"spy_mean_colour": {}}]}}}
    pipeline = build_pipeline(spec)
    assert pipeline.requires_fit
    fit_pipeline(pipeline, open_dataset(image_folder), progress=False)
    assert extract(open_dataset(image_folder), pipeline, FeatureStore(cache_dir), progress=False).n_ok == 36


def test_unfitted_extractor_stops_the_run_instead_of_failing_every_file(image_folder, cache_dir):
    with pytest.raises(ExtractError, match="AttributeError"):
        extract(open_dataset(image_folder), build_pipeline({"extractor": {"spy_mean_colour": {}}}),
                FeatureStore(cache_dir), progress=False)


def test_decoding_limit_is_part_of_the_key(image_folder, cache_dir):
    store, ds = FeatureStore(cache_dir), open_dataset(image_folder)
    limited = extract(ds, build_pipeline(HOG_HSV), store, max_pixels=100, progress=False)
    assert limited.n_ok == 0 and limited.n_failed == 36
    assert extract(ds, build_pipeline(HOG_HSV), store, progress=False).key != limited.key


def test_dangling_link_goes_to_the_ledger(image_folder, cache_dir):
    (image_folder / "train" / "red" / "gone.png").symlink_to(image_folder / "nowhere.png")
    result = extract(open_dataset(image_folder), build_pipeline(HOG_HSV), FeatureStore(cache_dir), progress=False)
    assert (result.n_ok, result.n_failed) == (36, 1) and "gone.png" in result.ledger.read_text()
