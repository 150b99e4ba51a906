"""What ``featurepipe predict`` does: label the images of an unlabelled folder with a trained-head folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import restore_state
from .datasets import open_dataset
from .errors import ExtractError
from .extract import build_config_pipeline
from .files import write_csv_atomic
from .matrix import iter_blocks
from .runner import extract
from .store import FeatureStore
from .trained import check_features, load_trained


def predict(folder, images, out=None, cache_dir=None):
    """Label every image below ``images`` (an unlabelled folder) with a trained head: CSV path,label,score.

    Returns (the CSV's path, the number of files skipped, the error ledger)."""
    trained = load_trained(folder)
    cfg = trained.config
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
