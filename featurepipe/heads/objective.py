"""The training objective: network, loss and penalty combined into one value-and-gradient call."""
from collections.abc import Callable
from dataclasses import dataclass

from .network import DenseNetwork
from .regularization import Penalty


@dataclass(frozen=True)
class Objective:
    """Mean loss of ``network``'s scores plus ``penalty`` on its weights."""

    network: DenseNetwork
    loss: Callable
    penalty: Penalty = Penalty()

    def __call__(self, params, X, y, rng=None):
        """Return ``(value, grads, scores)`` on the batch ``X, y``; ``rng`` switches dropout on."""
        scores, cache = self.network.forward(params, X, rng)
        value, dscores = self.loss(scores, y)
        grads = self.network.backward(params, cache, dscores)
        value += self.penalty.add_to_gradients(params, grads)
        return value, grads, scores
