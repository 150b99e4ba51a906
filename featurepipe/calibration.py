"""Probabilities for a head that gives only scores (the hinge losses): Platt scaling.

One sigmoid per class, ``P(class k | f) = 1 / (1 + exp(a_k f_k + b_k))`` on the class's decision value
``f_k``, fitted on decision values the head gave rows it was not fitted on (the validation rows of the
search, ``selection.Search.out_of_fold``) with Platt's smoothed targets; the one-vs-rest probabilities are
normalised to sum to 1. This is what scikit-learn's ``CalibratedClassifierCV(method='sigmoid')`` does for
LinearSVC. With two classes the decision value is one column (``classes[1]`` against ``classes[0]``) and one
sigmoid gives both probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit


@dataclass(frozen=True)
class PlattScaling:
    """The sigmoids' slopes ``a`` and intercepts ``b``, one per decision column."""

    slope: np.ndarray
    intercept: np.ndarray

    def predict_proba(self, decision) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` from a head's decision values (``(n,)`` for two classes)."""
        decision = np.asarray(decision, np.float64)
        positive = expit(-(decision.reshape(len(decision), -1) * self.slope + self.intercept))
        if decision.ndim == 1:
            return np.column_stack([1 - positive[:, 0], positive[:, 0]])
        total = positive.sum(axis=1, keepdims=True)
        uniform = np.full_like(positive, 1 / positive.shape[1])
        return np.divide(positive, total, out=uniform, where=total > 0)

    def arrays(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_arrays(cls, arrays: dict, n_classes: int) -> PlattScaling:
        """The calibration stored as ``arrays``; ``ValueError`` naming what is wrong unless they are exactly
        ``slope`` and ``intercept``, finite floats, one per decision column of a head of ``n_classes``."""
        if set(arrays) != {"slope", "intercept"}:
            raise ValueError(f"holds arrays {sorted(arrays)}, not ['intercept', 'slope']")
        columns = 1 if n_classes == 2 else n_classes
        for name, array in arrays.items():
            if array.dtype.kind != "f" or array.shape != (columns,):
                raise ValueError(f"{name} is {array.dtype} {list(array.shape)}; a head of {n_classes} classes "
                                 f"needs float [{columns}]")
            if not np.isfinite(array).all():
                raise ValueError(f"{name} holds non-finite numbers")
        return cls(arrays["slope"].astype(np.float64), arrays["intercept"].astype(np.float64))


@dataclass(frozen=True)
class OutOfFold:
    """A head's decision values on rows it was not fitted on -- the validation rows of every split of its
    search, at the chosen setting -- and those rows (of its feature entry): what Platt scaling and late
    fusion (``fusion.py``) learn from."""

    decision: np.ndarray
    rows: np.ndarray

    def arrays(self) -> dict:
        return {"decision": self.decision, "rows": self.rows}

    @classmethod
    def from_arrays(cls, arrays: dict, n_classes: int) -> OutOfFold:
        """The values stored as ``arrays``; ``ValueError`` naming what is wrong unless they are exactly
        ``decision`` (finite floats, a column per decision value of a head of ``n_classes``) and ``rows``
        (distinct non-negative integers, one per decision row)."""
        if set(arrays) != {"decision", "rows"}:
            raise ValueError(f"holds arrays {sorted(arrays)}, not ['decision', 'rows']")
        decision, rows = arrays["decision"], arrays["rows"]
        shape = (len(rows),) if n_classes == 2 else (len(rows), n_classes)
        if decision.dtype.kind != "f" or decision.shape != shape:
            raise ValueError(f"decision is {decision.dtype} {list(decision.shape)}; {len(rows)} rows of a head of "
                             f"{n_classes} classes need float {list(shape)}")
        if not np.isfinite(decision).all():
            raise ValueError("decision holds non-finite numbers")
        if rows.dtype.kind not in "iu" or rows.ndim != 1 or (rows < 0).any() or len(np.unique(rows)) != len(rows):
            raise ValueError(f"rows is {rows.dtype} {list(rows.shape)}; it must be distinct non-negative integers")
        return cls(decision.astype(np.float64), rows.astype(np.int64))


def probabilities(decision, calibration: PlattScaling | None = None) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` from a head's decision values: its Platt ``calibration``'s, else
    (a head with probabilities of its own) the softmax of its scores, as its ``predict_proba``."""
    if calibration is not None:
        return calibration.predict_proba(decision)
    from scipy.special import softmax

    decision = np.asarray(decision, np.float64)
    scores = np.column_stack([np.zeros(len(decision)), decision]) if decision.ndim == 1 else decision
    return softmax(scores, axis=1)


def fit_platt(decision, labels, classes) -> PlattScaling:
    """Platt scaling of decision values ``decision`` (``(n, n_classes)``, or ``(n,)`` for two classes) of rows
    whose true labels are ``labels``, for a head whose classes are ``classes`` (in its column order)."""
    decision = np.asarray(decision, np.float64)
    labels = np.asarray(labels)
    if decision.ndim == 1:
        targets = [labels == classes[1]]
        columns = decision[:, None]
    else:
        targets = [labels == c for c in classes]
        columns = decision
    fitted = [_fit_sigmoid(columns[:, k], positive) for k, positive in enumerate(targets)]
    slope, intercept = (np.array(values) for values in zip(*fitted))
    return PlattScaling(slope, intercept)


def _fit_sigmoid(f: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` minimising the log loss of ``1 / (1 + exp(a f + b))`` against Platt's targets: the positives'
    ``(N+ + 1) / (N+ + 2)`` and the negatives' ``1 / (N- + 2)``, which keep a class seen rarely, or always
    separated, from getting probabilities of exactly 0 or 1 (Platt 1999; Lin, Lin and Weng 2007)."""
    from scipy.optimize import minimize

    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    negative_target = np.where(positive, 1 / (n_positive + 2), (n_negative + 1) / (n_negative + 2))
    scale = max(1.0, float(np.abs(f).max()))  # scores of any size, one conditioning for L-BFGS
    f = f / scale

    def loss(ab):
        z = ab[0] * f + ab[1]  # P(positive) = 1 / (1 + e^z); its log loss is log(1 + e^z) - (1 - t) z
        gradient = expit(z) - negative_target
        return np.sum(np.logaddexp(0, z) - negative_target * z), np.array([gradient @ f, gradient.sum()])

    start = [0.0, np.log((n_negative + 1) / (n_positive + 1))]
    tolerances = {"gtol": 1e-6, "ftol": 64 * np.finfo(float).eps}  # scikit-learn's
    a, b = minimize(loss, start, jac=True, method="L-BFGS-B", options=tolerances).x
    return float(a) / scale, float(b)
