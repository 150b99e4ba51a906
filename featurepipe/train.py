"""What ``featurepipe train`` does: fit every head a config names on its (cached) features (``fitting.py``)
and write each one's trained-head folder (``trained.py``) with its metrics and figures, then fuse those a
``late`` head names (``fusion.py``, ``fused_folder.py``); print a line per head and a table comparing them
(``summary.py``).

Each run has a folder of its own: one that already holds something is refused unless ``force`` says to
replace the heads of the same names. A head's folder is written whole in a fresh temporary folder beside
it, then swapped in (``files.swap_in``): a killed run leaves the previous run's folder or the new one, never
a mix, and nothing is written through a link that was in the old folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .checks import check_train
from .config import Config, ConfigError, HeadConfig
from .files import swap_in, temporary_sibling, write_json_atomic
from .extract import config_dataset, fitted_pipeline, training_data
from .fitting import TrainingData, fit_and_score, head_key, named_heads
from .fused_folder import save_fused
from .fusion import Member, fit_fusion
from .metrics import accuracy_interval
from .plots import confusion_matrix, training_curves, validation_curve
from .runner import map_in_processes
from .summary import grid_text, head_line, heads_table, log_point
from .head_folder import save_trained


def train_heads(cfg: Config, output=None, *, force: bool = False, verbose: bool = False) -> list[dict]:
    """Train every head the config names on its (cached) features -- the config's pipeline's, or the head's
    own -- into the run folder ``output`` (default the config's ``output``), then its late fusions of those
    heads; returns their records. A run folder that is not empty is refused unless ``force``. ``verbose``:
    also each grid point's validation accuracy per split, each head's grid and, with ``run.progress``, the
    heads' epoch bars."""
    heads = named_heads(cfg)
    run = run_folder(Path(output or cfg.output).expanduser().absolute(), force)
    dataset = config_dataset(cfg)
    check_train(cfg, dataset, heads)
    records, members, prepared = [], {}, {}
    for head in (h for h in heads if h.late is None):
        sub = cfg.for_head(head)
        spec = json.dumps(sub.pipeline.model_dump(), sort_keys=True)
        if spec not in prepared:
            data = training_data(sub, dataset)
            prepared[spec] = data, fitted_pipeline(sub, dataset, data.store)[0]
        data, pipeline = prepared[spec]
        records.append(train_head(sub, data, pipeline, head, run / head.name, verbose))
        members[head.name] = Member(head.name, head_key(data, head, cfg.train), data)
    for head in (h for h in heads if h.late is not None):
        records.append(train_fusion(head.name, [members[name] for name in head.late], run, verbose))
    print(heads_table(records, run), flush=True)
    return records


def run_folder(folder: Path, force: bool) -> Path:
    """``folder``, refused (``ConfigError``) when it already holds anything and not ``force``: a new run never
    replaces an earlier one's heads without being told to."""
    if not force and folder.is_dir() and any(folder.iterdir()):
        raise ConfigError(f"output: {folder} already holds a run; pass --force to replace its heads, "
                          "or --output DIR for a new folder")
    return folder


def train_head(cfg: Config, data: TrainingData, pipeline, head: HeadConfig, folder: Path,
               verbose: bool = False) -> dict:
    """Fit ``head`` (named) on ``data``, write its trained folder and print its line; returns its record (the
    model goes when this returns, with whatever it keeps for a warm start)."""
    from tqdm.auto import tqdm

    if verbose:
        print(f"training {head.name}: {head.model} on {len(data.train_rows)} training images "
              f"(+{len(data.augment)} augmented copies) of {data.store.dimension(data.key)}-d features", flush=True)
    # Without --verbose, a bar counting the fits, on a terminal only, and wiped when the head is done.
    bar = tqdm(desc=f"{head.name}: fitting", unit="fit", leave=False,
               disable=None if cfg.run.progress and not verbose else True)
    fits = 0  # grid points scored: none when the head came from the cache

    def scored(*point):
        nonlocal fits
        fits += 1
        if verbose:
            log_point(*point)
        else:
            bar.update()

    try:
        result = fit_and_score(data, head, cfg.train, verbose=verbose and cfg.run.progress, log=scored,
                               map_tasks=map_in_processes(cfg.run.jobs))
    finally:
        bar.close()
    record = result.record
    folder.parent.mkdir(parents=True, exist_ok=True)
    fresh = temporary_sibling(folder)
    try:
        write_run(fresh, result, cfg, pipeline, head.name)
        swap_in(fresh, folder)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    if verbose:
        print(grid_text(record), flush=True)
    print(head_line(record, folder, cached=not fits), flush=True)
    return record


def train_fusion(name: str, members: list[Member], run: Path, verbose: bool = False) -> dict:
    """Fuse the heads ``members`` (trained into ``run`` already) as head ``name`` (``fusion.py``), write its
    folder (``fused_folder.py``, with ``metrics.json``) and print its line; returns its record."""
    fused = fit_fusion(name, members)
    folder = run / name
    fresh = temporary_sibling(folder)
    try:
        save_fused(fresh, fused, [run / member.name for member in members])
        write_json_atomic(fresh / "metrics.json", with_intervals(fused.record))
        swap_in(fresh, folder)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    if verbose:
        print(grid_text(fused.record), flush=True)
    print(head_line(fused.record, folder, cached=fused.cached), flush=True)
    return fused.record


def write_run(folder: Path, result, cfg: Config, pipeline, name: str) -> None:
    """Write a head's whole folder: the trained head, ``metrics.json`` and the figures."""
    record = result.record
    save_trained(folder, result, cfg, pipeline)
    write_json_atomic(folder / "metrics.json", with_intervals(record))
    training_curves(record["history"], folder / "curves.png", title=name, validation=record["val"]["accuracy"])
    validation_curve(record["grid"], folder / "validation.png", title=f"{name}: validation accuracy over the grid")
    confusion_matrix(record["test"]["confusion_matrix"], record["classes"], folder / "confusion.png",
                     title=f"{name}: test accuracy {record['test']['accuracy']:.1%}")


def with_intervals(record: dict) -> dict:
    """``record`` with the 95% Wilson interval (``interval_95``) of its train, validation and test accuracy."""
    return {**record, **{split: {**record[split], "interval_95": list(accuracy_interval(record[split]["accuracy"],
                                                                                       record[split]["n"]))}
                         for split in ("train", "val", "test")}}
