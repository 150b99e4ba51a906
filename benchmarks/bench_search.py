"""featurepipe's cross-validated search of a linear head against scikit-learn's GridSearchCV on the same
problem: same features, same folds, same normalisation options, same C grid, same objective.

    python benchmarks/bench_search.py --config configs/scene15-bench.yaml --data /tmp/scene15 \
        --cache-dir /tmp/fpcache-s15 --pipeline fisher_phow --head svm [--rounds 1] [--options 0,1]
    python benchmarks/bench_search.py ... --classes 100     # ours at the data's classes and at 100

``--options`` keeps some of the normalisation options (indices), for a shorter run on both sides.
``--classes K`` times instead our search on the data's labels against the same search on a generated
labelling into ``K`` classes (each class cut into sub-classes of consecutive images, for timing only): one Gram
matrix and shared solves should make the time grow much less than the number of classes.

Features come through the product (the bench config's pipeline, extracted into the cache or reused). The
training rows are split by ``featurepipe.selection.make_splits`` (the config's ``train``: k folds, seed) and
both sides get the same folds as index arrays.

- Ours: ``featurepipe.selection.Search`` over the head's ``alpha: auto`` grid and the pipeline's
  normalisation options (no grid extension), as ``featurepipe train`` runs it; its solver (Gram or primal)
  is the one the data chooses, printed.
- Theirs: ``GridSearchCV(Pipeline([normalisation, head]), cv=the folds, n_jobs=2)`` with, per option, the same
  normalisation (featurepipe's ``Normalization``, fitted on each fold's fit rows as ours is) and ``C = 1 /
  (alpha n_fit)``, which makes their objective ours: ``LinearSVC(loss="squared_hinge", dual=False,
  intercept_scaling=100)`` (the intercept's penalty ``0.5 (b / 100)^2`` per class, negligible) for ``loss:
  squared_hinge`` (the primal solver: in the dual, liblinear with that intercept column stopped at max_iter 500
  with an objective 5 times ours, 2026-12-07), ``LogisticRegression(solver="lbfgs")`` (multinomial) for ``log_loss``; both at tol 1e-4, the
  head's ``max_iter``.
- Both use the machine's 2 cores through 2 joblib (loky) workers: ours as the product runs it with ``run.jobs:
  2`` (the folds' chains side by side; BLAS threads where it searches on features), theirs as ``n_jobs=2``.
- The searches alternate (ours, theirs, ours, ...), each side's worker processes started before it is timed
  (``warm_up``); each side's best round is kept. Printed: the times and
  their ratio, the setting each side chose and its mean validation accuracy, and the objective each side's
  fit at the chosen setting reached on the first fold, evaluated the same way in float64
  (``mean_i loss + 0.5 alpha ||W||^2``).
"""
from __future__ import annotations

import datetime
import warnings

import harness
import numpy as np


def objective(W, b, X, y, alpha, loss) -> float:
    """``mean_i loss(W x_i + b, y_i) + 0.5 alpha ||W||^2`` in float64; ``W`` is ``coef_``, ``y`` class indices."""
    S = np.asarray(X, np.float64) @ np.asarray(W, np.float64).T + np.asarray(b, np.float64)
    rows = np.arange(len(y))
    if loss == "squared_hinge":
        T = -np.ones_like(S)
        T[rows, y] = 1
        value = (np.maximum(0.0, 1 - T * S) ** 2).sum(axis=1).mean()
    else:
        S -= S.max(axis=1, keepdims=True)
        value = (np.log(np.exp(S).sum(axis=1)) - S[rows, y]).mean()
    return float(value + 0.5 * alpha * (np.asarray(W, np.float64) ** 2).sum())


def load_problem(args):
    """The config's training data for ``args.pipeline``, the head's settings and its normalisation options."""
    from featurepipe.config import load_config
    from featurepipe.extract import training_data
    from featurepipe.fitting import named_heads
    from featurepipe.selection import make_splits, normalization_options

    cfg = load_config(args.config, [f"dataset.path={args.data}", f"run.cache_dir={args.cache_dir}",
                                    "run.progress=false"])
    entry = cfg.bench.pipelines[args.pipeline]
    sub = cfg.model_copy(update={"pipeline": entry.pipeline(), "train": entry.train(cfg.train)})
    head = next(h for h in named_heads(cfg) if h.name == args.head)
    options = normalization_options(head.normalize or entry.normalize or sub.train.normalize)
    data = training_data(sub)
    labels = data.labels[data.train_rows]
    _, splits = make_splits(labels, sub.train.selection, sub.train.validation_fraction, sub.train.folds,
                            sub.train.seed)
    return data, head, options, splits


def regrouped(data, n_classes: int):
    """A copy of ``data`` whose training labels cut each class into sub-classes (of consecutive images), ``n_classes``
    in all; the test labels are left alone (the search never reads them)."""
    import copy

    labels = np.asarray(data.labels, object).copy()
    rows = data.train_rows
    classes = sorted(set(labels[rows]))
    parts = np.full(len(classes), n_classes // len(classes))
    parts[:n_classes % len(classes)] += 1
    for c, k in zip(classes, parts):
        mine = rows[labels[rows] == c]
        labels[mine] = [f"{c}/{i % k}" for i in range(len(mine))]
    other = copy.copy(data)
    other.labels = labels
    return other


def ours(data, head_class, params, splits, options):
    from featurepipe.runner import map_in_processes
    from featurepipe.selection import Search

    search = Search(data, head_class, params, splits, options, keep=False, map_tasks=map_in_processes(2))
    search.run()
    return search


def warm_up(side: str) -> None:
    """Start ``side``'s two worker processes before its search is timed: each side keeps a pool of loky
    workers, and the two pools differ (featurepipe's workers run the extraction's initializer), so each round
    would otherwise time the other side's pool being replaced. The product's searches run on the workers the
    extraction started."""
    from joblib import Parallel, delayed

    if side == "featurepipe":
        from featurepipe.runner import map_in_processes

        map_in_processes(2)(abs, [(-1,), (-2,)])
    else:
        Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(2))


def theirs_head(loss, max_iter):
    """scikit-learn's estimator of ``loss``'s objective (C set by the caller)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if loss == "squared_hinge":
        return LinearSVC(loss="squared_hinge", dual=False, intercept_scaling=100, tol=1e-4, max_iter=max_iter)
    return LogisticRegression(solver="lbfgs", tol=1e-4, max_iter=max_iter)


def theirs(X, y, splits, options, grids, loss, max_iter):
    """GridSearchCV over ``options`` (``Normalization`` objects), each with its C grid (from ``grids``' alphas)."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from featurepipe.normalize import Normalization

    model = theirs_head(loss, max_iter)
    n_fit = len(splits[0].fit)
    grid = [{"normalize": [option], "head__C": [1 / (a * n_fit) for a in grids[i]]} for i, option in enumerate(options)]
    search = GridSearchCV(Pipeline([("normalize", Normalization()), ("head", model)]), grid,
                          cv=[(s.fit, s.val) for s in splits], n_jobs=2, refit=False, scoring="accuracy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: counted below from n_iter, not hidden
        search.fit(X, y)
    return search


def main():
    from featurepipe.core import REGISTRY
    from featurepipe.heads import LinearClassifier
    from featurepipe.matrix import Segment, build_matrix, fit_normalization
    from featurepipe.normalize import Normalization

    args = harness.parser(__doc__, config="", data="", cache_dir="", pipeline="fisher_phow", head="svm",
                          rounds=1, options="", classes=0).parse_args()
    data, head, options, splits = load_problem(args)
    if args.options:
        options = [options[int(i)] for i in args.options.split(",")]
    head_class = REGISTRY.get("head", head.model)
    params = dict(head.params)
    loss, max_iter = params.get("loss", "log_loss"), int(params.get("max_iter", 500))
    X = build_matrix(data.store, [Segment(data.key, data.train_rows)], Normalization())
    y = np.unique(data.labels[data.train_rows], return_inverse=True)[1]
    print(f"# search: featurepipe against GridSearchCV, {args.pipeline} x {args.head} "
          f"({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)\n")
    print(harness.describe())
    print(f"\n{X.shape[0]} training rows x {X.shape[1]} features, {len(splits)} folds, options {options}, loss {loss}\n")

    normalizations = [Normalization.from_spec(option) for option in options]
    if args.classes:
        return compare_classes(data, head_class, params, options, args)
    timings = {"featurepipe": [], "GridSearchCV": []}
    found = {}
    for _ in range(args.rounds):
        warm_up("featurepipe")
        search, seconds = harness.timed(ours, data, head_class, params, splits, options)
        timings["featurepipe"].append(seconds)
        print(f"featurepipe's search: {seconds:.1f} s ({', '.join(search.solver(n) for n in range(len(options)))})",
              flush=True)
        found["featurepipe"] = search
        grids = [[p["alpha"] for p in search.grids[n][0]] for n in range(len(options))]
        warm_up("GridSearchCV")
        grid_search, seconds = harness.timed(theirs, X, y, splits, normalizations, grids, loss, max_iter)
        timings["GridSearchCV"].append(seconds)
        print(f"GridSearchCV: {seconds:.1f} s", flush=True)
        found["GridSearchCV"] = grid_search

    search, grid_search = found["featurepipe"], found["GridSearchCV"]
    best = search.best()
    n_fit = len(splits[0].fit)
    theirs_best = grid_search.best_params_
    theirs_option = next(i for i, o in enumerate(normalizations) if o is theirs_best["normalize"])
    theirs_alpha = 1 / (theirs_best["head__C"] * n_fit)
    print("| side | solver | search seconds (best of rounds) | chosen normalisation | chosen alpha | mean validation |")
    print("|---|---|---:|---|---:|---:|")
    print(f"| featurepipe | {', '.join(search.solver(n) for n in range(len(options)))} | {min(timings['featurepipe']):.1f} "
          f"| {best['normalize']} | {best['params']['alpha']:.3g} | {best['val_accuracy']:.2%} |")
    print(f"| GridSearchCV | {type(grid_search.estimator[-1]).__name__} | {min(timings['GridSearchCV']):.1f} "
          f"| {options[theirs_option]} | {theirs_alpha:.3g} | {grid_search.best_score_:.2%} |")
    print(f"\nratio featurepipe / GridSearchCV: **{min(timings['featurepipe']) / min(timings['GridSearchCV']):.3f}**"
          f" (rounds: {timings})\n")

    # The objective both sides reach at the same setting (ours' chosen) on the first fold, evaluated alike.
    option, alpha = options.index(best["normalize"]), best["params"]["alpha"]
    split = splits[0]
    normalization = fit_normalization(data.store, [Segment(data.key, data.train_rows[split.fit])],
                                      Normalization.from_spec(options[option]))
    Xn = normalization.transform(X)
    model = LinearClassifier(**{**params, "alpha": alpha}).fit(Xn[split.fit], y[split.fit])
    head_model = theirs_head(loss, max_iter).set_params(C=1 / (alpha * n_fit))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        head_model.fit(Xn[split.fit], y[split.fit])
    f_ours = objective(model.coef_, model.intercept_, Xn[split.fit], y[split.fit], alpha, loss)
    f_theirs = objective(head_model.coef_, head_model.intercept_, Xn[split.fit], y[split.fit], alpha, loss)
    print(f"objective at alpha {alpha:.3g} ({best['normalize']}), fold 1: featurepipe {f_ours:.7g}, "
          f"{type(head_model).__name__} {f_theirs:.7g} (relative difference {(f_theirs - f_ours) / abs(f_ours):+.2e}; "
          f"its n_iter {np.max(head_model.n_iter_)})")
    print(f"load at the end: {harness.load_text()}")


def compare_classes(data, head_class, params, options, args):
    """Our search on the data's labels and on ``args.classes`` regrouped ones, alternately; prints both."""
    from featurepipe.selection import make_splits

    many = regrouped(data, args.classes)
    problems = {}
    for name, which in ((f"{len(data.classes)} classes", data), (f"{args.classes} classes", many)):
        labels = which.labels[which.train_rows]
        _, splits = make_splits(labels, "kfold", 0.1, 5, 0)
        problems[name] = (which, splits, len(set(labels)))
    times = harness.timed_rounds({name: (lambda p=p: ours(p[0], head_class, params, p[1], options))
                                  for name, p in problems.items()}, args.rounds)
    print("| labelling | classes | search seconds (best of rounds) |")
    print("|---|---:|---:|")
    for name, (_, _, k) in problems.items():
        print(f"| {name} | {k} | {min(times[name]):.1f} |")
    few, more = (min(t) for t in times.values())
    print(f"\nratio {args.classes} / {len(data.classes)} classes: **{more / few:.2f}** (rounds: {times})")
    print(f"load at the end: {harness.load_text()}")


if __name__ == "__main__":
    main()
