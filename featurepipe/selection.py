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

from .matrix import build_matrix, fit_normalization
from .normalize import Normalization

#: Below this many training images in its smallest class, ``selection: auto`` uses k-fold cross-validation.
SMALL_CLASS = 300


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

    def run(self, todo: dict | None = None) -> None:
        """Fit the points ``todo[option]`` (None: the option's whole grid; default: every option's whole
        grid) on every split and record their validation accuracies."""
        todo = dict.fromkeys(range(len(self.options))) if todo is None else todo
        for s, split in enumerate(self.splits):
            for n, points in todo.items():
                matrix, y_fit, y_val, models = self._matrix(n, split)
                X_fit, X_val = matrix[:len(y_fit)], matrix[len(y_fit):len(y_fit) + len(split.val)]
                if n not in self.grids:
                    self.grids[n] = expand_grid(self.head_class, self.params, data_stats(X_fit))
                points = self.grids[n][0] if points is None else points
                for point, model in _fit_grid(self.head_class, points, X_fit, y_fit, self.keep):
                    accuracy = float(np.mean(model.predict(X_val) == y_val[:len(split.val)]))
                    self.scores.setdefault((n, _frozen(point)), []).append(accuracy)
                    self.decisions.setdefault((n, _frozen(point)), []).append(model.decision_function(X_val))
                    if models is not None:
                        models[_frozen(point)] = model
                    if self.log is not None:
                        self.log(s, len(self.splits), self.options[n], _plain(point), accuracy)
                del matrix, X_fit, X_val

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

    def results(self) -> list[dict]:
        """One dict per grid point searched: normalisation, parameters, mean and per-split accuracy."""
        return [{"normalize": self.options[n], "params": _plain(dict(point)), "val_accuracy": float(np.mean(accs)),
                 "val_folds": accs} for (n, point), accs in self.scores.items()]

    def best(self) -> dict:
        """The result with the best mean validation accuracy (``choose``)."""
        return choose(self.results())

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


def _fit_grid(head_class, points: list[dict], X, y, warm_start: bool):
    """``(point, fitted model)`` for every grid point, with ``warm_start`` when asked: points that differ
    only in ``alpha`` go through the head's ``fit_path`` when it has one, the others are fitted one by one."""
    warm = {"warm_start": True} if warm_start else {}
    if hasattr(head_class, "fit_path") and all("alpha" in p for p in points):
        groups: dict = {}
        for point in points:
            groups.setdefault(_frozen({k: v for k, v in point.items() if k != "alpha"}), []).append(point)
        for group in groups.values():
            head = head_class(**{**group[0], **warm})
            yield from zip(group, head.fit_path(X, y, [p["alpha"] for p in group]))
        return
    for point in points:
        yield point, head_class(**{**point, **warm}).fit(X, y)


def _frozen(point: dict) -> tuple:
    """A grid point as a hashable key (``verbose`` does not make a point)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in point.items() if k != "verbose"))


def _plain(point: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in point.items() if k != "verbose"}
