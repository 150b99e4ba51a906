"""What one epoch of an MLP head costs, against scikit-learn's MLPClassifier on the same rows.

    python scripts/bench_mlp_epoch.py [--rows 20000] [--features 6400] [--hidden 500] [--epochs 2] [--rounds 3]

Random float32 rows (standard normal) and 10 classes, as wide as CIFAR-10's 1,600-centroid k-means
features by default. Both sides: one hidden layer of ReLUs, Adam at a constant 1e-3, batch 200, L2 1e-4,
``--epochs`` epochs, no early stop; fits alternate, ``--rounds`` times. Prints seconds per epoch, each
side's best, the ratio ours / scikit-learn's, and the training objective each side reached (mean loss plus
its L2 term; scikit-learn's ``alpha`` is per mini-batch, so ``200 x`` ours is the same penalty). Run it at two commits (``PYTHONPATH``) for a before/after.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLP

from featurepipe import machine
from featurepipe.heads import MLPClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--features", type=int, default=6400)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.features), dtype=np.float32)
    y = rng.integers(0, 10, args.rows)
    ours = MLPClassifier(hidden_layer_sizes=[args.hidden], alpha=1e-4, batch_size=200, max_iter=args.epochs,
                         schedule="constant", learning_rate=1e-3, n_iter_no_change=args.epochs + 1, random_state=0)
    theirs = SkMLP(hidden_layer_sizes=(args.hidden,), alpha=200 * 1e-4, batch_size=200, max_iter=args.epochs,
                   learning_rate_init=1e-3, n_iter_no_change=args.epochs + 1, tol=0, shuffle=True, random_state=0)
    times, objectives = {"ours": [], "scikit-learn": []}, {}
    for _ in range(args.rounds):
        for name, model in (("ours", ours), ("scikit-learn", theirs)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                model.fit(X, y)
            times[name].append((time.perf_counter() - start) / args.epochs)
        objectives = {"ours": float(ours.loss_curve_[-1]), "scikit-learn": float(theirs.loss_curve_[-1])}
        print(json.dumps({k: round(v[-1], 2) for k, v in times.items()}), flush=True)
    best = {name: min(values) for name, values in times.items()}
    print(json.dumps({"machine": machine.describe(), "rows": args.rows, "features": args.features,
                      "hidden": args.hidden, "epochs": args.epochs, "seconds_per_epoch": times,
                      "best": best, "ratio": round(best["ours"] / best["scikit-learn"], 2),
                      "final_objective": objectives}))


if __name__ == "__main__":
    main()
