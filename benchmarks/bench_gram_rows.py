"""Why the L-BFGS preconditioner's Gram matrix is built on every row: one fit, Gram on all rows or a sample.

    python benchmarks/bench_gram_rows.py --config configs/cifar10-pca-sift.yaml --data /tmp/cifar \\
        --cache-dir CACHE [--head 0] [--alpha A] [--rows 10000,32000]

On the matrix a holdout selection fits the config's head on (``problems.holdout_problem``), fits the head at
``alpha`` (default: the smallest of its ``alpha: auto`` grid) with the preconditioner the library builds
(``GramPreconditioner`` over all rows), and with one built the same way on a random sample of each size
in ``--rows`` (the Gram matrix of the sample, rescaled to all rows: what the library did before).
Prints, for each, the preconditioner's seconds, the whole fit's seconds, L-BFGS iterations and the
objective reached.
"""
from __future__ import annotations

import json
import time

import harness
import numpy as np
from problems import add_holdout_flags, holdout_problem

from featurepipe.heads import LinearClassifier
from featurepipe.heads.preconditioning import GramPreconditioner


def main() -> None:
    parser = add_holdout_flags(harness.parser(__doc__))
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--rows", default="10000,32000", help="sample sizes to compare with all rows")
    args = parser.parse_args()
    X, y, alphas, base = holdout_problem(args.config, args.data, args.cache_dir, args.head)
    alpha = min(alphas) if args.alpha is None else args.alpha
    head = LinearClassifier(**{**base, "alpha": alpha})
    print(json.dumps({"machine": harness.describe(), "rows": X.shape[0], "features": X.shape[1], "alpha": alpha}),
          flush=True)
    rng = np.random.default_rng(0)
    for size in [len(X)] + [int(r) for r in args.rows.split(",") if int(r) < len(X)]:
        start = time.perf_counter()
        sample = X if size == len(X) else X[np.sort(rng.choice(len(X), size, replace=False))]
        preconditioner = GramPreconditioner(sample, len(np.unique(y)), alpha=alpha,
                                            curvature=head.parts()["loss"].curvature)
        built = time.perf_counter() - start
        model = LinearClassifier(**head.get_params(deep=False))._fit(X, y, preconditioner=preconditioner)
        print(json.dumps({"gram_rows": size, "preconditioner_seconds": round(built, 1),
                          "seconds": round(time.perf_counter() - start, 1), "iterations": int(model.n_iter_),
                          "objective": model.loss_curve_[-1]}), flush=True)


if __name__ == "__main__":
    main()
