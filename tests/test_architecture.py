"""The import graph of featurepipe has no cycle, between modules or between subpackages; the neutral core
imports nothing above it; the heads never import the feature side. Imports inside functions count."""
from pathlib import Path

import pytest

from featurepipe.fingerprint import import_closure, module_imports

PACKAGE = Path(__file__).resolve().parent.parent / "featurepipe"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


GRAPH = {name: set(module_imports(name, packages=True)) for name in MODULES}  # what runs on import


def find_cycle(graph: dict) -> list | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def unit(module: str) -> str:
    """A module's subpackage (``featurepipe.heads``), or the module itself at the top level."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or MODULES[module].name == "__init__.py" else module


def test_no_cycle_between_modules():
    # A package's __init__ re-exports its modules: it may import them (the edge back is the cycle to avoid).
    graph = {m: {t for t in ts if not (MODULES[t].name == "__init__.py" and m.startswith(t + "."))}
             for m, ts in GRAPH.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_cycle_between_subpackages():
    units: dict = {}
    for module, targets in GRAPH.items():
        units.setdefault(unit(module), set()).update(unit(t) for t in targets if unit(t) != unit(module))
    units.pop("featurepipe", None)  # the package's lazy __init__ reaches everything by name only
    for targets in units.values():
        targets.discard("featurepipe")
    assert find_cycle(units) is None, " -> ".join(find_cycle(units))


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("featurepipe.core")))
def test_core_imports_nothing_above_it(module):
    assert {t for t in GRAPH[module] if not t.startswith("featurepipe.core")} <= {"featurepipe.fingerprint",
                                                                                   "featurepipe._version"}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("featurepipe.heads")))
def test_heads_never_import_the_feature_side(module):
    allowed = ("featurepipe.heads", "featurepipe.core", "featurepipe.fingerprint", "featurepipe._version")
    assert all(t.startswith(allowed) for t in GRAPH[module]), GRAPH[module]


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_a_stage_code_version_covers_its_own_modules_only():
    assert "featurepipe.extractors.hog" not in import_closure("featurepipe.extractors.bovw")
    assert "featurepipe.local.sift" not in import_closure("featurepipe.extractors.bovw")
    assert {"featurepipe.local.kmeans", "featurepipe.core.stage"} <= import_closure("featurepipe.extractors.bovw")


def test_a_plugin_stage_version_follows_its_source(tmp_path, monkeypatch):
    import importlib
    import sys

    from featurepipe import fingerprint

    source = "from featurepipe.extractors import Extractor\n\n\nclass Plugin(Extractor):\n    scale = {}\n"
    (tmp_path / "fp_plugin.py").write_text(source.format(1))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fp_plugin")
    first = module.Plugin().code_version()
    (tmp_path / "fp_plugin.py").write_text(source.format(2))
    fingerprint.module_imports.cache_clear()
    fingerprint.modules_code_version.cache_clear()
    assert module.Plugin().code_version() != first
    sys.modules.pop("fp_plugin")


def test_the_architecture_page_names_every_module_and_only_modules_that_exist():
    import re

    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`([\w./]+(?:\.py|/))`", page))
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    packages = {str(p.parent.relative_to(PACKAGE)) + "/" for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE}
    unnamed = sorted(m for m in modules if m not in named
                     and not (m.endswith("/__init__.py") and m.removesuffix("__init__.py") in named)
                     and m != "__init__.py")
    assert not unnamed, f"docs/architecture.md does not name {unnamed}"
    missing = sorted(n for n in named if n not in modules | packages
                     and not (PACKAGE.parent / n).exists())
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"
