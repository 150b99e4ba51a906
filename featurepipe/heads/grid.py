"""The search of a head's parameter grid over validation splits of the same rows, on matrices.

A parameter may be a list (a grid) or ``auto`` (the head's own ``auto_grid(stats)``, scaled to the first
split's fit rows). Every point is fitted on the fit rows of each split and scored on its validation rows; the
point with the best mean validation accuracy wins (ties: the first in grid order, i.e. the stronger
regularisation), and when it lies at the edge of an ``auto`` grid the grid is extended beyond it. The config's
search (``selection.Search``, rows read from the store) and ``LinearClassifierCV`` (rows in memory) are the two
``FoldSearch`` subclasses: they say where a split's rows come from, this module fits, scores and chooses.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .base import Start
from .row_space import GramSpace, gram

#: How a normalisation option is searched (``FoldSearch.solver``): on the Gram matrix of the training rows, or
#: on their features.
GRAM, PRIMAL = "gram", "primal"
#: How many times an ``auto`` grid is extended when the chosen value lies at its edge (two values each time).
MAX_EXTENSIONS = 2
#: Successive halving keeps the best third of a head's grid points at each reduced ``max_iter``, for grids of
#: more than a few points: a grid of three keeps all its points in full, as a third of the epochs ranks
#: three alphas of an MLP too unlike the full training (15-Scene's bag of words chose another, 0.7 points
#: lower on test).
HALVING_FACTOR, HALVING_MIN_POINTS = 3, 4
#: The splits of a search by Gram matrix are fitted in this many chains, which run side by side on as many
#: processes as the search is given; a fixed number, so that the warm starts (within a chain), and hence the
#: models, do not depend on how many processes there are.
GRAM_CHAINS = 2
#: A search on features fits its splits side by side when all their rows together take at most this many bytes
#: (each worker holds its split's); larger, it reads and fits one split at a time.
PARALLEL_BYTES = 1 << 30


@dataclass
class GramFold:
    """One split as a fit by Gram matrix sees it: ``K``, the Gram matrix of all the rows the splits index (or
    of this split's own normalisation of them), and the split's fit and validation rows."""

    K: np.ndarray
    fit: np.ndarray
    val: np.ndarray


def fit_gram_chain(folds: list[GramFold], paths: list[tuple], labels, sample_weight, transfer: bool) -> list:
    """Fit every regularisation path of ``paths`` (``(head, alphas)``) on each fold of ``folds`` in turn, in the
    fold's ``GramSpace``; with ``transfer`` (the folds share one ``K``), a fold's path starts from the previous
    fold's solution at its largest alpha. Returns, per fold and path, ``(predictions, decision values)`` on
    the fold's validation rows for each alpha. A module-level function: a search sends it to worker processes."""
    out, previous = [], {}
    # n x n work runs as fast on one BLAS thread, and leaves a core to the other chain.
    with threadpool_limits(1, user_api="blas"):
        for fold in folds:
            K = fold.K
            space = GramSpace(K[np.ix_(fold.fit, fold.fit)])
            X_val = space.project(K[np.ix_(fold.val, fold.fit)])
            weights = None if sample_weight is None else sample_weight[fold.fit]
            results = []
            for p, (head, alphas) in enumerate(paths):
                start = None
                if transfer and p in previous:
                    rows, old_space, old_model = previous[p]
                    start = Start(space.transfer(old_space, K[np.ix_(fold.fit, rows)], old_model._network_params()),
                                  old_model.classes_)
                models = head.fit_gram_path(space, labels[fold.fit], alphas, start, sample_weight=weights)
                results.append([(model.predict(X_val), model.decision_function(X_val)) for model in models])
                previous[p] = (fold.fit, space, models[int(np.argmax(alphas))])
            out.append(results)
    return out


def fit_plan(plan: list[tuple], X, y, sample_weight):
    """``(point, fitted model)`` for every point of a ``FoldSearch._plan``, fitted on ``X, y``."""
    for points, head, alphas in plan:
        if alphas is None:
            yield points[0], head.fit(X, y, sample_weight=sample_weight)
        else:
            yield from zip(points, head.fit_path(X, y, alphas, sample_weight=sample_weight))


def score_plan(plan: list[tuple], X, y, sample_weight, X_val, decisions: bool) -> list[tuple]:
    """``(point, predictions, decision values or None)`` on ``X_val`` of every point of ``plan`` fitted on ``X,
    y``: one split of a search on features, as a worker process runs it."""
    return [(point, model.predict(X_val), model.decision_function(X_val) if decisions else None)
            for point, model in fit_plan(plan, X, y, sample_weight)]


def map_in_order(function, tasks: list[tuple]) -> list:
    """``[function(*task) for task in tasks]``: a search's ``map_tasks`` without processes."""
    return [function(*task) for task in tasks]


@dataclass
class Split:
    """Rows (indices into the training rows) a fit uses and the rows that score it."""

    fit: np.ndarray
    val: np.ndarray


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


class SharedGram:
    """The Gram matrix ``X X^T`` of all the rows a search splits, which every split shares (the interface of
    ``selection.Grams``, whose matrices come from the store): ``of(split)``, ``width``, ``shared``."""

    shared = True

    def __init__(self, X):
        self.matrix = gram(X)
        self.width = X.shape[1]

    def of(self, split: Split) -> np.ndarray:
        return self.matrix


class FoldSearch:
    """The search of ``head_class``'s grid ``params`` on ``splits`` of the same rows, for each of ``options``
    (ways of presenting the rows, e.g. normalisations): ``run()`` fits and scores the grid, ``extend()``
    searches beyond an ``auto`` grid's edge, ``run_and_extend()`` does both as the config's search does,
    ``results()`` and ``best()`` read the validation accuracies.

    A subclass says how each option is searched (``solver``: ``PRIMAL`` on features, ``GRAM`` from Gram
    matrices) and where a split's rows come from (``_rows``; ``_grams`` for ``GRAM``), and may build a grid
    point's head otherwise (``_head``). ``labels`` are the labels of all the rows the splits index;
    ``sample_weight``, when not None, one weight per such row, passed to the fits (sliced to their rows).
    With ``keep``, heads are fitted with ``warm_start`` and ``_rows`` may keep them for a refit.
    ``log(split, n_splits, option, params, accuracy)`` is called after each grid point. ``map_tasks(function,
    tasks)`` runs independent fits (``fit_gram_chain``, ``score_plan``) and returns their results in order:
    ``map_in_order`` by default, ``runner.map_in_processes`` to use several cores.
    """

    def __init__(self, head_class, params: dict, splits: list[Split], options: list, labels, *, keep: bool = False,
                 log=None, sample_weight=None, map_tasks=map_in_order):
        self.head_class, self.params, self.splits, self.options = head_class, params, splits, options
        self.labels, self.keep, self.log, self.sample_weight = labels, keep, log, sample_weight
        self.map_tasks = map_tasks
        self.grids: dict[int, tuple[list[dict], set]] = {}  # option -> (points, the auto parameters)
        self.scores: dict[tuple, list[float]] = {}          # (option, frozen point) -> accuracy per split
        self.eliminated: dict[tuple, int] = {}  # (option, frozen point) -> max_iter it was dropped at (halving)

    # -- what a subclass says ----------------------------------------------------------------------------
    def solver(self, n: int) -> str:
        """How option ``n`` is searched: ``GRAM`` or ``PRIMAL``."""
        raise NotImplementedError

    def _rows(self, n: int, split: Split):
        """``(X_fit, y_fit, X_val, y_val, models)`` of option ``n`` on ``split``: ``models``, a dict the fitted
        heads are kept in by frozen point, or None."""
        raise NotImplementedError

    def _grams(self, n: int):
        """Option ``n``'s Gram matrices (``SharedGram``'s interface)."""
        raise NotImplementedError

    def _head(self, point: dict):
        """The unfitted head at grid point ``point``."""
        return self.head_class(**point)

    def _keep_decisions(self, n: int, point: dict, decisions) -> None:
        """Called with the decision values on a split's validation rows of each model fitted in full; nothing
        by default."""

    # -- the search ------------------------------------------------------------------------------------
    def run_and_extend(self) -> None:
        """Fit every option's grid, then search beyond the best option's ``auto`` edge (``extend``) up to
        ``MAX_EXTENSIONS`` times."""
        self.run()
        for _ in range(MAX_EXTENSIONS):
            if not self.extend():
                break

    def run(self, todo: dict | None = None) -> None:
        """Fit the points ``todo[option]`` (None: the option's whole grid; default: every option's whole
        grid) on every split and record their validation accuracies."""
        todo = dict.fromkeys(range(len(self.options))) if todo is None else todo
        for n, points in todo.items():
            if self.solver(n) == GRAM:
                self._run_gram(n, points)
            else:
                self._run_primal(n, points)

    def _run_primal(self, n: int, points) -> None:
        """Fit option ``n``'s ``points`` on each split's features; by successive halving when the head fits one
        point at a time and the grid has ``HALVING_MIN_POINTS`` points or more."""
        rungs = self._rungs(n, points)
        for epochs in rungs:
            trial: dict = {}
            points = self._primal_pass(n, points, trial, max_iter=epochs)
            ranked = sorted(trial, key=lambda key: -np.mean(trial[key]))  # stable: grid order among equals
            keep = -(-len(ranked) // HALVING_FACTOR)
            for key in ranked[keep:]:
                self.scores[key], self.eliminated[key] = trial[key], epochs
            by_key = {point_key(point): point for point in points}  # the points as given (a dict stays a dict)
            points = [by_key[point] for _, point in ranked[:keep]]
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
        validation accuracies appended to ``scores`` under ``(n, point)``; returns the points fitted. The grid
        is expanded on the first split's fit rows. The splits' paths and points are fitted side by side
        (``map_tasks``) when there are several splits, no fitted model is kept and their rows together are
        small (``PARALLEL_BYTES``); else one split after another, its rows released before the next's are
        read."""
        full = scores is self.scores  # a full pass, not a round of successive halving
        tasks, side_by_side = [], None
        for s, split in enumerate(self.splits):
            X_fit, y_fit, X_val, y_val, models = self._rows(n, split)
            if n not in self.grids:
                self.grids[n] = expand_grid(self.head_class, self.params, data_stats(X_fit))
            points = self.grids[n][0] if points is None else points
            plan = self._plan(points, overrides)
            if side_by_side is None:
                side_by_side = (self.map_tasks is not map_in_order and len(self.splits) > 1 and models is None
                                and (X_fit.nbytes + X_val.nbytes) * len(self.splits) <= PARALLEL_BYTES)
            if side_by_side:  # one task per path or point: five folds of three points keep two workers busy
                tasks += [(s, ([item], X_fit, y_fit, self._weights(split.fit), X_val, full)) for item in plan]
                continue
            for point, model in fit_plan(plan, X_fit, y_fit, self._weights(split.fit)):
                self._score(scores, n, s, point, model.predict(X_val), y_val)
                if full:
                    self._keep_decisions(n, point, model.decision_function(X_val))
                if models is not None and not overrides:
                    models[point_key(point)] = model
            del X_fit, X_val
        outputs = self.map_tasks(score_plan, [task for _, task in tasks]) if tasks else []
        for (s, _), output in zip(tasks, outputs):
            truth = self.labels[self.splits[s].val]
            for point, predicted, decisions in output:
                self._score(scores, n, s, point, predicted, truth)
                if full:
                    self._keep_decisions(n, point, decisions)
        return points

    def _plan(self, points: list[dict], overrides: dict) -> list[tuple]:
        """How to fit ``points`` (each head with ``overrides``, and ``warm_start`` with ``keep``), as ``(points,
        head, alphas)``: points that differ only in ``alpha`` are one regularisation path through the head's
        ``fit_path`` when it has one (``alphas``), the others are fitted one by one (``alphas`` None)."""
        warm = {"warm_start": True, **overrides} if self.keep else dict(overrides)
        if hasattr(self.head_class, "fit_path") and all("alpha" in p for p in points):
            return [(group, self._head({**group[0], **warm}), [p["alpha"] for p in group])
                    for group in _alpha_groups(points).values()]
        return [([point], self._head({**point, **warm}), None) for point in points]

    def _run_gram(self, n: int, points) -> None:
        """Fit option ``n``'s ``points`` on each split from the Gram matrix of the rows (``_grams``): every
        alpha and class of a split shares its ``GramSpace``, the alphas are a warm-started path. The splits
        are dealt into ``GRAM_CHAINS`` chains, fitted by ``map_tasks`` (side by side when it has processes);
        within a chain, a split's path starts from the previous split's solution when the splits share one
        Gram matrix. The grid is expanded on the first split's fit rows, their scale read from the Gram
        diagonal."""
        grams = self._grams(n)
        matrices = [grams.of(split) for split in self.splits]
        if n not in self.grids:
            fit = self.splits[0].fit
            stats = {"n_samples": len(fit), "n_features": grams.width,
                     "mean_square_norm": float(np.mean(np.diag(matrices[0])[fit]))}
            self.grids[n] = expand_grid(self.head_class, self.params, stats)
        todo = self.grids[n][0] if points is None else points
        groups = list(_alpha_groups(todo).values())
        paths = [(self._head(members[0]), [self._head(point).alpha for point in members]) for members in groups]
        chains = [list(range(c, len(self.splits), GRAM_CHAINS)) for c in range(min(GRAM_CHAINS, len(self.splits)))]
        tasks = [([GramFold(matrices[s], self.splits[s].fit, self.splits[s].val) for s in chain], paths, self.labels,
                  self.sample_weight, grams.shared) for chain in chains]
        fitted = {s: out for chain, outs in zip(chains, self.map_tasks(fit_gram_chain, tasks))
                  for s, out in zip(chain, outs)}
        for s, split in enumerate(self.splits):
            for members, outputs in zip(groups, fitted[s]):
                for point, (predicted, decisions) in zip(members, outputs):
                    self._score(self.scores, n, s, point, predicted, self.labels[split.val])
                    self._keep_decisions(n, point, decisions)

    def _weights(self, rows):
        """The weights of ``rows``, or None without ``sample_weight``."""
        return None if self.sample_weight is None else self.sample_weight[rows]

    def _score(self, scores: dict, n: int, s: int, point: dict, predicted, truth) -> None:
        """Append the accuracy of ``predicted`` to ``scores[(n, point)]`` and log it."""
        accuracy = float(np.mean(predicted == truth))
        scores.setdefault((n, point_key(point)), []).append(accuracy)
        if self.log is not None:
            self.log(s, len(self.splits), self.options[n], _plain(point), accuracy)

    # -- reading it ------------------------------------------------------------------------------------
    def results(self) -> list[dict]:
        """One dict per grid point searched: option, parameters, mean and per-split accuracy, and for a
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


def _alpha_groups(points: list[dict]) -> dict:
    """The points grouped by everything but ``alpha``: each group is one regularisation path."""
    groups: dict = {}
    for point in points:
        groups.setdefault(point_key({k: v for k, v in point.items() if k != "alpha"}), []).append(point)
    return groups


def point_key(point: dict) -> tuple:
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
