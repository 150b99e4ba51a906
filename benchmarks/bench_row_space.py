"""Linear heads on fewer rows than features: a single fit and a 6-alpha path, three ways.

    python benchmarks/bench_row_space.py [--rows 2000] [--features 4000] [--classes 10] [--rounds 2]

On a synthetic wide problem (rectified low-rank features, standardised, one informative column per
class), an L2-SVM (squared hinge, L-BFGS, tol 1e-4) is fitted at the middle alpha and along the
regularisation path of 6 alphas, in interleaved rounds:

- ``features``: on X itself, with the Gram (low-rank) preconditioner;
- ``row space, Gram``: in the row space of X, with the Gram preconditioner of its features;
- ``row space, arrow``: in the row space, with ``OrthogonalPreconditioner`` (the default).

Prints seconds, L-BFGS iterations and the objective each reached; the best round counts.
"""
from __future__ import annotations

import contextlib
import json

import harness
import numpy as np

from featurepipe.heads import LinearClassifier
from featurepipe.heads.preconditioning import build_preconditioner


def wide_problem(rows, features, classes, seed=0):
    rng = np.random.default_rng(seed)
    X = np.maximum(rng.standard_normal((rows, 200)).astype(np.float32)
                   @ rng.standard_normal((200, features)).astype(np.float32), 0)
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-3)
    y = rng.integers(0, classes, rows)
    X[np.arange(rows), y] += 3
    return X, y


@contextlib.contextmanager
def variant(name):
    """Switch the row space or its arrow-shaped preconditioner off for the ``with`` block."""
    saved = LinearClassifier._row_space, LinearClassifier._build_preconditioner
    if name == "features":
        LinearClassifier._row_space = lambda self, X, full_batch: None
    elif name == "row space, Gram":
        LinearClassifier._build_preconditioner = _gram_on_the_row_space
    try:
        yield
    finally:
        LinearClassifier._row_space, LinearClassifier._build_preconditioner = saved


def _gram_on_the_row_space(head, X, n_classes, space, alpha):
    """The Gram preconditioner of the row space's features instead of its diagonal one."""
    features = X if space is None else space.features
    preconditioner = build_preconditioner(features, n_classes, alpha=alpha, curvature=head.parts()["loss"].curvature)
    preconditioner.row_space = space
    return preconditioner


def main() -> None:
    args = harness.parser(__doc__, rows=2000, features=4000, classes=10, rounds=2).parse_args()
    X, y = wide_problem(args.rows, args.features, args.classes)
    head = LinearClassifier("squared_hinge", optimizer="lbfgs", max_iter=500, tol=1e-4, random_state=0)
    alphas = list(np.logspace(-4, 1, 6))
    best = {}
    for _ in range(args.rounds):
        for name in ("features", "row space, Gram", "row space, arrow"):
            with variant(name):
                single, single_seconds = harness.timed(LinearClassifier(**{**head.get_params(deep=False), "alpha": alphas[3]}).fit,
                                                       X, y)
                path, path_seconds = harness.timed(head.fit_path, X, y, alphas)
            row = {"single_seconds": round(single_seconds, 2), "single_iterations": single.n_iter_,
                   "single_objective": float(single.loss_curve_[-1]), "path_seconds": round(path_seconds, 2),
                   "path_iterations": [m.n_iter_ for m in path], "path_objective_at_middle": float(path[3].loss_curve_[-1]),
                   "ratio": round(path_seconds / single_seconds, 2)}
            print(json.dumps({"variant": name, **row}), flush=True)
            if name not in best or single_seconds + path_seconds < best[name]["single_seconds"] + best[name]["path_seconds"]:
                best[name] = row
    print(json.dumps({"machine": harness.describe(), "shape": [args.rows, args.features], "alphas": alphas,
                      "best": best}))


if __name__ == "__main__":
    main()
