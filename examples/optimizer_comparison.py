"""The eight optimisers on one head and one feature set: training-loss curves, measured.

    nice -n 10 python examples/optimizer_comparison.py CIFAR_DIR [--cache-dir /tmp/fpcache-heads]
                                                       [--epochs 30] [--output docs/optimizers.png]

Head: ``MLPClassifier((100,))`` with L2 ``alpha=1e-3``, on HOG + HSV features of CIFAR-10
(``configs/cifar10-hog-hsv.yaml``, extracted into the cache or reused; 45,000 training images to fit,
5,000 to validate: a stratified holdout split, seed 0, standardised with the fit rows' mean and std). Every optimiser gets the same epochs, batch size (256), seed and
a constant learning rate, so the curves show the optimisers and not a schedule. Each first-order
optimiser tries the learning rates in ``LEARNING_RATES`` and keeps the one with the best validation
accuracy; L-BFGS has no learning rate and runs as many full-batch iterations as the others run epochs
(each iteration is one or more passes over the data, for the line search).

The figure plots, per optimiser at its kept learning rate, the training objective per epoch (for
mini-batch optimisers the mean over the epoch's batches, for L-BFGS the full-batch value after each
iteration); then, against the learning rate, the training objective reached and the validation
accuracy. The final training objective is measured the same way for all eight: the full-batch
objective (mean cross-entropy + 0.5 alpha ||W||^2) on the 45,000 after training.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from featurepipe.extract import extract_features  # noqa: E402
from featurepipe.config import load_config  # noqa: E402
from featurepipe.heads import MLPClassifier  # noqa: E402
from featurepipe.heads.training import DivergenceError  # noqa: E402
from featurepipe.normalize import Standardize  # noqa: E402
from featurepipe.selection import make_splits  # noqa: E402
from featurepipe.store import FeatureStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

ALPHA = 1e-3
LEARNING_RATES = {
    "sgd": (0.01, 0.03, 0.1, 0.3, 1.0),
    "momentum": (0.001, 0.003, 0.01, 0.03, 0.1),
    "nesterov": (0.001, 0.003, 0.01, 0.03, 0.1),
    "adagrad": (0.003, 0.01, 0.03, 0.1, 0.3),
    "rmsprop": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
    "adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
    "adamw": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
    "lbfgs": (None,),
}


def holdout_features(cifar_dir, cache_dir, jobs):
    """(X_fit, y_fit), (X_val, y_val): HOG + HSV features of the training images, split 90% / 10% (stratified,
    seed 0) and standardised with the fit rows' mean and std."""
    cfg = load_config(ROOT / "configs/cifar10-hog-hsv.yaml",
                      [f"dataset.path={cifar_dir}", f"run.cache_dir={cache_dir}", f"run.jobs={jobs}"])
    train = FeatureStore(cache_dir).read(extract_features(cfg).key, split="train")
    _, [split] = make_splits(train.labels, "holdout", 0.1, 5, seed=0)
    scale = Standardize().fit(train.X[split.fit])
    return [(scale.transform(train.X[rows]), train.labels[rows]) for rows in (split.fit, split.val)]


def objective(model, X, y):
    """Mean cross-entropy + 0.5 alpha ||W||^2 of a fitted head on all of ``(X, y)``."""
    proba = model.predict_proba(X)
    rows = np.searchsorted(model.classes_, y)
    loss = -np.mean(np.log(np.maximum(proba[np.arange(len(y)), rows], 1e-12)))
    return loss + 0.5 * model.alpha * sum(float(np.vdot(W, W)) for W in model.coefs_)


def train(optimizer, lr, epochs, data):
    """Fit one head; (model, validation accuracy, seconds), or (None, nan, seconds) if it diverged."""
    (X, y), (X_val, y_val) = data
    model = MLPClassifier((100,), alpha=ALPHA, optimizer=optimizer, learning_rate=lr, schedule="constant",
                          batch_size=256, max_iter=epochs, n_iter_no_change=epochs + 1, random_state=0)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a constant rate never anneals to 0
            model.fit(X, y)
    except DivergenceError:
        return None, float("nan"), time.perf_counter() - start
    return model, model.score(X_val, y_val), time.perf_counter() - start


STYLES = {"sgd": "-", "momentum": "--", "nesterov": ":", "adagrad": "-", "rmsprop": "-.", "adam": "--",
          "adamw": ":", "lbfgs": "-"}


def plot(results, kept, final_loss, epochs, path):
    """Loss curves at the kept learning rates; final training objective and validation accuracy against
    the learning rate (L-BFGS, which has none, as a horizontal line)."""
    fig, (loss_ax, final_ax, val_ax) = plt.subplots(1, 3, figsize=(17, 4.8))
    for colour, name in zip(plt.cm.tab10(np.arange(len(LEARNING_RATES))), LEARNING_RATES):
        lr, (model, val, _) = kept[name]
        style = dict(color=colour, linestyle=STYLES[name], linewidth=2.2 if name == "lbfgs" else 1.6)
        curve = model.loss_curve_
        loss_ax.plot(np.arange(1, len(curve) + 1), curve, label=f"{name} (lr {lr:g})" if lr else name, **style)
        if name == "lbfgs":
            final_ax.axhline(final_loss[name, lr], label=name, **style)
            val_ax.axhline(val, label=name, **style)
            continue
        rates = LEARNING_RATES[name]
        final_ax.plot(rates, [final_loss[name, r] for r in rates], marker="o", label=name, **style)
        val_ax.plot(rates, [results[name, r][1] for r in rates], marker="o", label=name, **style)
        val_ax.plot([lr], [val], marker="*", markersize=14, color=colour)
    loss_ax.set(xlabel="epoch (L-BFGS: iteration)", ylabel="training objective (loss + L2)",
                title=f"training loss at the kept learning rate\n{epochs} epochs, batch 256, constant rate")
    loss_ax.legend(fontsize=8)  # one legend: colours and line styles are the same in all three panels
    final_ax.set(xscale="log", xlabel="learning rate", ylabel="training objective, full batch",
                 title=f"training objective after {epochs} epochs (L-BFGS: grey line)")
    val_ax.set(xscale="log", xlabel="learning rate", ylabel="validation accuracy",
               title="validation accuracy (star: the kept rate; L-BFGS: grey line)")
    fig.suptitle("Optimisers on CIFAR-10 HOG + HSV features (45,000 images to fit, 5,000 to validate), "
                 "MLP(100), L2 alpha 1e-3")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cifar_dir", type=Path)
    parser.add_argument("--cache-dir", default="/tmp/fpcache-heads")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs/optimizers.png")
    args = parser.parse_args()
    threadpool_limits(args.blas_threads, user_api="blas")

    data = holdout_features(args.cifar_dir, args.cache_dir, args.jobs)
    print(f"# Optimisers, {datetime.datetime.now():%Y-%m-%d %H:%M}\n")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.blas_threads} BLAS thread(s); load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n", flush=True)
    results = {}
    for name, rates in LEARNING_RATES.items():
        for lr in rates:
            results[name, lr] = train(name, lr, args.epochs, data)
            print(f"  {name:9s} lr {lr or '-':<7} val {results[name, lr][1]:.2%}  {results[name, lr][2]:6.1f} s",
                  flush=True)
    kept = {name: max(((lr, results[name, lr]) for lr in rates if results[name, lr][0] is not None),
                      key=lambda item: item[1][1])
            for name, rates in LEARNING_RATES.items()}
    (X, y), _ = data
    final_loss = {key: objective(model, X, y) if model else float("nan") for key, (model, _, _) in results.items()}
    plot(results, kept, final_loss, args.epochs, args.output)

    print(f"\n| optimiser | learning rate (kept on validation) | final train objective | val accuracy | fit s |")
    print("|---|---:|---:|---:|---:|")
    for name, (lr, (model, val, seconds)) in kept.items():
        print(f"| {name} | {lr or 'full batch'} | {final_loss[name, lr]:.4f} | {val:.2%} | {seconds:.1f} |")
    print(f"\n{args.epochs} epochs (L-BFGS: iterations), batch 256; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; figure: {args.output}")


if __name__ == "__main__":
    main()
