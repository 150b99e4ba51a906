"""Several L-BFGS fits run together: each ends where it would alone, evaluated in shared rounds."""
import threading

import numpy as np
import pytest

from featurepipe import create
from featurepipe.heads import LinearClassifier, objective
from featurepipe.heads.network import DenseNetwork
from featurepipe.heads.objective import Objective, evaluate_together
from featurepipe.heads.lbfgs import LBFGS
from featurepipe.heads.regularization import Penalty
from featurepipe.heads.activations import ReLU


def ridge(lam, seed=0):
    """``0.5 w^T H w - t^T w + 0.5 lam |w|^2`` on an ill-conditioned ``H``: value and gradient."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((30, 30)) * np.logspace(0, -2, 30)
    H, t = A @ A.T, rng.standard_normal(30)

    def fun(params):
        w = params[0]
        return 0.5 * w @ H @ w - t @ w + 0.5 * lam * w @ w, [H @ w - t + lam * w]

    return fun


LAMBDAS = [1.0, 1e-2, 1e-4]


def test_problems_minimised_together_end_where_each_alone_does():
    funs = [ridge(lam) for lam in LAMBDAS]
    rounds = []

    def together(problems, params_list):
        rounds.append(list(problems))
        return [funs[i](params) for i, params in zip(problems, params_list)]

    params = [[np.zeros(30)] for _ in LAMBDAS]
    results = LBFGS().minimize_together(together, params, max_iter=500, tol=1e-10)
    counts = []
    for fun, result, fitted in zip(funs, results, params):
        alone = [np.zeros(30)]
        calls = []
        expected = LBFGS().minimize(lambda p, fun=fun: calls.append(1) or fun(p), alone, max_iter=500, tol=1e-10)
        counts.append(len(calls))
        assert result.nit == expected.nit and result.fun == expected.fun
        np.testing.assert_array_equal(fitted[0], alone[0])  # the same run, bit for bit
    # Rounds, not evaluations: every round had every problem still running, the longest run sets their number.
    assert len(rounds) == max(counts) and sum(map(len, rounds)) == sum(counts)
    assert rounds[0] == [0, 1, 2] and all(r == sorted(r) for r in rounds)


def test_a_failed_evaluation_stops_every_run_and_is_raised_once():
    funs = [ridge(lam) for lam in LAMBDAS]
    rounds = []

    def failing(problems, params_list):
        rounds.append(problems)
        if len(rounds) == 4:
            raise MemoryError("no room for the scores")
        return [funs[i](params) for i, params in zip(problems, params_list)]

    before = threading.active_count()
    with pytest.raises(MemoryError, match="no room"):
        LBFGS().minimize_together(failing, [[np.zeros(30)] for _ in LAMBDAS], max_iter=500, tol=1e-10)
    assert len(rounds) == 4 and threading.active_count() == before


def test_an_error_in_one_run_stops_the_others():
    funs = [ridge(lam) for lam in LAMBDAS]
    rounds = []

    def together(problems, params_list):
        rounds.append(problems)
        return [funs[i](params) for i, params in zip(problems, params_list)]

    def fails(value):
        raise KeyError("the second run's callback")

    before = threading.active_count()
    with pytest.raises(KeyError, match="second run"):
        LBFGS().minimize_together(together, [[np.zeros(30)] for _ in LAMBDAS], max_iter=500, tol=1e-10,
                                  callbacks=[None, fails, None])
    assert len(rounds) <= 4 and threading.active_count() == before


def linear_objectives(n_features=12, n_classes=4):
    network = DenseNetwork([n_features, n_classes])
    return [Objective(network, create("loss", loss), Penalty(l2=alpha, l1=l1))
            for loss, alpha, l1 in [("squared_hinge", 1.0, 0.0), ("log_loss", 1e-2, 1e-3), ("hinge", 0.0, 0.0)]]


def test_linear_objectives_evaluated_together_equal_one_by_one():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 12)).astype(np.float32)
    y = rng.integers(0, 4, 50)
    objectives = linear_objectives()
    params_list = [[rng.standard_normal((12, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
                   for _ in objectives]
    together = evaluate_together(objectives, params_list, X, y)
    for objective_, params, (value, grads, scores) in zip(objectives, params_list, together):
        alone_value, alone_grads, alone_scores = objective_(params, X, y)
        np.testing.assert_allclose(value, alone_value, rtol=1e-5)
        np.testing.assert_allclose(scores, alone_scores, rtol=1e-5, atol=1e-5)
        for grad, alone in zip(grads, alone_grads):
            assert grad.shape == alone.shape
            np.testing.assert_allclose(grad, alone, rtol=1e-4, atol=1e-6)


def test_networks_with_hidden_layers_are_evaluated_one_by_one(monkeypatch):
    rng = np.random.default_rng(0)
    network = DenseNetwork([6, 5, 3], activation=ReLU())
    objectives = [Objective(network, create("loss", "log_loss"), Penalty(l2=alpha)) for alpha in (1.0, 0.1)]
    params_list = [network.init_params(rng) for _ in objectives]
    X, y = rng.standard_normal((20, 6)).astype(np.float32), rng.integers(0, 3, 20)
    together = evaluate_together(objectives, params_list, X, y)
    for objective_, params, (value, _, _) in zip(objectives, params_list, together):
        assert value == objective_(params, X, y)[0]


@pytest.mark.parametrize("together", [True, False], ids=["together", "warm-path"])
@pytest.mark.parametrize("shape", [(400, 30), (60, 200)])  # Gram factor shared; the row space's arrow per alpha
def test_a_path_fits_its_alphas_to_each_ones_minimum(shape, together, monkeypatch):
    """A large matrix's alphas run together (one pass over X per round for all); a small one's one after another,
    each warm-started from the last."""
    rng = np.random.default_rng(0)
    n, d = shape
    X = (rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.2).astype(np.float32)
    y = rng.integers(0, 3, n)
    shared_rounds = []
    real = evaluate_together

    def counting(objectives, params_list, X, y, weights_list=None):
        shared_rounds.append(len(objectives))
        return real(objectives, params_list, X, y, weights_list)

    monkeypatch.setattr("featurepipe.heads.training.evaluate_together", counting)
    if together:
        monkeypatch.setattr("featurepipe.heads.linear._SMALL", 0)
    head = LinearClassifier("squared_hinge", optimizer="lbfgs", max_iter=2000, tol=1e-6, random_state=0)
    alphas = [1e-1, 1e-3, 1.0]
    path = head.fit_path(X, y, alphas)
    assert [m.alpha for m in path] == alphas and max(shared_rounds, default=1) == (3 if together else 1)
    monkeypatch.setattr("featurepipe.heads.training.evaluate_together", real)
    for alpha, model in zip(alphas, path):
        single = LinearClassifier(**{**head.get_params(deep=False), "alpha": alpha}).fit(X, y)
        assert model.loss_curve_[-1] <= single.loss_curve_[-1] * (1 + 1e-3)  # the same minimum, to tolerance
        assert (model.predict(X) == single.predict(X)).mean() > 0.97


def test_evaluate_together_is_the_objectives_own_call_for_one():
    rng = np.random.default_rng(0)
    (first, *_) = linear_objectives()
    params = [rng.standard_normal((12, 4)).astype(np.float32), np.zeros(4, np.float32)]
    X, y = rng.standard_normal((10, 12)).astype(np.float32), rng.integers(0, 4, 10)
    (value, grads, _), = objective.evaluate_together([first], [params], X, y)
    alone_value, alone_grads, _ = first(params, X, y)
    assert value == alone_value and all((g == a).all() for g, a in zip(grads, alone_grads))
