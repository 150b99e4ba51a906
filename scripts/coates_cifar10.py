"""CIFAR-10 accuracy of cached local-feature encodings (Coates, Lee & Ng 2011 protocol): standardise the
features, train a one-vs-rest L2-SVM, choose C on a validation split carved from train, test once.

    python scripts/coates_cifar10.py --config configs/cifar10-kmeans.yaml --data /tmp/cifar \\
        --cache-dir /tmp/fpcache-kmeans [--set key=value ...] [--C 30 100 300] [--flip] [--jobs 2]

The features are the config's cache entry (extracted first, fit included, when missing). Validation is
the last ``--val-per-class`` (500) training images of every class; each C is trained on the other 45,000
and scored there, then the best C is retrained on all 50,000 and scored once on the 10,000 test images.
Features are standardised as in Coates's code, (x - mean) / sqrt(var + 0.01), with the statistics of the
rows being trained on (mirrors included).

The head is Coates's one-vs-rest L2-SVM, sum_k 0.5 |w_k|^2 + C mean_i max(0, 1 - t_ik x_i.w_k)^2 (bias
included in w_k), minimised by L-BFGS as his minFunc call does, with two changes that leave the optimum
alone: the objective and gradient come from one pass over float32 blocks of rows, and the weights are
preconditioned, w = L^-T v with L L^T = I + (2C/n) rho [X 1]^T [X 1] (rho = 0.3, about the share of
margin violators), so L-BFGS converges in tens of iterations instead of thousands. (featurepipe's
LinearClassifier with loss='squared_hinge' and optimizer='lbfgs' has the same objective, with
alpha = 1/C and an unpenalised bias, but needs thousands of unpreconditioned iterations, at seconds each
at 45,000 x 6,400.)

``--flip`` adds the horizontal mirror of every training image (features computed with the fitted
pipeline, cached as .npy beside the entry). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from joblib import Parallel, delayed
from scipy.linalg import cholesky, solve_triangular
from scipy.optimize import minimize

from featurepipe import api
from featurepipe.config import load_config
from featurepipe.datasets import read_image
from featurepipe.store import FeatureStore

BLOCK_ROWS = 4096  # rows per matrix product: the features are never copied whole


def validation_last(labels: np.ndarray, per_class: int):
    """Row order putting the last ``per_class`` rows of every class at the end, and how many come before."""
    held_out = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        held_out[np.flatnonzero(labels == label)[-per_class:]] = True
    return np.concatenate([np.flatnonzero(~held_out), np.flatnonzero(held_out)]), int((~held_out).sum())


def row_blocks(parts):
    """(offset, block) over the rows of every array in ``parts``, in order."""
    offset = 0
    for part in parts:
        for start in range(0, len(part), BLOCK_ROWS):
            yield offset + start, part[start:start + BLOCK_ROWS]
        offset += len(part)


def statistics(parts):
    """Per-feature mean and 1 / sqrt(var + 0.01) over all rows of ``parts`` (float64 sums)."""
    total = sum(len(p) for p in parts)
    sums = sum(block.sum(axis=0, dtype=np.float64) for _, block in row_blocks(parts))
    squares = sum(np.einsum("ij,ij->j", block, block, dtype=np.float64) for _, block in row_blocks(parts))
    mean = sums / total
    return mean.astype(np.float32), (1 / np.sqrt(squares / total - mean**2 + 0.01)).astype(np.float32)


def standardise(parts, mean, scale, undo=False):
    """In place: (x - mean) * scale, or back with ``undo``."""
    for _, block in row_blocks(parts):
        if undo:
            block /= scale
            block += mean
        else:
            block -= mean
            block *= scale


def _flipped_chunk(pipeline, paths):
    images = pipeline.prepare([read_image(p) for p in paths])
    return pipeline.extractor.transform(np.ascontiguousarray(np.asarray(images)[:, :, ::-1]))


def flipped_features(pipeline, paths, jobs: int, chunk: int = 1024) -> np.ndarray:
    """Features of the horizontal mirror of every image, in order, over ``jobs`` worker processes."""
    parts = Parallel(n_jobs=jobs)(delayed(_flipped_chunk)(pipeline, paths[i:i + chunk])
                                  for i in range(0, len(paths), chunk))
    return np.concatenate(parts)


def gram(parts) -> np.ndarray:
    """``[X 1]^T [X 1]`` over the rows of ``parts`` (float32): the curvature of the squared hinge when
    every margin is violated."""
    d = parts[0].shape[1]
    out = np.zeros((d + 1, d + 1), np.float32)
    for part in parts:
        out[:d, :d] += part.T @ part
        out[d, :d] += part.sum(axis=0, dtype=np.float64).astype(np.float32)
    out[:d, d] = out[d, :d]
    out[d, d] = sum(len(p) for p in parts)
    return out


def l2svm(parts, y, C: float, curvature, max_iter: int, rho: float = 0.3):
    """One-vs-rest L2-SVM weights ``(d + 1, K)`` (last row: bias) on the rows of ``parts`` (labels ``y`` in
    0..K-1, aligned with the stacked rows), by preconditioned L-BFGS; returns (weights, iterations)."""
    n, d = len(y), parts[0].shape[1]
    k = int(y.max()) + 1
    targets = np.where(y[:, None] == np.arange(k), 1, -1).astype(np.float32)
    factor = curvature * np.float32(2 * C * rho / n)
    factor[np.diag_indices_from(factor)] += 1
    factor = cholesky(factor, lower=True, overwrite_a=True, check_finite=False)

    def weights(v):
        return solve_triangular(factor, v.reshape(d + 1, k).astype(np.float32), lower=True, trans="T")

    def objective(v):
        W = weights(v)
        grad = np.zeros_like(W)
        total = 0.0
        for offset, x in row_blocks(parts):
            t = targets[offset:offset + len(x)]
            slack = np.maximum(0, 1 - t * (x @ W[:d] + W[d]))
            total += float(np.einsum("ij,ij->", slack, slack))
            dscores = -2 * t * slack
            grad[:d] += x.T @ dscores
            grad[d] += dscores.sum(axis=0)
        value = C * total / n + 0.5 * float(np.einsum("ij,ij->", W, W, dtype=np.float64))
        return value, solve_triangular(factor, grad * np.float32(C / n) + W, lower=True).ravel().astype(np.float64)

    result = minimize(objective, np.zeros((d + 1) * k), jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter, "maxfun": max_iter})
    return weights(result.x), result.nit


def accuracy(W, parts, y) -> float:
    predicted = np.concatenate([(x @ W[:-1] + W[-1]).argmax(axis=1) for _, x in row_blocks(parts)])
    return float(np.mean(predicted == y))


def fit(parts, y, C: float, max_iter: int):
    """Standardise ``parts`` in place with their own statistics and train; returns the weights, the
    standardisation, the training seconds and the L-BFGS iterations."""
    mean, scale = statistics(parts)
    standardise(parts, mean, scale)
    begin = time.perf_counter()
    W, iterations = l2svm(parts, y, C, gram(parts), max_iter)
    return W, mean, scale, time.perf_counter() - begin, iterations


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
    args = parser.parse_args()

    cfg = load_config(args.config, [*args.set, f"dataset.path={args.data}", f"run.cache_dir={args.cache_dir}",
                                    f"run.jobs={args.jobs}", "run.progress=false"])
    dataset = api.config_dataset(cfg)
    store = FeatureStore(cfg.run.cache_dir)
    key = args.key or api.extract_features(cfg, dataset).key
    features = store.read(key)
    classes = np.unique(features.labels)
    train, test = features.subset("train"), features.subset("test")
    del features
    order, n_fit = validation_last(train.labels, args.val_per_class)
    X, y = train.X[order], np.searchsorted(classes, train.labels[order])
    X_test, y_test = test.X, np.searchsorted(classes, test.labels)
    report = {"config": args.config, "overrides": args.set, "key": key, "dim": X.shape[1], "flip": args.flip}
    mirrors = []
    if args.flip:
        cached = store.path(key) / "flipped_train.npy"
        if not cached.exists():
            start = time.perf_counter()
            pipeline = api.fitted_pipeline(cfg, dataset, store)
            np.save(cached, flipped_features(pipeline, [str(dataset.root / i) for i in train.ids], args.jobs))
            report["flip_encode_seconds"] = round(time.perf_counter() - start, 1)
        mirrors = [np.load(cached, mmap_mode="r")[order]]
    del train, test

    # C on the validation split: train on the first n_fit rows (and their mirrors), score the rest.
    report["validation"] = []
    fit_parts = [X[:n_fit]] + [m[:n_fit] for m in mirrors]
    fit_labels = np.tile(y[:n_fit], len(fit_parts))
    mean, scale = statistics(fit_parts)
    standardise([X, *mirrors], mean, scale)
    begin = time.perf_counter()
    curvature = gram(fit_parts)
    report["gram_seconds"] = round(time.perf_counter() - begin, 1)
    for C in args.C:
        begin = time.perf_counter()
        W, iterations = l2svm(fit_parts, fit_labels, C, curvature, args.max_iter)
        report["validation"].append({"C": C, "train": round(accuracy(W, fit_parts, fit_labels), 4),
                                     "val": round(accuracy(W, [X[n_fit:]], y[n_fit:]), 4),
                                     "seconds": round(time.perf_counter() - begin, 1), "iterations": iterations})
        print(json.dumps(report["validation"][-1]), flush=True)
    del curvature
    standardise([X, *mirrors], mean, scale, undo=True)

    # The best C on all training rows, scored once on the test split.
    best = max(report["validation"], key=lambda r: r["val"])["C"]
    if len(args.C) > 1 and best in (min(args.C), max(args.C)):
        report["warning"] = f"the best C ({best:g}) is at the edge of the grid: extend it"
        print(report["warning"], file=sys.stderr, flush=True)
    parts = [X, *mirrors]
    labels = np.tile(y, len(parts))
    W, mean, scale, seconds, iterations = fit(parts, labels, best, args.max_iter)
    standardise([X_test], mean, scale)
    report.update(C=best, train=round(accuracy(W, parts, labels), 4), test=round(accuracy(W, [X_test], y_test), 4),
                  head_seconds=round(seconds, 1), iterations=iterations)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
