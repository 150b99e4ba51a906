"""The store's other namespaces: small entries, each a folder written whole or not at all.

- ``aliases/<recipe>.json``: a run's recipe (config as written + data set + code version) -> feature key,
  so a warm run finds its entry without building the pipeline;
- ``pipelines/<key>/``: a fitted pipeline's state (``state.npz`` arrays, ``state.json`` the rest);
- ``heads/<key>/``: a head fitted and scored on stored features: its checked bundle (``trained.py``), its record
  in ``entry.json``;
- ``datasets/<name>/``: data sets the library writes itself (the built-in demo).

Each entry records the entries it was made from (``parents``), which ``cache rm`` and ``cache gc`` follow,
and the SHA-256 of each of its files and of the record itself: an entry that fails them is damaged
(``DamagedEntryError``), never used -- ``train`` fits it again, ``cache verify`` reports it. Loading an
entry (and resolving an alias) marks it used (``usage.py``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from ..files import read_json, read_npz, temporary_sibling, write_json_atomic, write_npz_atomic
from . import locks
from .features import DamagedEntryError
from .usage import mark_used

DONE = "entry.json"  # written last in a folder entry: its record, and the mark that the entry is whole


class ObjectEntries:
    """Folder entries and aliases (mixed into ``FeatureStore``)."""

    root: Path

    def _create(self, namespace: str, key: str, record: dict, write) -> Path:
        """Build entry ``key`` of ``namespace`` in a temporary folder (``write(folder)``, then ``entry.json``
        with ``record``) and rename it into place; an existing complete entry is kept."""
        path = self.entry_path(namespace, key)
        if (path / DONE).exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(path)
        tmp.mkdir()
        try:
            write(tmp)
            write_json_atomic(tmp / DONE, _sealed(tmp, record))
            if path.exists():  # a half-written entry of a killed process: replace it
                shutil.rmtree(path)
            os.rename(tmp, path)
        except OSError:
            if not (path / DONE).exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    def _open(self, namespace: str, key: str) -> tuple[dict, Path] | None:
        """(record, folder) of a complete entry whose files and record pass their SHA-256, or None when there
        is none; ``DamagedEntryError`` when it fails them (one line, which the caller prefixes with the entry)."""
        path = self.entry_path(namespace, key)
        try:
            record = read_json(path / DONE)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise DamagedEntryError(f"unreadable {DONE} ({type(e).__name__})") from None
        problem = _seal_problem(path, record)
        if problem is not None:
            raise DamagedEntryError(problem)
        return record, path

    def verify_object(self, namespace: str, key: str) -> list[str]:
        """Problems found in a folder entry (not complete, or failing its checksums), as ``verify`` lists them."""
        try:
            found = self._open(namespace, key)
        except DamagedEntryError as e:
            return [str(e)]
        return [] if found is not None else [f"incomplete (no {DONE})"]

    # -- aliases: recipe -> feature key --------------------------------------------------------------
    def alias(self, recipe: str, key: str) -> None:
        write_json_atomic(self._mkdir("aliases") / f"{recipe}.json", {"key": key, "parents": [key]})

    def resolve(self, recipe: str) -> str | None:
        """The key of a complete feature entry recorded for ``recipe``, or None."""
        path = self.root / "aliases" / f"{recipe}.json"
        try:
            key = read_json(path)["key"]
            if not self.exists(key):
                return None
            self.serve(key)  # held before it is checked: a removal cannot come between
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        if not (self.is_complete(key) and self.stub_reason(key) is None):
            return None
        mark_used(path)
        return key

    def _mkdir(self, namespace: str) -> Path:
        folder = self.root / namespace
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # -- fitted pipelines ----------------------------------------------------------------------------
    def save_fitted(self, key: str, arrays: dict, values: dict, record: dict) -> None:
        """Store a fitted pipeline's state (``pipeline.fitted_state``) with ``record`` (fingerprint, timings)."""
        self._create("pipelines", key, {**record, "values": values},
                     lambda folder: write_npz_atomic(folder / "state.npz", arrays))

    def load_fitted(self, key: str) -> tuple[dict, dict, dict] | None:
        """(arrays, values, record) of a stored fit, or None (also when it was damaged: removed, one line)."""
        try:
            found = self._open("pipelines", key)
        except DamagedEntryError as e:  # removed alone: the features made from it stay valid
            print(f"featurepipe: fitted pipeline {key}: {e}; fitting it again", file=sys.stderr, flush=True)
            shutil.rmtree(self.entry_path("pipelines", key), ignore_errors=True)
            return None
        if found is None:
            return None
        record, folder = found
        mark_used(folder)
        return read_npz(folder / "state.npz"), record["values"], record

    # -- fitted heads --------------------------------------------------------------------------------
    def save_head(self, key: str, record: dict, write) -> Path:
        """Store a fitted head: ``write(folder)`` writes its files, ``record`` its results and ``parents``."""
        return self._create("heads", key, record, write)

    def load_head(self, key: str) -> tuple[dict, Path] | None:
        """(record, folder) of a stored head, or None."""
        found = self._open("heads", key)
        if found is not None:
            mark_used(found[1])
        return found

    # -- data sets written by the library ------------------------------------------------------------
    def dataset(self, name: str, write) -> Path:
        """The folder of data set ``name``, written by ``write(folder)`` on first use."""
        folder = self._create("datasets", name, {"parents": []}, write)
        locks.hold(self.root, "datasets", name)  # its images are read from there
        mark_used(folder)
        return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_digest(record: dict) -> str:
    """SHA-256 of a record as canonical JSON, without its own ``sha256`` field."""
    body = {k: v for k, v in record.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _sealed(folder: Path, record: dict) -> dict:
    """``record`` with the SHA-256 of every file below ``folder`` (``files``) and of itself (``sha256``)."""
    files = {str(f.relative_to(folder)): _sha256(f) for f in sorted(folder.rglob("*")) if f.is_file()}
    sealed = {**record, "files": files}
    return {**sealed, "sha256": _record_digest(sealed)}


def _seal_problem(folder: Path, record: dict) -> str | None:
    """What in ``folder`` fails the checksums its record holds (see ``_sealed``), or None."""
    if not isinstance(record, dict) or "sha256" not in record:
        return f"{DONE} holds no checksums (written by an older featurepipe)"
    if _record_digest(record) != record["sha256"]:
        return f"{DONE} does not match its SHA-256 (the record, e.g. its grid, was edited or damaged)"
    for name, digest in record.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if _sha256(path) != digest:
            return f"{name} fails its SHA-256 (edited or damaged)"
    return None
