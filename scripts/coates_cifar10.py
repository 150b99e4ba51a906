"""CIFAR-10 accuracy of cached local-feature encodings (Coates, Lee & Ng 2011 protocol): standardise the
features, train a one-vs-rest L2-SVM, choose C on a validation split carved from train, test once.

    python scripts/coates_cifar10.py --config configs/cifar10-kmeans.yaml --data /tmp/cifar \\
        --cache-dir /tmp/fpcache-kmeans [--set key=value ...] [--C 30 100 300] [--flip] [--jobs 2]

The features are the config's cache entry (extracted first, fit included, when missing). Validation is
the last ``--val-per-class`` (500) training images of every class; each C is trained on the other 45,000
and scored there, then the best C is retrained on all 50,000 and scored once on the 10,000 test images.
Features are standardised as in Coates's code, (x - mean) / sqrt(var + 0.01), with the statistics of the
rows being trained on (mirrors included).

The head is featurepipe's linear SVM, LinearClassifier(loss="squared_hinge", optimizer="lbfgs",
alpha=1/C): Coates's one-vs-rest L2-SVM, sum_k 0.5 |w_k|^2 + C mean_i max(0, 1 - t_ik x_i.w_k)^2, divided
by C, with an unpenalised bias. Its L-BFGS is preconditioned (see featurepipe/heads/preconditioning.py), so
it converges in tens of iterations where plain L-BFGS takes hundreds (scripts/bench_preconditioning.py).

``--flip`` adds the horizontal mirror of every training image (features computed with the fitted
pipeline, cached as .npy beside the entry). ``--validation-only`` extends a C grid without a second look
at the test split. Prints one JSON line per C, then one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from featurepipe import api
from featurepipe.config import load_config
from featurepipe.datasets import read_image
from featurepipe.heads import LinearClassifier
from featurepipe.store import OK, FeatureStore

BLOCK_ROWS = 4096  # rows per pass when standardising: the features are never copied whole


def validation_last(labels: np.ndarray, per_class: int):
    """Row order putting the last ``per_class`` rows of every class at the end, and how many come before."""
    held_out = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        held_out[np.flatnonzero(labels == label)[-per_class:]] = True
    return np.concatenate([np.flatnonzero(~held_out), np.flatnonzero(held_out)]), int((~held_out).sum())


def row_blocks(X):
    """Consecutive blocks of rows of ``X`` (views)."""
    return (X[start:start + BLOCK_ROWS] for start in range(0, len(X), BLOCK_ROWS))


def statistics(X):
    """Per-feature mean and 1 / sqrt(var + 0.01) over the rows of ``X`` (float64 sums, one pass)."""
    sums = np.zeros(X.shape[1])
    squares = np.zeros(X.shape[1])
    for block in row_blocks(X):
        sums += block.sum(axis=0, dtype=np.float64)
        squares += np.einsum("ij,ij->j", block, block, dtype=np.float64)
    mean = sums / len(X)
    return mean.astype(np.float32), (1 / np.sqrt(squares / len(X) - mean**2 + 0.01)).astype(np.float32)


def standardise(X, mean, scale, undo=False):
    """In place: (x - mean) * scale, or back with ``undo``."""
    for block in row_blocks(X):
        if undo:
            block /= scale
            block += mean
        else:
            block -= mean
            block *= scale


def _flipped_chunk(pipeline, paths):
    images = pipeline.prepare([read_image(p) for p in paths])
    return pipeline.extractor.transform(np.ascontiguousarray(np.asarray(images)[:, :, ::-1]))


def save_flipped_features(pipeline, paths, path: Path, jobs: int, chunk: int = 1024) -> None:
    """Features of the horizontal mirror of every image, in order, written to the .npy ``path`` as the
    worker processes return them (through a temporary file, so an interrupted run leaves none)."""
    parts = Parallel(n_jobs=jobs, return_as="generator")(delayed(_flipped_chunk)(pipeline, paths[i:i + chunk])
                                                         for i in range(0, len(paths), chunk))
    partial = path.with_suffix(".partial.npy")
    out = None
    for start, part in zip(range(0, len(paths), chunk), parts):
        if out is None:
            out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(len(paths), part.shape[1]))
        out[start:start + len(part)] = part
    out.flush()
    del out
    partial.rename(path)


def scatter(source, destination: np.ndarray, out: np.ndarray) -> None:
    """``out[destination[i]] = source[i]`` for every row ``i`` of ``source`` whose destination is not -1,
    reading ``source`` (a zarr or memory-mapped array) a block of rows at a time."""
    for start in range(0, source.shape[0], BLOCK_ROWS):
        where = destination[start:start + BLOCK_ROWS]
        keep = where >= 0
        if keep.any():
            out[where[keep]] = source[start:start + BLOCK_ROWS][keep]


def l2svm(X, y, C: float, max_iter: int):
    """Train the one-vs-rest L2-SVM on rows ``X`` (already standardised); returns it and its seconds."""
    begin = time.perf_counter()
    model = LinearClassifier("squared_hinge", optimizer="lbfgs", alpha=1 / C, tol=1e-6, max_iter=max_iter,
                             random_state=0).fit(X, y)
    return model, time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--C", type=float, nargs="+", default=[100.0])
    parser.add_argument("--max-iter", type=int, default=1000, help="L-BFGS iterations at most (Coates: 1000)")
    parser.add_argument("--flip", action="store_true", help="add mirrored training images")
    parser.add_argument("--val-per-class", type=int, default=500, help="validation images per class")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--key", help="read this cache entry instead of the config's (nothing is extracted)")
    parser.add_argument("--validation-only", action="store_true",
                        help="stop after the C grid: extend a grid without scoring the test split again")
    args = parser.parse_args()

    cfg = load_config(args.config, [*args.set, f"dataset.path={args.data}", f"run.cache_dir={args.cache_dir}",
                                    f"run.jobs={args.jobs}", "run.progress=false"])
    dataset = api.config_dataset(cfg)
    store = FeatureStore(cfg.run.cache_dir)
    key = args.key or api.extract_features(cfg, dataset).key
    items, ok = store.items(key), store.status(key) == OK
    labels_all, splits = np.asarray(items["labels"]), np.asarray(items["splits"])
    train_rows = np.flatnonzero(ok & (splits == "train"))
    test_rows = np.flatnonzero(ok & (splits == "test"))
    classes = np.unique(labels_all[ok])
    order, n_fit = validation_last(labels_all[train_rows], args.val_per_class)
    y = np.searchsorted(classes, labels_all[train_rows][order])
    y_test = np.searchsorted(classes, labels_all[test_rows])
    features = store.feature_array(key)
    report = {"config": args.config, "overrides": args.set, "key": key, "dim": features.shape[1], "flip": args.flip}
    sources = [features]
    if args.flip:
        cached = store.path(key) / "flipped_train.npy"  # row i: the mirror of train_rows[i]
        if not cached.exists():
            start = time.perf_counter()
            pipeline = api.fitted_pipeline(cfg, dataset, store)
            paths = [str(dataset.root / i) for i in np.asarray(items["ids"])[train_rows]]
            save_flipped_features(pipeline, paths, cached, args.jobs)
            report["flip_encode_seconds"] = round(time.perf_counter() - start, 1)
        sources.append(np.load(cached, mmap_mode="r"))

    # One array: the fit rows of every source (images, mirrors), then their validation rows, then the
    # test rows, so the fit rows are a prefix, the originals' validation rows follow it and each source
    # is read once. Filled a block at a time: wide features (32,000-d) with mirrors take 13 GB, and
    # nothing is held twice.
    n_sources, n_val = len(sources), len(y) - n_fit
    n_rows, n_train = n_fit * n_sources, len(y) * n_sources
    both = np.empty((n_train + len(test_rows), features.shape[1]), np.float32)
    for s, source in enumerate(sources):
        destination = np.full(source.shape[0], -1)
        rows = train_rows[order] if s == 0 else order  # the originals are indexed by entry row
        destination[rows[:n_fit]] = s * n_fit + np.arange(n_fit)
        destination[rows[n_fit:]] = n_rows + s * n_val + np.arange(n_val)
        if s == 0:
            destination[test_rows] = n_train + np.arange(len(test_rows))
        scatter(source, destination, both)
    del sources, features
    X, X_test = both[:n_train], both[n_train:]
    labels = np.concatenate([y[:n_fit]] * n_sources + [y[n_fit:]] * n_sources)
    fitting, validating = X[:n_rows], X[n_rows:n_rows + n_val]

    # C on the validation split: train on the fit rows, score the held-out originals.
    report["validation"] = []
    mean, scale = statistics(fitting)
    standardise(X, mean, scale)
    for C in args.C:
        model, seconds = l2svm(fitting, labels[:n_rows], C, args.max_iter)
        report["validation"].append({"C": C, "train": round(model.score(fitting, labels[:n_rows]), 4),
                                     "val": round(model.score(validating, y[n_fit:]), 4),
                                     "seconds": round(seconds, 1), "iterations": model.n_iter_})
        print(json.dumps(report["validation"][-1]), flush=True)
    if args.validation_only:
        print(json.dumps(report))
        return
    standardise(X, mean, scale, undo=True)

    # The best C on all training rows, scored once on the test split.
    best = max(report["validation"], key=lambda r: r["val"])["C"]
    if len(args.C) > 1 and best in (min(args.C), max(args.C)):
        report["warning"] = f"the best C ({best:g}) is at the edge of the grid: extend it"
        print(report["warning"], file=sys.stderr, flush=True)
    mean, scale = statistics(X)
    standardise(X, mean, scale)
    standardise(X_test, mean, scale)
    model, seconds = l2svm(X, labels, best, args.max_iter)
    report.update(C=best, train=round(model.score(X, labels), 4), test=round(model.score(X_test, y_test), 4),
                  head_seconds=round(seconds, 1), iterations=model.n_iter_)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
