"""What each CLI command does, callable from Python: config in, results out."""
from __future__ import annotations

from pathlib import Path

from .config import Config, ConfigError
from .datasets.sources import Dataset, open_dataset
from .errors import ExtractError
from .fingerprint import code_version, digest
from .store import ExtractResult, FeatureStore


def config_dataset(cfg: Config) -> Dataset:
    """The config's data set, materialising the built-in one into the cache folder on first use."""
    if cfg.dataset.builtin:
        from .datasets.builtin import materialize_demo

        path = materialize_demo(Path(cfg.run.cache_dir).expanduser() / "datasets" / cfg.dataset.builtin)
    else:
        path = Path(cfg.dataset.path).expanduser()
    try:
        return open_dataset(path, cfg.dataset.kind, cfg.dataset.hash)
    except (OSError, ValueError) as e:
        raise ConfigError(f"dataset.path: {e}") from None


def _require_pipeline(cfg: Config):
    if cfg.pipeline is None:
        raise ConfigError("pipeline: missing (this command needs a pipeline: preprocess steps and an extractor)")
    return cfg.pipeline


def recipe(cfg: Config, dataset: Dataset) -> str:
    """Everything that decides an entry's key without building the pipeline: the pipeline as written,
    the data set's identity, the code version and the decoding limit."""
    return digest({"pipeline": _require_pipeline(cfg).model_dump(), "dataset": dataset.identity(), "code": code_version(),
                   "max_pixels": cfg.run.max_pixels})[:32]


def build_config_pipeline(cfg: Config):
    from .pipeline import SpecError, build_pipeline

    try:
        return build_pipeline(_require_pipeline(cfg).model_dump())
    except SpecError as e:
        raise ConfigError(str(e)) from None


def fitted_pipeline(cfg: Config, dataset: Dataset, store: FeatureStore):
    """The config's pipeline, fitted on the training split when it is data-driven.

    A fit is stored under ``<cache>/pipelines/`` keyed by the pipeline as written, the training items'
    identity and the code version, and reused from there: extraction never refits silently, and a
    changed setting or training set gets a new fit.
    """
    from .pipeline import load_state, save_state
    from .runner import fit_pipeline

    pipeline = build_config_pipeline(cfg)
    if not pipeline.requires_fit:
        return pipeline
    train = dataset.subset("train") if dataset.splits is not None else dataset
    fit_key = digest({"pipeline": cfg.pipeline.model_dump(), "train": train.identity(), "code": code_version(),
                      "max_pixels": cfg.run.max_pixels})[:32]
    path = store.root / "pipelines" / fit_key
    if (path / "state.json").exists():
        return load_state(pipeline, path)
    fit_pipeline(pipeline, dataset, jobs=cfg.run.jobs, on_error=cfg.run.on_error, max_pixels=cfg.run.max_pixels,
                 chunk_rows=cfg.run.chunk_size, progress=cfg.run.progress)
    save_state(pipeline, path)
    return pipeline


def extract_features(cfg: Config, dataset: Dataset | None = None):
    """Extract (or resume, or reuse) the config's features; returns a ``store.ExtractResult``.

    A warm run whose recipe is already complete in the cache answers from the store's alias without
    importing the extractors.
    """
    dataset = dataset or config_dataset(cfg)
    store = FeatureStore(cfg.run.cache_dir)
    run_recipe = recipe(cfg, dataset)
    key = store.resolve(run_recipe)
    if key is not None:
        s = store.summary(key)
        if s["failed"] and cfg.run.on_error == "fail":
            path, reason = store.ledger(key)[0]
            raise ExtractError(f"{path}: {reason}")
        return ExtractResult(key, s["n"], s["ok"], s["failed"], store.path(key) / "errors.csv", 0.0, 0)
    from .runner import extract, warm_up_workers

    warm_up_workers(cfg.run.jobs, cfg.run.backend)
    pipeline = fitted_pipeline(cfg, dataset, store)
    result = extract(dataset, pipeline, store, chunk_rows=cfg.run.chunk_size, jobs=cfg.run.jobs,
                     backend=cfg.run.backend, scheduler=cfg.run.scheduler, on_error=cfg.run.on_error,
                     max_pixels=cfg.run.max_pixels, progress=cfg.run.progress)
    store.alias(run_recipe, result.key)
    return result
