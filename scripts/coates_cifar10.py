"""CIFAR-10 accuracy of cached local-feature encodings (Coates, Lee & Ng 2011 protocol): standardise the
features, train a one-vs-rest L2-SVM, choose C on a validation split carved from train, test once.

    python scripts/coates_cifar10.py --config configs/cifar10-kmeans.yaml --data /tmp/cifar \\
        --cache-dir /tmp/fpcache-kmeans [--set key=value ...] [--C 30 100 300] [--flip] [--jobs 2]

The features are the config's cache entry (extracted first, fit included, when missing). Validation is
the last 500 training images of every class; each C is trained on the other 45,000 and scored there,
then the best C is retrained on all 50,000 and scored once on the 10,000 test images. Features are
standardised as in Coates's code, (x - mean) / sqrt(var + 0.01), with the statistics of the training
rows. The head is Coates's one-vs-rest L2-SVM, sum_k 0.5 |w_k|^2 + C mean_i max(0, 1 - t_ik x_i.w_k)^2
(bias included in w_k), minimised by L-BFGS as his minFunc call does, with two changes that leave the
optimum alone: the objective and gradient come from one pass over float32 blocks of rows, and the
weights are preconditioned, w = L^-T v with L L^T = I + (2C/n) rho [X 1]^T [X 1] (rho = 0.3, about the
share of margin violators), so L-BFGS converges in tens of iterations instead of thousands.
(featurepipe's LinearClassifier with loss='squared_hinge' and optimizer='lbfgs' has the same objective,
with alpha = 1/C and an unpenalised bias, but needs thousands of unpreconditioned iterations at seconds
each at 45,000 x 6,400.) ``--flip`` adds the horizontal mirror of every training image (features computed
with the fitted pipeline, cached as .npy beside the entry). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from joblib import Parallel, delayed

from featurepipe import api
from featurepipe.config import load_config
from featurepipe.datasets import read_image
from scipy.linalg import cholesky, solve_triangular
from scipy.optimize import minimize
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


def gram(X: np.ndarray) -> np.ndarray:
    """``[X 1]^T [X 1]`` in float64: the curvature of the squared hinge when every margin is violated."""
    n, d = X.shape
    out = np.empty((d + 1, d + 1))
    out[:d, :d] = X.T @ X
    out[:d, d] = out[d, :d] = X.sum(axis=0, dtype=np.float64)
    out[d, d] = n
    return out


def l2svm(X, y, C: float, gram_matrix, max_iter: int, rho: float = 0.3, block: int = 4096):
    """One-vs-rest L2-SVM weights ``(d + 1, K)`` (last row: bias) by preconditioned L-BFGS; ``y`` in 0..K-1."""
    n, d = X.shape
    k = int(y.max()) + 1
    targets = np.where(y[:, None] == np.arange(k), 1, -1).astype(np.float32)
    factor = cholesky(np.eye(d + 1) + (2 * C * rho / n) * gram_matrix, lower=True)

    def weights(v):
        return solve_triangular(factor, v.reshape(d + 1, k), lower=True, trans="T")

    def objective(v):
        W = weights(v)
        W32 = W.astype(np.float32)
        grad = np.zeros_like(W32)
        total = 0.0
        for a in range(0, n, block):
            x, t = X[a:a + block], targets[a:a + block]
            slack = np.maximum(0, 1 - t * (x @ W32[:d] + W32[d]))
            total += float(np.einsum("ij,ij->", slack, slack))
            dscores = -2 * t * slack
            grad[:d] += x.T @ dscores
            grad[d] += dscores.sum(axis=0)
        value = C * total / n + 0.5 * float(np.einsum("ij,ij->", W, W))
        return value, solve_triangular(factor, grad * (C / n) + W, lower=True).ravel()

    result = minimize(objective, np.zeros((d + 1) * k), jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter, "maxfun": max_iter})
    return weights(result.x), result.nit


def accuracy(weights, X, y):
    W = weights.astype(np.float32)
    return float(np.mean((X @ W[:-1] + W[-1]).argmax(axis=1) == y))


def fit_score(X, y, X_eval, y_eval, C: float, max_iter: int):
    """Train on ``X``, return (train accuracy, eval accuracy, seconds, L-BFGS iterations)."""
    begin = time.perf_counter()
    weights, iterations = l2svm(X, y, C, gram(X), max_iter)
    seconds = time.perf_counter() - begin
    return accuracy(weights, X, y), accuracy(weights, X_eval, y_eval), seconds, iterations


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
    parser.add_argument("--key", help="read this cache entry instead of the config's (nothing is extracted)")
    args = parser.parse_args()

    cfg = load_config(args.config, [*args.set, f"dataset.path={args.data}", f"run.cache_dir={args.cache_dir}",
                                    f"run.jobs={args.jobs}", "run.progress=false"])
    dataset = api.config_dataset(cfg)
    store = FeatureStore(cfg.run.cache_dir)
    key = args.key or api.extract_features(cfg, dataset).key
    train, test = store.read(key, split="train"), store.read(key, split="test")
    classes = np.unique(train.labels)
    X, X_test = train.X, test.X
    y, y_test = np.searchsorted(classes, train.labels), np.searchsorted(classes, test.labels)
    report = {"config": args.config, "overrides": args.set, "key": key, "dim": X.shape[1], "flip": args.flip}

    if args.flip:
        cached = store.path(key) / "flipped_train.npy"
        if not cached.exists():
            start = time.perf_counter()
            pipeline = api.fitted_pipeline(cfg, dataset, store)
            np.save(cached, flipped_features(pipeline, [str(dataset.root / i) for i in train.ids], args.jobs))
            report["flip_encode_seconds"] = round(time.perf_counter() - start, 1)
        X_flip = np.load(cached, mmap_mode="r")
    held_out = validation_mask(y)

    def training_rows(keep):
        rows = [X[keep]] + ([X_flip[keep]] if args.flip else [])
        return np.concatenate(rows), np.concatenate([y[keep]] * len(rows))

    report["validation"] = []
    X_fit, y_fit = training_rows(~held_out)
    X_val = X[held_out].copy()
    standardise(X_fit, X_val)
    begin = time.perf_counter()
    curvature = gram(X_fit)
    report["gram_seconds"] = round(time.perf_counter() - begin, 1)
    for C in args.C:
        begin = time.perf_counter()
        weights, iterations = l2svm(X_fit, y_fit, C, curvature, args.max_iter)
        report["validation"].append({"C": C, "train": round(accuracy(weights, X_fit, y_fit), 4),
                                     "val": round(accuracy(weights, X_val, y[held_out]), 4),
                                     "seconds": round(time.perf_counter() - begin, 1), "iterations": iterations})
        print(json.dumps(report["validation"][-1]), flush=True)
    del X_fit, X_val, curvature
    best = max(report["validation"], key=lambda r: r["val"])["C"]
    X_fit, y_fit = training_rows(np.ones(len(y), bool))
    standardise(X_fit, X_test)
    train_acc, test_acc, seconds, iters = fit_score(X_fit, y_fit, X_test, y_test, best, args.max_iter)
    report.update(C=best, train=round(train_acc, 4), test=round(test_acc, 4), head_seconds=round(seconds, 1),
                  iterations=iters)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
