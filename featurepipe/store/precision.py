"""The precisions a feature entry is stored at (``pipeline.storage``): float32, the default, or float16, which
takes half the disk and half the page cache.

Rows are narrowed as a chunk is written, and refused when they do not fit -- a value beyond float16's
range would become infinite, a NaN or an infinity would be kept as one -- never clipped. Readers widen
what they read back to float32, a chunk at a time (``FeatureEntries.read_rows``), so everything downstream sees float32 rows.
"""
from __future__ import annotations

import numpy as np

DEFAULT = "float32"
STORAGES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}


class PrecisionError(ValueError):
    """Features that the entry's precision cannot hold; the message says which values and why."""


def known(storage) -> bool:
    """Whether ``storage`` (a value read from an entry: data) names a precision of ``STORAGES``."""
    return isinstance(storage, str) and storage in STORAGES


def dtype(storage: str) -> np.dtype:
    """The numpy type of ``storage`` (a name of ``STORAGES``)."""
    return STORAGES[storage]


def key_part(storage: str) -> dict:
    """What ``storage`` adds to a key: nothing for the default, so float32 keys stay those of before."""
    return {} if storage == DEFAULT else {"storage": storage}


def narrow(features: np.ndarray, storage: str) -> np.ndarray:
    """``features`` as ``storage`` holds them; ``PrecisionError`` when that would change a value beyond rounding:
    a magnitude above the type's largest, or (below float32) a NaN or an infinity."""
    target = dtype(storage)
    if target == features.dtype:
        return features
    if target.itemsize < 4 and features.size:
        bad = int(np.count_nonzero(~np.isfinite(features)))
        if bad:
            raise PrecisionError(f"{bad} value(s) are NaN or infinite, which {storage} features refuse")
        largest, limit = float(np.abs(features).max()), float(np.finfo(target).max)
        if largest > limit:
            raise PrecisionError(f"values reach {largest:.6g} in magnitude, beyond {storage}'s largest, {limit:g}")
    return features.astype(target)
