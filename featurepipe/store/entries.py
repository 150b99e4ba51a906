"""The store's other namespaces: small entries, each a folder written whole or not at all.

- ``aliases/<recipe>.json``: a run's recipe (config as written + data set + code version) -> feature key,
  so a warm run finds its entry without building the pipeline;
- ``pipelines/<key>/``: a fitted pipeline's state (``state.npz`` arrays, ``state.json`` the rest);
- ``heads/<key>/``: a head fitted and scored on stored features: its checked bundle (``trained.py``), its record
  in ``entry.json``;
- ``datasets/<name>/``: data sets the library writes itself (the built-in demo).

Each entry records the entries it was made from (``parents``), which ``cache rm`` and ``cache gc`` follow.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..files import read_json, read_npz, temporary_sibling, write_json_atomic, write_npz_atomic
from .features import DamagedEntryError

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
            write_json_atomic(tmp / DONE, record)
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
        """(record, folder) of a complete entry, or None."""
        path = self.entry_path(namespace, key)
        try:
            return read_json(path / DONE), path
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise DamagedEntryError(f"{namespace} entry {key}: unreadable record ({e}); "
                                    f"`featurepipe cache rm {key}` removes it") from None

    # -- aliases: recipe -> feature key --------------------------------------------------------------
    def alias(self, recipe: str, key: str) -> None:
        write_json_atomic(self._mkdir("aliases") / f"{recipe}.json", {"key": key, "parents": [key]})

    def resolve(self, recipe: str) -> str | None:
        """The key of a complete feature entry recorded for ``recipe``, or None."""
        path = self.root / "aliases" / f"{recipe}.json"
        try:
            key = read_json(path)["key"]
        except (FileNotFoundError, ValueError, KeyError):
            return None
        return key if self.is_complete(key) else None

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
        """(arrays, values, record) of a stored fit, or None."""
        found = self._open("pipelines", key)
        if found is None:
            return None
        record, folder = found
        return read_npz(folder / "state.npz"), record["values"], record

    # -- fitted heads --------------------------------------------------------------------------------
    def save_head(self, key: str, record: dict, write) -> Path:
        """Store a fitted head: ``write(folder)`` writes its files, ``record`` its results and ``parents``."""
        return self._create("heads", key, record, write)

    def load_head(self, key: str) -> tuple[dict, Path] | None:
        """(record, folder) of a stored head, or None."""
        return self._open("heads", key)

    # -- data sets written by the library ------------------------------------------------------------
    def dataset(self, name: str, write) -> Path:
        """The folder of data set ``name``, written by ``write(folder)`` on first use."""
        return self._create("datasets", name, {"parents": []}, write)
