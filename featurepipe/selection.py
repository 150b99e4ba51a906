"""Model selection on the training split only: validation splits, normalisation options and the search.

A head's parameters may be lists (a grid) or ``auto`` (the head's own grid, scaled to the data); the
normalisation may be a list of alternatives. The ``Search`` reads each split's rows from the store,
normalised by each option; ``heads/grid.py`` (``FoldSearch``) fits every point of the grid on the fit rows of
each split, scores it on its validation rows and chooses (the best mean validation accuracy; ties: the first
in grid order, i.e. the stronger regularisation). Test rows never enter.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone

from .heads.grid import GRAM, PRIMAL, FoldSearch, Split, expand_grid, map_in_order, point_key
from .heads.row_space import gram
from .matrix import build_matrix, fit_normalization
from .normalize import ExactKernel
from .normalize import Normalization

#: Below this many training images in its smallest class, ``selection: auto`` uses k-fold cross-validation.
SMALL_CLASS = 300


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


def normalization_options(spec) -> list:
    """The normalisations to search: a list of lists is a list of alternatives, anything else is one."""
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(s, (list, tuple)) for s in spec):
        return [list(s) for s in spec]
    return [spec]


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


class Search(FoldSearch):
    """The search of a head's grid on the validation splits of ``data``'s training rows (a ``fitting.
    TrainingData``), for each normalisation option: ``FoldSearch`` fits, scores, chooses and extends; this
    class reads each split's rows from the store, normalised by the option, or their Gram matrices (``Grams``).

    With ``keep`` (a holdout split whose chosen setting is refit), the last matrix built -- the validation
    rows' augmented copies included -- is kept with the models fitted on it: a grid extension of the same
    option reuses it, and so does the refit (``kept_model``). Those models are built with ``warm_start``, so
    that they keep what a warm refit reuses. ``log(split, n_splits, normalize, params, accuracy)`` is
    called after each grid point. Each point's decision values on the validation rows are kept
    (``out_of_fold``: what ``calibration.py`` fits probabilities on).
    """

    def __init__(self, data, head_class, params: dict, splits: list[Split], options: list, *, keep: bool,
                 log=None, map_tasks=map_in_order):
        super().__init__(head_class, params, splits, options, data.labels[data.train_rows], keep=keep, log=log,
                         map_tasks=map_tasks)
        self.data = data
        self.decisions: dict[tuple, list[np.ndarray]] = {}  # (option, frozen point) -> validation rows' per split
        self.kept: _Kept | None = None
        self.solvers: dict[int, str] = {}   # option -> GRAM or PRIMAL (``solver``)
        self.grams: dict[int, Grams] = {}   # option -> its Gram matrices, when searched by GRAM

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

    def _grams(self, n: int) -> Grams:
        return self.grams.setdefault(n, Grams(self.data, self.options[n]))

    def _keep_decisions(self, n: int, point: dict, decisions) -> None:
        """Keep a model's ``decisions`` on a split's validation rows under ``(n, point)`` (``out_of_fold``)."""
        self.decisions.setdefault((n, point_key(point)), []).append(decisions)

    def _rows(self, n: int, split: Split):
        """Option ``n``'s fit and validation rows of ``split`` (without the validation rows' copies): views of
        ``_matrix``."""
        matrix, y_fit, y_val, models = self._matrix(n, split)
        X_val = matrix[len(y_fit):len(y_fit) + len(split.val)]
        return matrix[:len(y_fit)], y_fit, X_val, y_val[:len(split.val)], models

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

    def out_of_fold(self, best: dict) -> tuple[np.ndarray, np.ndarray]:
        """The decision values of ``best``'s setting on every split's validation rows (fitted without them),
        and those rows' labels."""
        n = self.options.index(best["normalize"])
        labels = [self.data.labels[self.data.train_rows[split.val]] for split in self.splits]
        return np.concatenate(self.decisions[(n, point_key(best["params"]))]), np.concatenate(labels)

    def kept_model(self, best: dict):
        """The model fitted on the kept matrix at ``best``'s setting, or None."""
        kept = self.kept
        if kept is None or kept.option != self.options.index(best["normalize"]):
            return None
        return kept.models.get(point_key(best["params"]))


def _exact_kernel(spec) -> bool:
    """Whether the normalisation ``spec`` has an ``exact_kernel`` step."""
    return any(isinstance(step, ExactKernel) for step in Normalization.from_spec(spec).steps)
