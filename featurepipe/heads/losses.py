"""Classification losses on a batch of class scores, registered by name (kind ``"loss"``).

A loss is called with ``scores`` of shape ``(n_samples, n_classes)``, integer class indices ``y`` and,
optionally, per-row ``weights`` (scaled to mean 1 over the training set: ``weights.py``), and returns
``(loss, dscores)``: the loss averaged over the batch, each row's term times its weight, and its gradient
with respect to ``scores``. The dtype of ``scores`` is kept, so the same code trains in float32 and is checked
against numerical gradients in float64. ``curvature`` is the loss's second derivative per sample,
roughly, for the preconditioner of L-BFGS (``preconditioning.py``).
"""
import numpy as np

from ..core import Stage, register


class Loss(Stage):
    """Base of losses: ``loss(scores, y, weights=None) -> (mean loss, dscores)``; ``curvature`` as above."""

    kind = "loss"
    curvature = 0.1

    def __call__(self, scores, y, weights=None):
        raise NotImplementedError


@register("loss", "hinge")
class MulticlassHinge(Loss):
    """Weston-Watkins multiclass hinge loss with margin 1.

    ``L_i = sum_{j != y_i} max(0, s_ij - s_iy_i + 1)``: every wrong class whose score comes within
    the margin of the true class's score adds to the loss. It has no curvature; the softmax's small
    value keeps the preconditioner's scale.
    """

    curvature = 0.1

    def __call__(self, scores, y, weights=None):
        return _multiclass_hinge(scores, y, weights)


@register("loss", "squared_hinge")
class SquaredHinge(Loss):
    """One-vs-rest squared hinge loss (the L2-SVM of LinearSVC).

    Each class is a binary problem with target ``t_ij = +1`` for the true class and ``-1`` otherwise:
    ``L_i = sum_j max(0, 1 - t_ij s_ij) ** 2``. Unlike the plain hinge it is differentiable. Its
    Hessian is ``2 x x^T`` for samples inside the margin, about 30% of them at a good C.
    """

    curvature = 0.6

    def __call__(self, scores, y, weights=None):
        return _squared_hinge(scores, y, weights)


@register("loss", "log_loss")
class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of the softmax of the scores (multinomial logistic regression); its Hessian is at
    most ``x x^T / 4``, far less once fitted."""

    curvature = 0.1

    def __call__(self, scores, y, weights=None):
        return _softmax_cross_entropy(scores, y, weights)


def _multiclass_hinge(scores, y, weights=None):
    n_samples = scores.shape[0]
    rows = np.arange(n_samples)
    margins = scores - scores[rows, y][:, np.newaxis] + 1
    margins[rows, y] = 0
    np.maximum(margins, 0, out=margins)
    loss = _weighted_sum(margins, weights) / n_samples

    dscores = (margins > 0).astype(scores.dtype)
    dscores[rows, y] = -dscores.sum(axis=1)
    return loss, _scaled(dscores, weights, n_samples)


def _squared_hinge(scores, y, weights=None):
    n_samples = scores.shape[0]
    targets = np.full_like(scores, -1)
    targets[np.arange(n_samples), y] = 1
    slack = 1 - targets * scores
    np.maximum(slack, 0, out=slack)
    loss = _weighted_sum(slack * slack, weights) / n_samples

    dscores = slack
    dscores *= targets
    dscores *= -2 / n_samples
    return loss, _scaled(dscores, weights)


def _softmax_cross_entropy(scores, y, weights=None):
    n_samples = scores.shape[0]
    rows = np.arange(n_samples)
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp_scores = np.exp(shifted)
    sum_exp = exp_scores.sum(axis=1)
    loss = _weighted_sum(np.log(sum_exp) - shifted[rows, y], weights) / n_samples

    dscores = exp_scores
    dscores /= sum_exp[:, np.newaxis]
    dscores[rows, y] -= 1
    return loss, _scaled(dscores, weights, n_samples)


def _weighted_sum(terms, weights):
    """``sum_i w_i terms_i`` over rows (``terms``: one value or one row of values per sample); the plain sum
    when ``weights`` is None."""
    if weights is None:
        return terms.sum()
    per_row = terms.sum(axis=1) if terms.ndim > 1 else terms
    return per_row @ np.asarray(weights, per_row.dtype)


def _scaled(dscores, weights, n_samples=1):
    """``dscores`` divided by ``n_samples`` and each row times its weight, in place."""
    if n_samples != 1:
        dscores /= n_samples
    if weights is not None:
        dscores *= np.asarray(weights, dscores.dtype)[:, np.newaxis]
    return dscores


def softmax(scores):
    """Row-wise softmax, stable for large scores."""
    exp_scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    exp_scores /= exp_scores.sum(axis=1, keepdims=True)
    return exp_scores


multiclass_hinge = MulticlassHinge()
squared_hinge = SquaredHinge()
softmax_cross_entropy = SoftmaxCrossEntropy()
