"""CIFAR-10 accuracy of cached local-feature encodings (Coates, Lee & Ng 2011 protocol): standardise the
features, train a one-vs-rest L2-SVM, choose C on a validation split carved from train, test once.

    python scripts/coates_cifar10.py --config configs/cifar10-kmeans.yaml --data /tmp/cifar \\
        --cache-dir /tmp/fpcache-kmeans [--set key=value ...] [--C 30 100 300] [--flip] [--jobs 2]

The features are the config's cache entry (extracted first, fit included, when missing). Validation is
the last 500 training images of every class; each C is trained on the other 45,000 and scored there,
then the best C is retrained on all 50,000 and scored once on the 10,000 test images. Features are
standardised as in Coates's code, (x - mean) / sqrt(var + 0.01), with the statistics of the training
rows. The head is featurepipe's LinearClassifier with the squared hinge (one-vs-rest L2-SVM) and
L-BFGS; its objective mean_i sum_k max(0, 1 - t_ik s_ik)^2 + alpha/2 |W|^2 is Coates's with alpha = 1/C.
``--flip`` adds the horizontal mirror of every training image (features computed with the fitted
pipeline, cached as .npy beside the entry). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from featurepipe import api
from featurepipe.config import load_config
from featurepipe.datasets import read_image
from featurepipe.heads import LinearClassifier
from featurepipe.store import FeatureStore

VALIDATION_PER_CLASS = 500


def validation_mask(labels: np.ndarray, per_class: int = VALIDATION_PER_CLASS) -> np.ndarray:
    """The last ``per_class`` rows of every class."""
    mask = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        mask[np.flatnonzero(labels == label)[-per_class:]] = True
    return mask


def standardise(train: np.ndarray, *others: np.ndarray) -> None:
    """In place: (x - mean) / sqrt(var + 0.01) with the statistics of ``train``."""
    mean = train.mean(axis=0, dtype=np.float64).astype(np.float32)
    scale = (1 / np.sqrt(train.var(axis=0, dtype=np.float64) + 0.01)).astype(np.float32)
    for X in (train, *others):
        X -= mean
        X *= scale


def _flipped_chunk(pipeline, paths):
    images = pipeline.prepare([read_image(p) for p in paths])
    return pipeline.extractor.transform(np.ascontiguousarray(np.asarray(images)[:, :, ::-1]))


def flipped_features(pipeline, paths, jobs: int, chunk: int = 1024) -> np.ndarray:
    """Features of the horizontal mirror of every image, in order, over ``jobs`` worker processes."""
    parts = Parallel(n_jobs=jobs)(delayed(_flipped_chunk)(pipeline, paths[i:i + chunk])
                                  for i in range(0, len(paths), chunk))
    return np.concatenate(parts)


def fit_score(X, y, X_eval, y_eval, C: float, max_iter: int):
    start = time.perf_counter()
    head = LinearClassifier(loss="squared_hinge", optimizer="lbfgs", alpha=1 / C, max_iter=max_iter,
                            random_state=0).fit(X, y)
    return head.score(X, y), head.score(X_eval, y_eval), time.perf_counter() - start, head.n_iter_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--C", type=float, nargs="+", default=[100.0])
    parser.add_argument("--max-iter", type=int, default=1000, help="L-BFGS iterations (Coates: 1000)")
    parser.add_argument("--flip", action="store_true", help="add mirrored training images")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    cfg = load_config(args.config, [*args.set, f"dataset.path={args.data}", f"run.cache_dir={args.cache_dir}",
                                    f"run.jobs={args.jobs}", "run.progress=false"])
    dataset = api.config_dataset(cfg)
    store = FeatureStore(cfg.run.cache_dir)
    key = api.extract_features(cfg, dataset).key
    train, test = store.read(key, split="train"), store.read(key, split="test")
    X, y, X_test, y_test = train.X, train.labels, test.X, test.labels
    report = {"config": args.config, "overrides": args.set, "key": key, "dim": X.shape[1], "flip": args.flip}

    if args.flip:
        cached = store.path(key) / "flipped_train.npy"
        if not cached.exists():
            start = time.perf_counter()
            pipeline = api.fitted_pipeline(cfg, dataset, store)
            np.save(cached, flipped_features(pipeline, [str(dataset.root / i) for i in train.ids], args.jobs))
            report["flip_encode_seconds"] = round(time.perf_counter() - start, 1)
        X_flip = np.load(cached)
    held_out = validation_mask(y)

    def training_rows(keep):
        rows = [X[keep]] + ([X_flip[keep]] if args.flip else [])
        return np.concatenate(rows), np.concatenate([y[keep]] * len(rows))

    report["validation"] = []
    for C in args.C:
        X_fit, y_fit = training_rows(~held_out)
        X_val = X[held_out].copy()
        standardise(X_fit, X_val)
        train_acc, val_acc, seconds, iters = fit_score(X_fit, y_fit, X_val, y[held_out], C, args.max_iter)
        report["validation"].append({"C": C, "train": round(train_acc, 4), "val": round(val_acc, 4),
                                     "seconds": round(seconds, 1), "iterations": iters})
        print(json.dumps(report["validation"][-1]), flush=True)
        del X_fit, X_val
    best = max(report["validation"], key=lambda r: r["val"])["C"]
    X_fit, y_fit = training_rows(np.ones(len(y), bool))
    standardise(X_fit, X_test)
    train_acc, test_acc, seconds, iters = fit_score(X_fit, y_fit, X_test, y_test, best, args.max_iter)
    report.update(C=best, train=round(train_acc, 4), test=round(test_acc, 4), head_seconds=round(seconds, 1),
                  iterations=iters)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
