"""The README's Python code runs as written: every ```python block, in order, in one namespace, from an
empty folder (grey ``(n, H, W)`` batches included)."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_readme_python_runs_as_written(tmp_path, monkeypatch):
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)  # noqa: S102 -- our own README
    assert namespace["textures"].ndim == 3 and hasattr(namespace["grey"], "classes_")  # a grey batch was fitted
    assert list(namespace["table"].columns) == list(namespace["hsv"].get_feature_names_out())
