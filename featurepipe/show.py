"""What ``featurepipe show`` does: one image as a pipeline sees it, in one PNG -- the image after the
pipeline's preprocessing, then per extractor: HOG cells as oriented glyphs, the keypoint grid of local
descriptors and, with the fitted vocabulary, their visual-word map, and the colour histogram of colour
features (not of a grey image). The bench report draws its pictures of the features with it too."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import plots
from .config import Config, ConfigError, PipelineConfig
from .core import as_batch, iter_stages
from .datasets import ImageError, read_image
from .errors import ExtractError
from .extract import build_config_pipeline, config_dataset, stored_fitted_pipeline
from .extractors.color import ColorHistogram, HSVHistogram
from .extractors.fisher import FisherVector
from .extractors.hog import HOG
from .extractors.local_encoding import LocalEncoding
from .imageops import to_grey
from .store import FeatureStore

_DRAWN = (HOG, ColorHistogram, HSVHistogram, LocalEncoding)


def show_image(cfg: Config, image_path, pipeline_name: str | None = None, out=None) -> tuple[Path, list[str]]:
    """Draw ``image_path`` as the config's pipeline (or bench pipeline ``pipeline_name``) sees it, into ``out``
    (default: ``<image name>-<pipeline>.png`` in the working folder); returns the PNG written and one line
    per thing that could not be drawn."""
    name, spec = pipeline_spec(cfg, pipeline_name)
    try:
        image = read_image(image_path, cfg.run.max_pixels, cfg.run.allow_unchecked_formats)
    except OSError as e:
        raise ExtractError(f"{image_path}: cannot read: {e.strerror or e}") from None
    except ImageError as e:
        raise ExtractError(f"{image_path}: {e}") from None
    pipeline, notes = _fitted_if_stored(cfg.model_copy(update={"pipeline": spec}))
    try:
        pictures, more = pictures_of(pipeline, image)
    except ValueError as e:  # an image the extractor cannot take: smaller than a HOG block, say
        raise ExtractError(f"{image_path}: {e}") from None
    out = Path(out or f"{Path(image_path).stem}-{name}.png")
    seer = "the config's pipeline" if cfg.pipeline is spec else f"pipeline {name}"
    plots.picture_row(pictures, out, f"{Path(image_path).name} as {seer} sees it")
    return out, notes + more


def pipeline_spec(cfg: Config, name: str | None) -> tuple[str, PipelineConfig]:
    """The pipeline to show, and its name: bench pipeline ``name``, or the config's ``pipeline``."""
    choices = {n: spec for n, spec in cfg.bench.pipelines.items() if spec.late is None} if cfg.bench else {}
    if name is None:
        if cfg.pipeline is not None:
            return "pipeline", cfg.pipeline
        if not choices:
            raise ConfigError("pipeline: missing (the config names no pipeline and no bench.pipelines)")
        if len(choices) > 1:
            raise ConfigError(f"--pipeline: name one of bench.pipelines: {', '.join(choices)}")
        name = next(iter(choices))
    if name not in choices:
        raise ConfigError(f"--pipeline: no pipeline {name!r} under bench.pipelines"
                          + (f"; there are: {', '.join(choices)}" if choices else " (the config has no bench)"))
    return name, choices[name].pipeline()


def _fitted_if_stored(cfg: Config):
    """The config's pipeline, fitted as stored for its data set (or, for a bench, its ``--quick`` subset);
    unfitted when no fit is stored, with a line saying so."""
    pipeline = build_config_pipeline(cfg)
    if not pipeline.requires_fit:
        return pipeline, []
    store = FeatureStore(cfg.run.cache_dir)
    try:
        dataset = config_dataset(cfg)
        candidates = [dataset] + ([dataset.take(cfg.bench.quick)] if cfg.bench and dataset.splits else [])
    except (ConfigError, ValueError) as e:
        return pipeline, [f"{pipeline.extractor.name}: no fitted vocabulary to draw words with ({e}); "
                          "keypoint grid only"]
    for data in candidates:
        fitted = stored_fitted_pipeline(cfg, data, store)
        if fitted is not None:
            return fitted, []
    return pipeline, [f"{pipeline.extractor.name}: no fitted vocabulary for this config's data in {store.root} "
                      "(run `featurepipe extract` or `bench` first); keypoint grid only"]


def pictures_of(pipeline, image: np.ndarray) -> tuple[list, list[str]]:
    """``plots.picture_row`` pictures of ``image`` (as decoded) through ``pipeline``, and one line per picture
    left out."""
    seen = as_batch(pipeline.prepare([image]))
    if not isinstance(seen, np.ndarray):
        raise ExtractError(f"the preprocessing gave {len(seen)} images of several sizes")
    seen = seen[:1]
    pictures = [(f"after preprocessing ({seen.shape[2]}x{seen.shape[1]})", plots.image_drawer(seen[0]), 1.0)]
    notes = []
    for _, stage in iter_stages(pipeline.extractor):
        if isinstance(stage, HOG):
            pictures.append(_hog(stage, seen[0]))
        elif isinstance(stage, (ColorHistogram, HSVHistogram)):
            if is_grey(seen[0]):
                notes.append(f"colour histogram ({stage.name}) not drawn: the image is grey, it has no colours to count")
            else:
                pictures.append(_histogram(stage, seen))
        elif isinstance(stage, LocalEncoding):
            pictures.append(_keypoints(stage, seen))
    return pictures, notes


def drawn_kinds(pipeline) -> set[type]:
    """The classes of the extractors in ``pipeline`` that ``pictures_of`` draws a picture of."""
    return {type(stage) for _, stage in iter_stages(pipeline.extractor) if isinstance(stage, _DRAWN)}


def is_grey(image: np.ndarray) -> bool:
    """One channel, or three equal ones (a grey file decodes to RGB)."""
    return image.shape[-1] == 1 or bool((image[..., :1] == image).all())


def _hog(stage: HOG, image):
    """HOG glyphs of the image the extractor takes: colour gradients, or its luminance (``channel_axis`` None)."""
    colour = stage.channel_axis is not None and not is_grey(image)
    cell = tuple(stage.pixels_per_cell)
    seen = image if colour else to_grey(image[None])[0][..., None]
    return (f"HOG: {stage.orientations} orientations, {cell[0]}x{cell[1]}-pixel cells",
            plots.hog_drawer(seen, stage.orientations, cell, colour), 1.0)


def _histogram(stage, batch):
    """The histogram the extractor computes, each bar in its bin's colour (a grid's cells one after the other)."""
    import cv2

    histogram = stage.features(batch)[0]
    if isinstance(stage, HSVHistogram):
        nh, ns, nv = stage.bins
        h, s, v = np.meshgrid(np.arange(nh), np.arange(ns), np.arange(nv), indexing="ij")
        centres = np.stack([h * 180 // nh % 180, (s + 0.5) * 256 / ns, (v + 0.5) * 256 / nv], -1).astype(np.uint8)
        colours = cv2.cvtColor(centres.reshape(1, -1, 3), cv2.COLOR_HSV2RGB).reshape(-1, 3) / 255
        label = f"HSV histogram: {nh} hues x {ns} saturations x {nv} values"
    elif stage.mode == "joint":
        levels = (np.arange(stage.bins) + 0.5) / stage.bins
        colours = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
        label = f"RGB histogram: {stage.bins} levels per channel, joint"
    else:
        levels = (np.arange(stage.bins) + 0.5) / stage.bins
        colours = np.concatenate([np.eye(3)[c] * levels[:, None] for c in range(3)])
        label = f"RGB histogram: {stage.bins} levels per channel, red, green, blue"
    cells = len(histogram) // len(colours)
    xlabel = "bin" if cells == 1 else f"bin, in each of {cells} grid cells"
    return label, plots.histogram_drawer(histogram, np.tile(colours, (cells, 1)), xlabel), 2.2


def _keypoints(stage: LocalEncoding, batch):
    """The keypoint grid, over the visual-word map when the vocabulary is fitted, with the finest spatial pyramid
    level's cells."""
    from sklearn.exceptions import NotFittedError

    try:
        features, words = stage.nearest_words(batch)
    except NotFittedError:
        descriptor = stage.parts()["descriptor"]
        positions = descriptor.compute(batch).positions
        return f"{len(positions)} keypoints ({descriptor.name})", plots.keypoints_drawer(batch[0], positions), 1.0
    size, grid = stage.vocabulary_size, max(stage.pyramid)
    cells = f", {grid}x{grid} pyramid" if grid > 1 else ""
    entries = "Gaussians" if isinstance(stage, FisherVector) else "words"  # a Fisher vector's vocabulary: a GMM
    return (f"{len(np.unique(words))} of {size} {entries} at {len(words)} keypoints{cells}",
            plots.keypoints_drawer(batch[0], features.positions, words, size, grid), 1.0)
