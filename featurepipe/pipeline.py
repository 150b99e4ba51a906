"""A feature pipeline: preprocessing steps then one extractor, built from a config spec or in Python."""
from __future__ import annotations

from . import extractors, local, preprocess  # noqa: F401  (they fill the registry with the stages specs name)
from .core import REGISTRY, Instance, ParamError, Sequence, Stage, iter_stages
from .extractors import Extractor
from .preprocess import Preprocessor

#: The kinds a pipeline spec can name: preprocessing steps, extractors, and the descriptors nested in them.
STAGE_KINDS = ("preprocess", "extractor", "descriptor")


class SpecError(ValueError):
    """A pipeline spec entry that cannot be built; the message starts with its dotted config path."""


class FeaturePipeline(Extractor):
    """``preprocess`` steps (image -> image) in order, then ``extractor`` (images -> float32 rows)."""

    name = "pipeline"
    _constraints = {
        "extractor": Instance(Extractor, "must be an extractor"),
        "preprocess": Sequence(Instance(Preprocessor, "be a preprocessing step"), min_length=0,
                               message="must be a list of preprocessing steps"),
    }

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

    def prepare(self, images):
        """Apply the preprocessing steps: images -> images (a stacked batch when sizes agree)."""
        for step in self.preprocess:
            images = step.transform(images)
        return images

    def fit(self, images, y=None):
        self.validate_params()
        self.extractor.fit(self.prepare(images), y)
        return self

    def features(self, images):
        self._ensure_valid()
        return self.extractor.features(self.prepare(images))

    def _feature_names(self, shape):
        """The extractor's names, for the images it was last given (after the preprocessing steps)."""
        return self.extractor.get_feature_names_out()

    def describe(self):
        return {"name": self.name, "preprocess": [s.describe() for s in self.preprocess],
                "extractor": self.extractor.describe()}


def _stage_kind(name) -> str | None:
    """The stage kind ``name`` is registered under, or None."""
    return next((kind for kind in STAGE_KINDS if REGISTRY.has(kind, name)), None)


def _is_stage_spec(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and _stage_kind(next(iter(value))) is not None


def build_stage(spec, path: str, kind: str | None = None) -> Stage:
    """Build one registered stage from ``{name: {param: value}}`` (of ``kind``, when given); nested stage
    specs in its parameters are built too."""
    if not (isinstance(spec, dict) and len(spec) == 1):
        raise SpecError(f"{path}: expected one mapping {{name: {{parameters}}}}, got {spec!r}")
    name, params = next(iter(spec.items()))
    params = {} if params is None else params
    found = _stage_kind(name)
    if kind is not None and found != kind:
        other = f"; {name!r} is a {found}" if found else ""
        raise SpecError(f"{path}: unknown {kind} {name!r}{other}; registered: {', '.join(REGISTRY.names(kind))}")
    if found is None:
        raise SpecError(f"{path}: unknown stage {name!r}; registered: "
                        f"{', '.join(n for k in STAGE_KINDS for n in REGISTRY.names(k))}")
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
        return REGISTRY.create(found, name, **built)
    except ParamError as e:
        raise SpecError(f"{path}.{name}.{e}") from None
    except (TypeError, ValueError) as e:
        raise SpecError(f"{path}.{name}: {e}") from None


def build_pipeline(spec, path: str = "pipeline") -> FeaturePipeline:
    """``{"preprocess": [{name: params}, ...], "extractor": {name: params}}``, or a config's pipeline section
    (an object with those two attributes) -> ``FeaturePipeline``."""
    preprocess, extractor = ((spec.get("preprocess"), spec.get("extractor")) if isinstance(spec, dict)
                             else (spec.preprocess, spec.extractor))
    steps = [build_stage(s, f"{path}.preprocess[{i}]", "preprocess") for i, s in enumerate(preprocess or [])]
    extractor = build_stage(extractor, f"{path}.extractor", "extractor")
    return FeaturePipeline(extractor, tuple(steps))


def fit_timings(pipeline: Stage) -> dict:
    """Seconds per fitting phase of every data-driven stage, keyed by dotted stage path + phase."""
    return {f"{prefix}{phase}": seconds for prefix, stage in iter_stages(pipeline)
            for phase, seconds in getattr(stage, "fit_timings_", {}).items()}
