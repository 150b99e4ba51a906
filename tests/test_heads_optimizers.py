"""Optimisers: one hand-computed step each, convergence on ridge regression, and how a head builds its own."""
import warnings

import numpy as np
import pytest

import featurepipe
from featurepipe.core import ParamError
from featurepipe.heads import LinearClassifier, kernels, lbfgs
from featurepipe.heads.lbfgs import LBFGS, stalled
from featurepipe.heads.optimizers import SGD, AdaGrad, Adam, RMSProp
from featurepipe.heads.schedules import CosineSchedule

LR = 0.1
P0 = np.array([[1.0, -2.0]])
G1 = np.array([[0.5, 0.25]])
G2 = np.array([[-1.0, 2.0]])


def two_steps(optimizer):
    """Parameters after steps with gradients G1 then G2, starting from P0."""
    params = [P0.copy()]
    state = optimizer.init_state(params)
    optimizer.step(params, [G1], state)
    optimizer.step(params, [G2], state)
    return params[0]


def test_sgd_step():
    np.testing.assert_allclose(two_steps(SGD(LR)), P0 - LR * G1 - LR * G2)


def test_momentum_step():
    v1 = -LR * G1
    v2 = 0.9 * v1 - LR * G2
    np.testing.assert_allclose(two_steps(SGD(LR, momentum=0.9)), P0 + v1 + v2)


def test_nesterov_step():
    # The look-ahead form: p += mu * v_new - lr * g, with v_new = mu * v - lr * g.
    v1 = -LR * G1
    p1 = P0 + 0.9 * v1 - LR * G1
    v2 = 0.9 * v1 - LR * G2
    np.testing.assert_allclose(two_steps(SGD(LR, momentum=0.9, nesterov=True)), p1 + 0.9 * v2 - LR * G2)


def test_adagrad_step():
    p1 = P0 - LR * G1 / (np.abs(G1) + 1e-8)
    p2 = p1 - LR * G2 / (np.sqrt(G1**2 + G2**2) + 1e-8)
    np.testing.assert_allclose(two_steps(AdaGrad(LR)), p2)


def test_rmsprop_step():
    e1 = 0.1 * G1**2
    e2 = 0.9 * e1 + 0.1 * G2**2
    p1 = P0 - LR * G1 / (np.sqrt(e1) + 1e-8)
    np.testing.assert_allclose(two_steps(RMSProp(LR, rho=0.9)), p1 - LR * G2 / (np.sqrt(e2) + 1e-8))


@pytest.fixture(params=["compiled", "numpy"])
def adam_route(request, monkeypatch):
    """Adam's step on both routes: numba's compiled loop (``kernels``, installed with the test extra) and
    numpy's, which runs without numba."""
    if request.param == "numpy":
        monkeypatch.setattr(kernels, "available", lambda: False)
    else:
        assert kernels.available(), "numba is part of the test extra"


def test_adam_step_with_bias_correction(adam_route):
    # Bias correction makes the first step lr * g / |g|, whatever the betas.
    p1 = P0 - LR * np.sign(G1)
    m2 = 0.9 * 0.1 * G1 + 0.1 * G2
    v2 = 0.999 * 0.001 * G1**2 + 0.001 * G2**2
    m_hat, v_hat = m2 / (1 - 0.9**2), v2 / (1 - 0.999**2)
    np.testing.assert_allclose(two_steps(Adam(LR)), p1 - LR * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=1e-6)


def test_adamw_decays_weights_but_not_biases(adam_route):
    weights, bias = np.array([[2.0, -4.0]]), np.array([2.0, -4.0])
    optimizer = featurepipe.create("optimizer", "adamw", learning_rate=LR, weight_decay=0.5)
    optimizer.step([weights, bias], [G1, G1[0]], optimizer.init_state([weights, bias]))
    adam_step = LR * np.sign(G1)
    np.testing.assert_allclose(weights, np.array([[2.0, -4.0]]) * (1 - LR * 0.5) - adam_step)
    np.testing.assert_allclose(bias, np.array([2.0, -4.0]) - adam_step[0])


def test_lr_scale_multiplies_the_learning_rate():
    params = [P0.copy()]
    optimizer = SGD(LR)
    optimizer.step(params, [G1], optimizer.init_state(params), lr_scale=0.5)
    np.testing.assert_allclose(params[0], P0 - 0.5 * LR * G1)


def ridge_problem():
    """Half the mean squared error of ``A W ~ B`` plus ``0.5 * lam * ||W||^2`` (up to a constant),
    its gradient and its closed-form minimiser."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((50, 4))
    B = A @ rng.standard_normal((4, 2)) + 0.1 * rng.standard_normal((50, 2))
    hessian = A.T @ A / 50
    target = A.T @ B / 50

    def value(W, lam):
        return 0.5 * np.sum(W * (hessian @ W)) - np.sum(W * target) + 0.5 * lam * np.sum(W * W)

    def gradient(W, lam):
        return hessian @ W - target + lam * W

    def minimiser(lam):
        return np.linalg.solve(hessian + lam * np.eye(4), target)

    return value, gradient, minimiser


# Learning rates and step counts at which each optimiser settles on this problem.
CONVERGENCE_SETTINGS = {
    "sgd": ({"learning_rate": 0.3}, 2000),
    "momentum": ({"learning_rate": 0.05}, 2000),
    "nesterov": ({"learning_rate": 0.05}, 2000),
    "adagrad": ({"learning_rate": 0.5}, 2000),
    "rmsprop": ({"learning_rate": 0.01}, 3000),
    "adam": ({"learning_rate": 0.02}, 3000),
    "adamw": ({"learning_rate": 0.02, "weight_decay": 0.0}, 3000),
}


@pytest.mark.parametrize("name", featurepipe.list("optimizer"))
def test_every_optimizer_reaches_the_ridge_minimum(name):
    value, gradient, minimiser = ridge_problem()
    lam = 0.1
    W = np.zeros((4, 2))
    if name == "lbfgs":
        result = LBFGS().minimize(
            lambda params: (value(params[0], lam), [gradient(params[0], lam)]), [W], max_iter=100, tol=1e-10
        )
        assert result.success
    else:
        settings, n_steps = CONVERGENCE_SETTINGS[name]
        optimizer = featurepipe.create("optimizer", name, **settings)
        # Annealing lets the sign-like steps of RMSProp and Adam settle instead of hovering.
        schedule = CosineSchedule(total_epochs=n_steps)
        state = optimizer.init_state([W])
        for step in range(n_steps):
            optimizer.step([W], [gradient(W, lam)], state, lr_scale=schedule(step))
    np.testing.assert_allclose(W, minimiser(lam), atol=1e-5)


def test_decoupled_weight_decay_on_sgd_is_ridge():
    # A fixed point of W <- W (1 - lr wd) - lr g(W) has g(W) + wd W = 0: the ridge solution.
    _, gradient, minimiser = ridge_problem()
    W = np.zeros((4, 2))
    optimizer = SGD(0.3, weight_decay=0.2)
    state = optimizer.init_state([W])
    for _ in range(2000):
        optimizer.step([W], [gradient(W, 0.0)], state)
    np.testing.assert_allclose(W, minimiser(0.2), atol=1e-6)


def test_list_optimizers_with_wildcards():
    assert featurepipe.list("optimizer") == sorted(
        ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "lbfgs"]
    )
    assert featurepipe.list("optimizer", "adam*") == ["adam", "adamw"]


def optimizer_of(**params):
    """The optimiser a linear head with ``params`` trains with."""
    return LinearClassifier(**params).parts()["optimizer"]


def test_names_imply_their_settings():
    assert featurepipe.create("optimizer", "nesterov").get_params() == SGD(momentum=0.9, nesterov=True).get_params()
    assert featurepipe.create("optimizer", "adamw").get_params() == Adam(weight_decay=0.01).get_params()


def test_a_head_overrides_its_optimizer_with_the_settings_it_takes():
    assert optimizer_of(optimizer="adam", learning_rate=0.1).get_params() == Adam(learning_rate=0.1).get_params()
    assert optimizer_of(optimizer="lbfgs", learning_rate=0.1).get_params() == LBFGS().get_params()
    assert optimizer_of(optimizer="sgd", learning_rate=None).get_params() == SGD().get_params()
    assert optimizer_of(optimizer={"sgd": {"momentum": 0.5}}).momentum == 0.5  # the config's form


def test_a_head_copies_an_optimizer_object():
    original = SGD(learning_rate=0.5, momentum=0.8)
    copy = optimizer_of(optimizer=original, learning_rate=0.1)
    assert copy.get_params() == SGD(learning_rate=0.1, momentum=0.8).get_params()
    assert original.learning_rate == 0.5 and copy is not original


def test_a_head_refuses_unknown_optimizers_naming_the_parameter():
    X, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(ParamError, match="optimizer: .*adagrad"):
        LinearClassifier(optimizer="adadelta").fit(X, y)
    with pytest.raises(ParamError, match="optimizer: must be"):
        LinearClassifier(optimizer=42).fit(X, y)
    with pytest.raises(ParamError, match="optimizer.momentum"):
        LinearClassifier(optimizer={"sgd": {"momentum": 2.0}}).fit(X, y)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SGD(learning_rate=0), "learning_rate"),
        (lambda: SGD(momentum=1.0), "momentum"),
        (lambda: SGD(nesterov=True), "nesterov"),
        (lambda: Adam(beta_2=1.0), "beta_2"),
        (lambda: RMSProp(epsilon=0), "epsilon"),
        (lambda: Adam(weight_decay=-1), "weight_decay"),
        (lambda: LBFGS(max_corrections=0), "max_corrections"),
    ],
)
def test_bad_settings_name_themselves(make, message):
    with pytest.raises(ParamError, match=message):
        make().validate_params()


def test_stalled_means_no_progress_at_the_objectives_precision():
    eps32 = float(np.finfo(np.float32).eps)
    flat = [2.0 + 1e-3] + [2.0] * 10                     # 1e-3 lower, then 10 iterations without progress
    assert not stalled(flat[:10], eps32)                  # too few iterations to tell
    assert not stalled([2.0 + 1e-5 * (10 - k) for k in range(11)], eps32)  # 5e-6 per iteration: progress
    assert stalled([2.0 + 1e-8 * (10 - k) for k in range(11)], eps32)      # below float32's resolution
    assert not stalled([2.0 + 1e-8 * (10 - k) for k in range(11)], float(np.finfo(np.float64).eps))


def test_lbfgs_stops_when_its_objective_stalls(monkeypatch):
    """The stop is L-BFGS's own: a stalled objective ends the fit early and counts as converged."""
    monkeypatch.setattr(lbfgs, "stalled", lambda values, eps, window=10: len(values) >= 3)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 30)).astype(np.float32)
    y = rng.integers(0, 3, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged: no ConvergenceWarning
        head = LinearClassifier(loss="log_loss", optimizer="lbfgs", alpha=1e-3, tol=0, max_iter=100).fit(X, y)
    assert head.n_iter_ == 3 and len(head.loss_curve_) == 3


def test_lbfgs_stops_a_line_search_that_cannot_move_a_float32_objective():
    """A float32 objective at its minimum, where every other point's value rounds up: L-BFGS stops at its
    last accepted point instead of spending a line search's 20 evaluations, and a retry's, on steps that
    cannot be accepted. (A machine's BLAS rounds such steps up or level by chance; with a level one
    scipy's own ``ftol`` ends the fit, so the test makes them round up.)"""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 40))
    H, w_star = A.T @ A / 40 + np.eye(40), rng.standard_normal(40)
    lowest, calls = {}, []

    def fun(params):
        calls.append(1)
        d = params[0].astype(np.float64) - w_star
        value = np.float32(1 + 0.5 * d @ H @ d)
        if lowest and value == lowest["value"] and not np.array_equal(params[0], lowest["w"]):
            value = np.nextafter(value, np.float32(2))
        if not lowest or value < lowest["value"]:
            lowest.update(value=value, w=params[0].copy())
        return value, [(H @ d).astype(np.float32)]

    w = np.zeros(40, np.float32)
    result = LBFGS().minimize(fun, [w], max_iter=500, tol=0)
    d = w.astype(np.float64) - w_star
    assert result.stalled and result.nit < 500 and len(calls) <= result.nit + 10
    assert 0.5 * d @ H @ d <= 10 * np.finfo(np.float32).eps  # the minimum, to the objective's precision
    assert float(fun([w])[0]) == result.fun  # the parameters are the accepted point's
