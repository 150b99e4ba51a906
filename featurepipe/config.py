"""YAML run configs: schema, loading and ``--set key=value`` overrides. A bad key or value names itself."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .datasets.decode import MAX_PIXELS
from .errors import ConfigError  # noqa: F401  (re-exported: configs raise it)
from .limits import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_QUOTE, MAX_SET_BYTES, MAX_VALUES, cores, quote


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetConfig(_Section):
    path: str | None = None
    builtin: Literal["demo"] | None = None
    kind: Literal["auto", "folder", "unlabelled", "csv"] = "auto"
    hash: bool = False
    # A folder of class sub-folders without test/ (or train/ alone): this share of each class's images is the
    # test split, drawn with train.seed.
    test_fraction: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.builtin is None):
            raise ValueError("give exactly one of dataset.path and dataset.builtin")
        return self


class PipelineConfig(_Section):
    preprocess: list[dict] = Field(default_factory=list)
    extractor: dict
    # The precision the features are stored at: float16 halves the cache's disk and page cache (rows are read
    # back as float32); part of the feature entry's key, not of the pipeline's (its fit is shared).
    storage: Literal["float32", "float16"] = "float32"


class RunConfig(_Section):
    jobs: int = Field(1, ge=-1)  # -1: all cores
    chunk_size: int = Field(1024, ge=1)
    backend: Literal["loky", "dask"] = "loky"
    scheduler: str | None = None
    on_error: Literal["skip", "fail"] = "skip"
    cache_dir: str = Field(default_factory=lambda: os.environ.get("FEATUREPIPE_CACHE", "~/.cache/featurepipe"))
    max_pixels: int = Field(MAX_PIXELS, ge=1)
    allow_unchecked_formats: bool = False  # decode files whose header gives no size (no pixel limit before decoding)
    progress: bool = True

    @field_validator("jobs")
    @classmethod
    def _jobs_not_zero(cls, jobs):
        if jobs == 0:
            raise ValueError("must be a number of processes, or -1 for all cores")
        return jobs

    @model_validator(mode="after")
    def _jobs_within_cores(self):
        """More local workers than cores only adds processes (and hits process limits): capped, with a
        notice. A Dask cluster decides its own workers."""
        if self.backend == "loky" and self.jobs > cores():
            print(f"featurepipe: run.jobs: {self.jobs} is more than this machine's {cores()} cores; using {cores()}",
                  file=sys.stderr)
            self.jobs = cores()
        return self


class TrainConfig(_Section):
    """How heads are fitted and chosen: every setting is chosen on the training split only."""

    selection: Literal["auto", "holdout", "kfold"] = "auto"  # auto: k-fold when a class has few training images
    validation_fraction: float = Field(0.1, gt=0, lt=1)      # holdout: share of the training split
    folds: int = Field(5, ge=2)                              # kfold: number of folds
    refit: bool = True                                       # refit the chosen setting on the whole training split
    normalize: Any = "standardize"                           # normaliser chain, or [[chain], [chain]] to search
    augment: list = Field(default_factory=list)              # preprocessing steps whose outputs add training rows
    seed: int = 0


class HeadConfig(_Section):
    """One head: a registered model, its parameters (a list searches them) and, optionally, its own
    normalisation (else ``train.normalize``) and, in ``train``, its own pipeline (else ``pipeline``); or the
    late fusion of other heads of the config (``late``: their names; ``fusion.py``)."""

    name: str | None = None
    model: str | None = None
    params: dict = Field(default_factory=dict)
    normalize: Any = None
    pipeline: PipelineConfig | None = None
    late: list[str] | None = None

    @model_validator(mode="after")
    def _model_or_late(self):
        if (self.model is None) == (self.late is None):
            raise ValueError("give exactly one of model (a registered head) and late (the names of heads to fuse)")
        if self.late is not None and (self.params or self.normalize is not None or self.pipeline is not None):
            raise ValueError("a late fusion takes its members' features and settings: no params, normalize or pipeline")
        return self


class BenchPipelineConfig(PipelineConfig):
    """A pipeline of the bench matrix, with, optionally, the normalisation(s) its features call for (else
    ``train.normalize``; a head's own ``normalize`` comes first), the training-time augmentation it calls
    for (else ``train.augment``) and the heads to pair it with (default all). Or, instead of an extractor,
    the late fusion of other pipelines of the matrix (``late``: their names): each head's cells on them
    fused into one (``fusion.py``)."""

    extractor: dict | None = None
    normalize: Any = None
    augment: list | None = None
    heads: list[str] | None = None
    late: list[str] | None = None

    @model_validator(mode="after")
    def _extractor_or_late(self):
        if (self.extractor is None) == (self.late is None):
            raise ValueError("give exactly one of extractor and late (the names of pipelines to fuse)")
        if self.late is not None and (self.preprocess or self.normalize is not None or self.augment is not None):
            raise ValueError("a late fusion takes its members' features and settings: no preprocess, normalize "
                             "or augment")
        return self

    def train(self, train: "TrainConfig") -> "TrainConfig":
        """The bench's ``train`` settings with this pipeline's augmentation, when it names one."""
        return train if self.augment is None else train.model_copy(update={"augment": self.augment})

    def pipeline(self) -> PipelineConfig:
        """The pipeline alone: what keys its features and fit."""
        return PipelineConfig(preprocess=self.preprocess, extractor=self.extractor, storage=self.storage)


class BenchConfig(_Section):
    pipelines: dict[str, BenchPipelineConfig]
    learned: list[str] = Field(default_factory=lambda: ["raw"])
    quick: dict[Literal["train", "test"], int] = Field(default_factory=lambda: {"train": 100, "test": 50})


class Config(_Section):
    dataset: DatasetConfig
    pipeline: PipelineConfig | None = None
    bench: BenchConfig | None = None
    run: RunConfig = Field(default_factory=RunConfig)
    heads: list[HeadConfig] = Field(default_factory=list)
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: str = "runs"

    def for_head(self, head: HeadConfig) -> "Config":
        """This config with the head's own pipeline, when it names one."""
        return self if head.pipeline is None else self.model_copy(update={"pipeline": head.pipeline})


def _set_dotted(tree: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        if isinstance(node, list):
            node = node[int(k)]
        else:
            node = node.setdefault(k, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"--set {dotted}: {k} is not a mapping")
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides; values are parsed as YAML (``8``, ``[16, 16]``, ``null``), each
    bounded as a config file is (``MAX_SET_BYTES``, alias expansion, depth)."""
    for item in overrides:
        dotted, sep, raw = item.partition("=")
        if not sep or not dotted:
            raise ConfigError(f"--set {quote(item)[1:-1]}: expected key=value")
        where = f"--set {quote(item)[1:-1]}"
        if len(raw.encode()) > MAX_SET_BYTES:
            raise ConfigError(f"{where}: the value has {len(raw.encode())} bytes; at most {MAX_SET_BYTES}")
        value = parse_yaml(raw, where)
        try:
            _set_dotted(tree, dotted.strip(), value)
        except (IndexError, ValueError, TypeError, AttributeError) as e:
            raise ConfigError(f"{where}: {e}") from None
    return tree


def parse_yaml(text: str, where: str):
    """The value a YAML text holds, refused (``ConfigError`` naming ``where``) when it is invalid, nests
    deeper than ``MAX_DEPTH`` or holds more than ``MAX_VALUES`` values once its aliases are expanded:
    the node graph is composed and measured first, so a bomb is refused without being expanded."""
    loader = yaml.SafeLoader(text)
    try:
        _check_written_depth(yaml.parse(text, Loader=yaml.SafeLoader), where)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{where}: {line}invalid YAML: {getattr(e, 'problem', None) or e}") from None
    except RecursionError:
        raise ConfigError(f"{where}: values nest deeper than {MAX_DEPTH} levels") from None
    except ConfigError:
        raise
    except ValueError as e:  # a scalar Python will not convert (an integer of more than 4,300 digits)
        raise ConfigError(f"{where}: a value that cannot be read: {e}") from None
    finally:
        loader.dispose()


def _check_written_depth(events, where: str) -> None:
    """Refuse a document whose collections nest deeper than ``MAX_DEPTH`` as written, from its parse events
    (no recursion), before the node graph is composed (which recurses once per level)."""
    frames: list[dict] = []  # open collections: their path, and where the next node goes in them
    for event in events:
        if isinstance(event, yaml.CollectionEndEvent):
            frames.pop()
        elif isinstance(event, yaml.NodeEvent):
            path = _next_path(frames, event)
            if isinstance(event, yaml.CollectionStartEvent):
                frames.append({"path": path, "mapping": isinstance(event, yaml.MappingStartEvent),
                               "want_key": True, "index": 0})
                if len(frames) > MAX_DEPTH:
                    raise ConfigError(f"{where}: {_cut(path)}: values nest deeper than {MAX_DEPTH} levels")


def _next_path(frames: list[dict], event) -> str:
    """The dotted path of the node ``event`` starts, advancing its parent (key, then value; next index)."""
    if not frames:
        return ""
    parent = frames[-1]
    if not parent["mapping"]:
        parent["index"] += 1
        return f"{parent['path']}[{parent['index'] - 1}]"
    parent["want_key"] = not parent["want_key"]
    if not parent["want_key"]:  # this node is a key
        parent["key"] = event.value if isinstance(event, yaml.ScalarEvent) else "?"
        return parent["path"]
    return _child_path(parent["path"], parent["key"])


def _child_path(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _cut(path: str) -> str:
    """A path cut to ``MAX_QUOTE`` characters, its start (the config key) kept."""
    return path if len(path) <= MAX_QUOTE else f"{path[:MAX_QUOTE - 3]}..."


def _check_size(root: yaml.Node, where: str) -> None:
    """Refuse a node graph deeper than ``MAX_DEPTH`` or of more than ``MAX_VALUES`` values once expanded,
    naming the path of the first node (depth first) past a bound.

    Each node is measured once (an alias is the same node object: its size is reused, not recounted),
    depth first without recursion. A node met again while its own children are being measured is an
    alias inside the value it names."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values once expanded, depth)
    open_nodes: set[int] = set()
    stack = [(root, "", False)]
    while stack:
        node, path, children_measured = stack.pop()
        if children_measured:
            sizes[id(node)] = _measure(node, sizes, f"{where}: {_cut(path)}" if path else where)
            open_nodes.discard(id(node))
        elif id(node) in open_nodes:
            raise ConfigError(f"{where}: {_cut(path)}: a YAML alias refers to a value that contains it")
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, path, True))
            stack.extend((child, child_path, False) for child, child_path in _children(node, path))


def _measure(node: yaml.Node, sizes: dict, where: str) -> tuple[int, int]:
    """(values once expanded, depth) of ``node`` from those of its children, within the bounds."""
    children = [sizes[id(child)] for child, _ in _children(node, "")]
    size = 1 + sum(s for s, _ in children)
    depth = 1 + max((d for _, d in children), default=0)
    if depth > MAX_DEPTH:
        raise ConfigError(f"{where}: values nest deeper than {MAX_DEPTH} levels")
    if size > MAX_VALUES:
        raise ConfigError(f"{where}: more than {MAX_VALUES} values once YAML aliases are expanded (an alias bomb?)")
    return size, depth


def _children(node: yaml.Node, path: str) -> list:
    """(child node, its path) of a collection node: a mapping's keys and values, a sequence's items."""
    if isinstance(node, yaml.MappingNode):
        return [pair for k, v in node.value
                for pair in ((k, path), (v, _child_path(path, k.value if isinstance(k, yaml.ScalarNode) else "?")))]
    if isinstance(node, yaml.SequenceNode):
        return [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
    return []


def _resolve_path(tree: dict, base: Path) -> None:
    """Make a relative ``dataset.path`` absolute against ``base`` (``~`` expanded)."""
    dataset = tree.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("path"), str):
        path = Path(dataset["path"]).expanduser()
        dataset["path"] = str(path if path.is_absolute() else base / path)


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"])
    got = f", got {quote(e['input'])}" if e["type"] not in ("missing",) and not isinstance(e["input"], dict) else ""
    return f"{where}: {e['msg']}{got}" if where else f"{e['msg']}"


def _read_config(path: Path):
    """The YAML value of a config file of at most ``MAX_CONFIG_BYTES`` (see ``parse_yaml``)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: more than {MAX_CONFIG_BYTES} bytes; a config is at most {MAX_CONFIG_BYTES >> 10} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return parse_yaml(text, str(path))


def load_config(path, overrides: list[str] = (), values: dict | None = None) -> Config:
    """Read, override and validate a YAML config; any problem raises ``ConfigError`` as one line.

    ``overrides`` are ``key=value`` strings (values parsed as YAML); ``values`` maps dotted keys to values
    taken as they are (typed command-line options)."""
    path = Path(path)
    tree = _read_config(path) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        _resolve_path(tree, path.resolve().parent)  # a path written in the file is relative to the file
        tree = apply_overrides(tree, list(overrides))
        for dotted, value in (values or {}).items():
            _set_dotted(tree, dotted, value)
        _resolve_path(tree, Path.cwd())  # one given on the command line, to the working folder
        return Config.model_validate(tree)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except ValidationError as e:
        raise ConfigError(f"{path}: {_first_error(e)}") from None
