"""Training, evaluating and applying heads on cached features: what `featurepipe train`, `evaluate` and
`predict` do.

A trained head is a folder: ``head.npz`` (weights + JSON, no pickle), ``scaler.npz`` (the feature
standardisation), ``config.json`` (the run's config, so the same features can be recomputed),
``pipeline/`` (fitted extractor state, for data-driven pipelines), ``metrics.json`` and PNG figures.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from .api import build_config_pipeline, config_dataset, extract_features, fitted_pipeline
from .config import Config, ConfigError
from .datasets import open_dataset
from .errors import ExtractError
from .heads import LinearClassifier, MLPClassifier, load_model, save_model
from .pipeline import load_state, save_state
from .plots import confusion_matrix, training_curves
from .runner import extract
from .store import FeatureSet, FeatureStore


def make_head(spec: dict, index: int, progress: bool = False):
    """A head from ``{"name": ..., "model": "linear" | "mlp", "params": {...}}``; bad params name themselves.

    ``progress`` turns on the head's epoch progress bar (``verbose``) unless the params set it."""
    models = {"linear": LinearClassifier, "mlp": MLPClassifier}
    where = f"heads[{index}]"
    if spec.get("model") not in models:
        raise ConfigError(f"{where}.model: must be one of {sorted(models)}, got {spec.get('model')!r}")
    unknown = sorted(set(spec) - {"name", "model", "params"})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (expected name, model, params)")
    cls = models[spec["model"]]
    params = dict(spec.get("params") or {})
    valid = cls().get_params()
    bad = sorted(set(params) - set(valid))
    if bad:
        raise ConfigError(f"{where}.params.{bad[0]}: unknown parameter of {cls.__name__}")
    for key, value in params.items():
        if isinstance(value, list):
            params[key] = tuple(value)
    params.setdefault("verbose", progress)
    return cls(**params)


def head_name(spec: dict, index: int) -> str:
    return spec.get("name") or f"{spec.get('model')}{index}"


def split_validation(labels: np.ndarray, fraction: float, seed: int):
    """Stratified (train, validation) row indices carved from the training split."""
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        raise ConfigError(f"train.validation_fraction: class {classes[counts.argmin()]!r} has "
                          f"{counts.min()} training item; a validation split needs at least 2 per class")
    rows = np.arange(len(labels))
    size = max(int(round(fraction * len(labels))), len(np.unique(labels)))  # at least one item per class
    return train_test_split(rows, test_size=size, random_state=seed, stratify=labels)


class Standardizer:
    """Per-feature zero mean and unit variance, fitted on training rows (constant features left as is)."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray):
        self.mean, self.scale = mean.astype(np.float32), scale.astype(np.float32)

    @classmethod
    def identity(cls, n_features: int) -> "Standardizer":
        return cls(np.zeros(n_features), np.ones(n_features))

    @classmethod
    def fit(cls, X: np.ndarray) -> "Standardizer":
        scale = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(scale > 0, scale, 1))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale

    def save(self, path):
        np.savez(path, mean=self.mean, scale=self.scale)

    @classmethod
    def load(cls, path) -> "Standardizer":
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mean"], data["scale"])


def score_split(model, X, y, classes) -> dict:
    """Accuracy, per-class accuracy and confusion matrix of ``model`` on (X, y)."""
    from sklearn.metrics import confusion_matrix

    pred = model.predict(X)
    matrix = confusion_matrix(y, pred, labels=classes)
    per_class = np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
    return {"accuracy": float(np.mean(pred == y)), "n": int(len(y)),
            "per_class_accuracy": dict(zip(map(str, classes), map(float, per_class))),
            "confusion_matrix": matrix.tolist()}


def train_val_test(fs: FeatureSet, cfg: Config):
    """(train part, validation part, test) features, the validation carved from the training split."""
    if fs.splits is None:
        raise ConfigError("dataset: training needs train/ and test/ splits (or a CSV split column)")
    train, test = fs.subset("train"), fs.subset("test")
    tr, va = split_validation(train.labels, cfg.train.validation_fraction, cfg.train.seed)
    return (train.X[tr], train.labels[tr]), (train.X[va], train.labels[va]), (test.X, test.labels)


def train_heads(cfg: Config, output=None) -> list[dict]:
    """Extract (or reuse) the config's features and train every head it names; returns their metrics."""
    if not cfg.heads:
        raise ConfigError("heads: name at least one head to train")
    heads = [(head_name(spec, i), make_head(spec, i, cfg.run.progress)) for i, spec in enumerate(cfg.heads)]
    start = time.perf_counter()
    dataset = config_dataset(cfg)
    extracted = extract_features(cfg, dataset)
    store = FeatureStore(cfg.run.cache_dir)
    fs = store.read(extracted.key)
    pipeline = fitted_pipeline(cfg, dataset, store)
    extract_seconds = time.perf_counter() - start
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = train_val_test(fs, cfg)
    scaler = Standardizer.fit(X_tr) if cfg.train.standardize else Standardizer.identity(X_tr.shape[1])
    X_tr, X_va, X_te = scaler(X_tr), scaler(X_va), scaler(X_te)
    classes = np.array(fs.classes)
    results = []
    for name, model in heads:
        folder = Path(output or cfg.output) / name
        folder.mkdir(parents=True, exist_ok=True)
        print(f"training {name}: {type(model).__name__} on {X_tr.shape[0]} x {X_tr.shape[1]} features")
        t0 = time.perf_counter()
        model.fit(X_tr, y_tr)
        fit_seconds = time.perf_counter() - t0
        metrics = {"head": name, "model": type(model).__name__, "feature_key": extracted.key,
                   "feature_dim": int(X_tr.shape[1]), "extract_seconds": extract_seconds,
                   "fit_seconds": fit_seconds, "epochs": int(model.n_iter_),
                   "train": score_split(model, X_tr, y_tr, classes), "val": score_split(model, X_va, y_va, classes),
                   "test": score_split(model, X_te, y_te, classes)}
        save_model(model, folder / "head.npz")
        scaler.save(folder / "scaler.npz")
        (folder / "config.json").write_text(json.dumps(cfg.model_dump(), indent=1))
        if pipeline.requires_fit:
            save_state(pipeline, folder / "pipeline")
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
        training_curves(model.history_, folder / "curves.png", title=name)
        confusion_matrix(metrics["test"]["confusion_matrix"], classes, folder / "confusion.png",
                         title=f"{name}: test accuracy {metrics['test']['accuracy']:.1%}")
        print(f"{name}: train {metrics['train']['accuracy']:.1%}, val {metrics['val']['accuracy']:.1%}, "
              f"test {metrics['test']['accuracy']:.1%} ({fit_seconds:.1f} s to fit); saved to {folder}")
        results.append(metrics)
    return results


def load_trained(folder):
    """(config, head, scaler) of a trained head folder."""
    folder = Path(folder)
    if not (folder / "head.npz").exists():
        raise FileNotFoundError(f"{folder}: not a trained head (no head.npz)")
    cfg = Config.model_validate(json.loads((folder / "config.json").read_text()))
    return cfg, load_model(folder / "head.npz"), Standardizer.load(folder / "scaler.npz")


def evaluate(folder, split: str = "test") -> dict:
    """Score a trained head on a split of the data set it was trained for (features from the cache)."""
    cfg, model, scaler = load_trained(folder)
    fs = FeatureStore(cfg.run.cache_dir).read(extract_features(cfg).key)
    if split in ("train", "val"):
        (X_tr, y_tr), (X_va, y_va), _ = train_val_test(fs, cfg)
        X, y = (X_tr, y_tr) if split == "train" else (X_va, y_va)
    else:
        part = fs.subset(split)
        X, y = part.X, part.labels
    return score_split(model, scaler(X), y, np.array(fs.classes))


def predict(folder, images, out=None, cache_dir=None):
    """Label every image below ``images`` (an unlabelled folder) with a trained head: CSV path,label,score.

    Returns (the CSV's path, the number of files skipped, the error ledger)."""
    cfg, model, scaler = load_trained(folder)
    cache = FeatureStore(cache_dir or cfg.run.cache_dir)
    dataset = open_dataset(images, kind="unlabelled")
    pipeline = build_config_pipeline(cfg)
    if (Path(folder) / "pipeline" / "state.json").exists():
        load_state(pipeline, Path(folder) / "pipeline")
    result = extract(dataset, pipeline, cache, chunk_rows=cfg.run.chunk_size, jobs=cfg.run.jobs,
                     on_error="skip", max_pixels=cfg.run.max_pixels, progress=cfg.run.progress)
    fs = cache.read(result.key)
    if not len(fs.ids):
        raise ExtractError(f"{images}: no image could be read (see {result.ledger})")
    scores = model.decision_function(scaler(fs.X))
    scores = scores if scores.ndim == 2 else np.column_stack([-scores, scores])
    labels = model.classes_[scores.argmax(axis=1)]
    out = Path(out or Path(folder) / "predictions.csv")
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "score"])
        writer.writerows((path, label, f"{score:.6g}") for path, label, score in zip(fs.ids, labels, scores.max(axis=1)))
    return out, result.n_failed, result.ledger
