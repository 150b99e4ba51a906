"""Weight initialisations that keep activation variance roughly constant from layer to layer."""
import numpy as np


def he_normal(fan_in, fan_out, rng, dtype=np.float32):
    """Normal weights with variance ``2 / fan_in`` (He et al., 2015), for ReLU-like activations."""
    std = np.sqrt(2.0 / fan_in)
    return (rng.standard_normal((fan_in, fan_out)) * std).astype(dtype)


def xavier_uniform(fan_in, fan_out, rng, dtype=np.float32):
    """Uniform weights with variance ``2 / (fan_in + fan_out)`` (Glorot and Bengio, 2010).

    Suited to saturating activations (sigmoid, tanh) and to the linear output layer.
    """
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype)


INITIALIZERS = {"he": he_normal, "xavier": xavier_uniform}
