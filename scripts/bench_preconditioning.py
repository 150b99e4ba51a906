"""L-BFGS with and without the Gram preconditioner on cached features: iterations, seconds, objective.

    python scripts/bench_preconditioning.py --cache-dir /tmp/fpcache --key KEY [--rows 10000] [--C 100]

Takes the first ``--rows`` training rows of a feature entry (e.g. k-means codes), standardises them and
trains LinearClassifier(loss="squared_hinge", optimizer="lbfgs", alpha=1/C) both ways, to the same
tolerance. Prints one JSON line per run.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

from sklearn.exceptions import ConvergenceWarning

from coates_cifar10 import standardise, statistics
from featurepipe.heads import LinearClassifier
from featurepipe.store import FeatureStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--C", type=float, default=100.0)
    parser.add_argument("--max-iter", type=int, default=10_000)
    args = parser.parse_args()

    train = FeatureStore(args.cache_dir).read(args.key, split="train")
    X, y = train.X[:args.rows], train.labels[:args.rows]
    standardise(X, *statistics(X))  # as Coates does: (x - mean) / sqrt(var + 0.01)
    for precondition in (True, False):
        begin = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LinearClassifier("squared_hinge", optimizer="lbfgs", alpha=1 / args.C, tol=1e-6,
                                     max_iter=args.max_iter, precondition=precondition, random_state=0).fit(X, y)
        print(json.dumps({"precondition": precondition, "rows": len(X), "dim": X.shape[1], "C": args.C,
                          "iterations": model.n_iter_, "seconds": round(time.perf_counter() - begin, 1),
                          "objective": round(model.loss_curve_[-1], 6), "train": round(model.score(X, y), 4)}),
              flush=True)


if __name__ == "__main__":
    main()
