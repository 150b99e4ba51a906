"""What a grid of C costs against one fit: a linear head's regularisation path against a single fit.

    python benchmarks/bench_path.py --config configs/cifar10-kmeans.yaml --data /tmp/cifar --cache-dir CACHE \\
        [--head 0] [--rounds 2] [--cold]

Extracts (or reuses) the config's features, builds the matrix a holdout selection fits on (the fit rows
of ``train``'s validation split and their augmented copies, normalised as ``train.normalize`` says),
expands the head's ``alpha: auto`` grid on it, and times, in interleaved rounds:

- one fit at the grid's middle alpha from scratch (its preconditioner included), and
- the whole grid by ``LinearClassifier.fit_path`` (its fits run together: one shared preconditioner,
  one pass over the matrix per round for every alpha still running),

with one BLAS thread per process untouched (the library's defaults). Prints seconds, L-BFGS iterations,
each fit's objective and the ratio path / single fit. ``--cold`` also fits every alpha of the grid from
scratch, each with its own preconditioner, once: the iterations each alpha needs alone.
"""
from __future__ import annotations

import json

import harness
import numpy as np
from problems import add_holdout_flags, holdout_problem

from featurepipe.heads import LinearClassifier


def main() -> None:
    parser = add_holdout_flags(harness.parser(__doc__, rounds=2))
    parser.add_argument("--cold", action="store_true", help="also fit every alpha from scratch, once")
    args = parser.parse_args()
    X, y, alphas, base = holdout_problem(args.config, args.data, args.cache_dir, args.head)
    middle = alphas[len(alphas) // 2]
    report = {"machine": harness.describe(), "config": args.config, "rows": X.shape[0], "features": X.shape[1],
              "alphas": alphas, "rounds": []}
    for _ in range(args.rounds):
        single, single_seconds = harness.timed(LinearClassifier(**{**base, "alpha": middle}).fit, X, y)
        path, path_seconds = harness.timed(LinearClassifier(**base).fit_path, X, y, alphas)
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
            model, seconds = harness.timed(LinearClassifier(**{**base, "alpha": alpha}).fit, X, y)
            report["cold"].append({"alpha": alpha, "seconds": round(seconds, 1),
                                   "iterations": int(model.n_iter_), "objective": model.loss_curve_[-1]})
            print(json.dumps(report["cold"][-1]), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
