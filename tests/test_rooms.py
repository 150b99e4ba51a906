"""The rooms outside the package: benchmark scripts share only ``benchmarks/harness.py`` and
``benchmarks/problems.py``, examples import no benchmark, and nothing in the package or its tests imports
benchmark code. The harness's command line and timings, on trivial work."""
import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS, EXAMPLES = ROOT / "benchmarks", ROOT / "examples"
SHARED = {"harness", "problems"}


def imported(path: Path, top_level=True) -> set[str]:
    """The modules ``path`` imports anywhere in its body (``from a import b`` counts as ``a`` and ``a.b``),
    or their top-level names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name.split(".")[0] for name in names} if top_level else names


BENCHMARK_NAMES = {p.stem for p in BENCHMARKS.glob("*.py")}


@pytest.mark.parametrize("script", sorted(BENCHMARK_NAMES - SHARED))
def test_a_benchmark_imports_no_other_script(script):
    assert imported(BENCHMARKS / f"{script}.py") & BENCHMARK_NAMES <= SHARED


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_an_example_imports_no_benchmark_code(example):
    assert not imported(EXAMPLES / example) & BENCHMARK_NAMES


def test_the_package_and_its_tests_import_no_benchmark_code():
    for path in [*(ROOT / "featurepipe").rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        assert not imported(path) & BENCHMARK_NAMES, path
        assert "featurepipe.machine" not in imported(path, top_level=False), path  # moved to the harness


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("harness", BENCHMARKS / "harness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parser_flags_take_their_type_and_default(harness):
    parser = harness.parser("doc", rows=2000, dead=0.2, skimage_images=200)
    assert vars(parser.parse_args([])) == {"rows": 2000, "dead": 0.2, "skimage_images": 200}
    assert vars(parser.parse_args(["--rows", "5", "--dead", "0.5", "--skimage-images", "3"])) == \
        {"rows": 5, "dead": 0.5, "skimage_images": 3}


def test_timed_rounds_interleave_the_methods(harness):
    calls, rounds_seen = [], []
    seconds = harness.timed_rounds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3,
                                   after_round=lambda s: rounds_seen.append(len(s["a"])))
    assert calls == ["a", "b"] * 3 and rounds_seen == [1, 2, 3]
    assert {name: len(values) for name, values in seconds.items()} == {"a": 3, "b": 3}
    best = harness.best_times({"a": lambda: None}, 2)
    assert set(best) == {"a"} and best["a"] >= 0


def test_the_machine_is_described(harness):
    info = harness.describe()
    assert info["cores"] >= 1 and len(info["load"]) == 3 and "numpy" in info
    assert harness.cpu_and_cores().endswith(f"{info['cores']} cores")
