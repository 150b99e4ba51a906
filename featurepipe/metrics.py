"""Scores of a classifier on a labelled set: accuracy, per-class accuracy and the confusion matrix; and the
95% interval of an accuracy measured on a finite set of images."""
from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile


def score_predictions(y_true, y_pred, classes) -> dict:
    """Accuracy, mean per-class accuracy, per-class accuracy and confusion matrix (rows: true classes)."""
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    true = np.array([index[c] for c in y_true], np.int64)
    pred = np.array([index[c] for c in y_pred], np.int64)
    matrix = np.bincount(true * len(classes) + pred, minlength=len(classes) ** 2).reshape(len(classes), -1)
    per_class = np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
    return {"accuracy": float(np.mean(true == pred)) if len(true) else float("nan"), "n": int(len(true)),
            "mean_per_class_accuracy": float(per_class[matrix.sum(axis=1) > 0].mean()) if len(true) else float("nan"),
            "per_class_accuracy": dict(zip(map(str, classes), map(float, per_class))),
            "confusion_matrix": matrix.tolist()}


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion, ``successes`` out of ``n`` (95% by default): unlike
    ``p +- z sqrt(p (1 - p) / n)`` it stays inside [0, 1] and does not shrink to a point at 0% or 100%, which
    matters for the small test sets of a first run. ``n == 0`` says nothing: [0, 1]."""
    if n == 0:
        return 0.0, 1.0
    p, zz = successes / n, z * z / n
    centre = (p + zz / 2) / (1 + zz)
    half = z / (1 + zz) * math.sqrt(p * (1 - p) / n + zz / (4 * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_interval(accuracy: float, n: int) -> tuple[float, float]:
    """``wilson_interval`` of an accuracy measured on ``n`` images (the count of right answers it implies)."""
    return wilson_interval(round(accuracy * n), n)
