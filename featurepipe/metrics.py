"""Scores of a classifier on a labelled set: accuracy, per-class accuracy and the confusion matrix."""
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
