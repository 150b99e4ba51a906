"""L2 and L1 penalties on the weight matrices of a head.

Only parameters with more than one dimension (weight matrices) are penalised; bias vectors never
are, since shrinking them only moves the decision boundary. Decoupled weight decay, the third
regulariser, is not part of the objective: the optimisers apply it (see ``optimizers.py``).
"""
from dataclasses import dataclass

import numpy as np

from .kernels import add_scaled


def is_weight(param):
    """True for parameters that are regularised: matrices, not bias vectors."""
    return param.ndim > 1


@dataclass(frozen=True)
class Penalty:
    """``0.5 * l2 * sum(W ** 2) + l1 * sum(|W|)`` over all weight matrices ``W``."""

    l2: float = 0.0
    l1: float = 0.0

    def add_to_gradients(self, params, grads):
        """Add the penalty's (sub)gradient to ``grads`` in place and return the penalty's value."""
        value = 0.0
        for param, grad in zip(params, grads):
            if not is_weight(param):
                continue
            if self.l2:
                value += 0.5 * self.l2 * float(np.vdot(param, param))
                add_scaled(grad, self.l2, param)
            if self.l1:
                value += self.l1 * float(np.abs(param).sum())
                grad += self.l1 * np.sign(param)
        return value

