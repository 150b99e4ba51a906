"""YAML run configs: schema, loading and ``--set key=value`` overrides. A bad key or value names itself."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .datasets.decode import MAX_PIXELS
from .errors import ConfigError  # noqa: F401  (re-exported: configs raise it)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetConfig(_Section):
    path: str | None = None
    builtin: Literal["demo"] | None = None
    kind: Literal["auto", "folder", "unlabelled", "csv"] = "auto"
    hash: bool = False

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.builtin is None):
            raise ValueError("give exactly one of dataset.path and dataset.builtin")
        return self


class PipelineConfig(_Section):
    preprocess: list[dict] = Field(default_factory=list)
    extractor: dict


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
    normalisation (else ``train.normalize``)."""

    name: str | None = None
    model: str
    params: dict = Field(default_factory=dict)
    normalize: Any = None


class BenchPipelineConfig(PipelineConfig):
    """A pipeline of the bench matrix, with, optionally, the normalisation(s) its features call for (else
    ``train.normalize``; a head's own ``normalize`` comes first), the training-time augmentation it calls
    for (else ``train.augment``) and the heads to pair it with (default all)."""

    normalize: Any = None
    augment: list | None = None
    heads: list[str] | None = None

    def train(self, train: "TrainConfig") -> "TrainConfig":
        """The bench's ``train`` settings with this pipeline's augmentation, when it names one."""
        return train if self.augment is None else train.model_copy(update={"augment": self.augment})

    def pipeline(self) -> PipelineConfig:
        """The pipeline alone: what keys its features and fit."""
        return PipelineConfig(preprocess=self.preprocess, extractor=self.extractor)


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
    """Apply ``key.sub=value`` overrides; values are parsed as YAML (``8``, ``[16, 16]``, ``null``)."""
    for item in overrides:
        dotted, sep, raw = item.partition("=")
        if not sep or not dotted:
            raise ConfigError(f"--set {item}: expected key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({getattr(e, 'problem', e)})") from None
        try:
            _set_dotted(tree, dotted.strip(), value)
        except (IndexError, ValueError, TypeError, AttributeError) as e:
            raise ConfigError(f"--set {item}: {e}") from None
    return tree


def _resolve_path(tree: dict, base: Path) -> None:
    """Make a relative ``dataset.path`` absolute against ``base`` (``~`` expanded)."""
    dataset = tree.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("path"), str):
        path = Path(dataset["path"]).expanduser()
        dataset["path"] = str(path if path.is_absolute() else base / path)


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"])
    got = f", got {e['input']!r}" if e["type"] not in ("missing",) and not isinstance(e["input"], dict) else ""
    return f"{where}: {e['msg']}{got}" if where else f"{e['msg']}"


def load_config(path, overrides: list[str] = (), values: dict | None = None) -> Config:
    """Read, override and validate a YAML config; any problem raises ``ConfigError`` as one line.

    ``overrides`` are ``key=value`` strings (values parsed as YAML); ``values`` maps dotted keys to values
    taken as they are (typed command-line options)."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}invalid YAML: {getattr(e, 'problem', e)}") from None
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
