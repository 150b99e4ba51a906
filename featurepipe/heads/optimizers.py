"""Optimisers, kept apart from the models so that any head trains with any of them.

First-order optimisers update a list of parameter arrays in place from mini-batch gradients::

    state = optimizer.init_state(params)
    optimizer.step(params, grads, state, lr_scale=schedule(epoch))

Settings live on the optimiser and per-run state in ``state``, so one optimiser object can train
many models without being changed, as scikit-learn requires of an estimator's parameters.

Every first-order optimiser applies *decoupled* weight decay (Loshchilov and Hutter, 2019) to weight
matrices, never to biases: ``W -= lr * weight_decay * W`` next to the gradient step, rather than a
penalty folded into the gradient. ``"adamw"`` is Adam with it switched on by default.

L-BFGS, full-batch, is in ``lbfgs.py``.
Each is a registered stage (kind ``"optimizer"``), some names with preset settings (``"momentum"`` is SGD
with momentum 0.9); a head's ``optimizer`` parameter names one (``featurepipe.list("optimizer")``) or is an
object, and the head's own ``learning_rate`` and ``weight_decay`` override its settings.
"""
import numpy as np

from ..core import Boolean, Real, Stage, register, require
from . import kernels
from .regularization import is_weight

_RATE = {"learning_rate": Real(0, low_open=True, message="must be positive"),
         "weight_decay": Real(0, message="must be non-negative")}
_FRACTION = Real(0, 1, high_open=True)
_EPSILON = Real(0, low_open=True, message="must be positive")


class OptimizerState:
    """The step count and one tuple of buffers (momentum, squared-gradient averages) per parameter."""

    def __init__(self, buffers):
        self.steps = 0
        self.buffers = buffers


class Optimizer(Stage):
    """Base of the first-order optimisers; subclasses implement ``_update`` for one parameter."""

    kind = "optimizer"
    full_batch = False
    #: Names of the per-parameter buffers ``_update`` receives, in order.
    buffer_names = ()

    def __init__(self, learning_rate, weight_decay):
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay

    def init_state(self, params):
        """Fresh state for training ``params``."""
        return OptimizerState(
            [tuple(np.zeros_like(param) for _ in self.buffer_names) for param in params]
        )

    def step(self, params, grads, state, lr_scale=1.0):
        """Update ``params`` in place; ``lr_scale`` multiplies the learning rate (for schedules)."""
        state.steps += 1
        lr = self.learning_rate * lr_scale
        for param, grad, buffers in zip(params, grads, state.buffers):
            if self.weight_decay and is_weight(param):
                param *= 1 - lr * self.weight_decay
            self._update(param, grad, buffers, lr, state.steps)

    def _update(self, param, grad, buffers, lr, steps):
        raise NotImplementedError


@register("optimizer", "sgd")
@register("optimizer", "momentum", momentum=0.9)
@register("optimizer", "nesterov", momentum=0.9, nesterov=True)
class SGD(Optimizer):
    """Stochastic gradient descent, optionally with classical or Nesterov momentum.

    With momentum ``mu``: ``v <- mu v - lr g``, then ``p <- p + v`` (classical) or
    ``p <- p + mu v - lr g`` (Nesterov, in the form of Sutskever et al., 2013).
    """

    buffer_names = ("velocity",)
    _constraints = {**_RATE, "momentum": _FRACTION, "nesterov": Boolean()}

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.momentum = momentum
        self.nesterov = nesterov

    def _check_combination(self):
        require(not self.nesterov or self.momentum > 0, "nesterov", "needs a momentum above 0", self.nesterov)

    def _update(self, param, grad, buffers, lr, steps):
        if not self.momentum:
            param -= lr * grad
            return
        (velocity,) = buffers
        velocity *= self.momentum
        velocity -= lr * grad
        if self.nesterov:
            param += self.momentum * velocity - lr * grad
        else:
            param += velocity


@register("optimizer", "adagrad")
class AdaGrad(Optimizer):
    """Per-coordinate steps shrinking with the sum of squared gradients (Duchi et al., 2011).

    ``G <- G + g^2``, ``p <- p - lr g / (sqrt(G) + epsilon)``.
    """

    buffer_names = ("sum_sq",)
    _constraints = {**_RATE, "epsilon": _EPSILON}

    def __init__(self, learning_rate=0.01, epsilon=1e-8, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.epsilon = epsilon

    def _update(self, param, grad, buffers, lr, steps):
        (sum_sq,) = buffers
        sum_sq += grad * grad
        param -= lr * grad / (np.sqrt(sum_sq) + self.epsilon)


@register("optimizer", "rmsprop")
class RMSProp(Optimizer):
    """AdaGrad with a moving average of squared gradients instead of their sum (Hinton, 2012).

    ``E <- rho E + (1 - rho) g^2``, ``p <- p - lr g / (sqrt(E) + epsilon)``.
    """

    buffer_names = ("mean_sq",)
    _constraints = {**_RATE, "rho": _FRACTION, "epsilon": _EPSILON}

    def __init__(self, learning_rate=1e-3, rho=0.9, epsilon=1e-8, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.rho = rho
        self.epsilon = epsilon

    def _update(self, param, grad, buffers, lr, steps):
        (mean_sq,) = buffers
        mean_sq *= self.rho
        mean_sq += (1 - self.rho) * grad * grad
        param -= lr * grad / (np.sqrt(mean_sq) + self.epsilon)


@register("optimizer", "adam")
@register("optimizer", "adamw", weight_decay=0.01)
class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias-corrected moment estimates.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``p <- p - lr m_hat / (sqrt(v_hat) + epsilon)`` with ``m_hat = m / (1 - b1^t)`` and
    ``v_hat = v / (1 - b2^t)``. With ``weight_decay`` above 0 this is AdamW.

    The step is computed in place, in the form ``p <- p - lr_t m / (sqrt(v) + epsilon_t)`` with the bias
    corrections folded into ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)`` and ``epsilon_t = epsilon sqrt(1 -
    b2^t)`` (the same value): on an MLP's 6,400 x 500 first layer, temporaries for each intermediate cost
    as much as the layer's matrix products. With numba installed, one compiled pass does it
    (``kernels.py``).

    Values below the smallest normal float are set to zero in the parameter and its moments, as a CPU's
    flush-to-zero mode would. A weight whose gradient is only its L2 penalty (into a dead ReLU, from a
    constant input) shrinks geometrically under Adam's normalised steps until it is subnormal, and a matrix
    product with subnormal operands runs many times slower: on CIFAR-10's k-means features an MLP epoch
    slowed from 11 s to over 60 s within half a fit. Such a weight is worth nothing to any score.
    """

    buffer_names = ("m", "v", "scratch")
    _constraints = {**_RATE, "beta_1": _FRACTION, "beta_2": _FRACTION, "epsilon": _EPSILON}

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def _update(self, param, grad, buffers, lr, steps):
        m, v, scratch = buffers
        correction = np.sqrt(1 - self.beta_2**steps)
        rate, epsilon = lr * correction / (1 - self.beta_1**steps), self.epsilon * correction
        if kernels.suits(param, grad, m, v):
            kernels.adam_step(param, grad, m, v, self.beta_1, self.beta_2, rate, epsilon)
            return
        np.subtract(grad, m, out=scratch)  # m <- m + (1 - b1) (g - m)
        scratch *= 1 - self.beta_1
        m += scratch
        np.multiply(grad, grad, out=scratch)  # v <- v + (1 - b2) (g^2 - v)
        scratch -= v
        scratch *= 1 - self.beta_2
        v += scratch
        np.sqrt(v, out=scratch)
        scratch += epsilon
        np.divide(m, scratch, out=scratch)
        scratch *= rate
        param -= scratch
        tiny = np.finfo(param.dtype).tiny
        for array in (param, m, v):
            np.abs(array, out=scratch)
            array[scratch < tiny] = 0
