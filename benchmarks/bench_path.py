"""What a grid of C costs against one fit: a linear head's regularisation path against a single fit.

    python benchmarks/bench_path.py --config configs/cifar10-kmeans.yaml --data /tmp/cifar --cache-dir CACHE \\
        [--head 0] [--rounds 2] [--cold]

Extracts (or reuses) the config's features, builds the matrix a holdout selection fits on (the fit rows
of ``train``'s validation split and their augmented copies, normalised as ``train.normalize`` says),
expands the head's ``alpha: auto`` grid on it, and times, in interleaved rounds:

- one fit at the grid's middle alpha from scratch (its preconditioner included), and
- the whole grid by ``LinearClassifier.regularization_path`` (its fits run together: one shared preconditioner,
  one pass over the matrix per round for every alpha still running),

with one BLAS thread per process untouched (the library's defaults). Prints seconds, L-BFGS iterations,
each fit's objective and the ratio path / single fit. ``--cold`` also fits every alpha of the grid from
scratch, each with its own preconditioner, once: the iterations each alpha needs alone.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from featurepipe import machine
from featurepipe.config import load_config
from featurepipe.fitting import TrainingData
from featurepipe.heads import LinearClassifier
from featurepipe.matrix import build_matrix, fit_normalization
from featurepipe.normalize import Normalization
from featurepipe.selection import data_stats, expand_grid, make_splits, normalization_options
from featurepipe.train import training_data


def main() -> None:
    parser = problem_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="also fit every alpha from scratch, once")
    args = parser.parse_args()
    X, y, alphas, base = holdout_problem(args.config, args.data, args.cache_dir, args.head)
    middle = alphas[len(alphas) // 2]
    report = {"machine": machine.describe(), "config": args.config, "rows": X.shape[0], "features": X.shape[1],
              "alphas": alphas, "rounds": []}
    for _ in range(args.rounds):
        start = time.perf_counter()
        single = LinearClassifier(**{**base, "alpha": middle}).fit(X, y)
        single_seconds = time.perf_counter() - start
        start = time.perf_counter()
        path = LinearClassifier(**base).regularization_path(X, y, alphas)
        path_seconds = time.perf_counter() - start
        report["rounds"].append({
            "single_seconds": round(single_seconds, 1), "single_iterations": int(single.n_iter_),
            "single_objective": single.loss_curve_[-1], "path_seconds": round(path_seconds, 1),
            "path_iterations": [int(m.n_iter_) for m in path],
            "path_objective_at_middle": path[alphas.index(middle)].loss_curve_[-1],
            "ratio": round(path_seconds / single_seconds, 2)})
        print(json.dumps(report["rounds"][-1]), flush=True)
    report["median_ratio"] = float(np.median([r["ratio"] for r in report["rounds"]]))
    if args.cold:
        report["cold"] = []
        for alpha in alphas:
            start = time.perf_counter()
            model = LinearClassifier(**{**base, "alpha": alpha}).fit(X, y)
            report["cold"].append({"alpha": alpha, "seconds": round(time.perf_counter() - start, 1),
                                   "iterations": int(model.n_iter_), "objective": model.loss_curve_[-1]})
            print(json.dumps(report["cold"][-1]), flush=True)
    print(json.dumps(report))


def problem_parser(description) -> argparse.ArgumentParser:
    """A command line naming the problem ``holdout_problem`` builds: config, data, cache and head."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--head", type=int, default=0, help="which of the config's heads (a linear L-BFGS one)")
    return parser


def holdout_problem(config, data_path, cache_dir, head):
    """What a holdout selection fits the config's ``head`` (index) on: the matrix of the validation split's
    fit rows and their augmented copies, normalised as ``train.normalize`` says, their labels, the head's
    ``alpha: auto`` grid on it and the head's other settings."""
    cfg = load_config(config, [f"dataset.path={data_path}", f"run.cache_dir={cache_dir}", "run.progress=false"])
    data: TrainingData = training_data(cfg)
    settings, spec = cfg.train, cfg.heads[head]
    _, splits = make_splits(data.labels[data.train_rows], "holdout", settings.validation_fraction, settings.folds,
                            settings.seed)
    segments, y = data.segments(splits[0].fit, augmented=True)
    option = normalization_options(spec.normalize or settings.normalize)[0]
    normalization = fit_normalization(data.store, segments, Normalization.from_spec(option))
    X = build_matrix(data.store, segments, normalization)
    points, _ = expand_grid(LinearClassifier, dict(spec.params), data_stats(X))
    return X, y, [p["alpha"] for p in points], {k: v for k, v in points[0].items() if k != "alpha"}


if __name__ == "__main__":
    main()
