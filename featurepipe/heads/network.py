"""A stack of fully connected layers, the shared body of the linear and MLP heads.

Parameters are a flat list ``[W1, b1, W2, b2, ...]`` with ``W`` of shape ``(fan_in, fan_out)``, so a
layer is ``z = a @ W + b`` on a batch of row vectors. Hidden layers apply the activation and, while
training, inverted dropout; the last layer is linear and gives the class scores. With no hidden
layers the network is a linear classifier.
"""
from itertools import pairwise

import numpy as np

from .initializers import INITIALIZERS


class DenseNetwork:
    """Forward and backward passes through layers of sizes ``[n_features, *hidden, n_classes]``.

    ``activation`` is used by the hidden layers only (see ``activations.py``); ``dropout`` is the
    probability of zeroing a hidden unit during training.
    """

    def __init__(self, layer_sizes, activation=None, dropout=0.0):
        self.layer_sizes = tuple(layer_sizes)
        self.activation = activation
        self.dropout = dropout

    @property
    def n_layers(self):
        return len(self.layer_sizes) - 1

    def init_params(self, rng, dtype=np.float32):
        """Initial weights and zero biases.

        Hidden layers start random (He or Xavier, as the activation prefers) to break the symmetry
        between units, the output layer Xavier-initialised. Without hidden layers the problem is
        convex and has no symmetry to break, so the weights start at zero, a neutral classifier.
        """
        if self.n_layers == 1:
            return [np.zeros(self.layer_sizes, dtype=dtype), np.zeros(self.layer_sizes[1], dtype=dtype)]
        params = []
        for layer, (fan_in, fan_out) in enumerate(pairwise(self.layer_sizes)):
            if layer < self.n_layers - 1:
                fan_out *= self.activation.pieces
                init = INITIALIZERS[self.activation.init]
            else:
                init = INITIALIZERS["xavier"]
            params += [init(fan_in, fan_out, rng, dtype), np.zeros(fan_out, dtype=dtype)]
        return params

    def forward(self, params, X, rng=None):
        """Class scores for the rows of ``X`` and the cache ``backward`` needs.

        Dropout is applied only when a random generator ``rng`` is given, i.e. while training.
        """
        inputs, activation_caches = [X], []
        for layer in range(self.n_layers):
            z = inputs[-1] @ params[2 * layer]
            z += params[2 * layer + 1]
            if layer == self.n_layers - 1:
                return z, (inputs, activation_caches)
            a, cache = self.activation.forward(z)
            mask = None
            if rng is not None and self.dropout > 0:
                mask = inverted_dropout_mask(a.shape, self.dropout, rng, a.dtype)
                a = a * mask  # not in place: activations may cache their output
            inputs.append(a)
            activation_caches.append((cache, mask))

    def backward(self, params, cache, dscores):
        """Gradients of the loss with respect to ``params``, given its gradient wrt the scores."""
        inputs, activation_caches = cache
        grads = [None] * len(params)
        delta = dscores
        for layer in reversed(range(self.n_layers)):
            grads[2 * layer] = inputs[layer].T @ delta
            grads[2 * layer + 1] = delta.sum(axis=0)
            if layer == 0:
                break
            da = delta @ params[2 * layer].T
            activation_cache, mask = activation_caches[layer - 1]
            if mask is not None:
                da *= mask
            delta = self.activation.backward(da, activation_cache)
        return grads


def inverted_dropout_mask(shape, rate, rng, dtype):
    """Zeros with probability ``rate``, else ``1 / (1 - rate)``, so expected activations are unchanged
    and no rescaling is needed at prediction time."""
    keep = rng.random(shape, dtype=np.float32) >= rate
    return keep.astype(dtype) / (1 - rate)
