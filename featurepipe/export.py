"""``cache export``: a feature entry's matrix as one file for other tools, ``.npz`` (numpy) or ``.parquet``
(pyarrow, the ``parquet`` extra), with each row's image path, and its label and split when the entry knows
them. Only the rows whose status says they were extracted fine are written; the file is written whole or
not at all (``files.replace_with``), replacing one already there, as every output of featurepipe does.

Columns: ``features`` (float32, rows x width; in parquet one fixed-size list per row), ``paths`` (the data
set's root joined with the item's id), ``labels`` and ``splits`` (only when the entry has them). Names that
are not UTF-8 are written with their bytes escaped (``files.escape_name``), as the error ledger writes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from .errors import UsageError
from .files import escape_name, replace_with
from .matrix import allocate, iter_blocks
from .store import OK, DamagedEntryError, FeatureStore

FORMATS = (".npz", ".parquet")


@dataclass
class Exported:
    """What ``export_features`` wrote: where, how many rows of how many features, and whether it replaced a
    file."""

    path: Path
    rows: int
    width: int
    replaced: bool


def export_features(store: FeatureStore, key: str, to) -> Exported:
    """Write the rows of feature entry ``key`` that were extracted fine to ``to`` (``.npz`` or ``.parquet``)."""
    to = Path(to)
    suffix = to.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"--to {to}: expected a file name ending in {' or '.join(FORMATS)}")
    if suffix == ".parquet":
        _pyarrow()  # before any reading: a missing extra is said at once
    columns = feature_columns(store, key)
    replaced = to.exists()
    to.parent.mkdir(parents=True, exist_ok=True)
    replace_with(to, lambda tmp: (_write_npz if suffix == ".npz" else _write_parquet)(tmp, columns))
    return Exported(to, *columns["features"].shape, replaced)


def feature_columns(store: FeatureStore, key: str) -> dict[str, np.ndarray]:
    """``features``, ``paths`` and (when known) ``labels`` and ``splits`` of the rows of entry ``key`` that
    were extracted fine, each checked: the item list against its SHA-256 and the entry's size, the features' type
    against the one recorded, every chunk read against its CRC-32C, a missing one refused. The features are
    float32 whatever precision the entry stores."""
    if not store.exists(key):
        raise KeyError(f"{key}: not a feature entry (only feature entries hold a matrix to export)")
    store.serve(key)  # held while it is read, and marked used
    status = store.status(key)
    items = store.items(key)
    rows = np.flatnonzero(status == OK)
    store.check_storage(key)
    damaged = store.damaged_chunks(key, check_bytes=False)  # a missing chunk file (zarr would read zeros)
    if damaged:
        index, reason = next(iter(damaged.items()))
        raise DamagedEntryError(f"feature entry {key}: chunk {index} is damaged ({reason}); "
                                f"run `featurepipe extract` again to recompute it")
    width = store.dimension(key) or 0
    features = allocate(len(rows), width)
    for positions, block in iter_blocks(store, key, rows) if len(rows) and width else []:
        features[positions] = block
    root = store.attrs(key).get("root")
    if not isinstance(root, str):
        raise DamagedEntryError(f"feature entry {key}: its data set root is not recorded")
    ids = _column(items, "ids", status, key)[rows]
    columns = {"features": features, "paths": np.array([escape_name(str(PurePath(root) / i)) for i in ids], str)}
    for name in ("labels", "splits"):
        if items.get(name) is not None:
            columns[name] = np.array([escape_name(v) for v in _column(items, name, status, key)[rows]], str)
    return columns


def _column(items: dict, name: str, status: np.ndarray, key: str) -> np.ndarray:
    """``items[name]`` as an array of strings, one per item: anything else is a damaged entry."""
    values = items.get(name)
    if not (isinstance(values, list) and len(values) == len(status) and all(isinstance(v, str) for v in values)):
        raise DamagedEntryError(f"feature entry {key}: items.json {name} is not a list of {len(status)} strings")
    return np.array(values, dtype=object)


def _write_npz(path: Path, columns: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **columns)


def _write_parquet(path: Path, columns: dict) -> None:
    pa, parquet = _pyarrow()
    features = columns["features"]
    values = pa.array(np.ascontiguousarray(features).reshape(-1), pa.float32())
    table = {"features": pa.FixedSizeListArray.from_arrays(values, features.shape[1]),
             **{name: pa.array(column.tolist(), pa.string()) for name, column in columns.items() if name != "features"}}
    parquet.write_table(pa.table(table), str(path))


def _pyarrow():
    """(pyarrow, pyarrow.parquet), or ``UsageError`` saying how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError("--to *.parquet needs pyarrow, which is not installed: "
                         "pip install 'featurepipe[parquet]' (or export to .npz)") from None
    return pyarrow, pyarrow.parquet
