"""A feature pipeline: preprocessing steps then one extractor, built from a config spec or in Python."""
from __future__ import annotations

from .extractors import Extractor, create_extractor, get_extractor_class
from .extractors.base import ParamError, Stage
from .preprocess import Preprocessor


class SpecError(ValueError):
    """A pipeline spec entry that cannot be built; the message starts with its dotted config path."""


class FeaturePipeline(Extractor):
    """``preprocess`` steps (image -> image) in order, then ``extractor`` (images -> float32 rows)."""

    name = "pipeline"

    def __init__(self, extractor=None, preprocess=()):
        self.extractor = extractor
        self.preprocess = preprocess

    @property
    def size_dependent(self):
        fixed = any(getattr(step, "fixes_size", False) for step in self.preprocess)
        return self.extractor.size_dependent and not fixed

    @property
    def requires_fit(self):
        return getattr(self.extractor, "requires_fit", False)

    def check_params(self):
        if not isinstance(self.extractor, Extractor):
            raise ParamError(f"extractor: must be an extractor, got {self.extractor!r}")
        for step in self.preprocess:
            if not isinstance(step, Preprocessor):
                raise ParamError(f"preprocess: {step!r} is not a preprocessing step")
            step.check_params()
        self.extractor.check_params()

    def prepare(self, images):
        """Apply the preprocessing steps: images -> images (a stacked batch when sizes agree)."""
        for step in self.preprocess:
            images = step.transform(images)
        return images

    def fit(self, images, y=None):
        self.check_params()
        self.extractor.fit(self.prepare(images), y)
        return self

    def transform(self, images):
        self.check_params()
        return self.extractor.transform(self.prepare(images))

    def describe(self):
        return {"name": self.name, "preprocess": [s.describe() for s in self.preprocess],
                "extractor": self.extractor.describe()}


def _is_stage_spec(value) -> bool:
    if isinstance(value, dict) and len(value) == 1:
        try:
            get_extractor_class(next(iter(value)))
            return True
        except ValueError:
            return False
    return False


def build_stage(spec, path: str) -> Stage:
    """Build one registered stage from ``{name: {param: value}}``; nested stage specs are built too."""
    if not (isinstance(spec, dict) and len(spec) == 1):
        raise SpecError(f"{path}: expected one mapping {{name: {{parameters}}}}, got {spec!r}")
    name, params = next(iter(spec.items()))
    params = {} if params is None else params
    try:
        get_extractor_class(name)
    except ValueError as e:
        raise SpecError(f"{path}: {e}") from None
    if not isinstance(params, dict):
        raise SpecError(f"{path}.{name}: parameters must be a mapping, got {params!r}")
    built = {}
    for key, value in params.items():
        if isinstance(value, list) and value and all(_is_stage_spec(v) for v in value):
            value = [build_stage(v, f"{path}.{name}.{key}[{i}]") for i, v in enumerate(value)]
        elif _is_stage_spec(value):
            value = build_stage(value, f"{path}.{name}.{key}")
        elif isinstance(value, list):
            value = tuple(value)
        built[key] = value
    try:
        return create_extractor(name, **built)
    except ParamError as e:
        raise SpecError(f"{path}.{name}.{e}") from None
    except (TypeError, ValueError) as e:
        raise SpecError(f"{path}.{name}: {e}") from None


def build_pipeline(spec: dict, path: str = "pipeline") -> FeaturePipeline:
    """``{"preprocess": [{name: params}, ...], "extractor": {name: params}}`` -> ``FeaturePipeline``."""
    steps = [build_stage(s, f"{path}.preprocess[{i}]") for i, s in enumerate(spec.get("preprocess") or [])]
    for i, step in enumerate(steps):
        if step.kind != "preprocess":
            raise SpecError(f"{path}.preprocess[{i}]: {step.name!r} is an extractor, not a preprocessing step")
    extractor = build_stage(spec.get("extractor"), f"{path}.extractor")
    if extractor.kind != "extractor":
        raise SpecError(f"{path}.extractor: {extractor.name!r} is a preprocessing step, not an extractor")
    return FeaturePipeline(extractor, tuple(steps))


def iter_stages(stage: Stage, prefix: str = ""):
    """(dotted path, stage) of ``stage`` and every stage nested in its parameters, depth first."""
    yield prefix, stage
    for name, value in stage.get_params(deep=False).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(values):
            if isinstance(item, Stage):
                sub = f"{name}.{i}" if isinstance(value, (list, tuple)) else name
                yield from iter_stages(item, f"{prefix}{sub}.")


def save_state(pipeline: FeaturePipeline, path) -> None:
    """Write the fitted state of every stage: arrays to ``state.npz``, other values to ``state.json``."""
    import json
    import os
    from pathlib import Path

    import numpy as np

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    arrays, values = {}, {}
    for prefix, stage in iter_stages(pipeline):
        for name, value in stage.fitted_state().items():
            (arrays if isinstance(value, np.ndarray) else values)[prefix + name] = value
    from .store import write_json_atomic

    with open(path / "state.npz.partial", "wb") as f:
        np.savez(f, **arrays)
    os.replace(path / "state.npz.partial", path / "state.npz")
    # state.json last, written atomically: its presence means the state is complete.
    write_json_atomic(path / "state.json", json.loads(json.dumps({"fingerprint": pipeline.fingerprint(),
                                                                  "values": values}, default=lambda v: v.item())))


def load_state(pipeline: FeaturePipeline, path) -> FeaturePipeline:
    """Restore what ``save_state`` wrote into a pipeline built from the same spec; checks the fingerprint."""
    import json
    from pathlib import Path

    import numpy as np

    path = Path(path)
    saved = json.loads((path / "state.json").read_text())
    with np.load(path / "state.npz", allow_pickle=False) as arrays:
        state = {**saved["values"], **{k: arrays[k] for k in arrays.files}}
    stages = dict(iter_stages(pipeline))
    for dotted, value in state.items():
        prefix, _, name = dotted.rpartition(".")
        setattr(stages[prefix + "." if prefix else ""], name, value)
    if pipeline.fingerprint() != saved["fingerprint"]:
        raise ValueError(f"{path}: the saved state does not belong to this pipeline (fingerprint differs)")
    return pipeline
