"""What ``featurepipe predict`` does: label the images of an unlabelled folder, or one image file, with a
trained-head folder: the most probable labels with their probabilities, and a ledger of the files refused."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import RunConfig
from .datasets import open_dataset
from .errors import ExtractError
from .files import formula_safe, write_csv_atomic
from .matrix import iter_blocks
from .runner import extract
from .store import OK, FeatureStore
from .head_folder import check_features, load_trained

TOP_K = 3


@dataclass
class Predictions:
    """What ``predict`` wrote: the table and its images' count, the ledger of refused files and theirs."""

    table: Path
    n_labelled: int
    ledger: Path
    n_refused: int


def columns(k: int) -> list[str]:
    """The table's header for the ``k`` most probable labels: path, label, probability, label_2,
    probability_2, ... label_k, probability_k."""
    ranked = [("label", "probability")] + [(f"label_{r}", f"probability_{r}") for r in range(2, k + 1)]
    return ["path", *(name for pair in ranked for name in pair)]


def ledger_path(table) -> Path:
    """Where the ledger of refused files goes: beside the table, ``p.csv`` -> ``p.refused.csv``."""
    return Path(table).with_suffix(".refused.csv")


def predict(folder, images, out=None, run: RunConfig | None = None, top_k: int = TOP_K) -> Predictions:
    """Label every image below ``images`` (an unlabelled folder, or one image file) with a trained head.

    Writes ``out`` (default ``<folder>/predictions.csv``), a row per image: its path (relative to the folder)
    and its ``top_k`` most probable labels with their probabilities (``columns``), the head's own (softmax) or
    its Platt-scaled scores (``calibration.py``); and beside it the ledger of the files that could not be
    read (``ledger_path``: path, reason), empty when there were none. Text cells a spreadsheet would take
    for a formula are neutralised (``files.formula_safe``). The features are computed as ``run`` says
    (cache folder, jobs, backend, progress bars: the caller's settings, never the folder's or its training
    run's) and stored at the precision the head's training features were (``pipeline.storage``)."""
    if top_k < 1:
        raise ValueError(f"top_k: must be at least 1, got {top_k}")
    run = run or RunConfig()
    trained = load_trained(folder)
    trained.check_probabilities()
    out = Path(out or Path(folder) / "predictions.csv")
    cache = FeatureStore(run.cache_dir)
    dataset = open_dataset(images, kind="unlabelled")
    applied = _with_training_size(trained.pipeline, trained.manifest.get("image_shape"))
    result = extract(dataset, applied, cache, chunk_rows=run.chunk_size, jobs=run.jobs, backend=run.backend,
                     scheduler=run.scheduler, on_error="skip", max_pixels=run.max_pixels, progress=run.progress,
                     storage=trained.manifest["pipeline"]["spec"]["storage"])
    out.parent.mkdir(parents=True, exist_ok=True)
    ledger = write_csv_atomic(ledger_path(out), ["path", "reason"],
                              ([formula_safe(_relative(path, dataset.root)), reason]
                               for path, reason in cache.ledger(result.key)))
    if result.n_ok == 0:
        raise ExtractError(f"{images}: no image could be read (see {ledger})")
    check_features(trained, trained.pipeline, cache.dimension(result.key))
    k = min(top_k, len(trained.model.classes_))
    rows = np.flatnonzero(cache.status(result.key) == OK)
    ranked, probabilities = _most_probable(trained, cache, result.key, rows, k)
    ids, classes = cache.items(result.key)["ids"], np.asarray(trained.model.classes_)
    table = (_row(ids[row], classes[top], chances) for row, top, chances in zip(rows, ranked, probabilities))
    write_csv_atomic(out, columns(k), table, name_columns=(0, *range(1, 2 * k, 2)))
    return Predictions(out, len(rows), ledger, result.n_failed)


def _most_probable(trained, cache, key, rows, k):
    """The ``k`` most probable classes (indices) of each of ``rows`` of entry ``key``, and their probabilities."""
    ranked, probabilities = np.empty((len(rows), k), np.int64), np.empty((len(rows), k))
    for positions, block in iter_blocks(cache, key, rows):
        proba = trained.predict_proba(block)
        ranked[positions] = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        probabilities[positions] = np.take_along_axis(proba, ranked[positions], axis=1)
    return ranked, probabilities


def _row(path: str, labels, chances) -> list[str]:
    """A table row: the image's path, then each label with its probability."""
    cells = [formula_safe(path)]
    for label, chance in zip(labels, chances):
        cells += [formula_safe(str(label)), f"{chance:.4f}"]
    return cells


def _relative(path: str, root: Path) -> str:
    """A ledger's path as the table names images: relative to the folder predicted."""
    prefix = str(root) + os.sep
    return path[len(prefix):] if path.startswith(prefix) else path


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
