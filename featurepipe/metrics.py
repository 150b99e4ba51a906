"""Scores of a classifier on a labelled set: accuracy, per-class accuracy, the confusion matrix, how well its
probabilities are calibrated (``ece``), and the 95% interval of an accuracy measured on a finite set of images."""
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


def ece(y_true, probabilities, n_bins: int = 15) -> float:
    """Top-label expected calibration error: rows binned by the probability of their most probable class
    (``n_bins`` equal bins of (0, 1]; Guo et al. 2017), the mean over rows of |accuracy - mean probability|
    of their bin. ``y_true`` are column indices of ``probabilities``."""
    probabilities = np.asarray(probabilities)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(y_true)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    # Per bin, rows x (accuracy - mean probability) = right answers - summed probabilities.
    gap = np.bincount(bins, correct.astype(np.float64), n_bins) - np.bincount(bins, confidence, n_bins)
    return float(np.abs(gap).sum() / len(confidence))


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
