"""The cache: the one place that derives keys and writes under its root.

Namespaces (folders under the root): ``features`` (zarr entries, see ``features.py``), ``aliases``,
``pipelines``, ``heads`` and ``datasets`` (see ``entries.py``). Every key comes from ``FeatureStore.key``:
a hash of the namespace and of everything that decides the entry's content, so a changed setting or
input gets a new key and a stale entry is never served. Entries name the entries they were made from,
so removing one removes what depends on it, and ``gc`` finds orphans; it also evicts the entries used least
recently (``usage.py``) past a size or an age. An entry is named by its key or by a prefix of it that no other
key shares (``lookup``). Several processes may share a cache: removal takes each entry's lock, which a
writer holds (``locks.py`` says what that guarantees).
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import time
from pathlib import Path

from ..errors import UsageError
from ..files import host_name, read_json
from ..fingerprint import digest
from ..limits import human_bytes, human_duration
from . import locks, precision, usage
from .entries import DONE, ObjectEntries
from .features import FAILED, OK, DamagedEntryError, FeatureEntries
from .locks import EntryInUseError
from .records import ExtractResult, FeatureSet

NAMESPACES = ("features", "pipelines", "heads", "aliases", "datasets")
_KEY = re.compile(r"[0-9a-f]{32}")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<host>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")


class FeatureStore(FeatureEntries, ObjectEntries):
    """A cache folder of entries in namespaces; see the module docstring."""

    def __init__(self, root):
        self.root = Path(root).expanduser()

    @staticmethod
    def key(namespace: str, **parts) -> str:
        """The key of an entry of ``namespace`` made from ``parts`` (JSON-able): 32 hexadecimal digits."""
        if namespace not in NAMESPACES:
            raise ValueError(f"unknown namespace {namespace!r}; one of {NAMESPACES}")
        return digest({"namespace": namespace, **parts})[:32]

    def entry_path(self, namespace: str, key: str) -> Path:
        if not (_NAME if namespace == "datasets" else _KEY).fullmatch(str(key)):
            raise KeyError(f"{key!r} is not an entry key (32 hexadecimal digits, as `featurepipe cache ls` shows)")
        return self.root / namespace / key

    @staticmethod
    def check_key(key: str) -> str:
        """``key`` when it can name an entry of some namespace (a key or a data set name), else ``KeyError``:
        nothing outside the namespaces' folders is ever touched."""
        if not (_KEY.fullmatch(str(key)) or _NAME.fullmatch(str(key))):
            raise KeyError(f"{key!r} is not an entry key (32 hexadecimal digits, as `featurepipe cache ls` shows)")
        return key

    # -- listing, removal, garbage collection --------------------------------------------------------
    def entries(self, namespaces=NAMESPACES, prefix: str = "") -> list[dict]:
        """One dict per entry whose key starts with ``prefix``: namespace, key, parents, complete, bytes, created
        and used (seconds since the epoch), a short description (``what``); feature entries also give what
        they hold (``n``, ``d``, ``storage``, ``pipeline``, ``root``, and ``failed`` or ``chunks`` done and in all)."""
        if prefix:
            self.check_key(prefix)
        out = []
        for namespace in namespaces:
            folder = self.root / namespace
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.name.startswith(prefix):
                    entry = self._describe(namespace, path)
                    if entry is not None:
                        out.append(entry)
        return out

    def lookup(self, prefix: str) -> dict:
        """The one entry whose key (or data set name) is ``prefix`` or starts with it: ``KeyError`` when there
        is none, ``errors.UsageError`` when several entries start with it."""
        found = self.entries(prefix=self.check_key(prefix))
        exact = [e for e in found if e["key"] == prefix]
        if exact or len(found) == 1:
            return (exact or found)[0]
        if not found:
            raise KeyError(f"{prefix}: no such entry in {self.root}")
        shown = ", ".join(f"{e['namespace']} {e['key']}" for e in found[:3]) + (", ..." if len(found) > 3 else "")
        raise UsageError(f"{prefix}: {len(found)} entries start with it ({shown}); give more of the key")

    def _describe(self, namespace: str, path: Path) -> dict | None:
        name = path.name.removesuffix(".json") if namespace == "aliases" else path.name
        if _TEMPORARY.fullmatch(path.name) or not (_NAME if namespace == "datasets" else _KEY).fullmatch(name):
            return None
        try:
            used = usage.last_used(path)
        except FileNotFoundError:  # removed meanwhile by another process
            return None
        entry = {"namespace": namespace, "key": name, "parents": [], "complete": True, "what": "",
                 "bytes": _size(path), "used": used, "created": used}
        try:
            if namespace == "features":
                entry.update(self._feature_facts(name, path))
            elif namespace == "aliases":
                record = read_json(path)
                entry.update(parents=record.get("parents", [record.get("key")]), what=f"-> {record.get('key')}")
            else:
                record = read_json(path / DONE)
                entry.update(parents=record.get("parents", []), what=record.get("what", ""),
                             created=(path / DONE).stat().st_mtime)
        except (OSError, ValueError, AttributeError) as e:
            entry.update(complete=False, what=f"unreadable ({type(e).__name__})")
        return entry

    def _feature_facts(self, key: str, path: Path) -> dict:
        """What ``entries`` says of a feature entry beyond its folder, from its metadata (no zarr needed)."""
        attrs = read_json(path / "zarr.json").get("attributes", {})
        n, rows, d = attrs.get("n"), attrs.get("chunk_rows"), self.dimension(key)
        facts = {"parents": attrs.get("parents", []), "complete": (path / "complete.json").exists(),
                 "n": n, "d": d, "pipeline": attrs.get("pipeline"), "root": attrs.get("root"),
                 "storage": attrs.get("storage", precision.DEFAULT),
                 "dataset": attrs.get("dataset_identity"),
                 "what": f"{n} x {d or '?'} {attrs.get('pipeline_name')} {attrs.get('root')}"}
        if isinstance(attrs.get("created"), (int, float)):
            facts["created"] = attrs["created"]
        if facts["complete"]:
            facts["failed"] = read_json(path / "complete.json").get("failed", 0)
        elif isinstance(n, int) and isinstance(rows, int) and rows > 0:
            facts["chunks"] = (len(list((path / "chunks").glob("*.json"))), -(-n // rows))
        return facts

    def find(self, key: str) -> dict | None:
        """The entry ``key`` (a key or a data set name) in whichever namespace holds it, or None."""
        self.check_key(key)
        for namespace in NAMESPACES:
            name = f"{key}.json" if namespace == "aliases" else key
            path = self.root / namespace / name
            if path.exists():
                return self._describe(namespace, path)
        return None

    def remove(self, key: str) -> list[dict]:
        """Remove entry ``key`` and every entry made from it (recursively); returns what was removed.

        Nothing is removed when one of them is in use (``locks.EntryInUseError``): a writer holds its lock."""
        target = self.find(key)
        if target is None:
            raise KeyError(f"no entry {key} in {self.root}")
        doomed = self._with_dependents(target, self.entries())
        with locks.exclusive(self.root, [(e["namespace"], e["key"]) for e in doomed]):
            for entry in doomed:
                self._delete(entry)
        return doomed

    @staticmethod
    def _with_dependents(target: dict, everything: list[dict]) -> list[dict]:
        """``target`` and every entry of ``everything`` made from it, recursively, each once."""
        found, todo = [], [target]
        while todo:
            entry = todo.pop()
            if not any(f["key"] == entry["key"] and f["namespace"] == entry["namespace"] for f in found):
                found.append(entry)
                todo += [e for e in everything if entry["key"] in e["parents"]]
        return found

    def gc(self, max_bytes: int | None = None, older_than: float | None = None) -> list[dict]:
        """Evict entries, least recently used first (``usage.py``), while the cache holds more than
        ``max_bytes`` or while the least recently used was last used more than ``older_than`` seconds ago;
        then remove orphans: entries whose parents are gone, aliases to missing entries, and the temporary
        files of writers that died (on this host; elsewhere, after a day). An entry in use (a writer holds
        its lock) is kept, with what was made from it, and listed with ``"kept"``. Returns what was removed
        (evicted ones with ``"evicted"``: why) or kept."""
        done = self._evict(max_bytes, older_than) if max_bytes is not None or older_than is not None else []
        return done + self._remove_orphans()

    def _evict(self, max_bytes: int | None, older_than: float | None) -> list[dict]:
        """Evict groups of entries (``usage.py``) from a listing taken once: see ``gc``."""
        done, kept, now = [], set(), time.time()
        everything = self.entries()
        while True:
            total = sum(e["bytes"] for e in everything)
            group = next((g for g in usage.groups_by_last_use(everything)
                          if not any((e["namespace"], e["key"]) in kept for e in g)), None)
            if group is None:
                return done
            idle = now - max(e["used"] for e in group)
            if older_than is not None and idle > older_than:
                why = f"unused for {human_duration(idle)}"
            elif max_bytes is not None and total > max_bytes:
                why = f"least recently used; the cache held {human_bytes(total)}, more than {human_bytes(max_bytes)}"
            else:
                return done
            try:
                with locks.exclusive(self.root, [(e["namespace"], e["key"]) for e in group]):
                    for entry in group:
                        self._delete(entry)
            except EntryInUseError as e:
                kept.update((m["namespace"], m["key"]) for m in group)
                done.append({**group[0], "kept": str(e)})
                continue
            done += [{**entry, "evicted": why} for entry in group]
            everything = [e for e in everything if not any(e is member for member in group)]

    def _remove_orphans(self) -> list[dict]:
        removed = []
        for namespace in NAMESPACES:
            folder = self.root / namespace
            for path in sorted(folder.rglob(".*.tmp")) if folder.is_dir() else []:
                if path.exists() and _dead_writer(path):
                    (shutil.rmtree if path.is_dir() else Path.unlink)(path)
                    removed.append({"namespace": namespace, "key": path.name, "what": "temporary file of a dead writer"})
        kept: set[tuple[str, str]] = set()
        while True:
            everything = self.entries()
            keys = {e["key"] for e in everything}
            orphans = [e for e in everything if any(p not in keys for p in e["parents"])
                       and (e["namespace"], e["key"]) not in kept]
            if not orphans:
                return removed
            for entry in orphans:
                try:
                    with locks.exclusive(self.root, [(entry["namespace"], entry["key"])]):
                        self._delete(entry)
                except EntryInUseError as e:
                    kept.add((entry["namespace"], entry["key"]))
                    entry = {**entry, "kept": str(e)}
                removed.append(entry)

    def _delete(self, entry: dict) -> None:
        name = f"{entry['key']}.json" if entry["namespace"] == "aliases" else entry["key"]
        path = self.root / entry["namespace"] / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    """Bytes of the files at or below ``path`` (those removed meanwhile by another process count nothing)."""
    total = 0
    for f in [path, *path.rglob("*")] if path.is_dir() else [path]:
        try:
            found = f.lstat()
        except FileNotFoundError:
            continue
        total += found.st_size if stat.S_ISREG(found.st_mode) else 0
    return total


def _dead_writer(path: Path) -> bool:
    """Whether the temporary file ``path`` belongs to a process that no longer runs."""
    match = _TEMPORARY.fullmatch(path.name)
    if match is None:
        return False
    if match["host"] != host_name():
        return time.time() - path.stat().st_mtime > 86400
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


__all__ = ["FAILED", "NAMESPACES", "OK", "DamagedEntryError", "EntryInUseError", "ExtractResult", "FeatureSet",
           "FeatureStore"]
