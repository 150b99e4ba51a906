"""What ``featurepipe predict`` does: label the images of an unlabelled folder with a trained-head folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import RunConfig
from .datasets import open_dataset
from .errors import ExtractError
from .files import formula_safe, write_csv_atomic
from .matrix import iter_blocks
from .runner import extract
from .store import FeatureStore
from .head_folder import check_features, load_trained


def predict(folder, images, out=None, run: RunConfig | None = None):
    """Label every image below ``images`` (an unlabelled folder) with a trained head: CSV path,label,score,
    text cells that a spreadsheet would take for a formula neutralised (``files.formula_safe``).

    The features are computed as ``run`` says (cache folder, jobs, backend: the caller's settings, never
    the folder's). Returns (the CSV's path, the number of files skipped, the error ledger)."""
    run = run or RunConfig()
    trained = load_trained(folder)
    cache = FeatureStore(run.cache_dir)
    dataset = open_dataset(images, kind="unlabelled")
    applied = _with_training_size(trained.pipeline, trained.manifest.get("image_shape"))
    result = extract(dataset, applied, cache, chunk_rows=run.chunk_size, jobs=run.jobs, backend=run.backend,
                     scheduler=run.scheduler, on_error="skip", max_pixels=run.max_pixels, progress=run.progress)
    if result.n_ok == 0:
        raise ExtractError(f"{images}: no image could be read (see {result.ledger})")
    check_features(trained, trained.pipeline, cache.dimension(result.key))
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
    write_csv_atomic(out, ["path", "label", "score"], ((formula_safe(i), formula_safe(str(l)), f"{s:.6g}")
                                                       for i, l, s in zip(ids, labels, scores)))
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
