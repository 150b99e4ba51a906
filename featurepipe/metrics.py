"""Scores of a classifier on a labelled set: accuracy, per-class accuracy, the confusion matrix, and how well
its probabilities are calibrated (``ece``)."""
from __future__ import annotations

import numpy as np


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
