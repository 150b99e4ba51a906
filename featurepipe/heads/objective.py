"""The training objective: network, loss and penalty combined into one value-and-gradient call."""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .network import DenseNetwork
from .regularization import Penalty


@dataclass(frozen=True)
class Objective:
    """Mean loss of ``network``'s scores (each row's term times its weight, when weighted) plus ``penalty`` on
    its weights."""

    network: DenseNetwork
    loss: Callable
    penalty: Penalty = Penalty()

    def __call__(self, params, X, y, rng=None, weights=None):
        """Return ``(value, grads, scores)`` on the batch ``X, y`` with its rows' ``weights`` (None: all 1);
        ``rng`` switches dropout on."""
        scores, cache = self.network.forward(params, X, rng)
        value, dscores = self.weighted_loss(scores, y, weights)
        grads = self.network.backward(params, cache, dscores)
        value += self.penalty.add_to_gradients(params, grads)
        return value, grads, scores

    def weighted_loss(self, scores, y, weights):
        """The loss, called without ``weights`` when there are none (a loss written before them still serves)."""
        return self.loss(scores, y) if weights is None else self.loss(scores, y, weights)


def evaluate_together(objectives, params_list, X, y, weights_list=None):
    """``objective(params, X, y, weights=weights)`` for each of ``objectives``, ``params_list`` and
    ``weights_list`` (default: None each), on the same rows.

    Linear networks (no hidden layer) are evaluated as one network whose columns are all of theirs side by
    side: one product with ``X`` and one with ``X^T`` serve them all. With few columns each those products
    are bound by reading ``X``, so several objectives cost little more than one.
    """
    weights_list = weights_list or [None] * len(objectives)
    if len(objectives) == 1 or any(objective.network.n_layers != 1 for objective in objectives):
        return [objective(params, X, y, weights=weights)
                for objective, params, weights in zip(objectives, params_list, weights_list)]
    network = objectives[0].network
    stacked = [np.hstack([params[0] for params in params_list]), np.concatenate([params[1] for params in params_list])]
    cuts = np.cumsum([params[1].size for params in params_list])[:-1]
    scores, cache = network.forward(stacked, X)
    parts = np.split(scores, cuts, axis=1)
    losses = [objective.weighted_loss(part, y, weights)
              for objective, part, weights in zip(objectives, parts, weights_list)]
    grads = network.backward(stacked, cache, np.hstack([dscores for _, dscores in losses]))
    out = []
    for objective, params, part, (value, _), weight_grads, bias in zip(
            objectives, params_list, parts, losses, np.split(grads[0], cuts, axis=1), np.split(grads[1], cuts)):
        own = [np.ascontiguousarray(weight_grads), bias]
        out.append((value + objective.penalty.add_to_gradients(params, own), own, part))
    return out
