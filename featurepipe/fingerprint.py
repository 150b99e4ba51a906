"""Stable hashes: of JSON-able descriptions, of numpy state, and of the code that computes features."""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from ._version import __version__

# Source files whose change may change feature values (or, HEAD_CODE, trained heads).
HEAD_CODE = ("heads", "fitting.py")
_FEATURE_CODE = ("core", "extractors", "local", "imageops.py", "preprocess.py", "pipeline.py", "datasets/decode.py")


def digest(obj) -> str:
    """sha256 hex of the canonical JSON of ``obj`` (sorted keys, no whitespace)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable).encode()).hexdigest()


def to_json(obj):
    """``obj`` as plain JSON data (numpy arrays as dtype/shape/hash, stages as their description)."""
    return json.loads(json.dumps(obj, default=_jsonable))


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return {"dtype": str(value.dtype), "shape": value.shape,
                "sha256": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if hasattr(value, "describe"):
        return value.describe()
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


# Libraries whose upgrade may change feature values (decoders, resizing, colour conversion, k-means).
_LIBRARIES = ("numpy", "scipy", "scikit-learn", "scikit-image", "opencv-python-headless", "opencv-python",
              "opencv-contrib-python", "opencv-contrib-python-headless")


def _library_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in _LIBRARIES:
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            pass
    return ",".join(found)


@lru_cache(maxsize=None)
def code_version(entries: tuple[str, ...] = _FEATURE_CODE) -> str:
    """Package version, the versions of the libraries features depend on, and a hash of the given
    sources (by default the feature-computing ones): change any of them and every key built on this moves."""
    root = Path(__file__).parent
    h = hashlib.sha256(f"{__version__};{_library_versions()}".encode())
    for entry in entries:
        path = root / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return f"{__version__}+{h.hexdigest()[:16]}"
