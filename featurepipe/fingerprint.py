"""Stable hashes: of JSON-able descriptions, of numpy state, and of the code that computes features.

The code behind a stage is the source of its class's module and of every featurepipe module that one
imports, directly or not (anywhere in its body): a change to HOG's module moves HOG's keys, not those
of a k-means codebook. Decoding code and the libraries' versions count for every stage.
"""
from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path

from ._version import __version__

_ROOT = Path(__file__).parent
# Source files whose change may change feature values (or, HEAD_CODE, trained heads).
HEAD_CODE = ("heads", "fitting.py", "selection.py", "normalize.py", "matrix.py", "metrics.py")
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
    sources (folders or files under the package; by default all feature-computing ones): change any
    of them and every key built on this moves."""
    h = hashlib.sha256(f"{__version__};{_library_versions()}".encode())
    for entry in entries:
        path = _ROOT / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
        for f in files:
            h.update(str(f.relative_to(_ROOT)).encode())
            h.update(f.read_bytes())
    return f"{__version__}+{h.hexdigest()[:16]}"


def _module_file(name: str) -> Path | None:
    """The source file of featurepipe module ``name`` (dotted), or None when it is not one."""
    parts = name.split(".")
    if parts[0] != "featurepipe":
        return None
    base = _ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _source_file(name: str) -> Path | None:
    """The source file of any loaded module (a stage may live outside featurepipe: a plug-in, a test)."""
    import sys

    found = _module_file(name)
    if found is None:
        module_path = getattr(sys.modules.get(name), "__file__", None)
        found = Path(module_path) if module_path and module_path.endswith(".py") else None
    return found


# Import statements, read by a regular expression: thirteen times faster than parsing, and an import
# quoted in a docstring only makes the closure larger (more keys move on a change, never fewer).
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([.\w]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]+)|import[ \t]+([^\n#]+))",
                     re.MULTILINE)


@lru_cache(maxsize=None)
def _imports(name: str) -> frozenset:
    """featurepipe modules that module ``name`` imports anywhere in its body (a package counts when it is
    what is imported: its ``__init__`` then runs code of its own choosing, not when one of its modules is)."""
    path = _source_file(name)
    if path is None:
        return frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for module, names, plain in _IMPORT.findall(path.read_text()):
        if plain:
            targets = [part.split()[0] for part in plain.split(",") if part.strip()]
        else:
            level = len(module) - len(module.lstrip("."))
            base = module.lstrip(".")
            if level:
                anchor = package.split(".")[:len(package.split(".")) - level + 1]
                base = ".".join(anchor + ([base] if base else []))
            imported = [part.split()[0] for part in names.strip("()").replace("\n", " ").split(",") if part.strip()]
            targets = [f"{base}.{n}" if _module_file(f"{base}.{n}") else base for n in imported]
        found |= {t for t in targets if _module_file(t)}
    return frozenset(found - {name})


def _closure(name: str) -> set:
    seen, todo = set(), [name]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += _imports(module)
    return seen


@lru_cache(maxsize=None)
def modules_code_version(modules: tuple[str, ...]) -> str:
    """The package version, the libraries' versions and a hash of the sources of the given modules, of
    every featurepipe module they import and of decoding."""
    h = hashlib.sha256(f"{__version__};{_library_versions()}".encode())
    names = {m for name in modules for m in _closure(name)} | {"featurepipe.datasets.decode"}
    for name in sorted(names):
        path = _source_file(name)
        if path is not None:
            h.update(name.encode())
            h.update(path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:16]}"
