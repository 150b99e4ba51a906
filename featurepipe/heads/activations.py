"""Hidden-layer activations, each with its forward and backward pass, registered by name (kind ``"activation"``).

``forward(z)`` returns ``(a, cache)`` and may overwrite ``z``; ``backward(da, cache)`` returns the
gradient with respect to ``z`` and may overwrite ``da``. Working in place keeps large hidden layers
cheap. ``pieces`` is how many pre-activation units feed one output unit (more than one only for
maxout), and ``init`` names the weight initialisation that keeps the activation's variance stable.
"""
import numpy as np
from scipy.special import expit

from ..core import Integer, Real, Stage, register


class Activation(Stage):
    """Base of activations: ``forward`` and ``backward`` as above; ``pieces`` and ``init`` as above."""

    kind = "activation"
    pieces = 1
    init = "he"

    def forward(self, z):
        raise NotImplementedError

    def backward(self, da, cache):
        raise NotImplementedError


@register("activation", "relu")
class ReLU(Activation):
    """``max(0, z)``."""

    def forward(self, z):
        a = np.maximum(z, 0, out=z)
        return a, a

    def backward(self, da, a):
        da *= a > 0
        return da


@register("activation", "leaky_relu")
class LeakyReLU(Activation):
    """``z`` for positive inputs, ``slope * z`` otherwise, so no unit stops learning."""

    _constraints = {"slope": Real(0, message="must be a number >= 0")}

    def __init__(self, slope=0.01):
        self.slope = slope

    def forward(self, z):
        positive = z > 0
        a = np.where(positive, z, self.slope * z)
        return a, positive

    def backward(self, da, positive):
        return np.where(positive, da, self.slope * da)


@register("activation", "sigmoid")
class Sigmoid(Activation):
    """``1 / (1 + exp(-z))``."""

    init = "xavier"

    def forward(self, z):
        a = expit(z, out=z)
        return a, a

    def backward(self, da, a):
        da *= a * (1 - a)
        return da


@register("activation", "tanh")
class Tanh(Activation):
    """``tanh(z)``."""

    init = "xavier"

    def forward(self, z):
        a = np.tanh(z, out=z)
        return a, a

    def backward(self, da, a):
        da *= 1 - a * a
        return da


@register("activation", "elu")
class ELU(Activation):
    """``z`` for positive inputs, ``alpha * (exp(z) - 1)`` otherwise."""

    _constraints = {"alpha": Real(0, low_open=True, message="must be positive")}

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
class Softplus(Activation):
    """``log(1 + exp(z))``, a smooth ReLU."""

    def forward(self, z):
        return np.logaddexp(0, z), z

    def backward(self, da, z):
        da *= expit(z)
        return da


@register("activation", "maxout")
class Maxout(Activation):
    """The maximum over groups of ``pieces`` consecutive pre-activation units (Goodfellow et al., 2013)."""

    _constraints = {"pieces": Integer(1)}

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
