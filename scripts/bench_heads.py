"""featurepipe's heads against scikit-learn's on the same CIFAR-10 features, side by side in one process.

    nice -n 10 python scripts/bench_heads.py CIFAR_DIR [--cache-dir /tmp/fpcache-heads] [--jobs 2]
                                            [--repeats 1] [--features hog_hsv,raw] [--blas-threads 1]

Features are extracted into the cache, or reused from it: HOG + HSV histogram
(``configs/cifar10-hog-hsv.yaml``, 396-d) and raw pixels (``configs/cifar10-raw.yaml``, 3072-d). The
50,000 training images are split 45,000 / 5,000 (``featurepipe.train.split_validation``, seed 0) and
standardised on the 45,000; every model is fitted on those 45,000.

Each side of a pair fits a few settings (``COMPARISONS`` below), alternately. scikit-learn keeps the one
with the best accuracy on the 5,000 validation images. Ours keeps two: "matched", the cheapest setting whose
validation accuracy is at most 0.5 points below scikit-learn's best (or above it), which is the one timed
against scikit-learn's at the same accuracy, and "best", our best on validation, when it is another setting.
The kept models are refitted ``--repeats`` more times, alternately, so all are timed under the same load; a
fit time is the best of that setting's fits, and the kept settings are scored once on the 10,000 test
images. Ratio = our fit time / scikit-learn's.

scikit-learn settings, matched to ours where the objective is the same:
- ``LogisticRegression``: lbfgs, multinomial, ``C = 1 / (alpha n)`` (then it minimises exactly our
  softmax objective, mean loss + 0.5 alpha ||W||^2), ``max_iter=1000`` so that it converges (the
  default 100 stops early on these features). Ours: Adam at 0.01, cosine schedule, batch 256.
- ``LinearSVC``: the one-vs-rest squared-hinge L2-SVM, ``C = 1 / (alpha n)``, ``dual=False``: the
  primal solver, which scikit-learn's default ``dual="auto"`` picks when samples outnumber features
  (said explicitly here). Default ``tol=1e-4``, ``max_iter=1000``; the table says whether it converged.
  (liblinear also penalises the intercept, ours does not.) Our Weston-Watkins ``"hinge"`` head has
  no scikit-learn peer; its row is timed against the same LinearSVC.
- ``MLPClassifier((500,))``: Adam at its default 1e-3, batch 200, constant learning rate, float32 input
  (kept as float32). Its ``alpha`` is divided by the batch size (penalty 0.5 alpha / 200 ||W||^2 per
  batch) where ours is not, so its 0.2 and 2.0 match our 1e-3 and 1e-2; its default 1e-4 is tried
  too. Epochs (``max_iter``) are chosen on validation like ours; its default loss-plateau stop
  (``tol``, ``n_iter_no_change``) stays on. Ours: Adam at 1e-3, cosine schedule, batch 256.

BLAS runs on one thread by default, for both libraries: on this shared 2-core machine, with another job
busy, two OpenBLAS threads per process slowed our mini-batch steps down by up to 8x and scikit-learn's
MLP and LogisticRegression by 1.1-1.7x (measured), and made the timings erratic. ``--blas-threads 2``
measures the other setting.

Prints Markdown: the settings tried with their validation accuracy, then the results table.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

import featurepipe
from machine_info import cpu_model
from featurepipe.api import extract_features
from featurepipe.config import load_config
from featurepipe.heads import LinearClassifier, MLPClassifier
from featurepipe.store import FeatureStore
from featurepipe.train import Standardizer, split_validation

ROOT = Path(__file__).resolve().parent.parent
FEATURES = {"hog_hsv": ("HOG + HSV (396-d)", ROOT / "configs/cifar10-hog-hsv.yaml"),
            "raw": ("raw pixels (3072-d)", ROOT / "configs/cifar10-raw.yaml")}
N_FIT = 45_000  # training rows after the validation split: C = 1 / (alpha n)
ALPHAS = (1e-4, 1e-3, 1e-2)
MATCH = 0.005  # "same accuracy": validation accuracy at most this far below the peer's best


@dataclass
class Side:
    """One library's model: a name, a factory from a setting, and the settings to try."""
    name: str
    make: callable
    settings: list


def ours_linear(loss, name):
    return Side(f"ours {name}", lambda s: LinearClassifier(loss, random_state=0, **s),
                [{"alpha": a, "max_iter": e} for a in ALPHAS for e in (5, 10, 20)])


def their_linear(name, make):
    return Side(name, lambda s: make(C=s["C"]), [{"C": 1 / (a * N_FIT)} for a in ALPHAS])


def mlp(ours_settings, theirs_settings):
    return ([Side("ours MLP(500)", lambda s: MLPClassifier((500,), random_state=0, **s), ours_settings)],
            Side("sklearn MLP(500)", lambda s: SkMLPClassifier((500,), random_state=0, **s), theirs_settings))


#: Per feature set, the comparisons: (our heads, their peer). All settings are fitted alternately.
#: Epochs of our linear heads: 5, 10 and 20 (cosine schedule to 0); a pilot found 50 no better.
#: Raw pixels cost 8x more per epoch, so their MLP grids are a little smaller.
COMPARISONS = {
    "hog_hsv": lambda: [
        ([ours_linear("log_loss", "softmax")],
         their_linear("LogisticRegression", lambda C: LogisticRegression(C=C, max_iter=1000))),
        ([ours_linear("squared_hinge", "squared hinge (OvR)"), ours_linear("hinge", "hinge (Weston-Watkins)")],
         their_linear("LinearSVC", lambda C: LinearSVC(C=C, dual=False))),
        mlp([{"alpha": a, "max_iter": e} for a in (1e-3, 1e-2) for e in (10, 20, 40)],
            [{"alpha": a, "max_iter": e} for a in (1e-4, 0.2, 2.0) for e in (20, 40)]),
    ],
    "raw": lambda: [
        mlp([{"alpha": 1e-2, "max_iter": 10}, {"alpha": 1e-2, "max_iter": 20}, {"alpha": 1e-2, "max_iter": 40},
             {"alpha": 1e-3, "dropout": 0.5, "max_iter": 40}],
            [{"alpha": 1e-4, "max_iter": 20}, {"alpha": 0.2, "max_iter": 20}, {"alpha": 2.0, "max_iter": 20},
             {"alpha": 2.0, "max_iter": 40}]),
    ],
}


def load_features(kind, cifar_dir, cache_dir, jobs):
    """(X_fit, y_fit), (X_val, y_val), (X_test, y_test), standardised on X_fit."""
    overrides = [f"dataset.path={cifar_dir}", f"run.cache_dir={cache_dir}", f"run.jobs={jobs}"]
    cfg = load_config(FEATURES[kind][1], overrides)
    store = FeatureStore(cfg.run.cache_dir)
    key = extract_features(cfg).key
    train, test = store.read(key, split="train"), store.read(key, split="test")
    fit_rows, val_rows = split_validation(train.labels, 0.1, seed=0)
    scale = Standardizer.fit(train.X[fit_rows])
    return ((scale(train.X[fit_rows]), train.labels[fit_rows]), (scale(train.X[val_rows]), train.labels[val_rows]),
            (scale(test.X), test.labels))


class Fit:
    """A fitted model with its best fit time, and how the fit ended."""

    def __init__(self, side, setting):
        self.side, self.setting, self.seconds, self.model = side, setting, [], None

    def run(self, X, y):
        model = self.side.make(self.setting)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            start = time.perf_counter()
            model.fit(X, y)
            self.seconds.append(time.perf_counter() - start)
        self.model = model
        self.converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return self

    def status(self):
        minibatch = isinstance(self.model, (LinearClassifier, MLPClassifier, SkMLPClassifier))
        return f"{np.max(self.model.n_iter_)} {'epochs' if minibatch else 'iterations'}" + (
            "" if self.converged else ", not converged (max_iter)")


def compare(sides, data, repeats, log):
    """Fit every side's settings alternately; per side of ours, keep the cheapest setting whose validation
    accuracy is within 0.5 points of (or above) the peer's best, and the best one; refit those for timing.

    Returns ``[(matched or None, best), ...]`` for our sides, then the peer's best fit."""
    (X, y), (X_val, y_val), (X_test, y_test) = data
    fits = {side.name: [] for side in sides}
    for i in range(max(len(side.settings) for side in sides)):
        for side in sides:
            if i < len(side.settings):
                fit = Fit(side, side.settings[i]).run(X, y)
                fit.val = fit.model.score(X_val, y_val)
                fits[side.name].append(fit)
                log(f"  {side.name:28s} {_setting(fit.setting):30s} val {fit.val:.2%}  {fit.seconds[-1]:7.1f} s  "
                    f"{fit.status()}")
    *ours, theirs = sides
    theirs_best = max(fits[theirs.name], key=lambda fit: fit.val)
    kept = []
    for side in ours:
        best = max(fits[side.name], key=lambda fit: fit.val)
        close = [fit for fit in fits[side.name] if fit.val >= theirs_best.val - MATCH]
        kept.append((min(close, key=lambda fit: min(fit.seconds)) if close else None, best))
    timed = list(dict.fromkeys([fit for pair in kept for fit in pair if fit is not None] + [theirs_best]))
    for _ in range(repeats):
        for fit in timed:
            fit.run(X, y)
    for fit in timed:
        fit.test = fit.model.score(X_test, y_test)
    return kept, theirs_best


def _row(title, fit, name, ratio):
    return (f"| {title} | {name} | {_setting(fit.setting)} | {fit.val:.2%} | {fit.test:.2%} | "
            f"{min(fit.seconds):.3g} | {ratio} | {fit.status()} |")


def _setting(setting):
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.items())


def machine():
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cifar_dir", type=Path)
    parser.add_argument("--cache-dir", default="/tmp/fpcache-heads")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="extra alternate refits of the two kept models")
    parser.add_argument("--features", default="hog_hsv,raw", help=f"comma-separated, of {', '.join(FEATURES)}")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads, for both libraries")
    args = parser.parse_args()
    threadpool_limits(args.blas_threads, user_api="blas")

    log = lambda line: print(line, flush=True)  # noqa: E731
    started = datetime.datetime.now()
    log(f"# Heads vs scikit-learn, {started:%Y-%m-%d %H:%M}\n")
    log(f"{machine()}; numpy {np.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__}, "
        f"featurepipe {featurepipe.__version__}; {args.blas_threads} BLAS thread(s); {load()} at the start\n")
    rows = []
    for kind in args.features.split(","):
        title, config = FEATURES[kind]
        data = load_features(kind, args.cifar_dir, args.cache_dir, args.jobs)
        log(f"## {title}: {len(data[0][1])} fit / {len(data[1][1])} validation / {len(data[2][1])} test\n")
        log("```")
        for ours, theirs in COMPARISONS[kind]():
            kept, theirs_best = compare([*ours, theirs], data, args.repeats, log)
            rows.append((title, kept, theirs_best))
        log(f"```\n({load()})\n")

    log(f"## Results ({load()} at the end; {datetime.datetime.now() - started} in all)\n")
    log("| features | model | setting (chosen on validation) | val | test | fit s | ours / theirs | fit ended |")
    log("|---|---|---|---:|---:|---:|---:|---|")
    for title, kept, theirs in rows:
        for matched, best in kept:
            roles = [(matched, "matched")] if matched else []
            roles += [(best, "best" if matched else "best; none within 0.5 points")] if best is not matched else []
            for fit, role in roles:
                log(_row(title, fit, f"{fit.side.name} ({role})", f"{min(fit.seconds) / min(theirs.seconds):.2g}x"))
        log(_row(title, theirs, theirs.side.name, ""))
    log("\nmatched: our cheapest setting within 0.5 points of the peer's best validation accuracy (or above "
        "it); best: our best on validation, when that is another setting.")
    log(f"\nFit s: best of {1 + args.repeats} fits, the two sides alternating. Test accuracy: on the 10,000 "
        "test images, once, for the setting kept on validation.")


if __name__ == "__main__":
    main()
