"""The data benchmarks run on: images from a folder or scikit-image's sample photographs, and the matrix a
holdout selection fits a config's head on. Shared by several scripts (``harness`` does the timing)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


# -- images ------------------------------------------------------------------------------------------------
def image_paths(root: Path) -> list[Path]:
    """The .jpg and .png files under ``root`` (searched recursively), sorted; exits if there are none."""
    paths = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise SystemExit(f"no .jpg or .png images under {root}")
    return paths


def sample_photos(names, width: int, height: int, grey: bool = False) -> np.ndarray:
    """scikit-image's sample photographs ``names`` resized to ``width`` x ``height`` (grey if ``grey``), then
    their mirror images."""
    import cv2
    import skimage.data

    images = []
    for name in names:
        image = getattr(skimage.data, name)()
        if grey and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        images.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
    return np.stack(images + [im[:, ::-1] for im in images])


# -- a config's holdout matrix -----------------------------------------------------------------------------
def add_holdout_flags(parser):
    """The options naming the problem ``holdout_problem`` builds: config, data, cache and head."""
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--head", type=int, default=0, help="which of the config's heads (a linear L-BFGS one)")
    return parser


def holdout_problem(config, data_path, cache_dir, head):
    """What a holdout selection fits the config's ``head`` (index) on: the matrix of the validation split's
    fit rows and their augmented copies, normalised as ``train.normalize`` says, their labels, the head's
    ``alpha: auto`` grid on it and the head's other settings."""
    from featurepipe.config import load_config
    from featurepipe.heads import LinearClassifier
    from featurepipe.heads.grid import data_stats, expand_grid
    from featurepipe.matrix import build_matrix, fit_normalization
    from featurepipe.normalize import Normalization
    from featurepipe.selection import make_splits, normalization_options
    from featurepipe.extract import training_data

    cfg = load_config(config, [f"dataset.path={data_path}", f"run.cache_dir={cache_dir}", "run.progress=false"])
    data = training_data(cfg)
    settings, spec = cfg.train, cfg.heads[head]
    _, splits = make_splits(data.labels[data.train_rows], "holdout", settings.validation_fraction, settings.folds,
                            settings.seed)
    segments, y = data.segments(splits[0].fit, augmented=True)
    option = normalization_options(spec.normalize or settings.normalize)[0]
    normalization = fit_normalization(data.store, segments, Normalization.from_spec(option))
    X = build_matrix(data.store, segments, normalization)
    points, _ = expand_grid(LinearClassifier, dict(spec.params), data_stats(X))
    return X, y, [p["alpha"] for p in points], {k: v for k, v in points[0].items() if k != "alpha"}
