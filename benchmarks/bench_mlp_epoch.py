"""What one epoch of an MLP head costs, against scikit-learn's MLPClassifier on the same rows.

    python benchmarks/bench_mlp_epoch.py [--rows 20000] [--features 6400] [--hidden 500] [--epochs 2] [--rounds 3]

Random float32 rows (standard normal) and 10 classes, as wide as CIFAR-10's 1,600-centroid k-means
features by default. Both sides: one hidden layer of ReLUs, Adam at a constant 1e-3, batch 200, L2 1e-4,
``--epochs`` epochs, no early stop; fits alternate, ``--rounds`` times. Prints seconds per epoch, each
side's best, the ratio ours / scikit-learn's, and the training objective each side reached (mean loss plus
its L2 term; scikit-learn's ``alpha`` is per mini-batch, so ``200 x`` ours is the same penalty). Run it at two commits (``PYTHONPATH``) for a before/after.
"""
from __future__ import annotations

import json

import harness
import numpy as np
from sklearn.neural_network import MLPClassifier as SkMLP

from featurepipe.heads import MLPClassifier


def main() -> None:
    args = harness.parser(__doc__, rows=20000, features=6400, hidden=500, epochs=2, rounds=3).parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.features), dtype=np.float32)
    y = rng.integers(0, 10, args.rows)
    ours = MLPClassifier(hidden_layer_sizes=[args.hidden], alpha=1e-4, batch_size=200, max_iter=args.epochs,
                         schedule="constant", learning_rate=1e-3, n_iter_no_change=args.epochs + 1, random_state=0)
    theirs = SkMLP(hidden_layer_sizes=(args.hidden,), alpha=200 * 1e-4, batch_size=200, max_iter=args.epochs,
                   learning_rate_init=1e-3, n_iter_no_change=args.epochs + 1, tol=0, shuffle=True, random_state=0)
    models = {"ours": ours, "scikit-learn": theirs}
    seconds = harness.timed_rounds(
        {name: (lambda model=model: harness.fit_quietly(model, X, y)) for name, model in models.items()}, args.rounds,
        after_round=lambda s: print(json.dumps({k: round(v[-1] / args.epochs, 2) for k, v in s.items()}), flush=True))
    times = {name: [s / args.epochs for s in values] for name, values in seconds.items()}
    objectives = {name: float(model.loss_curve_[-1]) for name, model in models.items()}
    best = {name: min(values) for name, values in times.items()}
    print(json.dumps({"machine": harness.describe(), "rows": args.rows, "features": args.features,
                      "hidden": args.hidden, "epochs": args.epochs, "seconds_per_epoch": times,
                      "best": best, "ratio": round(best["ours"] / best["scikit-learn"], 2),
                      "final_objective": objectives}))


if __name__ == "__main__":
    main()
