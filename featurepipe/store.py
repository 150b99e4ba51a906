"""The feature cache: one zarr v3 group per (dataset identity, pipeline fingerprint).

Layout of an entry ``<root>/features/<key>/``:

- ``features`` (n, d) float32 and ``status`` (n,) int8 arrays, chunked along samples with the same rows
  per chunk; status 0 = not computed, 1 = ok, 2 = failed (see the ledger). Group attributes hold the
  item ids, labels, splits and the pipeline's description.
- ``chunks/<index>.json``: the chunk's feature checksum and its failed items.

A chunk is committed in three atomic writes -- features, then its json, then its status rows -- so a
chunk counts as done exactly when its status rows are set. A killed run leaves at most features
without status, which the next run recomputes and overwrites with the same values.
``complete.json`` marks an entry whose every chunk is done; ``aliases/`` maps a run's recipe (config
as written + dataset + code version) to its key, so a warm run finds its entry without building the
pipeline.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fingerprint import digest

OK, FAILED = 1, 2
_KEY = re.compile(r"[0-9a-f]{32}")


def _tmp_name(path: Path) -> Path:
    """A temporary sibling of ``path`` no other process or host will pick."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to ``path`` via a temporary file and rename, so readers see all of it or none."""
    tmp = _tmp_name(path)
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path):
    return json.loads(path.read_text())


@dataclass
class ExtractResult:
    """The outcome of filling an entry: its key, item counts, the ledger, and what this run computed."""

    key: str
    n_items: int
    n_ok: int
    n_failed: int
    ledger: Path
    seconds: float
    computed: int  # items computed in this run (0 when everything came from the cache)


@dataclass
class FeatureSet:
    """Features of the successfully processed items, with ids, labels and splits aligned row by row."""

    X: np.ndarray
    ids: np.ndarray
    labels: np.ndarray | None
    splits: np.ndarray | None
    classes: list[str]

    def subset(self, split: str) -> "FeatureSet":
        if self.splits is None:
            raise ValueError("these features have no train/test splits")
        mask = self.splits == split
        pick = lambda a: None if a is None else a[mask]  # noqa: E731
        return FeatureSet(self.X[mask], self.ids[mask], pick(self.labels), self.splits[mask], self.classes)


class FeatureStore:
    """A folder of feature entries; see the module docstring for the on-disk layout."""

    def __init__(self, root):
        self.root = Path(root).expanduser()

    @staticmethod
    def key(dataset_identity: str, pipeline_fingerprint: str, decoding: dict) -> str:
        """An entry's key: what was read (the data set), how (decoding settings) and what computed it."""
        return digest({"dataset": dataset_identity, "pipeline": pipeline_fingerprint, "decoding": decoding})[:32]

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(str(key)):
            raise KeyError(f"{key!r} is not an entry key (32 hexadecimal digits, as `featurepipe cache ls` shows)")
        return self.root / "features" / key

    def exists(self, key: str) -> bool:
        return (self.path(key) / "zarr.json").exists()

    def _group(self, key: str, mode: str = "r"):
        import zarr

        return zarr.open_group(store=str(self.path(key)), mode=mode, zarr_format=3)

    # -- writing -------------------------------------------------------------------------------------
    def open_entry(self, key: str, n: int, chunk_rows: int, meta: dict, items: dict) -> tuple[int, list[int]]:
        """Create the entry if new; return its rows per chunk and the indices of the chunks still to compute.

        A new entry is built in a temporary folder and renamed into place, so an entry either exists
        whole (attributes, status array, item list) or not at all. ``items`` holds ids, labels, splits.
        """
        path = self.path(key)
        if not self.exists(key):
            import zarr

            tmp = _tmp_name(path)
            group = zarr.open_group(store=str(tmp), mode="w-", zarr_format=3)
            (tmp / "chunks").mkdir()
            group.attrs.update({**meta, "n": n, "chunk_rows": chunk_rows, "created": time.time()})
            group.create_array("status", shape=(n,), chunks=(chunk_rows,), dtype="int8", fill_value=0)
            (tmp / "items.json").write_text(json.dumps(items))
            try:
                os.rename(tmp, path)
            except OSError:  # another process created it first: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        group = self._group(key)
        chunk_rows = group.attrs["chunk_rows"]
        status = group["status"][:]
        n_chunks = -(-n // chunk_rows)
        return chunk_rows, [c for c in range(n_chunks) if not status[c * chunk_rows:(c + 1) * chunk_rows].all()]

    def attrs(self, key: str) -> dict:
        return dict(self._group(key).attrs)

    def set_attrs(self, key: str, **values) -> None:
        self._group(key, "a").attrs.update(values)

    def items(self, key: str) -> dict:
        """ids, labels and splits of every item of an entry, in order."""
        return _read_json(self.path(key) / "items.json")

    def write_chunk(self, key: str, index: int, features, status: np.ndarray, errors: list) -> None:
        """Commit one chunk: features, then its json (checksum, failures), then its status rows.

        ``features`` is None when every item of the chunk failed (its rows stay zero)."""
        group = self._group(key, "a")
        rows = group.attrs["chunk_rows"]
        start = index * rows
        if features is None:
            features = np.zeros((len(status), group["features"].shape[1] if "features" in group else 0), np.float32)
        elif "features" not in group:
            from zarr.errors import ContainsArrayError

            try:
                group.create_array("features", shape=(group.attrs["n"], features.shape[1]),
                                   chunks=(rows, features.shape[1]), dtype="float32", fill_value=0.0)
            except ContainsArrayError:  # created meanwhile by another writer of the same entry
                pass
        if features.shape[1]:
            group["features"][start:start + len(features)] = features
        write_json_atomic(self.path(key) / "chunks" / f"{index:06d}.json",
                          {"sha256": _checksum(features[status == OK]), "errors": errors})
        group["status"][start:start + len(status)] = status

    def finish(self, key: str, summary: dict) -> None:
        write_json_atomic(self.path(key) / "complete.json", summary)
        self.write_ledger(key)

    def write_ledger(self, key: str) -> Path:
        """Gather the failed items of every committed chunk into ``errors.csv`` (path, reason)."""
        ledger = self.path(key) / "errors.csv"
        tmp = ledger.with_name(f".errors.csv.{os.getpid()}.tmp")
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["path", "reason"])
            out.writerows(self.ledger(key))
        os.replace(tmp, ledger)
        return ledger

    def ledger(self, key: str) -> list[list[str]]:
        """[path, reason] of every failed item of the committed chunks."""
        return [row for part in sorted((self.path(key) / "chunks").glob("*.json")) for row in _read_json(part)["errors"]]

    # -- aliases: recipe -> key ----------------------------------------------------------------------
    def alias(self, recipe: str, key: str) -> None:
        (self.root / "aliases").mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.root / "aliases" / f"{recipe}.json", {"key": key})

    def resolve(self, recipe: str) -> str | None:
        """The key of a complete entry recorded for ``recipe``, or None."""
        path = self.root / "aliases" / f"{recipe}.json"
        if not path.exists():
            return None
        key = _read_json(path)["key"]
        return key if self.is_complete(key) else None

    # -- reading -------------------------------------------------------------------------------------
    def dimension(self, key: str) -> int | None:
        """Feature length of an entry, or None before its first features are written."""
        meta = self.path(key) / "features" / "zarr.json"
        return _read_json(meta)["shape"][1] if meta.exists() else None

    def feature_array(self, key: str):
        """The entry's (n, d) float32 zarr array, every item in order whatever its status: read it a block
        of rows at a time when the whole would not fit in memory."""
        return self._group(key)["features"]

    def status(self, key: str) -> np.ndarray:
        """Per item: 0 not computed, 1 ok, 2 failed."""
        return self._group(key)["status"][:]

    def is_complete(self, key: str) -> bool:
        return (self.path(key) / "complete.json").exists()

    def summary(self, key: str) -> dict:
        return _read_json(self.path(key) / "complete.json")

    def read(self, key: str, split: str | None = None) -> FeatureSet:
        """Features of the items that succeeded (all splits, or one), aligned with ids/labels/splits."""
        if not self.exists(key):
            raise KeyError(f"no feature entry {key} in {self.root}")
        group = self._group(key)
        items = self.items(key)
        status = group["status"][:]
        ok = status == OK
        X = group["features"][:] if "features" in group else np.zeros((0, 0), np.float32)
        if not ok.all():
            X = X[ok]  # a copy: skipped when every item succeeded, as wide features are large
        as_array = lambda seq: None if seq is None else np.asarray(seq)[ok]  # noqa: E731
        fs = FeatureSet(X, np.asarray(items["ids"])[ok], as_array(items["labels"]), as_array(items["splits"]),
                        group.attrs.get("classes", []))
        return fs.subset(split) if split else fs

    def entries(self) -> list[dict]:
        """One summary dict per entry: key, items, dimension, complete, pipeline, dataset root, MiB."""
        out = []
        for path in sorted((self.root / "features").glob("*")):
            if not (_KEY.fullmatch(path.name) and (path / "zarr.json").exists()):
                continue
            attrs = _read_json(path / "zarr.json").get("attributes", {})
            out.append({"key": path.name, "n": attrs.get("n"), "d": self.dimension(path.name),
                        "complete": (path / "complete.json").exists(),
                        "pipeline": attrs.get("pipeline_name"), "dataset": attrs.get("root"),
                        "mib": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20})
        return out

    def verify(self, key: str) -> list[str]:
        """Problems found in an entry: uncommitted chunks, checksum mismatches, non-finite features."""
        group = self._group(key)
        rows, n = group.attrs["chunk_rows"], group.attrs["n"]
        status = group["status"][:]
        features = group["features"] if "features" in group else None
        problems = []
        for c in range(-(-n // rows)):
            part = self.path(key) / "chunks" / f"{c:06d}.json"
            if not status[c * rows:(c + 1) * rows].all():
                problems.append(f"chunk {c}: not computed")
                continue
            ok = status[c * rows:(c + 1) * rows] == OK
            try:
                block = features[c * rows:(c + 1) * rows][ok] if features is not None else np.zeros((0, 0), np.float32)
            except Exception as e:  # noqa: BLE001 -- a damaged chunk file fails to decompress
                problems.append(f"chunk {c}: unreadable ({type(e).__name__})")
                continue
            if not part.exists() or _read_json(part)["sha256"] != _checksum(block):
                problems.append(f"chunk {c}: checksum mismatch (corrupt data)")
            if not np.isfinite(block).all():
                problems.append(f"chunk {c}: non-finite features")
        return problems

    def remove(self, key: str) -> None:
        if not self.exists(key):
            raise KeyError(f"no feature entry {key} in {self.root}")
        shutil.rmtree(self.path(key))
        for alias in (self.root / "aliases").glob("*.json"):
            if _read_json(alias).get("key") == key:
                alias.unlink()


def _checksum(block: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(block, dtype=np.float32).tobytes()).hexdigest()
