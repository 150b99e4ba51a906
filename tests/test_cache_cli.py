"""``featurepipe cache`` end to end: what ``ls`` shows, key prefixes, options anywhere and ``--config``, the export
of a feature matrix (npz, parquet), and ``gc`` evicting least recently used entries by size and age, never
one in use."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from helpers import make_image_folder, run_cli

from featurepipe.datasets import open_dataset
from featurepipe.store import FAILED, OK, FeatureStore, locks

DAY = 86400


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def make_entry(store: FeatureStore, key: str, n: int = 6, d: int = 5, failed=(), parents=(), labelled=True,
               used: float | None = None) -> np.ndarray:
    """A complete feature entry ``key`` of ``n`` rows (``failed`` ones marked failed), made without images;
    its features. ``used``: when it was last used (seconds ago)."""
    ids = [f"c{i % 2}/img{i}.png" for i in range(n)]
    items = {"ids": ids, "labels": [f"c{i % 2}" for i in range(n)] if labelled else None,
             "splits": ["train" if i < n - 2 else "test" for i in range(n)] if labelled else None}
    meta = {"classes": ["c0", "c1"], "root": "/data/set", "pipeline_name": "hog", "parents": list(parents),
            "listing_problems": [], "pipeline": {"name": "pipeline", "preprocess": [],
                                                 "extractor": {"name": "hog", "params": {"orientations": 12}}}}
    X = np.random.default_rng(int(key[:6], 16)).random((n, d), dtype=np.float32)
    status = np.full(n, OK, np.int8)
    status[list(failed)] = FAILED
    X[list(failed)] = 0
    with store.writing(key):
        store.open_entry(key, n, n, meta, items)
        store.write_chunk(key, 0, X, status, [[ids[i], "unreadable"] for i in failed])
        store.finish(key, {"n": n, "ok": n - len(failed), "failed": len(failed)})
    if used is not None:
        set_used(store.path(key), used)
    return X


def set_used(path, seconds_ago: float) -> None:
    when = time.time() - seconds_ago
    os.utime(path, (when, when))


def key(prefix: str) -> str:
    return prefix + "0" * (32 - len(prefix))


def listed(root) -> dict[str, str]:
    """``key -> line`` of every entry ``cache ls`` shows."""
    code, out, err = run_cli("cache", "ls", "--cache-dir", root)
    assert code == 0 and not err, err
    return {line.split()[1]: line for line in out.splitlines()[2:-1]}


# -- ls ------------------------------------------------------------------------------------------------------
def write_config(path, data, cache, cells):
    cfg = {"dataset": {"path": str(data)}, "run": {"cache_dir": str(cache), "progress": False},
           "pipeline": {"preprocess": [{"resize": {"size": [16, 16]}}],
                        "extractor": {"concat": {"extractors": [{"hog": {"pixels_per_cell": [4, 4],
                                                                         "cells_per_block": cells}},
                                                                {"hsv_hist": {}}]}}}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_ls_shows_the_root_each_entry_and_the_total(tmp_path):
    """Two concat entries that differ in one nested parameter are told apart by their parameters; the root
    comes first and the total (count, size) last."""
    data = make_image_folder(tmp_path / "data", np.random.default_rng(0), per_class=(4, 2), size=16)
    cache = tmp_path / "cache"
    for cells in ([1, 1], [2, 2]):
        assert run_cli("extract", "--config", write_config(tmp_path / "c.yaml", data, cache, cells))[0] == 0
    code, out, err = run_cli("cache", "ls", "--cache-dir", cache)
    lines = out.strip().splitlines()
    assert code == 0 and not err and lines[0] == f"cache {cache}"
    assert lines[1].split() == ["NAMESPACE", "KEY", "AGE", "USED", "SIZE", "ITEMS", "STATE", "WHAT"]
    features = [line for line in lines if line.startswith("features")]
    assert len(features) == 2
    whats = {line.split("complete", 1)[1].strip() for line in features}
    listing = open_dataset(data).identity()[:8]
    assert whats == {f"concat(extractors=[hog(cells_per_block=[{c}, {c}], pixels_per_cell=[4, 4]), hsv_hist]) "
                     f"<- resize(size=[16, 16]) on {data} (listing {listing})" for c in (1, 2)}
    assert all(" 18 x " in line and "KiB" in line and re.fullmatch(r"\d+s", line.split()[3]) for line in features)
    entries = FeatureStore(cache).entries()
    total = sum(e["bytes"] for e in entries) / 1024
    assert lines[-1] == f"{len(entries)} entries, {total:.1f} KiB" and len(lines) == len(entries) + 3


def test_ls_tells_apart_two_listings_of_one_folder(tmp_path):
    """The same pipeline on a folder before and after a file was removed: two entries, told apart by the
    listing's identity."""
    data = make_image_folder(tmp_path / "data", np.random.default_rng(0), per_class=(4, 2), size=16)
    cache, config = tmp_path / "cache", write_config(tmp_path / "c.yaml", data, tmp_path / "cache", [1, 1])
    assert run_cli("extract", "--config", config)[0] == 0
    next((data / "train").glob("*/*")).unlink()
    assert run_cli("extract", "--config", config)[0] == 0
    whats = [line.split("complete", 1)[1] for line in run_cli("cache", "ls", "--cache-dir", cache)[1].splitlines()
             if line.startswith("features")]
    assert len(whats) == len(set(whats)) == 2 and f"(listing {open_dataset(data).identity()[:8]})" in "".join(whats)


def test_ls_shows_failed_rows_partial_entries_and_ages(tmp_path):
    store = FeatureStore(tmp_path)
    make_entry(store, key("aa"), failed=[1], used=3 * DAY)
    with store.writing(key("bb")):
        store.open_entry(key("bb"), 10, 4, {"root": "/x", "pipeline": {"extractor": {"name": "raw", "params": {}}}},
                         {"ids": [str(i) for i in range(10)], "labels": None, "splits": None})
    rows = listed(tmp_path)
    age, used = rows[key("aa")].split()[2:4]
    assert re.fullmatch(r"\d+s", age) and used == "3d"
    assert "complete, 1 failed" in rows[key("aa")] and "hog(orientations=12) on /data/set" in rows[key("aa")]
    assert "partial (0/3 chunks)" in rows[key("bb")] and "raw on /x" in rows[key("bb")]


# -- key prefixes --------------------------------------------------------------------------------------------
@pytest.fixture
def two_entries(tmp_path):
    store = FeatureStore(tmp_path / "cache")
    make_entry(store, key("abc0"))
    make_entry(store, key("abc1"))
    return store


def test_a_unique_prefix_names_its_entry_everywhere(two_entries, tmp_path):
    root = two_entries.root
    code, out, _ = run_cli("cache", "ls", "abc0", "--cache-dir", root)
    assert code == 0 and key("abc0") in out and key("abc1") not in out and "1 entry," in out
    code, out, _ = run_cli("cache", "verify", "abc1", "--cache-dir", root)
    assert code == 0 and one_line(out) == f"features {key('abc1')}: ok"
    assert run_cli("cache", "export", "abc0", "--to", tmp_path / "x.npz", "--cache-dir", root)[0] == 0
    code, out, _ = run_cli("cache", "rm", "abc1", "--cache-dir", root)
    assert code == 0 and one_line(out) == f"features {key('abc1')}: removed"
    assert [e["key"] for e in two_entries.entries()] == [key("abc0")]


def test_ls_with_a_shared_prefix_lists_every_match(two_entries):
    code, out, _ = run_cli("cache", "ls", "abc", "--cache-dir", two_entries.root)
    assert code == 0 and key("abc0") in out and key("abc1") in out and "2 entries" in out


@pytest.mark.parametrize("action", [["verify"], ["rm"], ["export", "--to", "x.npz"]])
def test_an_ambiguous_prefix_is_a_usage_error(two_entries, action):
    code, out, err = run_cli("cache", *action, "abc", "--cache-dir", two_entries.root)
    assert code == 2 and not out
    assert one_line(err) == (f"featurepipe: abc: 2 entries start with it (features {key('abc0')}, "
                             f"features {key('abc1')}); give more of the key")
    assert len(two_entries.entries()) == 2


@pytest.mark.parametrize("action", [["ls"], ["verify"], ["rm"], ["export", "--to", "x.npz"]])
def test_an_unknown_prefix_is_one_line_and_exit_1(two_entries, action):
    code, out, err = run_cli("cache", *action, "abd", "--cache-dir", two_entries.root)
    assert code == 1 and not out
    assert one_line(err) == f"featurepipe: error: abd: no such entry in {two_entries.root}"


def test_rm_resolves_every_prefix_before_removing_any(two_entries):
    code, _, err = run_cli("cache", "rm", "abc0", "abd", "--cache-dir", two_entries.root)
    assert code == 1 and "abd: no such entry" in one_line(err) and len(two_entries.entries()) == 2


# -- options anywhere, --config ------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [
    ["verify", "--cache-dir", "ROOT", "abc0"],
    ["verify", "abc0", "--cache-dir", "ROOT"],
    ["--cache-dir", "ROOT", "verify", "abc0"],
    ["verify", "abc0", "--cache-dir", "ROOT", "abc1"],
])
def test_options_go_anywhere(two_entries, order):
    code, out, err = run_cli("cache", *[str(two_entries.root) if a == "ROOT" else a for a in order])
    assert code == 0 and not err, err
    assert out.splitlines()[0] == f"features {key('abc0')}: ok"


def test_config_gives_the_cache_folder(two_entries, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"dataset": {"path": "anywhere"}, "run": {"cache_dir": str(two_entries.root)}}))
    code, out, _ = run_cli("cache", "ls", "--config", config)
    assert code == 0 and out.splitlines()[0] == f"cache {two_entries.root}" and key("abc1") in out
    code, out, _ = run_cli("cache", "ls", "--config", config, "--cache-dir", tmp_path / "other")
    assert code == 0 and out.splitlines()[0] == f"cache {tmp_path / 'other'}" and out.strip().endswith("0 entries, 0 B")
    code, _, err = run_cli("cache", "ls", "--config", tmp_path / "missing.yaml")
    assert code == 2 and "missing.yaml: cannot read" in one_line(err)


# -- export --------------------------------------------------------------------------------------------------
def test_export_npz_round_trip_keeps_only_rows_extracted_fine(tmp_path):
    store = FeatureStore(tmp_path / "cache")
    X = make_entry(store, key("ee"), n=7, failed=[2, 5])
    code, out, err = run_cli("cache", "export", "ee", "--to", tmp_path / "out" / "f.npz", "--cache-dir", store.root)
    assert code == 0 and not err and one_line(out) == f"wrote {tmp_path / 'out' / 'f.npz'}: 5 rows x 5 features"
    kept = [0, 1, 3, 4, 6]
    with np.load(tmp_path / "out" / "f.npz", allow_pickle=False) as saved:
        assert sorted(saved.files) == ["features", "labels", "paths", "splits"]
        assert saved["features"].dtype == np.float32 and np.array_equal(saved["features"], X[kept])
        assert list(saved["paths"]) == [f"/data/set/c{i % 2}/img{i}.png" for i in kept]
        assert list(saved["labels"]) == [f"c{i % 2}" for i in kept]
        assert list(saved["splits"]) == ["train", "train", "train", "train", "test"]
    code, out, _ = run_cli("cache", "export", "ee", "--to", tmp_path / "out" / "f.npz", "--cache-dir", store.root)
    assert code == 0 and out.startswith("replaced ")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["f.npz"]  # no temporary file left


def test_export_of_an_unlabelled_entry_has_no_labels(tmp_path):
    store = FeatureStore(tmp_path / "cache")
    make_entry(store, key("ee"), labelled=False)
    assert run_cli("cache", "export", "ee", "--to", tmp_path / "f.npz", "--cache-dir", store.root)[0] == 0
    with np.load(tmp_path / "f.npz") as saved:
        assert sorted(saved.files) == ["features", "paths"]


def test_export_parquet_round_trip(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    store = FeatureStore(tmp_path / "cache")
    X = make_entry(store, key("ee"), failed=[0])
    assert run_cli("cache", "export", "ee", "--to", tmp_path / "f.parquet", "--cache-dir", store.root)[0] == 0
    table = pq.read_table(tmp_path / "f.parquet")
    assert table.column_names == ["features", "paths", "labels", "splits"]
    assert np.array_equal(np.array(table["features"].to_pylist(), np.float32), X[1:])
    assert table["labels"].to_pylist() == [f"c{i % 2}" for i in range(1, 6)]


def test_export_parquet_without_pyarrow_says_how_to_install_it(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path / "cache")
    make_entry(store, key("ee"))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, out, err = run_cli("cache", "export", "ee", "--to", tmp_path / "f.parquet", "--cache-dir", store.root)
    assert code == 2 and not out and not (tmp_path / "f.parquet").exists()
    assert "needs pyarrow" in one_line(err) and "pip install 'featurepipe[parquet]'" in err


@pytest.mark.parametrize("target, message", [("f.csv", "--to "), ("f", "expected a file name ending in .npz")])
def test_export_refuses_an_unknown_format(tmp_path, target, message):
    store = FeatureStore(tmp_path / "cache")
    make_entry(store, key("ee"))
    code, _, err = run_cli("cache", "export", "ee", "--to", tmp_path / target, "--cache-dir", store.root)
    assert code == 2 and message in one_line(err) and not (tmp_path / target).exists()


def test_export_refuses_an_entry_that_is_not_features(tmp_path):
    store = FeatureStore(tmp_path / "cache")
    store.alias(key("dd"), key("ee"))
    code, _, err = run_cli("cache", "export", "dd", "--to", tmp_path / "f.npz", "--cache-dir", store.root)
    assert code == 1 and "not a feature entry" in one_line(err)


# -- gc ------------------------------------------------------------------------------------------------------
@pytest.fixture
def aged(tmp_path):
    """Three feature entries of the same size, last used 3 days, 1 day and 1 minute ago."""
    store = FeatureStore(tmp_path / "cache")
    for prefix, used in (("aa", 3 * DAY), ("bb", DAY), ("cc", 60)):
        make_entry(store, key(prefix), used=used)
    return store


def kept_keys(store):
    return sorted(e["key"][:2] for e in store.entries())


def test_gc_by_size_evicts_least_recently_used_first(aged):
    sizes = {e["key"][:2]: e["bytes"] for e in aged.entries()}
    code, out, _ = run_cli("cache", "gc", "--max-size", sizes["bb"] + sizes["cc"], "--cache-dir", aged.root)
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith(f"features {key('aa')}: evicted (least recently used; the cache held ")
    assert lines[-1].startswith("1 evicted, 0 orphan(s) removed (") and "2 entries left" in lines[-1]
    assert kept_keys(aged) == ["bb", "cc"]
    code, out, _ = run_cli("cache", "gc", "--max-size", "1K", "--cache-dir", aged.root)
    assert [line.split()[1][:2] for line in out.splitlines()[:-1]] == ["bb", "cc"] and kept_keys(aged) == []


def test_gc_by_age_evicts_what_was_unused_longer(aged):
    code, out, _ = run_cli("cache", "gc", "--older-than", "2d", "--cache-dir", aged.root)
    assert code == 0 and out.splitlines()[0] == f"features {key('aa')}: evicted (unused for 3d)"
    assert kept_keys(aged) == ["bb", "cc"]


def test_serving_an_entry_counts_as_its_use(aged):
    aged.read(key("aa"))  # now the most recently used
    run_cli("cache", "gc", "--older-than", "12h", "--cache-dir", aged.root)
    assert kept_keys(aged) == ["aa", "cc"]


def test_gc_keeps_a_parent_used_through_what_was_made_from_it(tmp_path):
    """A fitted pipeline unused for long, whose features were used a minute ago, stays, and so does an old
    alias to them; once everything made from the fit is old too, the features go first (with their alias),
    then the fit."""
    store = FeatureStore(tmp_path / "cache")
    fit, features, alias = key("ff"), key("ee"), key("dd")
    store.save_fitted(fit, {"centres": np.zeros((2, 2))}, {}, {"fingerprint": "x", "timings": {}, "what": "fit"})
    set_used(store.entry_path("pipelines", fit), 10 * DAY)
    make_entry(store, features, parents=[fit], used=60)
    store.alias(alias, features)
    set_used(store.root / "aliases" / f"{alias}.json", 5 * DAY)  # an alias goes with its entry, never alone
    run_cli("cache", "gc", "--older-than", "1d", "--cache-dir", store.root)
    assert kept_keys(store) == ["dd", "ee", "ff"]
    set_used(store.path(features), 5 * DAY)
    code, out, _ = run_cli("cache", "gc", "--older-than", "1d", "--cache-dir", store.root)
    assert [line.split(":")[0] for line in out.splitlines()[:-1]] == [f"features {features}", f"aliases {alias}",
                                                                     f"pipelines {fit}"]
    assert kept_keys(store) == []


def test_gc_never_evicts_an_entry_in_use(aged):
    with locks.shared(aged.root, "features", key("aa")):  # a writer holds it
        code, out, _ = run_cli("cache", "gc", "--older-than", "0s", "--cache-dir", aged.root)
    lines = out.strip().splitlines()
    assert code == 0 and lines[0] == (f"features {key('aa')}: kept: features entry {key('aa')} is in use "
                                      f"(a run is writing or reading it); try again when it ends")
    assert lines[-1].startswith("2 evicted, 0 orphan(s) removed") and kept_keys(aged) == ["aa"]


def test_gc_and_rm_leave_an_entry_another_process_reads(aged):
    """A process the store served an entry to holds it until it ends: neither gc nor rm removes it meanwhile;
    afterwards both may."""
    reader = subprocess.Popen([sys.executable, "-c", READER, str(aged.root), key("aa")], stdout=subprocess.PIPE,
                              stdin=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "6 rows"
        code, out, _ = run_cli("cache", "gc", "--max-size", "0", "--cache-dir", aged.root)
        assert code == 0 and f"features {key('aa')}: kept: " in out and kept_keys(aged) == ["aa"]
        code, _, err = run_cli("cache", "rm", "aa", "--cache-dir", aged.root)
        assert code == 1 and "is in use (a run is writing or reading it)" in one_line(err)
    finally:
        reader.communicate("", timeout=60)
    assert run_cli("cache", "rm", "aa", "--cache-dir", aged.root)[0] == 0 and kept_keys(aged) == []


READER = """
import sys
from featurepipe.store import FeatureStore
print(len(FeatureStore(sys.argv[1]).read(sys.argv[2]).X), "rows", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("option, value", [("--max-size", "10X"), ("--max-size", "-1G"), ("--older-than", "30"),
                                           ("--older-than", "1y")])
def test_gc_refuses_a_malformed_bound_naming_the_option(aged, option, value):
    code, out, err = run_cli("cache", "gc", f"{option}={value}", "--cache-dir", aged.root)
    assert code == 2 and not out and one_line(err).startswith(f"featurepipe: {option}: expected ")
    assert repr(value) in err and len(aged.entries()) == 3


def test_gc_without_bounds_only_removes_orphans(aged):
    code, out, _ = run_cli("cache", "gc", "--cache-dir", aged.root)
    assert code == 0 and one_line(out).startswith("0 evicted, 0 orphan(s) removed (0 B)") and len(aged.entries()) == 3
