"""What ``featurepipe train`` does: fit every head a config names on its (cached) features (``fitting.py``)
and write each one's trained-head folder (``trained.py``) with its metrics, figures and printed summary.

A head's folder is written whole in a fresh temporary folder beside it, then swapped in
(``files.swap_in``): a killed run leaves the previous run's folder or the new one, never a mix, and nothing
is written through a link that was in the old folder."""
from __future__ import annotations

import shutil
from pathlib import Path

from .checks import check_train
from .config import Config, HeadConfig
from .files import swap_in, temporary_sibling, write_json_atomic
from .extract import config_dataset, fitted_pipeline, training_data
from .fitting import TrainingData, fit_and_score, named_heads
from .plots import confusion_matrix, training_curves, validation_curve
from .summary import log_point, summary
from .head_folder import save_trained


def train_heads(cfg: Config, output=None) -> list[dict]:
    """Train every head the config names on its (cached) features; returns their records."""
    heads = named_heads(cfg)
    dataset = config_dataset(cfg)
    check_train(cfg, dataset, heads)
    data = training_data(cfg, dataset)
    pipeline, _, _ = fitted_pipeline(cfg, dataset, data.store)
    return [train_head(cfg, data, pipeline, head, Path(output or cfg.output) / head.name) for head in heads]


def train_head(cfg: Config, data: TrainingData, pipeline, head: HeadConfig, folder: Path) -> dict:
    """Fit ``head`` (named) on ``data`` and write its trained folder; returns its record (the model goes
    when this returns, with whatever it keeps for a warm start)."""
    print(f"training {head.name}: {head.model} on {len(data.train_rows)} training images "
          f"(+{len(data.augment)} augmented copies) of {data.store.dimension(data.key)}-d features", flush=True)
    result = fit_and_score(data, head, cfg.train, verbose=cfg.run.progress, log=log_point)
    record = result.record
    folder.parent.mkdir(parents=True, exist_ok=True)
    fresh = temporary_sibling(folder)
    try:
        write_run(fresh, result, cfg, pipeline, head.name)
        swap_in(fresh, folder)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    print(summary(record, folder), flush=True)
    return record


def write_run(folder: Path, result, cfg: Config, pipeline, name: str) -> None:
    """Write a head's whole folder: the trained head, ``metrics.json`` and the figures."""
    record = result.record
    save_trained(folder, result, cfg, pipeline)
    write_json_atomic(folder / "metrics.json", record)
    training_curves(record["history"], folder / "curves.png", title=name, validation=record["val"]["accuracy"])
    validation_curve(record["grid"], folder / "validation.png", title=f"{name}: validation accuracy over the grid")
    confusion_matrix(record["test"]["confusion_matrix"], record["classes"], folder / "confusion.png",
                     title=f"{name}: test accuracy {record['test']['accuracy']:.1%}")
