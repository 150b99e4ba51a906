"""What ``featurepipe extract`` does, callable from Python: config in, features in the store out; and the
training rows of a config (its features with those of its augmented training images) that heads fit on."""
from __future__ import annotations

import time
from pathlib import Path

from .config import Config, ConfigError
from .datasets.sources import Dataset, open_dataset
from .errors import ExtractError
from .store import ExtractResult, FeatureStore, precision


def config_dataset(cfg: Config) -> Dataset:
    """The config's data set, materialising the built-in one into the cache on first use; with
    ``dataset.test_fraction``, its test split held out (``Dataset.hold_out_test``, seeded by ``train.seed``)."""
    if cfg.dataset.builtin:
        from .datasets.builtin import write_demo

        path = FeatureStore(cfg.run.cache_dir).dataset(cfg.dataset.builtin, write_demo)
    else:
        path = Path(cfg.dataset.path).expanduser()
    try:
        dataset = open_dataset(path, cfg.dataset.kind, cfg.dataset.hash)
    except FileNotFoundError as e:
        raise ConfigError(f"dataset.path: {e} (a config's path is relative to the config's folder; pass the folder "
                          "with --data FOLDER; README, 'Getting CIFAR-10 and 15-Scene', says how to make one)") from None
    except (OSError, ValueError, RuntimeError) as e:  # RuntimeError: the root itself is a symbolic link loop
        raise ConfigError(f"dataset.path: {e}") from None
    if cfg.dataset.test_fraction is None:
        return dataset
    try:
        return dataset.hold_out_test(cfg.dataset.test_fraction, cfg.train.seed)
    except ValueError as e:
        raise ConfigError(f"dataset.test_fraction: {e}") from None


def check_splits(dataset: Dataset) -> None:
    """Refuse a data set a head cannot be trained and tested on: no labels, or no train or test split."""
    if dataset.labels is None:
        raise ConfigError(f"dataset: {dataset.root} has no labels; training needs class sub-folders "
                          "(or a CSV label column)")
    splits = set(dataset.splits or ())
    if "test" not in splits:
        raise ConfigError(f"dataset: {dataset.root} has no test split (test/<class>/ folders or a CSV split column); "
                          "add one, or set dataset.test_fraction (e.g. 0.2) to hold out that share of each class")
    if "train" not in splits:
        raise ConfigError(f"dataset: {dataset.root} has no training split (train/<class>/ folders or a CSV split "
                          "column)")


def recipe(cfg: Config, dataset: Dataset, augment=None) -> str:
    """The alias key of a run: everything that decides its feature entry without fitting the pipeline (the
    unfitted pipeline's identity -- its description and the code behind it --, the data set's identity, the
    decoding limit, the augmentation of the training images, if any, and the storage precision)."""
    parts = {"augment": augment} if augment is not None else {}
    return FeatureStore.key("aliases", pipeline=build_config_pipeline(cfg).fingerprint(), dataset=dataset.identity(),
                            max_pixels=cfg.run.max_pixels, **parts, **_unchecked_formats(cfg),
                            **precision.key_part(cfg.pipeline.storage))


def _unchecked_formats(cfg: Config) -> dict:
    """The key part of ``run.allow_unchecked_formats``: none when false, so keys stay those of before."""
    return {"unchecked_formats": True} if cfg.run.allow_unchecked_formats else {}


def build_config_pipeline(cfg: Config, key: str = "pipeline"):
    """The config's pipeline, unfitted; a bad spec is a ``ConfigError`` naming its key (under ``key``)."""
    from .checks import built_pipeline, required_pipeline

    return built_pipeline(required_pipeline(cfg), key)


def fitted_pipeline(cfg: Config, dataset: Dataset, store: FeatureStore):
    """(pipeline, fit key or None, fit timings): the config's pipeline, fitted on the training split when
    it is data-driven.

    A fit is stored in the store's ``pipelines`` namespace, keyed by the unfitted pipeline's identity (its
    description and the code behind it, as every stage keys) and the training items' identity, and reused
    from there: extraction never refits silently, and a changed setting or training set gets a new fit.
    """
    from .core import stage_state
    from .runner import fit_pipeline

    pipeline = build_config_pipeline(cfg)
    if not pipeline.requires_fit:
        return pipeline, None, {}
    train = dataset.subset("train") if dataset.splits is not None else dataset
    fit_key = _fit_key(cfg, pipeline, train)
    timings = _restore_fit(store, fit_key, pipeline)
    if timings is not None:
        return pipeline, fit_key, timings
    timings = fit_pipeline(pipeline, dataset, jobs=cfg.run.jobs, on_error=cfg.run.on_error,
                           max_pixels=cfg.run.max_pixels, chunk_rows=cfg.run.chunk_size, progress=cfg.run.progress,
                           unchecked=cfg.run.allow_unchecked_formats)
    arrays, values = stage_state(pipeline)
    store.save_fitted(fit_key, arrays, values, {"fingerprint": pipeline.fingerprint(), "timings": timings,
                                                "what": f"{pipeline.extractor.name} fitted on {len(train)} images"})
    return pipeline, fit_key, timings


def stored_fitted_pipeline(cfg: Config, dataset: Dataset, store: FeatureStore):
    """The config's pipeline as ``fitted_pipeline`` would give it, when that needs no fitting: a pipeline that
    is not data-driven, or one whose fit on ``dataset``'s training split is in the store; else None."""
    pipeline = build_config_pipeline(cfg)
    if not pipeline.requires_fit:
        return pipeline
    train = dataset.subset("train") if dataset.splits is not None else dataset
    return pipeline if _restore_fit(store, _fit_key(cfg, pipeline, train), pipeline) is not None else None


def _fit_key(cfg: Config, pipeline, train: Dataset) -> str:
    return FeatureStore.key("pipelines", pipeline=pipeline.fingerprint(), train=train.identity(),
                            max_pixels=cfg.run.max_pixels, **_unchecked_formats(cfg))


def _restore_fit(store: FeatureStore, fit_key: str, pipeline):
    """Restore the fit stored under ``fit_key`` into ``pipeline``; its timings, or None when there is none."""
    from .core import restore_state

    saved = store.load_fitted(fit_key)
    if saved is None:
        return None
    arrays, values, record = saved
    restore_state(pipeline, arrays, values, record["fingerprint"], f"fitted pipeline {fit_key}")
    return record["timings"]


def extract_features(cfg: Config, dataset: Dataset | None = None, augment=None) -> ExtractResult:
    """Extract (or resume, or reuse) the config's features; returns a ``store.ExtractResult``.

    With ``augment`` (a preprocessing step spec such as ``"hflip"``), the features of the training images
    transformed by that step, through the same fitted pipeline: an entry of its own, whose rows follow
    the training items. A warm run whose recipe is already complete in the cache, with every chunk
    passing its checks, answers from the store's alias without importing the extractors.
    """
    start = time.perf_counter()  # a warm run's time is its listing and checks
    if dataset is None:
        from .checks import check_extract

        dataset = config_dataset(cfg)
        check_extract(cfg, dataset)
    store = FeatureStore(cfg.run.cache_dir)
    items = dataset if augment is None else dataset.subset("train")
    run_recipe = recipe(cfg, items, augment)
    key = store.resolve(run_recipe)
    if key is not None and not store.damaged_chunks(key):
        s = store.summary(key)
        if s["failed"] and cfg.run.on_error == "fail":
            path, reason = store.ledger(key)[0]
            raise ExtractError(f"{path}: {reason}")
        return _some_read(store, ExtractResult(key, s["n"], s["ok"], s["failed"], store.path(key) / "errors.csv",
                                               time.perf_counter() - start, 0))
    from .runner import extract, warm_up_workers

    warm_up_workers(cfg.run.jobs, cfg.run.backend)
    pipeline, fit_key, timings = fitted_pipeline(cfg, dataset, store)
    if augment is not None:
        pipeline = augmented(pipeline, augment)
    result = extract(items, pipeline, store, chunk_rows=cfg.run.chunk_size, jobs=cfg.run.jobs,
                     backend=cfg.run.backend, scheduler=cfg.run.scheduler, on_error=cfg.run.on_error,
                     max_pixels=cfg.run.max_pixels, progress=cfg.run.progress,
                     parents=[fit_key] if fit_key else [], fit=timings, unchecked=cfg.run.allow_unchecked_formats,
                     storage=cfg.pipeline.storage)
    store.alias(run_recipe, result.key)
    return _some_read(store, result)


def _some_read(store: FeatureStore, result: ExtractResult) -> ExtractResult:
    """``result``, refused (``ExtractError``) when not one image could be read: nothing to train or predict
    on. The message gives the first failure's reason and the ledger holding the others."""
    if result.n_ok:
        return result
    first = next(iter(store.ledger(result.key)), None)
    reason = f"; the first: {first[0]}: {first[1]}" if first else ""
    raise ExtractError(f"none of the {result.n_items} images could be read{reason} (every failure: {result.ledger})")


def training_data(cfg: Config, dataset: Dataset | None = None):
    """Extract (or reuse) the config's features and those of its augmented training images: a
    ``fitting.TrainingData``."""
    from .fitting import TrainingData

    dataset = dataset or config_dataset(cfg)
    check_splits(dataset)
    key = extract_features(cfg, dataset).key
    augment = [extract_features(cfg, dataset, augment=spec).key for spec in cfg.train.augment]
    data = TrainingData(FeatureStore(cfg.run.cache_dir), key, augment)
    for split, rows in (("training", data.train_rows), ("test", data.test_rows)):
        if not len(rows):
            raise ExtractError(f"none of the {split} images could be read (every failure: "
                               f"{data.store.path(key) / 'errors.csv'})")
    return data


def augmented(pipeline, spec, where: str = "train.augment"):
    """``pipeline`` with the preprocessing step ``spec`` (a name or ``{name: params}``) in front."""
    from .checks import built_step
    from .pipeline import FeaturePipeline

    return FeaturePipeline(pipeline.extractor, (built_step(spec, where), *pipeline.preprocess))
