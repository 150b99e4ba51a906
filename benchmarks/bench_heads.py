"""featurepipe's heads against scikit-learn's on CIFAR-10 features: same objective, same stopping rule,
same model selection, fits timed alternately in one process.

    python benchmarks/bench_heads.py CIFAR_DIR [--cache-dir /tmp/fpcache-heads] [--features hog_hsv,raw]
                                  [--blas-threads 1] [--extra-threads 2] [--repeats 3] [--quick]

Features come through the product (``extract_features`` on ``configs/cifar10-hog-hsv.yaml``, 396-d, and
``configs/cifar10-raw.yaml``, 3072-d; extracted into the cache or reused). The 50,000 training images are
split 45,000 fit / 5,000 validation (``featurepipe.selection.make_splits``: stratified, seed 0, 10%) and
standardised with the fit rows' mean and std (``featurepipe.normalize.Standardize``). Both sides get the same
float32 rows and integer labels (LogisticRegression and the MLPs compute in float32 then, LinearSVC copies to
float64 inside its fit).

What is compared, and how:

- Linear heads, one objective. ``LinearSVC(loss="squared_hinge", dual=False)`` minimises, per class,
  ``0.5 ||w||^2 + C sum_i sqhinge``; ``LogisticRegression`` (lbfgs, multinomial) ``0.5 ||W||^2 + C sum_i logloss``.
  Divided by ``C n`` both are ours, ``mean_i loss + 0.5 alpha ||W||^2`` with ``alpha = 1 / (C n)``.
  LinearSVC also penalises its intercept: ``intercept_scaling=100`` makes that ``0.5 (b / 100)^2`` per class,
  negligible (``check_mapping`` measures it). Ours: ``optimizer="lbfgs"``.
- ``check_mapping`` runs first: on 3,000 rows both sides run to tol 1e-10 must reach the same objective and
  weights (to 1e-4), and scikit-learn's MLP penalty per mini-batch must be what the MLP mapping assumes.
- Same stopping rule. Per C, ``f*`` is our fit at tol 1e-10 (it stops at float32 precision, about 1e-6 above
  the optimum). Each side then fits at its own tol 1e-1, 1e-2, ... 1e-8 (one fit each, alternately) until its
  solution is within ``(f - f*) / |f*| <= 1e-3`` (and 1e-4 for the softmax pair): the loosest tol that gets
  there. ``objective`` evaluates both sides' solutions, in float64, the same way.
- Same selection: same C grid (``LinearClassifier.auto_grid``, what ``alpha: auto`` searches, as C), each side
  keeps its best C on validation accuracy (ties: the smaller C), scored once on test.
- Timing: a fit time is the best of ``--repeats`` fits at the chosen C (the ladder's fit and the refits, ours and
  theirs alternating); per-C times in the detail tables are single fits. BLAS and OpenMP threads are limited
  to ``--blas-threads`` (default 1) for both; ``--extra-threads`` re-times the chosen settings at more threads
  (MLPs: fits of at most 3 epochs).
- MLP, one hidden layer of 500 ReLU units, Adam at a constant 1e-3 (scikit-learn's Adam has no schedule),
  batch 200 (it divides 45,000, so every batch is full), the same number of epochs, no early stop. Per
  mini-batch scikit-learn adds ``0.5 alpha_sk ||W||^2 / batch_size`` to the mean loss, so
  ``alpha_sk = 200 alpha``. The optimisers differ in details (initialisation: He here, Glorot there; Adam's
  epsilon inside or outside the bias correction), so the comparison is per-epoch cost and accuracy at equal
  epochs, not time to a common objective; the objective each reached is printed too.

Prints Markdown: the mapping check, per-C detail tables, the results tables, load at start and end.
"""
from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass, field
from pathlib import Path

import harness
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from featurepipe.extract import extract_features
from featurepipe.config import load_config
from featurepipe.heads import LinearClassifier, MLPClassifier
from featurepipe.normalize import Standardize
from featurepipe.selection import make_splits
from featurepipe.store import FeatureStore

ROOT = Path(__file__).resolve().parent.parent
FEATURES = {"hog_hsv": ("HOG + HSV (396-d)", ROOT / "configs/cifar10-hog-hsv.yaml"),
            "raw": ("raw pixels (3072-d)", ROOT / "configs/cifar10-raw.yaml")}
TOLS = [10.0 ** -k for k in range(1, 9)]  # each side's own tol, loosest first
REFERENCE_TOL = 1e-10
TARGET = 1e-3  # relative suboptimality at which fits are timed
INTERCEPT_SCALING = 100.0
MAX_ITER = 100_000  # never the stopping reason: tol is
MLP_BATCH = 200


# --- the common objectives, float64 ---------------------------------------------------------------

def objective(W, b, X, y, alpha, loss, chunk=8192):
    """``mean_i loss(W x_i + b, y_i) + 0.5 alpha ||W||^2`` in float64; ``W`` is ``(n_classes, n_features)``
    (``coef_``), ``y`` class indices. The same evaluation for both sides' solutions."""
    W, b = np.asarray(W, np.float64), np.asarray(b, np.float64)
    total = 0.0
    for start in range(0, len(y), chunk):
        S = np.asarray(X[start:start + chunk], np.float64) @ W.T + b
        rows, yc = np.arange(len(S)), y[start:start + chunk]
        if loss == "squared_hinge":
            T = -np.ones_like(S)
            T[rows, yc] = 1
            total += (np.maximum(0.0, 1 - T * S) ** 2).sum()
        elif loss == "log_loss":
            S -= S.max(axis=1, keepdims=True)
            total += (np.log(np.exp(S).sum(axis=1)) - S[rows, yc]).sum()
        else:  # "hinge", Weston-Watkins
            M = np.maximum(0.0, S - S[rows, yc][:, None] + 1)
            M[rows, yc] = 0
            total += M.sum()
    return total / len(y) + 0.5 * alpha * float((W * W).sum())


def mlp_objective(coefs, intercepts, X, y, alpha, chunk=4096):
    """Mean softmax cross-entropy of a ReLU MLP (``coefs[i]`` of shape ``(fan_in, fan_out)``, both libraries'
    layout) plus ``0.5 alpha sum ||W_i||^2``, in float64."""
    coefs = [np.asarray(c, np.float64) for c in coefs]
    intercepts = [np.asarray(c, np.float64) for c in intercepts]
    total = 0.0
    for start in range(0, len(y), chunk):
        a = np.asarray(X[start:start + chunk], np.float64)
        for i, (W, b) in enumerate(zip(coefs, intercepts)):
            a = a @ W + b
            if i < len(coefs) - 1:
                np.maximum(a, 0, out=a)
        a -= a.max(axis=1, keepdims=True)
        yc = y[start:start + chunk]
        total += (np.log(np.exp(a).sum(axis=1)) - a[np.arange(len(a)), yc]).sum()
    return total / len(y) + 0.5 * alpha * sum(float((W * W).sum()) for W in coefs)


# --- the two sides --------------------------------------------------------------------------------

@dataclass
class LinearPair:
    """A loss, our head for it and scikit-learn's, both built from (C, n, tol)."""
    name: str
    loss: str
    theirs_name: str
    theirs: callable
    targets: tuple = (TARGET,)

    def ours(self, C, n, tol):
        return LinearClassifier(self.loss, optimizer="lbfgs", alpha=1 / (C * n), tol=tol, max_iter=MAX_ITER,
                                random_state=0)


PAIRS = [
    # LinearSVC to 1e-4 costs minutes per C here: only 1e-3 is timed for it.
    LinearPair("squared hinge (OvR L2-SVM)", "squared_hinge", "LinearSVC",
               lambda C, tol: LinearSVC(C=C, loss="squared_hinge", dual=False, intercept_scaling=INTERCEPT_SCALING,
                                        tol=tol, max_iter=MAX_ITER)),
    LinearPair("softmax", "log_loss", "LogisticRegression",
               lambda C, tol: LogisticRegression(C=C, solver="lbfgs", tol=tol, max_iter=MAX_ITER),
               targets=(TARGET, 1e-4)),
]


def ours_mlp(alpha, epochs):
    return MLPClassifier((500,), alpha=alpha, optimizer="adam", learning_rate=1e-3, schedule="constant",
                         batch_size=MLP_BATCH, max_iter=epochs, n_iter_no_change=epochs + 1, random_state=0)


def theirs_mlp(alpha, epochs):
    return SkMLPClassifier((500,), activation="relu", solver="adam", alpha=MLP_BATCH * alpha, batch_size=MLP_BATCH,
                           learning_rate_init=1e-3, max_iter=epochs, n_iter_no_change=epochs + 1, shuffle=True,
                           random_state=0)


def timed_fit(model, X, y):
    """``(model, seconds)`` of one fit; convergence warnings are the ladder's business, not printed."""
    return harness.timed(harness.fit_quietly, model, X, y)


def best_of(fits, seconds, repeats):
    """Fill ``seconds`` (two lists: ours, theirs) up to ``repeats`` timings each, ``fits[0]`` and ``fits[1]``
    alternating, the one going first swapping each round."""
    for round_ in range(max(0, repeats - min(len(s) for s in seconds))):
        for side in ((0, 1) if round_ % 2 else (1, 0)):
            if len(seconds[side]) < repeats:
                seconds[side].append(fits[side]()[1])
    return [min(s) for s in seconds]


# --- the mapping check ----------------------------------------------------------------------------

def check_mapping(X, y, log, n_rows=3000, C=1e-2):
    """Both sides run to tol 1e-10 on ``n_rows`` rows reach the same objective (to 1e-5) and weights (to 5e-3:
    ours computes in float32, whose resolution of a flat optimum leaves ~1e-3 in the weights; scikit-learn
    gets float64 rows here, so its side is exact), and scikit-learn's MLP loss is ours at ``alpha_sk =
    batch_size alpha`` (its first epoch at a learning rate of 1e-12, which leaves the weights where they
    started). Raises ``AssertionError`` otherwise."""
    from featurepipe import create
    from featurepipe.heads.network import DenseNetwork
    from featurepipe.heads.objective import Objective
    from featurepipe.heads.regularization import Penalty

    rows = np.random.default_rng(0).choice(len(y), n_rows, replace=False)
    X, y = X[rows], y[rows]
    n, alpha = len(y), 1 / (C * len(y))
    log(f"## Mapping check ({n} fit rows, C = {C:g}, alpha = 1 / (C n) = {alpha:.4g}, both sides at tol 1e-10; "
        "scikit-learn on float64 rows)\n")
    log("| pair | objective ours | objective theirs | rel. diff | rel. diff of [W b] | note |")
    log("|---|---:|---:|---:|---:|---|")
    worst_f = worst_w = 0.0
    for pair in PAIRS:
        ours = timed_fit(pair.ours(C, n, REFERENCE_TOL), X, y)[0]
        theirs = timed_fit(pair.theirs(C, REFERENCE_TOL), X.astype(np.float64), y)[0]
        f_ours = objective(ours.coef_, ours.intercept_, X, y, alpha, pair.loss)
        f_theirs = objective(theirs.coef_, theirs.intercept_, X, y, alpha, pair.loss)
        stack = lambda m: np.hstack([m.coef_, m.intercept_[:, None]])  # noqa: E731
        dw = np.linalg.norm(stack(ours) - stack(theirs)) / np.linalg.norm(stack(theirs))
        df = (f_ours - f_theirs) / abs(f_theirs)
        # Our own training objective (float32, last L-BFGS iterate) is the one evaluated here.
        own = abs(ours.loss_curve_[-1] - f_ours) / f_ours
        note = f"our float32 training objective within {own:.1e} of `objective`"
        if pair.theirs_name == "LinearSVC":
            scale1 = LinearSVC(C=C, dual=False, intercept_scaling=1, tol=REFERENCE_TOL, max_iter=MAX_ITER)
            scale1 = timed_fit(scale1, X, y)[0]
            f1 = objective(scale1.coef_, scale1.intercept_, X, y, alpha, pair.loss)
            note += f"; with intercept_scaling=1 instead of {INTERCEPT_SCALING:g}: rel. diff {(f1 - f_ours) / f_ours:.1e}"
        log(f"| {pair.name} vs {pair.theirs_name} | {f_ours:.8f} | {f_theirs:.8f} | {df:.1e} | {dw:.1e} | {note} |")
        worst_f, worst_w = max(worst_f, abs(df), own), max(worst_w, dw)

    # MLP: scikit-learn's reported loss at fixed weights against `mlp_objective` and our Objective.
    Xs, ys, a = X[:1000].astype(np.float64), y[:1000], 1e-3
    sk = SkMLPClassifier((50,), alpha=MLP_BATCH * a, batch_size=MLP_BATCH, learning_rate_init=1e-12, max_iter=1,
                         shuffle=False, random_state=0)
    sk = timed_fit(sk, Xs, ys)[0]
    f_eval = mlp_objective(sk.coefs_, sk.intercepts_, Xs, ys, a)
    network = DenseNetwork([Xs.shape[1], 50, len(np.unique(ys))], create("activation", "relu"))
    params = [p for layer in zip(sk.coefs_, sk.intercepts_) for p in layer]
    f_ours = Objective(network, create("loss", "log_loss"), Penalty(l2=a))(params, Xs, ys)[0]
    d_sk, d_ours = abs(sk.loss_curve_[0] - f_eval) / f_eval, abs(f_ours - f_eval) / f_eval
    log(f"| MLP penalty, 5 batches of {MLP_BATCH}, alpha = {a:g} vs alpha_sk = {MLP_BATCH * a:g} | {f_ours:.8f} | "
        f"{sk.loss_curve_[0]:.8f} | {d_sk:.1e} | | our Objective vs `mlp_objective`: {d_ours:.1e} |")
    worst_f = max(worst_f, d_sk, d_ours)
    log("")
    assert worst_f < 1e-5 and worst_w < 5e-3, \
        f"the C / alpha mapping does not hold: relative differences up to {worst_f:.1e} (objective), {worst_w:.1e} (weights)"


# --- linear pairs ---------------------------------------------------------------------------------

@dataclass
class Ladder:
    """One side's fits at one C: per tol tried, (tol, seconds, objective, relative suboptimality)."""
    steps: list = field(default_factory=list)
    reached: dict = field(default_factory=dict)  # target -> index into steps
    models: dict = field(default_factory=dict)  # target -> model

    def done(self, targets):
        return all(t in self.reached for t in targets) or len(self.steps) == len(TOLS)

    def add(self, tol, model, seconds, f, f_star, targets):
        rel = (f - f_star) / abs(f_star)
        self.steps.append((tol, seconds, f, rel))
        for t in targets:
            if t not in self.reached and rel <= t:
                self.reached[t], self.models[t] = len(self.steps) - 1, model

    def at(self, target):
        """(tol, seconds, objective, rel) of the loosest tol reaching ``target``, or None."""
        return self.steps[self.reached[target]] if target in self.reached else None


def compare_linear(pair, data, C_grid, repeats, log):
    """The ladders of both sides at every C, the selection, and best-of-``repeats`` timings at the chosen Cs."""
    (X, y), (X_val, y_val), (X_test, y_test) = data
    n = len(y)
    per_C = []
    log(f"### {pair.name}: ours vs {pair.theirs_name}\n")
    log("```")
    for C in C_grid:
        alpha = 1 / (C * n)
        ref, ref_s = timed_fit(pair.ours(C, n, REFERENCE_TOL), X, y)
        f_star = objective(ref.coef_, ref.intercept_, X, y, alpha, pair.loss)
        sides = [Ladder(), Ladder()]
        makers = [lambda tol: pair.ours(C, n, tol), lambda tol: pair.theirs(C, tol)]
        for tol in TOLS:
            for ladder, make in zip(sides, makers):
                if not ladder.done(pair.targets):
                    model, seconds = timed_fit(make(tol), X, y)
                    ladder.add(tol, model, seconds, objective(model.coef_, model.intercept_, X, y, alpha, pair.loss),
                               f_star, pair.targets)
            if all(ladder.done(pair.targets) for ladder in sides):
                break
        val = [ladder.models[TARGET].score(X_val, y_val) if TARGET in ladder.models else float("-inf") for ladder in sides]
        lowest = min(step[3] for ladder in sides for step in ladder.steps)
        per_C.append({"C": C, "alpha": alpha, "f_star": f_star, "ladders": sides, "val": val, "lowest": lowest})
        log(f"C={C:.3g} f*={f_star:.6f} (reference {ref_s:.1f} s, {ref.n_iter_} it.; lowest rel. any fit {lowest:.1e})")
        for who, ladder in zip(("ours", pair.theirs_name), sides):
            log(f"  {who:20s} " + "  ".join(f"tol {t:.0e}: {s:.2f}s rel {r:.1e}" for t, s, f, r in ladder.steps)
                + f"  val {val[0 if who == 'ours' else 1]:.2%}")
    log("```\n")

    chosen = []
    for side in (0, 1):  # best validation accuracy; ties to the smaller C (stronger regularisation)
        chosen.append(max(range(len(per_C)), key=lambda i: (per_C[i]["val"][side], -per_C[i]["C"])))
    timings = {}
    for target in pair.targets:
        steps = [per_C[chosen[side]]["ladders"][side].at(target) for side in (0, 1)]
        if None in steps:
            continue
        (C0, tol0), (C1, tol1) = [(per_C[chosen[side]]["C"], steps[side][0]) for side in (0, 1)]
        fits = [lambda C=C0, tol=tol0: timed_fit(pair.ours(C, n, tol), X, y),
                lambda C=C1, tol=tol1: timed_fit(pair.theirs(C, tol), X, y)]
        timings[target] = (fits, best_of(fits, [[steps[0][1]], [steps[1][1]]], repeats))
    test = [per_C[chosen[side]]["ladders"][side].models[TARGET].score(X_test, y_test) for side in (0, 1)]
    return {"pair": pair, "per_C": per_C, "chosen": chosen, "timings": timings, "test": test}


def linear_detail(result, log):
    """Per-C table: the tol each side needed for 1e-3, its single-fit time, objective and validation accuracy."""
    pair = result["pair"]
    log(f"{pair.name} vs {pair.theirs_name}, per C (single fits at the loosest tol reaching rel. suboptimality "
        f"{TARGET:g}):\n")
    log("| C | alpha | f* | ours: tol | s | rel. subopt. | val | theirs: tol | s | rel. subopt. | val | s ours / theirs |")
    log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    totals = [0.0, 0.0]
    for entry in result["per_C"]:
        cells = []
        steps = [ladder.at(TARGET) for ladder in entry["ladders"]]
        for side, step in enumerate(steps):
            if step is None:
                cells += ["not reached", "", "", f"{entry['val'][side]:.2%}"]
                totals[side] = np.nan
            else:
                cells += [f"{step[0]:.0e}", f"{step[1]:.2f}", f"{step[3]:.1e}", f"{entry['val'][side]:.2%}"]
                totals[side] += step[1]
        ratio = f"{steps[0][1] / steps[1][1]:.2g}x" if None not in steps else ""
        log(f"| {entry['C']:.3g} | {entry['alpha']:.3g} | {entry['f_star']:.6f} | " + " | ".join(cells) + f" | {ratio} |")
    log(f"\nWhole grid (sum of the single fits above): ours {totals[0]:.1f} s, theirs {totals[1]:.1f} s, "
        f"ratio {totals[0] / totals[1]:.2g}x\n")
    result["grid_totals"] = totals


# --- MLP ------------------------------------------------------------------------------------------

def compare_mlp(data, epochs, alphas, log):
    """Both MLPs at each of ``alphas``, alternately; per-epoch time and validation accuracy; each side keeps
    its best alpha, scored on test, with the objective it reached."""
    (X, y), (X_val, y_val), (X_test, y_test) = data
    fits = []
    log(f"### MLP(500): ours vs scikit-learn, {epochs} epochs\n")
    log("```")
    for alpha in alphas:
        row = []
        for who, make in (("ours", ours_mlp), ("sklearn", theirs_mlp)):
            model, seconds = timed_fit(make(alpha, epochs), X, y)
            assert model.n_iter_ == epochs, f"{who} ran {model.n_iter_} epochs, not {epochs}"
            row.append({"model": model, "per_epoch": seconds / epochs, "val": model.score(X_val, y_val)})
            log(f"  {who:8s} alpha {alpha:.3g} (sklearn alpha {MLP_BATCH * alpha:.3g}): {seconds:.1f} s, "
                f"{seconds / epochs:.2f} s/epoch, val {row[-1]['val']:.2%}")
        fits.append((alpha, row))
    log("```\n")
    result = {"alphas": [a for a, _ in fits], "chosen": [], "val": [], "test": [], "objective": [], "per_epoch": []}
    for side in (0, 1):
        i = max(range(len(fits)), key=lambda i: (fits[i][1][side]["val"], -i))  # ties: the larger alpha
        alpha, model = fits[i][0], fits[i][1][side]["model"]
        result["chosen"].append(alpha)
        result["val"].append(fits[i][1][side]["val"])
        result["test"].append(model.score(X_test, y_test))
        result["objective"].append(mlp_objective(model.coefs_, model.intercepts_, X, y, alpha))
        # Every fit of the grid costs the same: the per-epoch time is the best over the grid's fits.
        result["per_epoch"].append(min(row[side]["per_epoch"] for _, row in fits))
    result["retime"] = [lambda a=result["chosen"][0]: timed_fit(ours_mlp(a, min(epochs, 3)), X, y),
                        lambda a=result["chosen"][1]: timed_fit(theirs_mlp(a, min(epochs, 3)), X, y)]
    result["retime_epochs"] = min(epochs, 3)
    return result


# --- data and main --------------------------------------------------------------------------------

def load_features(kind, cifar_dir, cache_dir, fit_fraction=1.0):
    """(X_fit, y_fit), (X_val, y_val), (X_test, y_test): float32, standardised on the fit rows; labels as
    class indices. ``fit_fraction`` < 1 keeps a random part of the fit rows (``--quick``)."""
    cfg = load_config(FEATURES[kind][1], [f"dataset.path={cifar_dir}", f"run.cache_dir={cache_dir}"])
    key = extract_features(cfg).key
    store = FeatureStore(cache_dir)
    train, test = store.read(key, split="train"), store.read(key, split="test")
    classes = np.unique(train.labels)
    _, [split] = make_splits(train.labels, "holdout", 0.1, 5, seed=0)
    fit_rows = split.fit
    if fit_fraction < 1:
        fit_rows = np.sort(np.random.default_rng(0).choice(fit_rows, int(len(fit_rows) * fit_fraction), replace=False))
    scale = Standardize().fit(train.X[fit_rows])
    part = lambda X, labels: (scale.transform(X), np.searchsorted(classes, labels))  # noqa: E731
    return part(train.X[fit_rows], train.labels[fit_rows]), part(train.X[split.val], train.labels[split.val]), \
        part(test.X, test.labels), key


def main():
    parser = harness.parser(__doc__)
    parser.add_argument("cifar_dir", type=Path)
    parser.add_argument("--cache-dir", default="/tmp/fpcache-heads")
    parser.add_argument("--features", default="hog_hsv,raw",
                        help="hog_hsv: linear pairs and MLP; raw: MLP only")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS/OpenMP threads for both libraries")
    parser.add_argument("--extra-threads", type=int, default=0, help="also re-time the chosen settings at this many")
    parser.add_argument("--repeats", type=int, default=3, help="timings per chosen setting and side (best of)")
    parser.add_argument("--mlp-epochs", default="hog_hsv=20,raw=5")
    parser.add_argument("--quick", action="store_true",
                        help="development: 20%% of the fit rows, 3 C values, 2 MLP alphas at 2 epochs")
    args = parser.parse_args()
    epochs = {k: int(v) for k, v in (item.split("=") for item in args.mlp_epochs.split(","))}
    if args.quick:
        epochs = {k: 2 for k in epochs}

    log = lambda line="": print(line, flush=True)  # noqa: E731
    started = datetime.datetime.now()
    info = harness.describe()
    log(f"# featurepipe heads vs scikit-learn, {started:%Y-%m-%d %H:%M:%S}\n")
    log(f"    {Path(sys.executable).name} {' '.join(sys.argv)}\n")
    log(f"{harness.cpu_and_cores()}, {info['memory_gib']} GiB; Python {info['python']}, " +
        ", ".join(f"{k} {info[k]}" for k in ("featurepipe", "numpy", "scipy", "scikit-learn") if k in info) +
        f"; {args.blas_threads} BLAS/OpenMP thread(s); load average {harness.load_text()} at the start\n")

    linear, mlps = [], []
    with threadpool_limits(limits=args.blas_threads):
        for kind in args.features.split(","):
            title = FEATURES[kind][0]
            *data, key = load_features(kind, args.cifar_dir, args.cache_dir, 0.2 if args.quick else 1.0)
            (X, y), (X_val, _), (X_test, _) = data
            log(f"## {title}: entry {key}, {len(y)} fit / {len(X_val)} validation / {len(X_test)} test rows\n")
            if kind == "hog_hsv":
                check_mapping(X, y, log)
                grid = sorted(1 / (a * len(y)) for a in LinearClassifier.auto_grid(
                    {"mean_square_norm": float(np.mean(np.einsum("ij,ij->i", X, X))), "n_samples": len(y)})["alpha"])
                if args.quick:
                    grid = grid[1::2]
                for pair in PAIRS:
                    result = compare_linear(pair, data, grid, args.repeats, log)
                    linear_detail(result, log)
                    linear.append((title, result))
            alphas = MLPClassifier.auto_grid({"n_samples": len(y)})["alpha"]  # what `alpha: auto` searches
            mlp = compare_mlp(data, epochs[kind], alphas[:2] if args.quick else alphas, log)
            mlps.append((title, mlp))
            log(f"(load average {harness.load_text()})\n")

    if args.extra_threads:
        with threadpool_limits(limits=args.extra_threads):
            for _, result in linear:
                for target, (fits, _) in result["timings"].items():
                    result.setdefault("extra", {})[target] = best_of(fits, [[], []], args.repeats)
            for _, mlp in mlps:
                seconds = best_of(mlp["retime"], [[], []], args.repeats)
                mlp["extra"] = [s / mlp["retime_epochs"] for s in seconds]

    log(f"## Results ({args.blas_threads} thread(s); load average {harness.load_text()} at the end; "
        f"{datetime.datetime.now() - started} in all)\n")
    log("Linear heads: each side's C chosen on validation; fit time at its chosen C, at the loosest tol of its own "
        f"that reaches rel. suboptimality {TARGET:g} (best of {args.repeats}, alternating), with the objective it "
        "reached and its rel. suboptimality.\n")
    log("| features | ours vs theirs | C ours | C theirs | val ours | val theirs | test ours | test theirs | "
        "fit s ours | fit s theirs | objective ours (rel.) | objective theirs (rel.) | ours / theirs | whole grid ours / theirs |")
    log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for title, r in linear:
        entries = [r["per_C"][r["chosen"][side]] for side in (0, 1)]
        steps = [entries[side]["ladders"][side].at(TARGET) for side in (0, 1)]
        seconds = r["timings"].get(TARGET, (None, [np.nan, np.nan]))[1]
        grid = r["grid_totals"]
        log(f"| {title} | {r['pair'].name} vs {r['pair'].theirs_name} | {entries[0]['C']:.3g} | {entries[1]['C']:.3g} | "
            f"{entries[0]['val'][0]:.2%} | {entries[1]['val'][1]:.2%} | {r['test'][0]:.2%} | {r['test'][1]:.2%} | "
            f"{seconds[0]:.3g} | {seconds[1]:.3g} | {steps[0][2]:.6f} ({steps[0][3]:.0e}) | "
            f"{steps[1][2]:.6f} ({steps[1][3]:.0e}) | **{seconds[0] / seconds[1]:.2g}x** | {grid[0] / grid[1]:.2g}x |")
    log("")
    for title, r in linear:
        for target, (_, seconds) in r["timings"].items():
            steps = [r["per_C"][r["chosen"][side]]["ladders"][side].at(target) for side in (0, 1)]
            line = (f"- {r['pair'].name} vs {r['pair'].theirs_name}, rel. suboptimality {target:g}: ours tol "
                    f"{steps[0][0]:.0e} {seconds[0]:.3g} s, theirs tol {steps[1][0]:.0e} {seconds[1]:.3g} s, "
                    f"ratio {seconds[0] / seconds[1]:.2g}x")
            if "extra" in r:
                extra = r["extra"][target]
                line += f"; at {args.extra_threads} threads {extra[0]:.3g} s vs {extra[1]:.3g} s, {extra[0] / extra[1]:.2g}x"
            log(line)
    log("")
    log("MLP(500), Adam 1e-3 constant, batch 200, equal epochs; alpha chosen on validation (sklearn's alpha = "
        f"{MLP_BATCH} x ours); s/epoch: best over the grid's fits; objective: mean loss + 0.5 alpha ||W||^2 on the "
        "fit rows, float64.\n")
    log("| features | epochs | alpha ours | alpha theirs (ours-equivalent) | val ours | val theirs | test ours | "
        "test theirs | s/epoch ours | s/epoch theirs | objective ours | objective theirs | ours / theirs |"
        + (f" at {args.extra_threads} threads |" if args.extra_threads else ""))
    log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.extra_threads else ""))
    for (title, m), kind in zip(mlps, args.features.split(",")):
        extra = f" {m['extra'][0]:.3g} vs {m['extra'][1]:.3g} s/epoch, {m['extra'][0] / m['extra'][1]:.2g}x |" \
            if "extra" in m else ""
        log(f"| {title} | {epochs[kind]} | {m['chosen'][0]:.3g} | {MLP_BATCH * m['chosen'][1]:.3g} ({m['chosen'][1]:.3g}) | "
            f"{m['val'][0]:.2%} | {m['val'][1]:.2%} | {m['test'][0]:.2%} | {m['test'][1]:.2%} | "
            f"{m['per_epoch'][0]:.3g} | {m['per_epoch'][1]:.3g} | {m['objective'][0]:.4f} | {m['objective'][1]:.4f} | "
            f"**{m['per_epoch'][0] / m['per_epoch'][1]:.2g}x** |" + extra)
    log(f"\nFinished {datetime.datetime.now():%Y-%m-%d %H:%M:%S}.")


if __name__ == "__main__":
    main()
