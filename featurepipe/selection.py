"""Model selection on the training split only: validation splits, parameter grids and the search.

A head's parameters may be lists (a grid) or ``auto`` (the head's own grid, scaled to the data); the
normalisation may be a list of alternatives. Every point of the grid is fitted on the fit rows of each
split and scored on its validation rows; the point with the best mean validation accuracy wins (ties:
the first in grid order, i.e. the stronger regularisation). Test rows never enter.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone

from .heads.base import Start
from .heads.row_space import GramSpace, gram
from .matrix import build_matrix, fit_normalization
from .normalize import ExactKernel
from .normalize import Normalization

#: Below this many training images in its smallest class, ``selection: auto`` uses k-fold cross-validation.
SMALL_CLASS = 300
#: How a normalisation option is searched (``Search.solver``): on the Gram matrix of the training rows, or on
#: their features.
GRAM, PRIMAL = "gram", "primal"
#: Successive halving keeps the best third of a head's grid points at each reduced ``max_iter``, for grids of
#: more than a few points: a grid of three keeps all its points in full, as a third of the epochs ranks
#: three alphas of an MLP too unlike the full training (15-Scene's bag of words chose another, 0.7 points
#: lower on test).
HALVING_FACTOR, HALVING_MIN_POINTS = 3, 4


@dataclass
class Split:
    """Rows (indices into the training rows) a fit uses and the rows that score it."""

    fit: np.ndarray
    val: np.ndarray


def make_splits(labels: np.ndarray, method: str, fraction: float, folds: int, seed: int) -> tuple[str, list[Split]]:
    """The validation splits of the training rows (stratified): one holdout split or ``folds`` folds.

    ``auto`` is k-fold when the smallest class has fewer than ``SMALL_CLASS`` training images."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    classes, counts = np.unique(labels, return_counts=True)
    if method == "auto":
        method = "kfold" if counts.min() < SMALL_CLASS else "holdout"
    rows = np.arange(len(labels))
    if method == "kfold":
        if counts.min() < folds:
            raise ValueError(f"train.folds: class {str(classes[counts.argmin()])!r} has {counts.min()} training items, "
                             f"fewer than the {folds} folds")
        kfold = StratifiedKFold(folds, shuffle=True, random_state=seed)
        return method, [Split(np.sort(a), np.sort(b)) for a, b in kfold.split(rows, labels)]
    if counts.min() < 2:
        raise ValueError(f"train.validation_fraction: class {str(classes[counts.argmin()])!r} has {counts.min()} training "
                         f"item; a validation split needs at least 2 per class")
    size = max(int(round(fraction * len(labels))), len(classes))  # at least one item per class
    fit, val = train_test_split(rows, test_size=size, random_state=seed, stratify=labels)
    return method, [Split(np.sort(fit), np.sort(val))]


def is_grid(value, default) -> bool:
    """A list is a grid, except for a parameter whose value is itself a sequence (``hidden_layer_sizes``),
    where a grid is a list of sequences."""
    if not isinstance(value, (list, tuple)):
        return False
    if isinstance(default, (list, tuple)):
        return len(value) > 0 and all(isinstance(v, (list, tuple)) for v in value)
    return True


def grid_values(value, default) -> list:
    """The values a parameter takes: each value of a grid, or the one value (lists as tuples)."""
    if is_grid(value, default):
        return [tuple(v) if isinstance(v, list) else v for v in value]
    return [tuple(value) if isinstance(value, list) else value]


def expand_grid(head_class, params: dict, stats: dict) -> tuple[list[dict], set]:
    """Every combination of ``params`` (lists are grids, ``auto`` the head's ``auto_grid(stats)``), and the
    names of the parameters whose grid came from ``auto``."""
    defaults = head_class().get_params()
    auto = {name for name, value in params.items() if value == "auto"}
    if auto:
        grids = getattr(head_class, "auto_grid", lambda stats: {})(stats)
        missing = sorted(auto - set(grids))
        if missing:
            raise ValueError(f"params.{missing[0]}: {head_class.__name__} has no automatic grid for it; "
                             f"give a value or a list (automatic: {', '.join(sorted(grids)) or 'none'})")
    axes = {}
    for name, value in params.items():
        if name in auto:
            axes[name] = list(getattr(head_class, "auto_grid")(stats)[name])
        else:
            axes[name] = grid_values(value, defaults.get(name))
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*axes.values())], auto


def normalization_options(spec) -> list:
    """The normalisations to search: a list of lists is a list of alternatives, anything else is one."""
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(s, (list, tuple)) for s in spec):
        return [list(s) for s in spec]
    return [spec]


def data_stats(X: np.ndarray, n_sample: int = 10_000) -> dict:
    """What ``auto`` grids scale with: rows, features and the mean squared row norm (on a sample of rows)."""
    step = max(1, len(X) // n_sample)
    sample = np.asarray(X[::step], np.float64)
    return {"n_samples": int(len(X)), "n_features": int(X.shape[1]),
            "mean_square_norm": float(np.einsum("ij,ij->i", sample, sample).mean())}


def choose(results: list[dict]) -> dict:
    """The grid point with the best mean validation accuracy (the first of equals)."""
    return max(results, key=lambda r: r["val_accuracy"])


def _line(results: list[dict], chosen: dict, name: str) -> list:
    """Sorted values of ``name`` tried with every other parameter as in ``chosen``."""
    rest = {k: v for k, v in chosen["params"].items() if k != name}
    return sorted({r["params"][name] for r in results
                   if {k: v for k, v in r["params"].items() if k != name} == rest})


def at_edge(results: list[dict], chosen: dict, auto: set) -> list[str]:
    """The ``auto`` parameters whose chosen value is the smallest or largest tried (the others as chosen)."""
    edges = []
    for name in sorted(auto):
        tried = _line(results, chosen, name)
        if len(tried) > 1 and chosen["params"][name] in (tried[0], tried[-1]):
            edges.append(name)
    return edges


def extend_grid(points: list[dict], chosen_params: dict, edges: list[str]) -> list[dict]:
    """Two more points beyond the chosen value of each parameter in ``edges``, continuing its (geometric)
    steps, the other parameters as chosen: where to look when the best value lies at a grid's edge."""
    chosen = next(p for p in points if all(p.get(k) == (tuple(v) if isinstance(v, list) else v)
                                           for k, v in chosen_params.items()))
    new = []
    for name in edges:
        tried = sorted({p[name] for p in points if all(p.get(k) == v for k, v in chosen.items() if k != name)})
        value = chosen[name]
        step = tried[0] / tried[1] if value == tried[0] else tried[-1] / tried[-2]
        new += [{**chosen, name: float(value * step ** k)} for k in (1, 2)]
    return new


class Grams:
    """The Gram matrices ``X X^T`` of every training row of ``data`` normalised by ``spec``, computed from the
    store a block at a time -- or, when the normalisation ends in an ``exact_kernel``, the kernel matrices of
    the rows as they reach it: one for all splits when the normalisation learns nothing else from the rows
    (``shared``), else one per split, with the normalisation fitted on that split's fit rows. ``width`` is
    the width of the rows the matrices are computed from."""

    def __init__(self, data, spec):
        self.data = data
        steps = Normalization.from_spec(spec).steps
        self.kernel = steps[-1] if steps and isinstance(steps[-1], ExactKernel) else None
        self.before = Normalization(steps[:-1] if self.kernel is not None else steps)
        if any(isinstance(step, ExactKernel) for step in self.before.steps):
            raise ValueError(f"normalize: {spec!r}: exact_kernel must be the last step")
        self.shared = not self.before.learns
        self._by_split: dict = {}

    def of(self, split: Split) -> np.ndarray:
        """The matrix of all training rows (in their order), normalised as ``split`` needs."""
        key = None if self.shared else id(split)
        if key not in self._by_split:
            data = self.data
            everything, _ = data.segments(np.arange(len(data.train_rows)), augmented=False)
            fit, _ = data.segments(split.fit, augmented=False)
            normalization = fit_normalization(data.store, fit, clone(self.before))
            matrix = build_matrix(data.store, everything, normalization)
            self.width = matrix.shape[1]
            self._by_split[key] = gram(matrix) if self.kernel is None else self.kernel.kernel_matrix(matrix)
        return self._by_split[key]

    def all_rows(self) -> np.ndarray | None:
        """The matrix every split shares (``shared``), computed already, or None."""
        return self._by_split.get(None) if self.shared else None


@dataclass
class _Kept:
    """A holdout search's matrix -- [fit rows, their copies, validation rows, their copies] -- with its
    normalisation option and normalisation, labels, the number of fit rows (with copies) and the models
    fitted on it, by grid point."""

    option: int
    normalization: Normalization
    matrix: np.ndarray
    y: np.ndarray
    n_fit: int
    models: dict = field(default_factory=dict)


class Search:
    """The search of a head's grid on the validation splits of ``data``'s training rows (a ``fitting.
    TrainingData``): ``run()`` fits every normalisation option's grid (expanded on the first split's fit
    rows), ``extend()`` searches beyond an ``auto`` grid's edge, ``results()`` and ``best()`` read the
    validation accuracies.

    With ``keep`` (a holdout split whose chosen setting is refit), the last matrix built -- the validation
    rows' augmented copies included -- is kept with the models fitted on it: a grid extension of the same
    option reuses it, and so does the refit (``kept_model``). Those models are built with ``warm_start``, so
    that they keep what a warm refit reuses. ``log(split, n_splits, normalize, params, accuracy)`` is
    called after each grid point. Each point's decision values on the validation rows are kept
    (``out_of_fold``: what ``calibration.py`` fits probabilities on).
    """

    def __init__(self, data, head_class, params: dict, splits: list[Split], options: list, *, keep: bool,
                 log=None):
        self.data, self.head_class, self.params = data, head_class, params
        self.splits, self.options, self.keep, self.log = splits, options, keep, log
        self.grids: dict[int, tuple[list[dict], set]] = {}  # option -> (points, the auto parameters)
        self.scores: dict[tuple, list[float]] = {}          # (option, frozen point) -> accuracy per split
        self.decisions: dict[tuple, list[np.ndarray]] = {}  # (option, frozen point) -> validation rows' per split
        self.kept: _Kept | None = None
        self.solvers: dict[int, str] = {}   # option -> GRAM or PRIMAL (``solver``)
        self.grams: dict[int, Grams] = {}   # option -> its Gram matrices, when searched by GRAM
        self.eliminated: dict[tuple, int] = {}  # (option, frozen point) -> max_iter it was dropped at (halving)

    def run(self, todo: dict | None = None) -> None:
        """Fit the points ``todo[option]`` (None: the option's whole grid; default: every option's whole
        grid) on every split and record their validation accuracies."""
        todo = dict.fromkeys(range(len(self.options))) if todo is None else todo
        for n, points in todo.items():
            if self.solver(n) == GRAM:
                self._run_gram(n, points)
            else:
                self._run_primal(n, points)

    def solver(self, n: int) -> str:
        """How option ``n`` is searched: ``GRAM`` when every grid point would fit its folds in their row space
        (fewer fit rows than features, L2 only, L-BFGS: ``solves_by_gram``) and no augmented copies
        multiply the rows, else ``PRIMAL``. The data chooses: the rows and the normalised width."""
        if n not in self.solvers:
            rows = max(len(split.fit) for split in self.splits)
            exact = _exact_kernel(self.options[n])
            # An exact kernel is a Gram matrix of features as many as the rows that could ever come: the data
            # cannot choose there.
            d = rows + 1 if exact else Normalization.from_spec(self.options[n]).n_outputs(
                self.data.store.dimension(self.data.key))
            points, _ = expand_grid(self.head_class, self.params,
                                    {"n_samples": rows, "n_features": d, "mean_square_norm": 1.0})
            gram_ok = not self.data.augment and hasattr(self.head_class, "fit_gram_path") and all(
                self.head_class(**point).solves_by_gram(rows, d) for point in points)
            if exact and not gram_ok:
                raise ValueError(f"normalize: {self.options[n]!r}: an exact kernel needs a linear head fitted by L-BFGS "
                                 f"with an L2 penalty only, and no augmented copies ({self.head_class.__name__} here)")
            self.solvers[n] = GRAM if gram_ok else PRIMAL
        return self.solvers[n]

    def _run_primal(self, n: int, points) -> None:
        """Fit option ``n``'s ``points`` on each split's normalised features; by successive halving when the
        head fits one point at a time and the grid has ``HALVING_MIN_POINTS`` points or more."""
        rungs = self._rungs(n, points)
        for epochs in rungs:
            trial: dict = {}
            points = self._primal_pass(n, points, trial, max_iter=epochs)
            ranked = sorted(trial, key=lambda key: -np.mean(trial[key]))  # stable: grid order among equals
            keep = -(-len(ranked) // HALVING_FACTOR)
            for key in ranked[keep:]:
                self.scores[key], self.eliminated[key] = trial[key], epochs
            points = [dict(point) for _, point in ranked[:keep]]
        self._primal_pass(n, points, self.scores)

    def _rungs(self, n: int, points) -> list[int]:
        """The reduced ``max_iter`` of each elimination round of successive halving (HalvingGridSearchCV's
        schedule: each round keeps the best ``1 / HALVING_FACTOR`` of the points, the survivors run in full),
        or none: for heads that fit a grid's alphas together (``fit_path``), and grids of fewer points."""
        if (hasattr(self.head_class, "fit_path") or "max_iter" not in self.head_class().get_params()
                or is_grid(self.params.get("max_iter"), None)):
            return []
        count = len(points) if points is not None else len(expand_grid(
            self.head_class, self.params, {"n_samples": 1, "n_features": 1, "mean_square_norm": 1.0})[0])
        max_iter = self.params.get("max_iter", self.head_class().max_iter)
        rungs = []
        if count < HALVING_MIN_POINTS:
            return rungs
        while count >= HALVING_FACTOR:
            rungs.append(count)
            count = -(-count // HALVING_FACTOR)
        return [max(1, max_iter // HALVING_FACTOR ** (len(rungs) - i)) for i in range(len(rungs))]

    def _primal_pass(self, n: int, points, scores: dict, **overrides) -> list[dict]:
        """One pass over the splits fitting ``points`` (None: the option's grid) with ``overrides``, their
        validation accuracies appended to ``scores`` under ``(n, point)``; returns the points fitted."""
        for s, split in enumerate(self.splits):
            matrix, y_fit, y_val, models = self._matrix(n, split)
            X_fit, X_val = matrix[:len(y_fit)], matrix[len(y_fit):len(y_fit) + len(split.val)]
            if n not in self.grids:
                self.grids[n] = expand_grid(self.head_class, self.params, data_stats(X_fit))
            points = self.grids[n][0] if points is None else points
            for point, model in _fit_grid(self.head_class, points, X_fit, y_fit, self.keep, overrides):
                self._score(scores, n, s, point, model.predict(X_val), y_val[:len(split.val)])
                if scores is self.scores:  # a full pass, not a round of successive halving
                    self._keep_decisions(n, point, model, X_val)
                if models is not None and not overrides:
                    models[_frozen(point)] = model
            del matrix, X_fit, X_val
        return points

    def _run_gram(self, n: int, points) -> None:
        """Fit option ``n``'s ``points`` on each split from the Gram matrix of the training rows (``Grams``):
        every alpha and class of a split shares its ``GramSpace``, the alphas are a warm-started path, and a
        split's path starts from the previous split's solution when the splits share one Gram matrix."""
        grams = self.grams.setdefault(n, Grams(self.data, self.options[n]))
        labels = self.data.labels[self.data.train_rows]
        previous = {}  # group of points -> (split, space, model at the largest alpha) of the last split fitted
        for s, split in enumerate(self.splits):
            K = grams.of(split)
            space = GramSpace(K[np.ix_(split.fit, split.fit)])
            if n not in self.grids:
                stats = {"n_samples": len(split.fit), "n_features": grams.width,
                         "mean_square_norm": float(np.mean(np.diag(K)[split.fit]))}
                self.grids[n] = expand_grid(self.head_class, self.params, stats)
            todo = self.grids[n][0] if points is None else points
            X_val = space.project(K[np.ix_(split.val, split.fit)])
            for group, members in _alpha_groups(todo).items():
                alphas = [self.head_class(**point).alpha for point in members]
                start = None
                if grams.shared and group in previous:  # the last split's solution at the largest alpha
                    before, old_space, old_model = previous[group]
                    cross = K[np.ix_(split.fit, self.splits[before].fit)]
                    start = Start(space.transfer(old_space, cross, old_model._network_params()), old_model.classes_)
                models = self.head_class(**members[0]).fit_gram_path(space, labels[split.fit], alphas, start)
                for point, model in zip(members, models):
                    self._score(self.scores, n, s, point, model.predict(X_val), labels[split.val])
                    self._keep_decisions(n, point, model, X_val)
                previous[group] = (s, space, models[int(np.argmax(alphas))])

    def _score(self, scores: dict, n: int, s: int, point: dict, predicted, truth) -> None:
        """Append the accuracy of ``predicted`` to ``scores[(n, point)]`` and log it."""
        accuracy = float(np.mean(predicted == truth))
        scores.setdefault((n, _frozen(point)), []).append(accuracy)
        if self.log is not None:
            self.log(s, len(self.splits), self.options[n], _plain(point), accuracy)

    def _keep_decisions(self, n: int, point: dict, model, X_val) -> None:
        """Keep ``model``'s decision values on a split's validation rows under ``(n, point)`` (``out_of_fold``)."""
        self.decisions.setdefault((n, _frozen(point)), []).append(model.decision_function(X_val))

    def _matrix(self, n: int, split: Split):
        """(matrix, fit labels, validation labels, the kept models or None) of option ``n`` on ``split``:
        the kept matrix when it is that option's (same rows, same normalisation), else a new one."""
        kept = self.kept
        if kept is not None and kept.option == n:
            return kept.matrix, kept.y[:kept.n_fit], kept.y[kept.n_fit:], kept.models
        self.kept = kept = None  # one matrix at a time
        fit_segments, y_fit = self.data.segments(split.fit, augmented=True)
        val_segments, y_val = self.data.segments(split.val, augmented=self.keep)
        normalization = fit_normalization(self.data.store, fit_segments, Normalization.from_spec(self.options[n]))
        matrix = build_matrix(self.data.store, fit_segments + val_segments, normalization)
        if not self.keep:
            return matrix, y_fit, y_val, None
        self.kept = _Kept(n, normalization, matrix, np.concatenate([y_fit, y_val]), len(y_fit))
        return matrix, y_fit, y_val, self.kept.models

    def all_rows_gram(self, n: int) -> np.ndarray | None:
        """The Gram matrix of every training row under option ``n``, when its search computed one that all
        splits shared (a refit on those rows reuses it), else None."""
        return self.grams[n].all_rows() if n in self.grams else None

    def results(self) -> list[dict]:
        """One dict per grid point searched: normalisation, parameters, mean and per-split accuracy, and for a
        point that successive halving dropped, the ``max_iter`` it was scored at (``eliminated_at``)."""
        return [{"normalize": self.options[n], "params": _plain(dict(point)), "val_accuracy": float(np.mean(accs)),
                 "val_folds": accs, **({"eliminated_at": self.eliminated[(n, point)]}
                                       if (n, point) in self.eliminated else {})}
                for (n, point), accs in self.scores.items()]

    def best(self) -> dict:
        """The result with the best mean validation accuracy among the points run in full (``choose``)."""
        return choose([r for r in self.results() if "eliminated_at" not in r])

    def edges(self) -> list[str]:
        """The ``auto`` parameters whose best value lies at the edge of its grid (``at_edge``)."""
        results, best = self.results(), self.best()
        auto = self.grids[self.options.index(best["normalize"])][1]
        return at_edge([r for r in results if r["normalize"] == best["normalize"]], best, auto)

    def extend(self) -> bool:
        """Search two more values beyond each edge of the best option's ``auto`` grid (``extend_grid``);
        whether there was an edge to search beyond."""
        edges = self.edges()
        if not edges:
            return False
        best = self.best()
        n = self.options.index(best["normalize"])
        points = extend_grid(self.grids[n][0], best["params"], edges)
        self.grids[n][0].extend(points)
        self.run({n: points})
        return True

    def out_of_fold(self, best: dict) -> tuple[np.ndarray, np.ndarray]:
        """The decision values of ``best``'s setting on every split's validation rows (fitted without them),
        and those rows' labels."""
        n = self.options.index(best["normalize"])
        labels = [self.data.labels[self.data.train_rows[split.val]] for split in self.splits]
        return np.concatenate(self.decisions[(n, _frozen(best["params"]))]), np.concatenate(labels)

    def kept_model(self, best: dict):
        """The model fitted on the kept matrix at ``best``'s setting, or None."""
        kept = self.kept
        if kept is None or kept.option != self.options.index(best["normalize"]):
            return None
        return kept.models.get(_frozen(best["params"]))


def _exact_kernel(spec) -> bool:
    """Whether the normalisation ``spec`` has an ``exact_kernel`` step."""
    return any(isinstance(step, ExactKernel) for step in Normalization.from_spec(spec).steps)


def _alpha_groups(points: list[dict]) -> dict:
    """The points grouped by everything but ``alpha``: each group is one regularisation path."""
    groups: dict = {}
    for point in points:
        groups.setdefault(_frozen({k: v for k, v in point.items() if k != "alpha"}), []).append(point)
    return groups


def _fit_grid(head_class, points: list[dict], X, y, warm_start: bool, overrides: dict):
    """``(point, fitted model)`` for every grid point (its parameters with ``overrides``), with ``warm_start``
    when asked: points that differ only in ``alpha`` go through the head's ``fit_path`` when it has one, the
    others are fitted one by one."""
    warm = {"warm_start": True, **overrides} if warm_start else dict(overrides)
    if hasattr(head_class, "fit_path") and all("alpha" in p for p in points):
        for group in _alpha_groups(points).values():
            head = head_class(**{**group[0], **warm})
            yield from zip(group, head.fit_path(X, y, [p["alpha"] for p in group]))
        return
    for point in points:
        yield point, head_class(**{**point, **warm}).fit(X, y)


def _frozen(point: dict) -> tuple:
    """A grid point as a hashable key (``verbose`` does not make a point; a dict value, ``class_weight``'s, is
    its sorted items)."""
    return tuple(sorted((k, _hashable(v)) for k, v in point.items() if k != "verbose"))


class _Items(tuple):
    """A dict's items as a hashable grid value (``class_weight``'s), a dict again in ``_plain``."""


def _hashable(value):
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return _Items(sorted(value.items(), key=repr))
    return value


def _plain(point: dict) -> dict:
    return {k: dict(v) if isinstance(v, _Items) else list(v) if isinstance(v, tuple) else v
            for k, v in point.items() if k != "verbose"}
