"""The weights of a fit's rows: ``sample_weight`` times ``class_weight``, validated and scaled to mean 1.

A head minimises ``sum_i w_i L_i / sum_i w_i`` plus its penalty. Scaled to mean 1, the weights make that the
plain mean of ``w_i L_i``, so a loss multiplies each row's term by its weight and divides by the row count as
it always did, and integer weights equal repeating rows.
"""
import numpy as np
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import _check_sample_weight

from ..core import Real, Satisfies

#: The values ``class_weight`` takes: None, ``"balanced"`` (``n / (n_classes * count)``, scikit-learn's) or a
#: dict ``{label: weight}``.
CLASS_WEIGHT = Satisfies(
    lambda v: v is None or (isinstance(v, str) and v == "balanced")
    or (isinstance(v, dict) and all(Real(0).holds(w) and np.isfinite(w) for w in v.values())),
    "must be None, 'balanced' or a dict {label: finite weight >= 0}")


def row_weights(X, y, classes, sample_weight=None, class_weight=None):
    """The weight of each row of ``X`` (labels ``y``, among ``classes``): ``sample_weight`` times its class's
    ``class_weight``, float64, or None when neither is given. Refuses, in one line, weights that are not one
    finite non-negative number per row, all zero, and a ``class_weight`` label that is not a class."""
    if sample_weight is None and class_weight is None:
        return None
    weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True, copy=True)
    if class_weight is not None:
        weights *= class_row_weights(y, classes, class_weight)
    if not weights.sum() > 0:
        name = "class_weight" if sample_weight is None else "sample_weight"  # the parameter the caller gave
        raise ValueError(f"{name}: the weights (sample_weight times class_weight) are all zero; at least one row "
                         "must weigh something")
    return weights


def mean_one(weights):
    """``weights`` scaled to mean 1, or None when there are none or all are equal: the unweighted fit, bit for
    bit."""
    if weights is None or np.all(weights == weights[0]):
        return None
    return weights * (len(weights) / weights.sum())


def class_row_weights(y, classes, class_weight) -> np.ndarray:
    """Each row's weight under ``class_weight``: ``"balanced"`` from the counts of ``y``, or a dict's
    value for its label (1 for labels the dict leaves out, and a dict's label may be missing from ``y``: a
    ``partial_fit`` batch without the rare class)."""
    if not isinstance(class_weight, dict):
        return compute_sample_weight(class_weight, y)
    unknown = [label for label in class_weight if not np.isin(label, classes)]
    if unknown:
        raise ValueError(f"class_weight: {unknown[0]!r} is not a class of y (classes: "
                         f"{', '.join(map(repr, np.asarray(classes).tolist()))})")
    y, weights = np.asarray(y), np.ones(len(y))
    for label, weight in class_weight.items():
        weights[y == label] = weight
    return weights
