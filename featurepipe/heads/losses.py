"""Classification losses on a batch of class scores.

Each loss takes ``scores`` of shape ``(n_samples, n_classes)`` and integer class indices ``y`` and
returns ``(loss, dscores)``: the loss averaged over the batch and its gradient with respect to
``scores``. The dtype of ``scores`` is kept, so the same code trains in float32 and is checked
against numerical gradients in float64.
"""
import numpy as np


def multiclass_hinge(scores, y):
    """Weston-Watkins multiclass hinge loss with margin 1.

    ``L_i = sum_{j != y_i} max(0, s_ij - s_iy_i + 1)``: every wrong class whose score comes within
    the margin of the true class's score adds to the loss.
    """
    n_samples = scores.shape[0]
    rows = np.arange(n_samples)
    margins = scores - scores[rows, y][:, np.newaxis] + 1
    margins[rows, y] = 0
    np.maximum(margins, 0, out=margins)
    loss = margins.sum() / n_samples

    dscores = (margins > 0).astype(scores.dtype)
    dscores[rows, y] = -dscores.sum(axis=1)
    dscores /= n_samples
    return loss, dscores


def squared_hinge(scores, y):
    """One-vs-rest squared hinge loss (the L2-SVM of LinearSVC).

    Each class is a binary problem with target ``t_ij = +1`` for the true class and ``-1`` otherwise:
    ``L_i = sum_j max(0, 1 - t_ij s_ij) ** 2``. Unlike the plain hinge it is differentiable.
    """
    n_samples = scores.shape[0]
    targets = np.full_like(scores, -1)
    targets[np.arange(n_samples), y] = 1
    slack = 1 - targets * scores
    np.maximum(slack, 0, out=slack)
    loss = (slack * slack).sum() / n_samples

    dscores = slack
    dscores *= targets
    dscores *= -2 / n_samples
    return loss, dscores


def softmax_cross_entropy(scores, y):
    """Cross-entropy of the softmax of the scores (multinomial logistic regression)."""
    n_samples = scores.shape[0]
    rows = np.arange(n_samples)
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp_scores = np.exp(shifted)
    sum_exp = exp_scores.sum(axis=1)
    loss = (np.log(sum_exp) - shifted[rows, y]).sum() / n_samples

    dscores = exp_scores
    dscores /= sum_exp[:, np.newaxis]
    dscores[rows, y] -= 1
    dscores /= n_samples
    return loss, dscores


def softmax(scores):
    """Row-wise softmax, stable for large scores."""
    exp_scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    exp_scores /= exp_scores.sum(axis=1, keepdims=True)
    return exp_scores


LOSSES = {
    "hinge": multiclass_hinge,
    "squared_hinge": squared_hinge,
    "log_loss": softmax_cross_entropy,
}


def get_loss(name):
    """Return the loss function registered as ``name``."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}") from None
