"""Bad input and faults tried against the CLI: what featurepipe must refuse, repair or survive.

Damaged cache entries (flipped bytes, deleted chunks, edited item lists), hostile folders (symbolic link
loops, dangling links, file names that are not UTF-8, decompression bombs), edited trained-head folders,
images of other sizes, relative paths, malformed ``--set`` values, rewrites that keep size and
modification time, cache removal and garbage collection, interrupts and killed processes. One case per
fault, each on its own small folder of generated images; ``pytest -k`` selects them by name.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from helpers import class_images, run_cli, write_rgb

from featurepipe.store import DamagedEntryError, FeatureStore


def make_data(root: Path, size=32, per_class=(8, 4)) -> Path:
    """train/ and test/ folders of PNG files, three colour-dominated classes (``red_0.png``...)."""
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_class):
        for colour, name in enumerate(("red", "green", "blue")):
            for i, image in enumerate(class_images(rng, count, size, colour)):
                write_rgb(root / split / name / f"{name}_{i}.png", image)
    return root


def config(root: Path, data: Path, extractor=None, heads=True, **extra) -> Path:
    """``root/config.yaml``: HOG of ``data`` (or ``extractor``), cache and runs under ``root``, a softmax head."""
    cfg = {"dataset": {"path": str(data)},
           "pipeline": {"extractor": extractor or {"hog": {"cells_per_block": [2, 2]}}},
           "run": {"cache_dir": str(root / "cache"), "progress": False, "chunk_size": 8},
           "output": str(root / "runs"), **extra}
    if heads:
        cfg["heads"] = [{"name": "softmax", "model": "linear", "params": {"max_iter": 50, "random_state": 0}}]
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def entry(root: Path) -> tuple[FeatureStore, str]:
    store = FeatureStore(root / "cache")
    return store, next(e["key"] for e in store.entries(("features",)))


def lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()]


# -- a damaged cache is never served ---------------------------------------------------------------------
def damage(root: Path, how: str):
    """An extracted entry whose chunk 1 has 8 flipped bytes (``flip``) or is gone (``delete``): the config,
    the store, the key and the features as they were."""
    cfg = config(root, make_data(root / "data"))
    run_cli("extract", "--config", cfg)
    store, key = entry(root)
    before = store.read(key).X.copy()
    chunk = store._chunk_files(key, "features")(1)
    if how == "flip":
        raw = bytearray(chunk.read_bytes())
        raw[40:48] = bytes(b ^ 0xFF for b in raw[40:48])
        chunk.write_bytes(bytes(raw))
    else:
        chunk.unlink()
    return cfg, store, key, before


@pytest.mark.parametrize("how, reason", [("flip", "recomputing 1 damaged chunk"), ("delete", "chunk missing")],
                         ids=["flipped-chunk-bytes", "deleted-chunk"])
def test_a_damaged_chunk_is_recomputed(tmp_path, how, reason):
    cfg, store, key, before = damage(tmp_path, how)
    code, out, err = run_cli("extract", "--config", cfg)
    assert code == 0 and reason in err
    assert np.array_equal(store.read(key).X, before)


def test_reading_a_damaged_chunk_raises_one_line(tmp_path):
    _, store, key, _ = damage(tmp_path, "flip")
    with pytest.raises(DamagedEntryError) as raised:
        store.read(key)
    message = str(raised.value)
    assert key in message and "chunk 1" in message and len(lines(message)) == 1


def test_train_after_damage_repairs_first(tmp_path):
    cfg, *_ = damage(tmp_path, "flip")
    code, out, err = run_cli("train", "--config", cfg)
    assert code == 0, err


def test_an_edited_item_list_is_refused(tmp_path):
    cfg = config(tmp_path, make_data(tmp_path / "data"))
    run_cli("extract", "--config", cfg)
    store, key = entry(tmp_path)
    items = store.path(key) / "items.json"
    items.write_text(items.read_text().replace("red_1", "red_9"))
    code, out, err = run_cli("train", "--config", cfg)
    assert code == 1 and len(lines(err)) == 1 and key in err and "items.json" in err


# -- hostile folders -------------------------------------------------------------------------------------
def test_link_loops_and_dangling_links_go_to_the_ledger(tmp_path):
    data = make_data(tmp_path / "data")
    (data / "train" / "red" / "self").symlink_to("self")
    (data / "train" / "green" / "up").symlink_to("..", target_is_directory=True)
    (data / "train" / "blue" / "gone.png").symlink_to("nowhere.png")
    code, out, err = run_cli("extract", "--config", config(tmp_path, data))
    store, key = entry(tmp_path)
    ledger = (store.path(key) / "errors.csv").read_text()
    assert code == 3 and "self" in ledger and "gone.png" in ledger and "green/up" in ledger


def test_names_that_are_not_utf8(tmp_path):
    data = make_data(tmp_path / "data")
    shutil.copy(data / "train" / "red" / "red_0.png", os.fsencode(data / "train" / "red") + b"/caf\xe9_\xff.png")
    with open(os.fsencode(data / "train" / "red") + b"/bad\xfe.png", "wb") as f:
        f.write(b"not an image")
    code, out, err = run_cli("extract", "--config", config(tmp_path, data))
    store, key = entry(tmp_path)
    ledger = (store.path(key) / "errors.csv").read_text(encoding="utf-8")
    assert code == 3 and "bad\\xfe.png" in ledger
    unlabelled = tmp_path / "new"
    unlabelled.mkdir()
    shutil.copy(data / "test" / "red" / "red_0.png", os.fsencode(unlabelled) + b"/r\xe9d.png")
    assert run_cli("train", "--config", tmp_path / "config.yaml")[0] == 0
    p_code, p_out, p_err = run_cli("predict", tmp_path / "runs" / "softmax", unlabelled, "--out", tmp_path / "p.csv")
    assert p_code == 0 and "r\\xe9d.png" in (tmp_path / "p.csv").read_text(encoding="utf-8")


def test_a_decompression_bomb_is_refused_by_the_library(tmp_path):
    from featurepipe.datasets import ImageError, read_image

    # A TIFF header announcing 30,000 x 30,000 pixels over 1,000 bytes of data.
    entries = [(256, 4, 1, 30000), (257, 4, 1, 30000), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, 30000), (279, 4, 1, 900_000_000)]
    tiff = b"II*\0" + struct.pack("<IH", 8, len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    path = tmp_path / "bomb.tif"
    path.write_bytes(tiff + b"\0" * 1000)
    with pytest.raises(ImageError, match="30000x30000 pixels exceeds the limit"):
        read_image(path)


# -- trained-head folders check themselves ---------------------------------------------------------------
def edit_manifest_pipeline(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["pipeline"]["spec"]["extractor"]["hog"]["orientations"] = 8
    (folder / "manifest.json").write_text(json.dumps(manifest))


def scaler_of_length_one(folder):
    np.savez(folder / "normalization.npz", **{"steps.0.mean_": np.zeros(1, np.float32),
                                              "steps.0.scale_": np.ones(1, np.float32)})


def edit_head(change):
    """An edit of ``head.npz``'s arrays by ``change(arrays)``."""
    def edit(folder):
        with np.load(folder / "head.npz") as head:
            arrays = {k: head[k] for k in head.files}
        change(arrays)
        np.savez(folder / "head.npz", **arrays)
    return edit


HEAD_EDITS = {
    "pipeline-parameters-edited": (edit_manifest_pipeline, "pipeline differs"),
    "scaler-of-length-one": (scaler_of_length_one, "normalization.npz"),
    "nan-weight": (edit_head(lambda a: a["param_0"].__setitem__((0, 0), np.nan)), "head.npz"),
    "classes-reordered": (edit_head(lambda a: a.__setitem__("classes", a["classes"][::-1].copy())), "head.npz"),
    "head-truncated": (lambda f: (f / "head.npz").write_bytes((f / "head.npz").read_bytes()[:100]), "head.npz"),
    "manifest-not-json": (lambda f: (f / "manifest.json").write_text("{not json"), "manifest.json is not JSON"),
    "manifest-missing": (lambda f: (f / "manifest.json").unlink(), "not a trained head"),
}


def trained_head(root: Path) -> Path:
    code, _, err = run_cli("train", "--config", config(root, make_data(root / "data")))
    assert code == 0, err
    return root / "runs" / "softmax"


@pytest.mark.parametrize("edit, named", HEAD_EDITS.values(), ids=HEAD_EDITS.keys())
def test_an_edited_head_folder_is_refused_in_one_line(tmp_path, edit, named):
    folder = trained_head(tmp_path)
    edit(folder)
    code, out, err = run_cli("evaluate", folder)
    assert code == 2 and len(lines(err)) == 1 and named in err, err


# -- sizes and paths -------------------------------------------------------------------------------------
def test_predict_resizes_to_the_training_size(tmp_path):
    folder = trained_head(tmp_path)
    rng = np.random.default_rng(3)
    for i, shape in enumerate([(48, 40), (64, 64), (32, 32)]):
        image = rng.integers(0, 96, shape + (3,), dtype=np.uint8)
        image[..., 0] += 128
        write_rgb(tmp_path / "photos" / f"p{i}.png", image)
    code, out, err = run_cli("predict", folder, tmp_path / "photos", "--out", tmp_path / "p.csv")
    assert code == 0 and "resizing images to 32x32" in out
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 4  # the header and every photo


def test_relative_paths_follow_the_config_file(tmp_path, monkeypatch):
    project = tmp_path / "project"
    make_data(project / "data")
    cfg = config(project, Path("data"))
    cfg.write_text(cfg.read_text().replace(str(project / "cache"), "cache").replace(str(project / "runs"), "runs"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run_cli("train", "--config", cfg)
    assert code == 0, err
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("evaluate", elsewhere / "runs" / "softmax")
    assert code == 0, err


def test_a_malformed_set_is_one_line(tmp_path):
    code, out, err = run_cli("extract", "--config", config(tmp_path, make_data(tmp_path / "data")), "--set", "run.jobs=[1, 2")
    assert code == 2 and len(lines(err)) == 1 and "--set run.jobs=[1, 2" in err


def test_verify_on_an_empty_cache(tmp_path):
    code, out, err = run_cli("cache", "verify", "--cache-dir", tmp_path / "empty")
    assert code == 0 and "no entries" in out


def test_a_rewrite_keeping_size_and_mtime_is_seen(tmp_path):
    data = make_data(tmp_path / "data")
    cfg = config(tmp_path, data)
    run_cli("extract", "--config", cfg)
    path = data / "train" / "red" / "red_0.png"
    stat = path.stat()
    image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    image[0, 0] = 255 - image[0, 0]
    ok, encoded = cv2.imencode(".png", image)
    path.write_bytes(encoded.tobytes()[:stat.st_size].ljust(stat.st_size, b"\0"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    code, out, err = run_cli("extract", "--config", cfg)
    assert path.stat().st_size == stat.st_size and "from the cache" not in out


def test_cache_rm_takes_dependents_and_gc_orphans(tmp_path):
    cfg = config(tmp_path, make_data(tmp_path / "data"),
                 extractor={"bovw": {"n_words": 8, "n_samples": 500, "max_iter": 3, "descriptor": {"patches": {"size": 4}}}})
    assert run_cli("train", "--config", cfg)[0] == 0
    store = FeatureStore(tmp_path / "cache")
    assert {e["namespace"] for e in store.entries()} >= {"features", "pipelines", "heads", "aliases"}
    fit = next(e["key"] for e in store.entries(("pipelines",)))
    code, out, err = run_cli("cache", "rm", fit, "--cache-dir", tmp_path / "cache")
    assert code == 0 and not {e["namespace"] for e in store.entries()} & {"features", "pipelines", "heads", "aliases"}
    (tmp_path / "cache" / "aliases" / ("0" * 32 + ".json")).write_text(json.dumps({"key": "f" * 32, "parents": ["f" * 32]}))
    code, out, _ = run_cli("cache", "gc", "--cache-dir", tmp_path / "cache")
    assert "1 orphan" in out


# -- interrupts and killed processes ---------------------------------------------------------------------
def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


SLOW_HOG = {"hog": {"pixels_per_cell": [4, 4], "transform_sqrt": True}}


def slow_config(root: Path, train_per_class=60, extractor=SLOW_HOG) -> Path:
    """A config whose extract takes several seconds whatever the machine: HOG's floating-point route
    (transform_sqrt), never the compiled one, on 256x256 images (186 by default), 2 per chunk, 2 workers."""
    data = make_data(root / "data", size=256, per_class=(train_per_class, 2))
    return config(root, data, extractor=extractor, heads=False,
                  run={"cache_dir": str(root / "cache"), "progress": False, "chunk_size": 2, "jobs": 2})


def extract_process(cfg: Path, cache=None, **pipes) -> subprocess.Popen:
    """``featurepipe extract`` of ``cfg`` (into ``cache`` if given) in a new process group."""
    argv = [sys.executable, "-m", "featurepipe.cli", "extract", "--config", str(cfg)]
    return subprocess.Popen(argv + (["--cache-dir", str(cache)] if cache else []), start_new_session=True, **pipes)


def started_extract(root: Path):
    """The slow extract (``slow_config``) in a subprocess, once its worker processes exist (and half a
    second more: while they start, the hardest moment to stop a run), with their pids. A signal sent sooner
    could reach the child before it runs featurepipe at all (between fork and exec it is lost) and prove
    nothing."""
    process = extract_process(slow_config(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(children(process.pid)) < 2:  # the workers (and loky's resource tracker)
        time.sleep(0.1)
    time.sleep(0.5)
    return process, children(process.pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopping_the_main_process_stops_its_workers(tmp_path, sig):
    process, workers = started_extract(tmp_path)
    os.kill(process.pid, sig)
    process.communicate(timeout=30)
    deadline = time.time() + 30  # a bound on the wait, not a measurement: the workers must end at all
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    left = [w for w in workers if alive(w)]
    for w in left:
        with contextlib.suppress(OSError):
            os.kill(w, signal.SIGKILL)
    assert len(workers) >= 2 and not left, f"{len(left)} of {len(workers)} child processes still alive"


def test_an_early_interrupt_is_one_line(tmp_path):
    process, _ = started_extract(tmp_path)
    os.kill(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode != 0 and len(lines(err)) == 1 and "interrupted" in err, err


def committed_chunks(cache: Path) -> int:
    return sum(1 for _ in cache.glob("features/*/chunks/*.json"))


@pytest.mark.slow
def test_resume_after_repeated_sigkills_is_bit_identical(tmp_path):
    """SIGKILL to the whole process group (the main process and its workers) at random moments while chunks
    are written, three times; the next run resumes from the committed chunks, and its features are those of
    an uninterrupted run, bit for bit."""
    kills, moments = 3, random.Random(0)
    cfg = slow_config(tmp_path, train_per_class=30, extractor={"concat": {"extractors": [SLOW_HOG, {"hsv_hist": {}}]}})
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    start = time.perf_counter()
    assert extract_process(cfg, clean).wait() == 0
    full = time.perf_counter() - start
    for _ in range(kills):
        process, before = extract_process(cfg, killed), committed_chunks(killed)
        while committed_chunks(killed) == before and process.poll() is None:  # this run has committed a chunk
            time.sleep(0.01)
        time.sleep(moments.uniform(0, full / (kills + 2)))
        assert process.poll() is None, "the run finished before the kill"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert extract_process(cfg, killed).wait() == 0
    a, b = FeatureStore(clean), FeatureStore(killed)
    [key] = [e["key"] for e in a.entries(("features",))]
    assert [e["key"] for e in b.entries(("features",))] == [key]
    fa, fb = a.read(key), b.read(key)
    assert fa.X.tobytes() == fb.X.tobytes() and np.array_equal(fa.ids, fb.ids) and np.array_equal(fa.labels, fb.labels)
    assert b.verify(key) == []
