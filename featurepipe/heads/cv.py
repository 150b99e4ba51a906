"""``LinearClassifierCV``: a linear head whose ``alpha`` is chosen by cross-validation, from Python.

A config's ``alpha: auto`` as a scikit-learn estimator, in the manner of ``LogisticRegressionCV``: the same
grid, fits, choice and extension as ``featurepipe train``'s search (``grid.FoldSearch``), on rows in memory.
"""
import numbers

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedKFold, check_cv
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..core import NULL, AnyOf, Instance, Integer, Options, Real, Satisfies, check_constraints
from .base import Start
from .grid import GRAM, PRIMAL, FoldSearch, SharedGram, Split, point_key
from .linear import LinearClassifier


def _alpha_list(value) -> bool:
    values = np.asarray(value, dtype=float)
    return values.ndim == 1 and len(values) > 0 and all(map(Real(0).holds, values))


def _splitter(value) -> bool:
    return hasattr(value, "split") or (hasattr(value, "__iter__") and not isinstance(value, str))


class LinearClassifierCV(ClassifierMixin, BaseEstimator):
    """A ``LinearClassifier`` whose ``alpha`` is chosen by cross-validated accuracy, then refit on every row.

    ``LinearClassifierCV(LinearClassifier(loss='squared_hinge', optimizer='lbfgs'), alphas='auto', cv=5)`` does
    from Python what a config's ``alpha: auto`` does for ``featurepipe train``, with the same code: the grid,
    each fold's fits (the head's warm-started ``fit_path``; from one Gram matrix of the rows when the folds have
    fewer rows than features), the choice and the extension beyond the grid's edge.

    Parameters
    ----------
    estimator : LinearClassifier or None, default=None
        The head whose ``alpha`` is searched, every other setting as given (None: ``LinearClassifier()``).
        Copied, never changed; its own ``alpha`` is not used. A template rather than the head's parameters
        repeated here, as ``CalibratedClassifierCV`` takes its estimator: the head's settings stay in one
        place, and ``get_params()`` shows them as ``estimator__loss`` and so on.
    alphas : 'auto' or list of float, default='auto'
        ``'auto'`` is the config's ``alpha: auto``: the head's ``auto_grid`` scaled to the first fold's
        training rows, extended two values at a time (up to ``grid.MAX_EXTENSIONS`` times) while the best
        alpha lies at its edge. A list (or array) is searched as given.
    cv : int, cross-validation splitter or iterable, default=5
        An int: that many stratified folds, shuffled by ``random_state`` (the config's ``train.folds`` and
        ``train.seed``). Otherwise a scikit-learn splitter or an iterable of ``(train, test)`` index arrays.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle of the folds when ``cv`` is an int, and the head's fits when its own
        ``random_state`` is None (as ``LogisticRegressionCV``'s seeds its solver).

    Attributes
    ----------
    alpha_ : float
        The alpha with the best mean validation accuracy (the first of equals in ``alphas_``: for ``'auto'``
        the largest of the grid, the stronger regularisation; for a list, the first of equals as listed).
    alphas_ : ndarray of shape (n_alphas,)
        Every alpha searched, in the order searched (an extension's after the grid).
    cv_results_ : dict of ndarrays
        As ``GridSearchCV``'s, a row per alpha of ``alphas_``: ``param_alpha``, ``params``,
        ``split<k>_test_score`` (accuracy on fold ``k``), ``mean_test_score``, ``std_test_score`` and
        ``rank_test_score``.
    best_index_ : int
        The index of ``alpha_`` in ``alphas_`` and ``cv_results_``.
    best_score_ : float
        Its mean validation accuracy.
    best_estimator_ : LinearClassifier
        The head at ``alpha_`` refit on every row; ``predict``, ``decision_function``, ``predict_proba``
        (``loss='log_loss'`` only) and ``score`` are its.
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when ``X`` has string column names.

    Notes
    -----
    ``fit(X, y, sample_weight)`` passes each fold's weights to the head's fits; the validation accuracies are
    not weighted (as ``GridSearchCV``'s scores, by default).
    """

    _constraints = {
        "estimator": AnyOf(NULL, Instance(LinearClassifier, ""), message="must be a LinearClassifier or None"),
        "alphas": AnyOf(Options("auto"), Satisfies(_alpha_list, ""),
                        message="must be 'auto' or a non-empty list of numbers >= 0"),
        "cv": AnyOf(Integer(2), Satisfies(_splitter, ""), message="must be an integer >= 2, a cross-validation "
                                                                    "splitter or an iterable of (train, test) index arrays"),
    }

    def __init__(self, estimator=None, *, alphas="auto", cv=5, random_state=None):
        self.estimator = estimator
        self.alphas = alphas
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        """Search the alphas on the folds of ``X, y`` and refit the best on every row."""
        check_constraints(self, self._constraints)
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes, got 1 class: "
                             f"{self.classes_[0]!r}")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        alphas = self.alphas if isinstance(self.alphas, str) else list(dict.fromkeys(map(float, self.alphas)))
        template = clone(LinearClassifier() if self.estimator is None else self.estimator)
        if template.random_state is None:
            template.set_params(random_state=self.random_state)
        search = _ArraySearch(template, alphas, self._splits(X, y), X, y, sample_weight)
        search.run_and_extend()
        results, best = search.results(), search.best()
        self._record(results, results.index(best))
        self.best_estimator_ = search.refit(self.alpha_)
        return self

    def _splits(self, X, y) -> list[Split]:
        """The folds: stratified and shuffled by ``random_state`` for an int ``cv`` (rows sorted, as the config's
        ``make_splits``), else ``cv``'s."""
        if isinstance(self.cv, numbers.Integral):
            splitter = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
        else:
            splitter = check_cv(self.cv, y, classifier=True)
        return [Split(np.sort(fit), np.sort(val)) for fit, val in splitter.split(X, y)]

    def _record(self, results: list[dict], best: int) -> None:
        """``alphas_``, ``cv_results_`` and the best of them from the search's ``results``."""
        folds = np.array([r["val_folds"] for r in results])
        means = np.array([r["val_accuracy"] for r in results])
        self.alphas_ = np.array([r["params"]["alpha"] for r in results])
        self.cv_results_ = {
            "param_alpha": self.alphas_.copy(), "params": [{"alpha": float(a)} for a in self.alphas_],
            **{f"split{k}_test_score": folds[:, k] for k in range(folds.shape[1])},
            "mean_test_score": means, "std_test_score": folds.std(axis=1),
            "rank_test_score": rankdata(-means, method="min").astype(np.int32),
        }
        self.best_index_ = best
        self.alpha_ = float(self.alphas_[best])
        self.best_score_ = float(means[best])

    def _checked(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float32, reset=False)

    def predict(self, X):
        """The class the refit head gives each row of ``X``."""
        X = self._checked(X)
        return self.best_estimator_.predict(X)

    def decision_function(self, X):
        """The refit head's class scores (see ``LinearClassifier.decision_function``)."""
        X = self._checked(X)
        return self.best_estimator_.decision_function(X)

    def _has_probabilities(self):
        head = getattr(self, "best_estimator_", self.estimator or LinearClassifier())
        return hasattr(head, "predict_proba")

    @available_if(_has_probabilities)
    def predict_proba(self, X):
        """The refit head's class probabilities; only for ``loss='log_loss'``."""
        X = self._checked(X)
        return self.best_estimator_.predict_proba(X)


class _ArraySearch(FoldSearch):
    """The search of ``alphas`` for a copy of ``template`` on the folds ``splits`` of ``X, y`` in memory: one
    option, the rows as given; by ``GRAM`` when the head fits the folds in their row space (and takes the
    weights there, if any), their Gram matrix computed once for all folds. ``refit`` fits the chosen alpha
    on every row."""

    def __init__(self, template, alphas, splits, X, y, sample_weight):
        super().__init__(type(template), {"alpha": alphas}, splits, [None], y, sample_weight=sample_weight)
        self.template, self.X = template, X
        self.models: dict = {}  # point_key(point) -> its model fitted on the last fold (by PRIMAL)
        self.gram: SharedGram | None = None

    def _head(self, point: dict):
        return clone(self.template).set_params(**point)

    def solver(self, n: int) -> str:
        rows = max(len(split.fit) for split in self.splits)
        return GRAM if self.template.solves_by_gram(rows, self.X.shape[1]) else PRIMAL

    def _rows(self, n: int, split: Split):
        return self.X[split.fit], self.labels[split.fit], self.X[split.val], self.labels[split.val], self.models

    def _grams(self, n: int) -> SharedGram:
        if self.gram is None:
            self.gram = SharedGram(self.X)
        return self.gram

    def refit(self, alpha: float) -> LinearClassifier:
        """The head at ``alpha`` fitted on every row: from the search's Gram matrix through the row space when
        the folds were searched by it, else (L-BFGS) starting from the last fold's solution at ``alpha``."""
        head = self._head({"alpha": alpha})
        X, y = self.X, self.labels
        if self.gram is not None and head.solves_by_gram(*X.shape):
            return head.fit_by_gram(X, y, self.gram.matrix, sample_weight=self.sample_weight)
        fold_model = self.models.get(point_key({"alpha": alpha}))
        # L-BFGS converges to the same optimum from anywhere; a mini-batch fit starts afresh (fitting._refit's
        # rule), else the refit would add its epochs to the fold's and train another model than alpha_'s fit.
        warm = fold_model is not None and head._part("optimizer").full_batch
        return head._fit(X, y, start=Start.of(fold_model) if warm else None, sample_weight=self.sample_weight)

