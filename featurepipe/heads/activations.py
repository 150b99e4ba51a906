"""Hidden-layer activations, each with its forward and backward pass, registered by name (kind ``"activation"``).

``forward(z)`` returns ``(a, cache)`` and may overwrite ``z``; ``backward(da, cache)`` returns the
gradient with respect to ``z`` and may overwrite ``da``. Working in place keeps large hidden layers
cheap. ``pieces`` is how many pre-activation units feed one output unit (more than one only for
maxout), and ``init`` names the weight initialisation that keeps the activation's variance stable.
"""
import numpy as np
from scipy.special import expit

from ..core import REGISTRY, register
from ._hyperparameters import Hyperparameters


@register("activation", "relu")
class ReLU(Hyperparameters):
    """``max(0, z)``."""

    pieces = 1
    init = "he"

    def forward(self, z):
        a = np.maximum(z, 0, out=z)
        return a, a

    def backward(self, da, a):
        da *= a > 0
        return da


@register("activation", "leaky_relu")
class LeakyReLU(Hyperparameters):
    """``z`` for positive inputs, ``slope * z`` otherwise, so no unit stops learning."""

    pieces = 1
    init = "he"

    def __init__(self, slope=0.01):
        self.slope = slope

    def forward(self, z):
        positive = z > 0
        a = np.where(positive, z, self.slope * z)
        return a, positive

    def backward(self, da, positive):
        return np.where(positive, da, self.slope * da)


@register("activation", "sigmoid")
class Sigmoid(Hyperparameters):
    """``1 / (1 + exp(-z))``."""

    pieces = 1
    init = "xavier"

    def forward(self, z):
        a = expit(z, out=z)
        return a, a

    def backward(self, da, a):
        da *= a * (1 - a)
        return da


@register("activation", "tanh")
class Tanh(Hyperparameters):
    """``tanh(z)``."""

    pieces = 1
    init = "xavier"

    def forward(self, z):
        a = np.tanh(z, out=z)
        return a, a

    def backward(self, da, a):
        da *= 1 - a * a
        return da


@register("activation", "elu")
class ELU(Hyperparameters):
    """``z`` for positive inputs, ``alpha * (exp(z) - 1)`` otherwise."""

    pieces = 1
    init = "he"

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def forward(self, z):
        positive = z > 0
        a = np.where(positive, z, self.alpha * np.expm1(np.minimum(z, 0)))
        return a, (positive, a)

    def backward(self, da, cache):
        positive, a = cache
        # For negative z, d/dz alpha * (exp(z) - 1) = alpha * exp(z) = a + alpha.
        return np.where(positive, da, da * (a + self.alpha))


@register("activation", "softplus")
class Softplus(Hyperparameters):
    """``log(1 + exp(z))``, a smooth ReLU."""

    pieces = 1
    init = "he"

    def forward(self, z):
        return np.logaddexp(0, z), z

    def backward(self, da, z):
        da *= expit(z)
        return da


@register("activation", "maxout")
class Maxout(Hyperparameters):
    """The maximum over groups of ``pieces`` consecutive pre-activation units (Goodfellow et al., 2013)."""

    init = "he"

    def __init__(self, pieces=2):
        self.pieces = pieces

    def forward(self, z):
        groups = z.reshape(z.shape[0], -1, self.pieces)
        winners = groups.argmax(axis=2)[:, :, np.newaxis]
        a = np.take_along_axis(groups, winners, axis=2)[:, :, 0]
        return a, (winners, z.shape)

    def backward(self, da, cache):
        winners, z_shape = cache
        dz = np.zeros((z_shape[0], z_shape[1] // self.pieces, self.pieces), dtype=da.dtype)
        np.put_along_axis(dz, winners, da[:, :, np.newaxis], axis=2)
        return dz.reshape(z_shape)


def get_activation(name):
    """A new activation registered as ``name``, with its default settings."""
    return REGISTRY.create("activation", name)
