"""Feature entries: one zarr v3 group per (data set identity, pipeline fingerprint), under ``features/``.

Layout of an entry ``<root>/features/<key>/``:

- ``features`` (n, d) and ``status`` (n,) int8 arrays, chunked along samples with the same rows per chunk;
  the features float32, or float16 when the entry's ``storage`` attribute says so (``precision.py``: the
  array's type is checked against it before every read, and rows are read back as float32); status 0 =
  not computed, 1 = ok, 2 = failed (see the ledger). Every stored chunk ends with its CRC-32C (zarr's
  ``crc32c`` codec), written with the chunk, so damage is found on every read.
- ``items.json``: ids, labels and splits of every item, its SHA-256 in the group's attributes.
- ``chunks/<index>.json``: the failed items of a committed chunk (``errors.csv`` gathers them) and, with
  ``--hash``, each row's content hash as decoded and as listed: a chunk where they differ is recomputed.

A chunk is committed in three atomic steps -- features, then its json, then its status rows -- so a
chunk counts as done exactly when its status rows are set. A killed run leaves at most features without
status, which the next run recomputes and overwrites with the same values. ``complete.json`` marks an
entry whose every chunk is done and whose ledger is written. A writer holds the entry's lock (``writing``,
``locks.py``); an entry lacking what every entry has from its creation on is a stub, rebuilt by the next
writer. Writing and reading an entry mark it used (``usage.py``); the process then holds its lock as a
reader until it ends.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ..files import read_json, temporary_sibling, write_csv_atomic, write_json_atomic
from ..limits import quote
from . import locks, precision
from .records import FeatureSet
from .usage import mark_used

OK, FAILED = 1, 2
_ENTRY_ATTRIBUTES = ("n", "items_sha256", "created")  # written with the entry, before it is renamed into place


class DamagedEntryError(ValueError):
    """A stored entry failed its checks (checksum, missing chunk, edited items); the message names it."""


def _unknown_storage(recorded) -> str:
    return f"records the precision {quote(recorded)}, none of {', '.join(precision.STORAGES)} (edited or damaged)"


def _codecs():
    """zstd, then the CRC-32C of the compressed bytes: damage to a stored chunk fails its read."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return {"compressors": [ZstdCodec(level=0), Crc32cCodec()], "config": {"write_empty_chunks": True}}


def _crc_ok(data: bytes) -> bool:
    """Whether a stored chunk's last four bytes are the CRC-32C (little-endian) of the rest."""
    import google_crc32c

    return len(data) >= 4 and google_crc32c.value(data[:-4]) == int.from_bytes(data[-4:], "little")


class FeatureEntries:
    """The ``features/`` namespace of a store (mixed into ``FeatureStore``)."""

    root: Path

    def path(self, key: str) -> Path:
        return self.entry_path("features", key)

    def exists(self, key: str) -> bool:
        return (self.path(key) / "zarr.json").exists()

    def _group(self, key: str, mode: str = "r"):
        import zarr

        try:
            return zarr.open_group(store=str(self.path(key)), mode=mode, zarr_format=3)
        except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DamagedEntryError(f"feature entry {key}: unreadable metadata ({e})") from None

    # -- writing -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, key: str):
        """Hold entry ``key``'s lock shared while filling it, and then as its reader (``cache rm`` and ``gc``
        leave it alone); a stub found there is removed first, with one line, so the entry is built again."""
        while True:
            with locks.shared(self.root, "features", key):
                if self.stub_reason(key) is None:
                    mark_used(self.path(key))
                    yield
                    locks.hold(self.root, "features", key)  # the run goes on to read what it wrote
                    return
            self._remove_stub(key)

    def stub_reason(self, key: str) -> str | None:
        """What a present entry lacks of what every entry has from its creation on (attributes, item list,
        status array), or None: such a stub -- left by a removal that bypassed the locks -- is never filled."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            attrs = read_json(path / "zarr.json").get("attributes", {})
        except (OSError, ValueError) as e:
            return f"unreadable metadata ({type(e).__name__})"
        missing = [name for name in _ENTRY_ATTRIBUTES if name not in attrs]
        missing += [name for name in ("items.json", "status/zarr.json", "chunks") if not (path / name).exists()]
        return f"missing {', '.join(missing)}" if missing else None

    def _remove_stub(self, key: str) -> None:
        """Remove the stub ``key`` under its lock held exclusive; when others hold it, they do it."""
        try:
            with locks.exclusive(self.root, [("features", key)]):
                reason = self.stub_reason(key)
                if reason is not None:
                    print(f"featurepipe: entry {key} is a stub ({reason}); rebuilding it", file=sys.stderr, flush=True)
                    shutil.rmtree(self.path(key))
        except locks.EntryInUseError:
            time.sleep(0.1)  # another writer holds it: it removes the stub, or finds it rebuilt

    def open_entry(self, key: str, n: int, chunk_rows: int, meta: dict, items: dict) -> tuple[int, list[int]]:
        """Create the entry if new; return its rows per chunk and the indices of the chunks still to compute.

        A new entry is built in a temporary folder and renamed into place, so an entry either exists
        whole (attributes, status array, item list) or not at all. ``items`` holds ids, labels, splits.
        """
        path = self.path(key)
        problem = self._unusable(key) if self.exists(key) else None
        if problem is not None:
            print(f"featurepipe: entry {key}: {problem}; computing it anew", file=sys.stderr)
            self._discard(key)
        if not self.exists(key):
            import zarr

            chunk_rows = max(1, min(chunk_rows, n))  # a chunk longer than the entry would only cost memory

            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = temporary_sibling(path)
            group = zarr.open_group(store=str(tmp), mode="w-", zarr_format=3)
            (tmp / "chunks").mkdir()
            text = json.dumps(items)
            (tmp / "items.json").write_text(text)
            group.attrs.update({**meta, "n": n, "chunk_rows": chunk_rows, "created": time.time(),
                                "items_sha256": hashlib.sha256(text.encode()).hexdigest()})
            group.create_array("status", shape=(n,), chunks=(chunk_rows,), dtype="int8", fill_value=0, **_codecs())
            try:
                os.rename(tmp, path)
            except OSError:  # another process created it first: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        group = self._group(key)
        chunk_rows = group.attrs["chunk_rows"]
        status = self.status(key, repair=True)
        n_chunks = -(-n // chunk_rows)
        return chunk_rows, [c for c in range(n_chunks) if not status[c * chunk_rows:(c + 1) * chunk_rows].all()]

    def _unusable(self, key: str) -> str | None:
        """Why an existing entry cannot be filled further, or None: its rows per chunk are not a positive integer
        whose chunk of features (of the entry's width, once known) fits in memory -- a value written elsewhere
        is data, not an order to allocate --, or its features are not of the type it records."""
        from ..limits import physical_memory

        rows = self.attrs(key).get("chunk_rows")
        if not (isinstance(rows, int) and not isinstance(rows, bool) and rows >= 1
                and rows * (self.dimension(key) or 1) * 4 <= physical_memory()):
            return "its chunks would not fit in memory"
        return self.storage_problem(key)

    def storage(self, key: str) -> str:
        """The precision the entry's features are stored at (``precision.STORAGES``); float32 for entries that
        predate the choice. ``DamagedEntryError`` when the entry records none of them."""
        recorded = self.attrs(key).get("storage", precision.DEFAULT)
        if not precision.known(recorded):
            raise DamagedEntryError(f"feature entry {key}: {_unknown_storage(recorded)}")
        return recorded

    def storage_problem(self, key: str) -> str | None:
        """Why the entry's features array is not of the type the entry records (edited or damaged), or None."""
        recorded = self.attrs(key).get("storage", precision.DEFAULT)
        if not precision.known(recorded):
            return _unknown_storage(recorded)
        meta = self.path(key) / "features" / "zarr.json"
        stored = read_json(meta).get("data_type") if meta.exists() else recorded
        if stored != recorded:
            return f"features stored as {quote(stored)} where the entry records {recorded} (edited or damaged)"
        return None

    def _discard(self, key: str) -> None:
        """Move an entry out of its place (one rename), then delete it."""
        moved = temporary_sibling(self.path(key))
        os.rename(self.path(key), moved)
        shutil.rmtree(moved, ignore_errors=True)

    def attrs(self, key: str) -> dict:
        """The entry's attributes, read from its metadata file (no zarr needed)."""
        try:
            return dict(read_json(self.path(key) / "zarr.json").get("attributes", {}))
        except (ValueError, UnicodeDecodeError) as e:
            raise DamagedEntryError(f"feature entry {key}: unreadable metadata ({e})") from None

    def set_attrs(self, key: str, **values) -> None:
        self._group(key, "a").attrs.update(values)

    def items(self, key: str) -> dict:
        """ids, labels and splits of every item of an entry, in order, checked against their recorded hash."""
        text = (self.path(key) / "items.json").read_bytes()
        if hashlib.sha256(text).hexdigest() != self.attrs(key).get("items_sha256"):
            raise DamagedEntryError(f"feature entry {key}: items.json does not match its checksum (edited or damaged)")
        return json.loads(text)

    def write_chunk(self, key: str, index: int, features, status: np.ndarray, errors: list, hashes=None) -> None:
        """Commit one chunk: features, then its json (failures; with ``hashes``, per row the content hash of the
        bytes decoded and the one listed), then its status rows.

        ``features`` is None when every item of the chunk failed (its rows stay zero). Features the entry's
        precision cannot hold raise ``precision.PrecisionError`` before anything is written."""
        group, storage = self._group(key, "a"), self.storage(key)
        if features is not None:
            features = precision.narrow(features, storage)
        rows = group.attrs["chunk_rows"]
        start = index * rows
        if features is None:
            features = np.zeros((len(status), group["features"].shape[1] if "features" in group else 0), np.float32)
        elif "features" not in group:
            from zarr.errors import ContainsArrayError

            try:
                group.create_array("features", shape=(group.attrs["n"], features.shape[1]),
                                   chunks=(rows, features.shape[1]), dtype=storage, fill_value=0.0, **_codecs())
            except ContainsArrayError:  # created meanwhile by another writer of the same entry
                pass
        if features.shape[1]:
            group["features"][start:start + len(features)] = features
        write_json_atomic(self.path(key) / "chunks" / f"{index:06d}.json",
                          {"errors": errors, **({"hashes": hashes} if hashes is not None else {})})
        group["status"][start:start + len(status)] = status

    def finish(self, key: str, summary: dict) -> None:
        """Write the ledger, then mark the entry complete: a complete entry always has its ledger."""
        self.write_ledger(key)
        write_json_atomic(self.path(key) / "complete.json", summary)

    def write_ledger(self, key: str) -> Path:
        """Gather the failed items of every committed chunk into ``errors.csv`` (path, reason)."""
        return write_csv_atomic(self.path(key) / "errors.csv", ["path", "reason"], self.ledger(key))

    def ledger(self, key: str) -> list[list[str]]:
        """[path, reason] of what the listing could not enter, then of every failed item of the committed chunks."""
        listed = self.attrs(key).get("listing_problems", [])
        return listed + [row for part in sorted((self.path(key) / "chunks").glob("*.json"))
                         for row in read_json(part)["errors"]]

    # -- checking ------------------------------------------------------------------------------------
    def _chunk_files(self, key: str, array: str):
        """``index -> path`` of the file where zarr keeps chunk ``index`` (along the samples) of ``array``,
        from the array's metadata (zarr v3 chunk key encodings), without opening it through zarr."""
        meta = read_json(self.path(key) / array / "zarr.json")
        encoding = meta["chunk_key_encoding"]
        separator = encoding.get("configuration", {}).get("separator", "/" if encoding["name"] == "default" else ".")
        prefix = ["c"] if encoding["name"] == "default" else []
        tail = ["0"] * (len(meta["shape"]) - 1)
        folder = self.path(key) / array
        return lambda index: folder / separator.join(prefix + [str(index)] + tail)

    def damaged_chunks(self, key: str, check_bytes: bool = True) -> dict[int, str]:
        """Committed chunks that fail their checks: ``index -> reason``.

        A missing chunk file counts as damage (every chunk is stored, even all-zero ones). With
        ``check_bytes`` each chunk file is read once and its CRC-32C checked without decompressing it:
        cheap next to any use of the features. For a complete entry every chunk is committed, so this
        needs neither zarr nor the status array: a warm run stays fast."""
        attrs = self.attrs(key)
        rows, n = attrs["chunk_rows"], attrs["n"]
        wrong_type = self.storage_problem(key)
        if wrong_type is not None:  # every chunk's bytes are of a type the entry does not record
            return dict.fromkeys(range(-(-n // rows)), wrong_type)
        if self.is_complete(key):
            status = None
        else:
            status = self.status(key, repair=True)
        arrays = [a for a in ("status", "features") if (self.path(key) / a / "zarr.json").exists()]
        files = {array: self._chunk_files(key, array) for array in arrays}
        damaged = {}
        for c in range(-(-n // rows)):
            part = status[c * rows:(c + 1) * rows] if status is not None else None
            if part is not None and not part.all():
                continue
            for array in arrays:
                if array == "features" and part is not None and not (part == OK).any():
                    continue
                path = files[array](c)
                try:
                    data = path.read_bytes() if check_bytes else (path.exists() or None)
                except FileNotFoundError:
                    data = None
                if data is None:
                    damaged[c] = f"{array} chunk missing"
                    break
                if check_bytes and not _crc_ok(data):
                    damaged[c] = f"{array} chunk fails its checksum"
                    break
            problem = None if c in damaged else self._ledger_part_problem(key, c, check_bytes)
            if problem is not None:
                damaged[c] = problem
        return damaged

    def _ledger_part_problem(self, key: str, index: int, read: bool) -> str | None:
        """Why chunk ``index``'s json disqualifies the chunk, or None: missing; with ``read``, unreadable, or
        recording a file whose bytes decoded differ from its listed content hash (``--hash``: the file
        changed during the run, so its row was never served and is computed again)."""
        path = self.path(key) / "chunks" / f"{index:06d}.json"
        if not read:
            return None if path.exists() else "ledger part missing"
        try:
            hashes = read_json(path).get("hashes") or []
        except FileNotFoundError:
            return "ledger part missing"
        except (OSError, ValueError, AttributeError) as e:
            return f"ledger part unreadable ({type(e).__name__})"
        changed = sum(decoded is not None and decoded != listed for decoded, listed in hashes)
        return f"{changed} file(s) changed while the run read them" if changed else None

    def reset_chunks(self, key: str, indices) -> None:
        """Mark chunks as not computed (and the entry as incomplete), so the next extract recomputes them."""
        (self.path(key) / "complete.json").unlink(missing_ok=True)
        group = self._group(key, "a")
        rows = group.attrs["chunk_rows"]
        status_file = self._chunk_files(key, "status")
        for c in indices:
            status_file(c).unlink(missing_ok=True)  # a damaged status chunk could not be overwritten in place
            (self.path(key) / "chunks" / f"{c:06d}.json").unlink(missing_ok=True)
            group["status"][c * rows:(c + 1) * rows] = 0

    def verify(self, key: str) -> list[str]:
        """Problems found in an entry: a stub, uncommitted chunks, damaged chunks, non-finite features."""
        stub = self.stub_reason(key)
        if stub is not None:
            return [f"a stub ({stub}); `featurepipe extract` rebuilds it"]
        wrong_type = self.storage_problem(key)
        if wrong_type is not None:
            return [f"{wrong_type}; `featurepipe extract` computes it anew"]
        group = self._group(key)
        rows, n = group.attrs["chunk_rows"], group.attrs["n"]
        try:
            status = self.status(key)
            self.items(key)
        except DamagedEntryError as e:
            return [str(e).removeprefix(f"feature entry {key}: ")]
        damaged = self.damaged_chunks(key)
        features = group["features"] if "features" in group else None
        problems = []
        for c in range(-(-n // rows)):
            part = status[c * rows:(c + 1) * rows]
            if not part.all():
                problems.append(f"chunk {c}: not computed")
            elif c in damaged:
                problems.append(f"chunk {c}: {damaged[c]}")
            elif features is not None and not np.isfinite(features[c * rows:(c + 1) * rows][part == OK]).all():
                problems.append(f"chunk {c}: non-finite features")
        return problems

    # -- reading -------------------------------------------------------------------------------------
    def serve(self, key: str) -> None:
        """Entry ``key`` is read by this process: hold its lock (``locks.hold``) and mark it used."""
        path = self.path(key)  # a key that names no entry is refused before its lock is touched
        locks.hold(self.root, "features", key)
        mark_used(path)

    def dimension(self, key: str) -> int | None:
        """Feature length of an entry, or None before its first features are written."""
        meta = self.path(key) / "features" / "zarr.json"
        return read_json(meta)["shape"][1] if meta.exists() else None

    def feature_array(self, key: str):
        """The entry's (n, d) zarr array as stored (float32 or float16), every item in order whatever its status:
        read it a block of rows at a time with ``read_rows``, which gives float32. Refused
        (``DamagedEntryError``) when it is not of the type the entry records; reads fail on damaged chunks."""
        self.check_storage(key)
        return self._group(key)["features"]

    def check_storage(self, key: str) -> None:
        """Refuse (``DamagedEntryError``, one line) an entry whose features are not of the type it records."""
        wrong_type = self.storage_problem(key)
        if wrong_type is not None:
            raise DamagedEntryError(f"feature entry {key}: {wrong_type}; run `featurepipe extract` again to "
                                    f"compute it anew")

    def status(self, key: str, repair: bool = False) -> np.ndarray:
        """Per item: 0 not computed, 1 ok, 2 failed. A damaged status chunk raises ``DamagedEntryError``,
        or with ``repair`` reads as not computed (so extract recomputes it)."""
        array = self._group(key)["status"]
        try:
            return array[:]
        except ValueError as e:
            if not repair:
                raise DamagedEntryError(f"feature entry {key}: status damaged ({e}); "
                                        f"run `featurepipe extract` again to recompute it") from None
        rows = array.chunks[0]
        status = np.zeros(array.shape, np.int8)
        for start in range(0, len(status), rows):
            try:
                status[start:start + rows] = array[start:start + rows]
            except ValueError:
                pass
        return status

    def is_complete(self, key: str) -> bool:
        return (self.path(key) / "complete.json").exists()

    def summary(self, key: str) -> dict:
        return read_json(self.path(key) / "complete.json")

    def read_rows(self, key: str, start: int, stop: int) -> np.ndarray:
        """Features of rows ``start:stop`` (whatever their status) as float32, checked: a damaged chunk raises
        ``DamagedEntryError`` naming the entry and the chunk. Rows stored at a lower precision are widened a
        chunk at a time, so the stored type is never held whole beside its float32 copy."""
        array = self.feature_array(key)
        try:
            if array.dtype == np.float32:
                return array[start:stop]
            stop = max(start, min(stop, array.shape[0]))
            out = np.empty((stop - start, array.shape[1]), np.float32)
            rows = array.chunks[0]
            edges = [start, *range((start // rows + 1) * rows, stop, rows), stop]
            for lo, hi in zip(edges, edges[1:]):
                out[lo - start:hi - start] = array[lo:hi]
            return out
        except ValueError:
            rows = array.chunks[0]
            for chunk in range(start // rows, (stop - 1) // rows + 1):
                try:
                    array[chunk * rows:(chunk + 1) * rows]
                except ValueError as e:
                    reason = "checksum mismatch" if "checksum" in str(e) else type(e).__name__
                    raise DamagedEntryError(f"feature entry {key}: chunk {chunk} is damaged ({reason}); run "
                                            f"`featurepipe extract` again to recompute it") from None
            raise

    def read(self, key: str, split: str | None = None) -> FeatureSet:
        """Features of the items that succeeded (all splits, or one), aligned with ids/labels/splits.

        Every chunk is checked as it is read (CRC-32C) and a chunk file that is missing is refused: a
        damaged entry raises ``DamagedEntryError`` naming the entry and the chunk, never serves data."""
        if not self.exists(key):
            raise KeyError(f"no feature entry {key} in {self.root}")
        self.serve(key)
        group = self._group(key)
        items = self.items(key)
        status = self.status(key)
        if not status.all():
            raise DamagedEntryError(f"feature entry {key} is incomplete ({int((status == 0).sum())} items not computed); "
                                    f"run `featurepipe extract` to finish it")
        ok = status == OK
        self.check_storage(key)
        missing = self.damaged_chunks(key, check_bytes=False)
        if missing:
            index, reason = next(iter(missing.items()))
            raise DamagedEntryError(f"feature entry {key}: chunk {index} is damaged ({reason}); "
                                    f"run `featurepipe extract` again to recompute it")
        X = self.read_rows(key, 0, len(status)) if "features" in group else np.zeros((0, 0), np.float32)
        if not ok.all():
            X = X[ok]  # a copy: skipped when every item succeeded, as wide features are large
        as_array = lambda seq: None if seq is None else np.asarray(seq)[ok]  # noqa: E731
        fs = FeatureSet(X, np.asarray(items["ids"])[ok], as_array(items["labels"]), as_array(items["splits"]),
                        group.attrs.get("classes", []))
        return fs.subset(split) if split else fs
