"""Keys follow the code: for every registered extractor, preprocessing step, normaliser and head, appending
a comment to any featurepipe module its computation reaches (traced while it fits and transforms or
predicts) moves its key, and appending one to a module of the other side does not."""
import pathlib
import sys
import threading
import warnings

import numpy as np
import pytest

import featurepipe
from featurepipe import fingerprint
from featurepipe.core import Stage

PACKAGE = pathlib.Path(featurepipe.__file__).resolve().parent
IMAGES = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
ROWS = np.random.default_rng(1).random((40, 6)).astype(np.float32)
LABELS = np.arange(40) % 3

# Small settings, so that a fit takes a moment; every other parameter keeps its default.
SMALL = {
    ("extractor", "bovw"): {"n_words": 4, "n_samples": 200, "max_iter": 2},
    ("extractor", "pca_sift"): {"n_words": 4, "n_samples": 200, "max_iter": 2, "n_components": 8},
    ("extractor", "fisher"): {"n_gaussians": 2, "n_samples": 200, "max_iter": 3, "n_components": 8},
    ("extractor", "concat"): {"extractors": [("hog", {"cells_per_block": (2, 2)}), ("hsv_hist", {})]},
    ("preprocess", "resize"): {"size": (16, 16)},
    ("normalizer", "pca_whiten"): {"n_components": 4},
    ("head", "linear"): {"max_iter": 3},
    ("head", "mlp"): {"hidden_layer_sizes": (4,), "max_iter": 3},
}
CASES = [(kind, name) for kind in ("extractor", "preprocess", "normalizer", "head") for name in featurepipe.list(kind)]
CASES.append(("head", "linear", "lbfgs"))  # the full-batch path: L-BFGS, preconditioners, row spaces
#: A module each side never computes with: the other side's.
UNRELATED = {"head": ("featurepipe.extractors.hog", "featurepipe.local.sift"),
             "other": ("featurepipe.heads.mlp", "featurepipe.heads.lbfgs")}


def build(kind, name, variant=None):
    params = dict(SMALL.get((kind, name), {}))
    if name == "concat":
        params["extractors"] = [featurepipe.create("extractor", e, **p) for e, p in params["extractors"]]
    if variant:
        params["optimizer"] = variant
    return featurepipe.create(kind, name, **params)


def run(stage: Stage) -> None:
    """Fit and use ``stage`` on small data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if stage.kind == "head":
            stage.fit(ROWS, LABELS).predict(ROWS)
        elif stage.kind == "normalizer":
            stage.fit(ROWS).transform(ROWS)
        else:
            stage.fit(IMAGES).transform(IMAGES)


def reached_modules(stage: Stage) -> set[str]:
    """The featurepipe modules whose functions run while ``stage`` fits and computes, in every thread."""
    files = set()

    def profile(frame, event, arg):
        if event == "call":
            files.add(frame.f_code.co_filename)

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        run(stage)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    modules = set()
    for file in files:
        path = pathlib.Path(file).resolve()
        if path.suffix == ".py" and PACKAGE in path.parents:
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def key_with_comment(stage: Stage, module: str | None, monkeypatch) -> str:
    """``stage``'s key when ``module``'s source ends with one more comment line (None: as it is)."""
    target = pathlib.Path(sys.modules[module].__file__).resolve() if module else None
    read_bytes, read_text = pathlib.Path.read_bytes, pathlib.Path.read_text

    def touched_bytes(path):
        data = read_bytes(path)
        return data + b"\n# a comment\n" if target is not None and path.resolve() == target else data

    def touched_text(path, *args, **kwargs):
        text = read_text(path, *args, **kwargs)
        return text + "\n# a comment\n" if target is not None and path.resolve() == target else text

    with monkeypatch.context() as patch:
        patch.setattr(pathlib.Path, "read_bytes", touched_bytes)
        patch.setattr(pathlib.Path, "read_text", touched_text)
        fingerprint.modules_code_version.cache_clear()
        try:
            return stage.fingerprint()
        finally:
            fingerprint.modules_code_version.cache_clear()


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_a_comment_in_any_module_a_stage_computes_with_moves_its_key(case, monkeypatch):
    kind, name, *variant = case
    stage = build(kind, name, *variant)
    reached = reached_modules(stage) - {"featurepipe.fingerprint"}  # what computes the key, not the values
    assert reached, "nothing traced"
    fresh = build(kind, name, *variant)
    before = key_with_comment(fresh, None, monkeypatch)
    stale = sorted(m for m in reached if key_with_comment(fresh, m, monkeypatch) == before)
    assert not stale, f"{kind} {name}: an edit to {stale} would serve stale results"
    for module in UNRELATED["head" if kind == "head" else "other"]:
        assert module not in reached
        assert key_with_comment(fresh, module, monkeypatch) == before, f"{module} moves the key of {kind} {name}"


def test_configs_that_mean_the_same_stage_share_a_key():
    plain = featurepipe.create("extractor", "bovw").fingerprint()
    spelled_out = featurepipe.create("extractor", "bovw", n_words=1600, descriptor="patches", pooling={"sum": {}},
                                     encoding={"triangle": {}}).fingerprint()
    assert plain == spelled_out
    assert featurepipe.create("extractor", "bovw", descriptor={"patches": {"size": 5}}).fingerprint() != plain


def test_a_fitted_head_key_follows_the_fit_path_and_its_normalisers(monkeypatch):
    from featurepipe.fitting import head_code_version

    def version(module):
        with monkeypatch.context() as patch:
            if module:
                target = pathlib.Path(sys.modules[module].__file__).resolve()
                read_bytes = pathlib.Path.read_bytes
                patch.setattr(pathlib.Path, "read_bytes", lambda path: read_bytes(path) + (
                    b"\n# a comment\n" if path.resolve() == target else b""))
            fingerprint.modules_code_version.cache_clear()
            try:
                return head_code_version("linear", {"alpha": "auto", "optimizer": "lbfgs"}, [["l1", "power"]])
            finally:
                fingerprint.modules_code_version.cache_clear()

    before = version(None)
    for module in ("featurepipe.selection", "featurepipe.matrix", "featurepipe.normalize", "featurepipe.heads.lbfgs"):
        assert version(module) != before, module
    assert version("featurepipe.extractors.hog") == before
