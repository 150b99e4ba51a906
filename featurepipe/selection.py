"""Model selection on the training split only: validation splits, parameter grids and the search.

A head's parameters may be lists (a grid) or ``auto`` (the head's own grid, scaled to the data); the
normalisation may be a list of alternatives. Every point of the grid is fitted on the fit rows of each
split and scored on its validation rows; the point with the best mean validation accuracy wins (ties:
the first in grid order, i.e. the stronger regularisation). Test rows never enter.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

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
            raise ValueError(f"train.folds: class {classes[counts.argmin()]!r} has {counts.min()} training items, "
                             f"fewer than the {folds} folds")
        kfold = StratifiedKFold(folds, shuffle=True, random_state=seed)
        return method, [Split(np.sort(a), np.sort(b)) for a, b in kfold.split(rows, labels)]
    if counts.min() < 2:
        raise ValueError(f"train.validation_fraction: class {classes[counts.argmin()]!r} has {counts.min()} training "
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
        elif is_grid(value, defaults.get(name)):
            axes[name] = [tuple(v) if isinstance(v, list) else v for v in value]
        else:
            axes[name] = [tuple(value) if isinstance(value, list) else value]
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
