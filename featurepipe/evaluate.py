"""What ``featurepipe evaluate`` does: score a trained-head folder on a split of the data set it was trained
for, with the features from the cache (recomputed if missing)."""
from __future__ import annotations

from .config import ConfigError, RunConfig
from .extract import config_dataset, fitted_pipeline, training_data
from .fitting import score_rows
from .head_folder import check_features, config, load_trained
from .selection import make_splits


def trained_with_its_data(folder, run: RunConfig | None = None, data_path=None):
    """The trained head in ``folder``, the config it is read with, and the rows of the data set it was trained
    for (the folder's recorded data set, or the one at ``data_path``), its features from the cache, computed
    as ``run`` says (the caller's settings, never the folder's) and checked to be those the head was
    trained on."""
    trained = load_trained(folder)
    cfg = config(trained, run or RunConfig(), data_path)
    dataset = config_dataset(cfg)
    data = training_data(cfg, dataset)
    pipeline, _, _ = fitted_pipeline(cfg, dataset, data.store)
    check_features(trained, pipeline, data.store.dimension(data.key))
    return trained, cfg, data


def evaluate(folder, split: str = "test", run: RunConfig | None = None, data_path=None) -> dict:
    """Score a trained head on a split of the data set it was trained for (see ``trained_with_its_data``)."""
    trained, cfg, data = trained_with_its_data(folder, run, data_path)
    if split == "test":
        rows = data.test_rows
    else:
        settings = cfg.train
        method, splits = make_splits(data.labels[data.train_rows], settings.selection, settings.validation_fraction,
                                     settings.folds, settings.seed)
        if split == "val" and (method != "holdout" or settings.refit):
            raise ConfigError("train: the head was refit on every training row after its selection"
                              if settings.refit else f"train.selection: the head was chosen by {method}; "
                              "there is no single validation split")
        rows = data.train_rows[splits[0].val] if split == "val" else data.train_rows
    return score_rows(data.store, data.key, rows, data.labels[rows], trained.model, trained.normalization,
                      trained.manifest["classes"], trained.calibration)
