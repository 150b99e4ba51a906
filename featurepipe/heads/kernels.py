"""In-place updates of a head's parameters in one compiled pass each, when numba is installed
(``featurepipe[fast]``).

On an MLP's 6,400 x 500 first layer, numpy's routes cost as much as the mini-batch's matrix products:
Adam's step makes a dozen passes over the parameter and its buffers (``Adam._update``), and an L2 penalty's
``grad += l2 * W`` a temporary the size of the layer. These loops read each element once and write it
back, with the same arithmetic in the same order, so both routes agree to float rounding. (scipy's BLAS
``axpy`` would do the second, but it brings a second OpenBLAS whose threads fight numpy's for the cores.)
"""
from __future__ import annotations

import functools
from importlib.util import find_spec

import numpy as np


@functools.cache
def available() -> bool:
    """Whether the compiled routes can run: numba is installed (imported only when first used)."""
    return find_spec("numba") is not None


def suits(*arrays) -> bool:
    """Whether a compiled loop can update ``arrays`` in place: numba is there, and they are writeable
    C-contiguous arrays of one float dtype (so they flatten to views)."""
    dtype = arrays[0].dtype
    return available() and dtype in (np.float32, np.float64) and all(
        a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable for a in arrays)


def _adam_step(param, grad, m, v, mix_1, mix_2, rate, epsilon, tiny):
    """``m <- m + mix_1 (g - m)``, ``v <- v + mix_2 (g^2 - v)``, ``p <- p - rate m / (sqrt(v) + epsilon)`` on
    flat arrays, where ``mix = 1 - beta``; ``rate`` and ``epsilon`` carry the bias corrections (see
    ``Adam``). The scalars come in the arrays' dtype, so float32 arithmetic stays float32. Values below
    ``tiny``, the smallest normal float, become zero (see ``Adam``)."""
    for i in range(param.size):
        g = grad[i]
        m_i = m[i] + mix_1 * (g - m[i])
        v_i = v[i] + mix_2 * (g * g - v[i])
        p_i = param[i] - rate * (m_i / (np.sqrt(v_i) + epsilon))
        m[i] = m_i if abs(m_i) >= tiny else 0
        v[i] = v_i if v_i >= tiny else 0
        param[i] = p_i if abs(p_i) >= tiny else 0


def _add_scaled(out, scale, x):
    """``out += scale * x`` on flat arrays."""
    for i in range(out.size):
        out[i] += scale * x[i]


@functools.cache
def _compiled(loop):
    """``loop`` compiled (once per process; numba caches the machine code on disk). numpy's error model
    drops the division-by-zero check, which would keep the loop from being vectorised."""
    import numba

    return numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")(loop)


def adam_step(param, grad, m, v, beta_1, beta_2, rate, epsilon):
    """Update ``param``, ``m`` and ``v`` in place by one Adam step (arrays as ``suits`` requires)."""
    scalar = param.dtype.type
    _compiled(_adam_step)(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), scalar(1 - beta_1),
                          scalar(1 - beta_2), scalar(rate), scalar(epsilon), np.finfo(param.dtype).tiny)


def add_scaled(out, scale, x):
    """``out += scale * x`` in place, compiled where ``suits(out, x)``, else with numpy."""
    if suits(out, x):
        _compiled(_add_scaled)(out.reshape(-1), out.dtype.type(scale), x.reshape(-1))
    else:
        out += scale * x
