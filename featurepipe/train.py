"""What ``featurepipe train``, ``evaluate`` and ``predict`` do: heads fitted on the store's features
(``fitting.py``), written to and read from trained-head folders (``trained.py``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .api import build_config_pipeline, config_dataset, extract_features, fitted_pipeline
from .config import Config, ConfigError
from .errors import ExtractError
from .fitting import TrainingData, fit_and_score, score_rows
from .plots import confusion_matrix, training_curves, validation_curve
from .store import FeatureStore
from .trained import check_features, load_trained, save_trained


def head_name(spec, index: int) -> str:
    return spec.name or f"{spec.model}{index}"


def check_heads(cfg: Config) -> None:
    """Refuse unknown head models or parameters before any work, naming the config key."""
    from . import catalog

    if not cfg.heads:
        raise ConfigError("heads: name at least one head to train")
    for i, spec in enumerate(cfg.heads):
        try:
            cls = catalog.get("head", spec.model)
        except ValueError as e:
            raise ConfigError(f"heads[{i}].model: {e}") from None
        bad = sorted(set(spec.params) - set(cls().get_params()))
        if bad:
            raise ConfigError(f"heads[{i}].params.{bad[0]}: unknown parameter of {cls.__name__}")


def training_data(cfg: Config, dataset=None) -> TrainingData:
    """Extract (or reuse) the config's features and those of its augmented training images."""
    dataset = dataset or config_dataset(cfg)
    if dataset.splits is None:
        raise ConfigError("dataset: training needs train/ and test/ splits (or a CSV split column)")
    key = extract_features(cfg, dataset).key
    augment = [extract_features(cfg, dataset, augment=spec).key for spec in cfg.train.augment]
    return TrainingData(FeatureStore(cfg.run.cache_dir), key, augment)


def train_heads(cfg: Config, output=None) -> list[dict]:
    """Train every head the config names on its (cached) features; returns their records."""
    check_heads(cfg)
    dataset = config_dataset(cfg)
    data = training_data(cfg, dataset)
    pipeline, _, _ = fitted_pipeline(cfg, dataset, data.store)
    records = []
    for i, spec in enumerate(cfg.heads):
        name = head_name(spec, i)
        folder = Path(output or cfg.output) / name
        print(f"training {name}: {spec.model} on {len(data.train_rows)} training images "
              f"(+{len(data.augment)} augmented copies) of {data.store.dimension(data.key)}-d features", flush=True)
        result = fit_and_score(data, {**spec.model_dump(), "name": name}, cfg.train.model_dump(),
                               verbose=cfg.run.progress, log=_log_point)
        record = result.record
        save_trained(folder, result, cfg.model_dump(), pipeline)
        (folder / "metrics.json").write_text(_metrics_json(record))
        training_curves(record["history"], folder / "curves.png", title=name)
        validation_curve(record["grid"], folder / "validation.png", title=f"{name}: validation accuracy over the grid")
        confusion_matrix(record["test"]["confusion_matrix"], record["classes"], folder / "confusion.png",
                         title=f"{name}: test accuracy {record['test']['accuracy']:.1%}")
        print(summary(record, folder), flush=True)
        records.append(record)
    return records


def _metrics_json(record: dict) -> str:
    import json

    return json.dumps({k: v for k, v in record.items() if k not in ("normalization", "parents", "what")}, indent=1)


def _log_point(split: int, n_splits: int, normalize, params: dict, accuracy: float) -> None:
    print(f"  split {split + 1}/{n_splits}  {describe_normalize(normalize)}  {_params_text(params)}: "
          f"validation {accuracy:.2%}", flush=True)


def describe_normalize(spec) -> str:
    """A normalisation spec as text: ``power(p=0.5) -> l2``."""
    steps = spec if isinstance(spec, (list, tuple)) else [] if spec in (None, "none") else [spec]
    if not steps:
        return "none"
    shown = []
    for step in steps:
        name, params = (step, {}) if isinstance(step, str) else next(iter(step.items()))
        shown.append(name + (f"({_params_text(params or {})})" if params else ""))
    return " -> ".join(shown)


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def summary(record: dict, folder) -> str:
    """The grid with validation scores (the parameters that vary), the chosen setting, and train,
    validation and test accuracy."""
    grid = record["grid"]
    varying = [k for k in grid[0]["params"] if len({str(r["params"].get(k)) for r in grid}) > 1]
    fixed = {k: v for k, v in record["chosen"]["params"].items() if k not in varying}
    searched = varying + (["normalize"] if len({str(r["normalize"]) for r in grid}) > 1 else [])
    lines = [f"  grid over {', '.join(searched) or 'nothing'}; fixed: {_params_text(fixed)}"]
    for row in grid:
        chosen = " <- chosen" if row["params"] == record["chosen"]["params"] and row["normalize"] == record["chosen"]["normalize"] else ""
        lines.append(f"  {describe_normalize(row['normalize']):<30} {_params_text({k: row['params'][k] for k in varying}):<30} "
                     f"{row['val_accuracy']:.2%}{chosen}")
    if record["at_edge"]:
        lines.append(f"  note: the chosen {', '.join(record['at_edge'])} is at the edge of its automatic grid")
    selection = record["selection"]
    how = f"{selection['splits']}-fold cross-validation" if selection["method"] == "kfold" else "a holdout split"
    lines.append(f"{record['head']}: chosen on {how}; train {record['train']['accuracy']:.1%}, validation "
                 f"{record['val']['accuracy']:.1%}, test {record['test']['accuracy']:.1%} "
                 f"({record['fit_seconds']:.1f} s to fit); saved to {folder}")
    return "\n".join(lines)


def evaluate(folder, split: str = "test") -> dict:
    """Score a trained head on a split of the data set it was trained for (features from the cache)."""
    trained = load_trained(folder)
    cfg = Config.model_validate(trained.config)
    dataset = config_dataset(cfg)
    data = training_data(cfg, dataset)
    pipeline, _, _ = fitted_pipeline(cfg, dataset, data.store)
    check_features(trained, pipeline, data.store.dimension(data.key))
    if split == "test":
        rows = data.test_rows
    else:
        from .selection import make_splits

        settings = cfg.train
        method, splits = make_splits(data.labels[data.train_rows], settings.selection, settings.validation_fraction,
                                     settings.folds, settings.seed)
        if split == "val" and (method != "holdout" or settings.refit):
            raise ConfigError("train: the head was refit on every training row after its selection"
                              if settings.refit else f"train.selection: the head was chosen by {method}; "
                              "there is no single validation split")
        rows = data.train_rows[splits[0].val] if split == "val" else data.train_rows
    return score_rows(data.store, data.key, rows, data.labels[rows], trained.model, trained.normalization,
                      trained.manifest["classes"])


def predict(folder, images, out=None, cache_dir=None):
    """Label every image below ``images`` (an unlabelled folder) with a trained head: CSV path,label,score.

    Returns (the CSV's path, the number of files skipped, the error ledger)."""
    from .core import restore_state
    from .datasets import open_dataset
    from .files import write_csv_atomic
    from .matrix import iter_blocks
    from .runner import extract

    trained = load_trained(folder)
    cfg = Config.model_validate(trained.config)
    cache = FeatureStore(cache_dir or cfg.run.cache_dir)
    dataset = open_dataset(images, kind="unlabelled")
    pipeline = build_config_pipeline(cfg)
    if trained.pipeline_state is not None:
        restore_state(pipeline, *trained.pipeline_state, f"{folder}/pipeline.npz")
    check_features(trained, pipeline, trained.manifest["feature_dim"])
    applied = _with_training_size(pipeline, trained.manifest.get("image_shape"))
    result = extract(dataset, applied, cache, chunk_rows=cfg.run.chunk_size, jobs=cfg.run.jobs,
                     on_error="skip", max_pixels=cfg.run.max_pixels, progress=cfg.run.progress)
    if result.n_ok == 0:
        raise ExtractError(f"{images}: no image could be read (see {result.ledger})")
    check_features(trained, pipeline, cache.dimension(result.key))
    items = cache.items(result.key)
    rows = np.flatnonzero(cache.status(result.key) == 1)
    labels, scores = np.empty(len(rows), object), np.empty(len(rows))
    for positions, block in iter_blocks(cache, result.key, rows):
        decision = trained.model.decision_function(trained.normalization.transform(block))
        decision = decision if decision.ndim == 2 else np.column_stack([-decision, decision])
        labels[positions] = trained.model.classes_[decision.argmax(axis=1)]
        scores[positions] = decision.max(axis=1)
    out = Path(out or Path(folder) / "predictions.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    ids = [items["ids"][r] for r in rows]
    write_csv_atomic(out, ["path", "label", "score"], ((i, l, f"{s:.6g}") for i, l, s in zip(ids, labels, scores)))
    return out, result.n_failed, result.ledger


def _with_training_size(pipeline, image_shape):
    """A pipeline whose features depend on the image size, with a resize to the training images' size in
    front, so that a head applies to images of any size as it was trained (the pipeline as it is when
    its output does not depend on the size, or when it resizes already)."""
    if not pipeline.size_dependent or not image_shape:
        return pipeline
    from .pipeline import FeaturePipeline
    from .preprocess import Resize

    print(f"resizing images to {image_shape[0]}x{image_shape[1]}, the size the head was trained on", flush=True)
    return FeaturePipeline(pipeline.extractor, (Resize(size=tuple(image_shape)), *pipeline.preprocess))
