"""The compiled in-place updates (``heads/kernels.py``) equal the numpy routes they replace."""
import numpy as np
import pytest

from featurepipe.heads import kernels
from featurepipe.heads.optimizers import Adam
from featurepipe.heads.regularization import Penalty


@pytest.fixture
def numpy_route(monkeypatch):
    """Run the code under test as it runs without numba."""
    monkeypatch.setattr(kernels, "available", lambda: False)


def adam_run(dtype, steps=25, shape=(64, 50)):
    """A weight matrix and a bias after ``steps`` Adam steps on fixed random gradients."""
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)]
    optimizer = Adam(learning_rate=0.01)
    state = optimizer.init_state(params)
    for _ in range(steps):
        optimizer.step(params, [rng.standard_normal(p.shape).astype(dtype) for p in params], state)
    return params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_adam_equals_numpy_route(dtype, monkeypatch):
    assert kernels.available(), "numba is part of the test extra"
    compiled = adam_run(dtype)
    monkeypatch.setattr(kernels, "available", lambda: False)
    numpy_route = adam_run(dtype)
    start = adam_run(dtype, steps=0)
    for got, expected, initial in zip(compiled, numpy_route, start):
        assert got.dtype == dtype
        assert np.abs(expected - initial).max() > 0.1  # the steps moved the parameters
        np.testing.assert_allclose(got, expected, rtol=0, atol=4 * np.finfo(dtype).eps)


def test_adam_on_arrays_the_loop_cannot_take(numpy_route):
    """A non-contiguous parameter or mixed dtypes go through numpy, with the same result."""
    wide = np.zeros((3, 8))
    view = wide[:, ::2]
    assert not kernels.suits(view)
    optimizer = Adam(learning_rate=0.1)
    optimizer.step([view], [np.ones((3, 4))], optimizer.init_state([view]))
    np.testing.assert_allclose(wide[:, ::2], -0.1)
    np.testing.assert_array_equal(wide[:, 1::2], 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_penalty_gradient_both_routes(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((40, 30)).astype(dtype)
    grad = rng.standard_normal(weights.shape).astype(dtype)
    expected = grad + dtype(0.3) * weights
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(kernels, "available", lambda: False)
        got = grad.copy()
        value = Penalty(l2=0.3).add_to_gradients([weights], [got])
        assert value == pytest.approx(0.15 * float(np.vdot(weights, weights)), rel=1e-5)
        np.testing.assert_allclose(got, expected, rtol=2 * np.finfo(dtype).eps)


def test_suits_only_matching_contiguous_floats():
    a = np.zeros((4, 3), np.float32)
    assert kernels.suits(a, np.ones((4, 3), np.float32))
    assert not kernels.suits(a, np.ones((4, 3), np.float64))
    assert not kernels.suits(a.T)
    assert not kernels.suits(np.zeros((4, 3), np.int64))
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    assert not kernels.suits(frozen)


@pytest.mark.parametrize("route", ["compiled", "numpy"])
def test_adam_flushes_subnormals_to_zero(route, monkeypatch):
    """A weight that only its penalty pulls on decays to subnormal values, which make matrix products many
    times slower: Adam sets them to zero, in the weight and in its moments, and leaves normal values alone."""
    if route == "numpy":
        monkeypatch.setattr(kernels, "available", lambda: False)
    tiny = np.finfo(np.float32).tiny
    param = np.array([[tiny / 4, 1.0, 0.0]], np.float32)
    optimizer = Adam(learning_rate=1e-3)
    state = optimizer.init_state([param])
    m, v, _ = state.buffers[0]
    m[0, 2] = tiny / 4  # decays to subnormal, and so does its small step on a large v
    v[0] = [tiny / 4, 0.0, 1.0]
    optimizer.step([param], [np.array([[0.0, 0.5, 0.0]], np.float32)], state)
    np.testing.assert_array_equal(param[0, [0, 2]], 0)
    assert param[0, 1] == pytest.approx(1.0 - 1e-3, rel=1e-5)
    assert m[0, 2] == 0 and v[0, 0] == 0
    assert m[0, 1] > 0 and v[0, 1] > 0 and v[0, 2] > 0.99

