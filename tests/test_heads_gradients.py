"""Analytic gradients of every loss x activation x penalty against central differences in float64."""
import numpy as np
import pytest

import featurepipe
from featurepipe import create
from featurepipe.heads.network import DenseNetwork
from featurepipe.heads.objective import Objective
from featurepipe.heads.regularization import Penalty

PENALTIES = {
    "none": Penalty(),
    "l2": Penalty(l2=0.3),
    "l1": Penalty(l1=0.2),
    "l2+l1": Penalty(l2=0.3, l1=0.2),
}
N_FEATURES, N_CLASSES = 5, 3


def numerical_gradients(value, params, step=1e-6):
    """Central differences of ``value()`` with respect to every entry of ``params``."""
    grads = []
    for param in params:
        grad = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            original = param[index]
            param[index] = original + step
            above = value()
            param[index] = original - step
            below = value()
            param[index] = original
            grad[index] = (above - below) / (2 * step)
        grads.append(grad)
    return grads


def assert_gradients_match(network, loss, penalty):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, N_FEATURES))
    y = np.arange(8) % N_CLASSES
    params = network.init_params(rng, dtype=np.float64)
    for bias in params[1::2]:
        bias[:] = 0.1 * rng.standard_normal(bias.shape)
    objective = Objective(network, create("loss", loss), penalty)

    # A freshly seeded generator per call fixes the dropout masks, so the objective is deterministic.
    def value():
        return objective(params, X, y, rng=np.random.default_rng(1))[0]

    _, analytic, _ = objective(params, X, y, rng=np.random.default_rng(1))
    numeric = numerical_gradients(value, params)
    assert len(analytic) == len(params)
    for analytic_grad, numeric_grad in zip(analytic, numeric):
        assert analytic_grad.shape == numeric_grad.shape
        np.testing.assert_allclose(analytic_grad, numeric_grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("activation", featurepipe.list("activation"))
@pytest.mark.parametrize("loss", featurepipe.list("loss"))
def test_mlp_gradients(loss, activation, penalty):
    network = DenseNetwork([N_FEATURES, 4, 3, N_CLASSES], create("activation", activation))
    assert_gradients_match(network, loss, PENALTIES[penalty])


@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("loss", featurepipe.list("loss"))
def test_linear_gradients(loss, penalty):
    assert_gradients_match(DenseNetwork([N_FEATURES, N_CLASSES]), loss, PENALTIES[penalty])


@pytest.mark.parametrize("activation", featurepipe.list("activation"))
def test_mlp_gradients_with_dropout(activation):
    network = DenseNetwork([N_FEATURES, 6, 5, N_CLASSES], create("activation", activation), dropout=0.4)
    assert_gradients_match(network, "log_loss", PENALTIES["l2"])
