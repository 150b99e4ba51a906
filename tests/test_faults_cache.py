"""The cache's fault corpus: one cache shared by several users, damaged stored entries, files that change
during a run, and image headers that declare more pixels than allowed. One case each (``pytest -k NAME``);
each asserts the documented exit code, one line and no traceback, and that the cache stays consistent."""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import make_image_folder, run_cli, write_rgb

from featurepipe.store import FeatureStore

CASES = {}


def case(function):
    CASES[function.__name__] = function
    return function


# -- helpers ---------------------------------------------------------------------------------------------
def one_line(text: str) -> str:
    """The one line of ``text``, asserting there is exactly one and no traceback."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def setup(root: Path, extractor=None, **dataset) -> Path:
    """A small data set and a config training one linear head on it (holdout selection: fast)."""
    data = make_image_folder(root / "data", np.random.default_rng(0), per_class=(6, 2), size=16)
    cfg = {"dataset": {"path": str(data), **dataset},
           "pipeline": {"extractor": extractor or {"hog": {"pixels_per_cell": [4, 4], "cells_per_block": [2, 2]}}},
           "run": {"cache_dir": str(root / "cache"), "progress": False, "chunk_size": 6},
           "train": {"selection": "holdout", "validation_fraction": 0.5},
           "heads": [{"name": "softmax", "model": "linear", "params": {"max_iter": 20, "random_state": 0}}],
           "output": str(root / "runs")}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def keys(root: Path, namespace: str) -> list[str]:
    return [e["key"] for e in FeatureStore(root / "cache").entries((namespace,))]


def verified(root: Path) -> None:
    """``cache verify`` passes on every entry."""
    code, out, err = run_cli("cache", "verify", "--cache-dir", root / "cache")
    assert code == 0 and not err and all(line.endswith(": ok") for line in out.strip().splitlines()), out + err


def flip_byte(path: Path, at: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


# -- one cache, several users ----------------------------------------------------------------------------
@case
def rm_while_extract_writes_the_entry_is_refused(root, monkeypatch):
    """``cache rm`` of an entry an extract is writing (paused after its first chunk) says it is in use and
    removes nothing; ``gc`` keeps it, even as an orphan; the extract then finishes a consistent entry."""
    from featurepipe.config import load_config
    from featurepipe.extract import extract_features

    cfg = load_config(setup(root))
    paused, resume = threading.Event(), threading.Event()
    write_chunk = FeatureStore.write_chunk

    def write_then_pause(self, key, index, *args):
        write_chunk(self, key, index, *args)
        if index == 0:
            paused.set()
            resume.wait(60)

    monkeypatch.setattr(FeatureStore, "write_chunk", write_then_pause)
    results = []
    writer = threading.Thread(target=lambda: results.append(extract_features(cfg)))
    writer.start()
    assert paused.wait(60)
    key = keys(root, "features")[0]
    code, out, err = run_cli("cache", "rm", key, "--cache-dir", root / "cache")
    FeatureStore(root / "cache").set_attrs(key, parents=["f" * 32])  # now an orphan too, for gc
    gc_code, gc_out, _ = run_cli("cache", "gc", "--cache-dir", root / "cache")
    resume.set()
    writer.join(60)
    assert code == 1 and not out and "is in use" in one_line(err)
    assert gc_code == 0 and f"features {key}: kept: " in gc_out and "0 orphan(s) removed" in gc_out
    assert results and results[0].n_ok == 24 and (root / "cache" / "features" / key).is_dir()
    verified(root)
    assert run_cli("cache", "rm", key, "--cache-dir", root / "cache")[0] == 0  # once the writer is done


@case
def a_stub_left_by_a_removal_is_rebuilt(root, monkeypatch):
    """An entry folder reduced to bare zarr metadata (what a removal under a writer used to leave) is
    reported by verify and rebuilt by the next extract with one line, never a permanent error."""
    import zarr

    cfg = setup(root)
    assert run_cli("extract", "--config", cfg)[0] == 0
    key = keys(root, "features")[0]
    path = root / "cache" / "features" / key
    shutil.rmtree(path)
    zarr.open_group(store=str(path), mode="a", zarr_format=3)
    (path / "complete.json").write_text("{}")
    code, out, _ = run_cli("cache", "verify", "--cache-dir", root / "cache")
    assert code == 1 and f"{key}: a stub" in out
    code, out, err = run_cli("extract", "--config", cfg)
    assert code == 0 and "is a stub" in one_line(err) and "rebuilding it" in err and "24 ok" in out
    verified(root)


@case
def edited_precision_of_a_feature_entry(root, monkeypatch):
    """A float16 entry whose metadata is edited to record float32 (still valid JSON) is never read as either:
    verify names it in one line, and the next run computes it anew saying so in one line."""
    cfg, float16 = setup(root), ("--set", "pipeline.storage=float16")
    assert run_cli("extract", "--config", cfg, *float16)[0] == 0
    key = keys(root, "features")[0]
    meta = root / "cache" / "features" / key / "zarr.json"
    group = json.loads(meta.read_text())
    group["attributes"]["storage"] = "float32"
    meta.write_text(json.dumps(group))
    code, out, _ = run_cli("cache", "verify", key, "--cache-dir", root / "cache")
    assert code == 1 and "features stored as 'float16' where the entry records float32" in one_line(out)
    code, out, err = run_cli("train", "--config", cfg, *float16)
    assert code == 0 and f"entry {key}: features stored as" in one_line(err) and "computing it anew" in err
    assert keys(root, "features") == [key] and FeatureStore(root / "cache").storage(key) == "float16"
    verified(root)


# -- files that change during a run ----------------------------------------------------------------------
@case
def hash_swap_and_restore_is_recomputed(root, monkeypatch):
    """With ``--hash``, an image replaced after listing and restored after the run is never served with the
    temporary content's features: the row fails in that run, and the next run recomputes it."""
    from featurepipe.config import load_config
    from featurepipe.datasets import open_dataset
    from featurepipe.extract import extract_features

    cfg = setup(root, hash=True)
    dataset = open_dataset(root / "data", content_hash=True)
    victim = dataset.path(0)
    original = victim.read_bytes()
    write_rgb(victim, np.zeros((16, 16, 3), np.uint8))  # swapped after listing, before decoding
    swapped = extract_features(load_config(cfg), dataset)
    assert swapped.n_failed == 1 and "changed since the data set was listed" in swapped.ledger.read_text()
    victim.write_bytes(original)  # restored
    code, out, err = run_cli("extract", "--config", cfg)
    assert code == 0 and "recomputing 1 damaged chunk" in one_line(err) and "changed while the run read" in err
    assert "24 ok, 0 skipped" in out and f"entry {swapped.key}" in out
    clean = setup(root / "clean", hash=True)
    assert run_cli("extract", "--config", clean)[0] == 0
    store, fresh = FeatureStore(root / "cache"), FeatureStore(root / "clean" / "cache")
    assert np.array_equal(store.read(swapped.key).X, fresh.read(swapped.key).X)
    verified(root)


# -- damaged stored heads, fitted pipelines and grid records ---------------------------------------------
def _damaged_then_trained(root: Path, cfg: Path, namespace: str, damage) -> None:
    """Train, damage the one entry of ``namespace``, then: verify names it (exit 1, one line), train fits it
    again saying so in one line (exit 0), and verify passes."""
    assert run_cli("train", "--config", cfg)[0] == 0
    key = keys(root, namespace)[0]
    damage(root / "cache" / namespace / key)
    code, out, _ = run_cli("cache", "verify", key, "--cache-dir", root / "cache")
    assert code == 1 and one_line(out).startswith(f"{namespace} {key}: ") and "SHA-256" in out
    code, out, err = run_cli("train", "--config", cfg, "--force")
    assert code == 0 and key in one_line(err) and err.strip().endswith("fitting it again")
    verified(root)


@case
def flipped_byte_in_a_cached_head(root, monkeypatch):
    _damaged_then_trained(root, setup(root), "heads", lambda folder: flip_byte(folder / "head.npz"))


@case
def edited_grid_record_of_a_cached_head(root, monkeypatch):
    def edit(folder):
        entry = json.loads((folder / "entry.json").read_text())
        entry["record"]["grid"][0]["val_accuracy"] = 1.0  # still valid JSON: only the checksum tells
        (folder / "entry.json").write_text(json.dumps(entry))

    _damaged_then_trained(root, setup(root), "heads", edit)


@case
def flipped_byte_in_a_fitted_pipeline(root, monkeypatch):
    bovw = {"bovw": {"n_words": 8, "n_samples": 300, "max_iter": 3, "descriptor": {"patches": {"size": 4}}}}
    _damaged_then_trained(root, setup(root, extractor=bovw), "pipelines",
                          lambda folder: flip_byte(folder / "state.npz"))


# -- image headers ---------------------------------------------------------------------------------------
@case
def oversized_hdr_is_refused_before_decoding(root, monkeypatch):
    """A Radiance ``.hdr`` whose tiny header declares 200000x200000 pixels is refused from its header: the
    decoder never sees it (and nothing that size is allocated)."""
    import cv2

    cfg = setup(root)
    bomb = root / "data" / "train" / "red" / "bomb.hdr"
    bomb.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 200000 +X 200000\n" + b"\0" * 64)
    seen = []
    imdecode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda data, flags: seen.append(bytes(data[:2])) or imdecode(data, flags))
    code, out, err = run_cli("extract", "--config", cfg)
    ledger = (root / "cache" / "features" / keys(root, "features")[0] / "errors.csv").read_text()
    assert code == 3 and not err and "1 skipped" in out.splitlines()[0] and b"#?" not in seen and len(seen) >= 24  # the config check decodes a sample too
    assert "bomb.hdr,200000x200000 pixels exceeds the limit of 89478485" in ledger
    verified(root)


@pytest.mark.parametrize("fault", sorted(CASES))  # after the cases: ids are their names (pytest -k NAME)
def test_fault(fault, tmp_path, monkeypatch):
    CASES[fault](tmp_path, monkeypatch)
