"""Stable hashes: of JSON-able descriptions, of numpy state, and of the code that computes features and heads.

The code behind an object graph of stages is the source of the modules that define its stages' classes
and of every featurepipe module those import, directly or not (anywhere in their bodies): a change to
HOG's module moves HOG's keys, not those of a k-means codebook. Which stages a graph holds comes from the
graph itself (``Stage.parts``), never from a list kept by hand. Decoding code and the libraries'
versions count for every graph.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from ._version import __version__

_ROOT = Path(__file__).parent


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


@lru_cache(maxsize=None)
def module_imports(name: str, packages: bool = False) -> frozenset:
    """featurepipe modules that module ``name`` imports anywhere in its body (functions too), read from its
    syntax tree. ``from a import b`` names module ``a.b`` when that is a module, else ``a``. With
    ``packages``, the ``__init__`` of every package on the way counts too (importing ``a.b.c`` runs that of
    ``a.b`` first; the importer's own packages excepted): the graph of what runs on import, where keys
    want only what is used (a package counts when something is taken from it)."""
    import ast

    path = _source_file(name)
    if path is None:
        return frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if _module_file(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if _module_file(t)}
    for target in list(found) if packages else []:
        parts = target.split(".")
        found |= {p for p in (".".join(parts[:i]) for i in range(2, len(parts)))
                  if _module_file(p) and not name.startswith(p + ".")}
    return frozenset(found - {name})


def import_closure(name: str) -> set:
    """``name`` and every featurepipe module it imports, directly or not."""
    seen, todo = set(), [name]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += module_imports(module)
    return seen


def defining_modules(classes) -> tuple[str, ...]:
    """The modules that define ``classes``: each class's own module (a plug-in's too) and those of its
    featurepipe base classes."""
    found = set()
    for cls in classes:
        found.add(cls.__module__)
        found |= {base.__module__ for base in cls.__mro__ if base.__module__.split(".")[0] == "featurepipe"}
    return tuple(sorted(found))


def classes_code_version(classes: tuple) -> str:
    """``modules_code_version`` of the modules that define ``classes`` (the stages of an object graph)."""
    return modules_code_version(defining_modules(classes))


@lru_cache(maxsize=None)
def modules_code_version(modules: tuple[str, ...]) -> str:
    """The package version, the libraries' versions and a hash of the sources of the given modules, of
    every featurepipe module they import and of decoding."""
    h = hashlib.sha256(f"{__version__};{_library_versions()}".encode())
    names = {m for name in modules for m in import_closure(name)} | {"featurepipe.datasets.decode"}
    for name in sorted(names):
        path = _source_file(name)
        if path is not None:
            h.update(name.encode())
            h.update(path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:16]}"
