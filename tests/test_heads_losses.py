"""Loss values, penalties, activations, initialisation and dropout on hand-checked numbers."""
import numpy as np
import pytest
from scipy.special import log_softmax

import featurepipe
from featurepipe import create
from featurepipe.heads.activations import Maxout
from featurepipe.heads.initializers import he_normal, xavier_uniform
from featurepipe.heads.losses import (
    multiclass_hinge,
    softmax,
    softmax_cross_entropy,
    squared_hinge,
)
from featurepipe.heads.network import inverted_dropout_mask
from featurepipe.heads.regularization import Penalty


def test_multiclass_hinge_matches_hand_computation():
    # CS231n's example: true class 0 scores 3.2; class 1 is within the margin, class 2 is not.
    scores = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0]])
    loss, dscores = multiclass_hinge(scores, np.array([0, 1]))
    # Sample 0: max(0, 5.1 - 3.2 + 1) + max(0, -1.7 - 3.2 + 1) = 2.9; sample 1: all beyond margin.
    assert loss == pytest.approx(2.9 / 2)
    np.testing.assert_allclose(dscores, [[-0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])


def test_squared_hinge_matches_hand_computation():
    scores = np.array([[0.5, -2.0, 0.25]])
    loss, dscores = squared_hinge(scores, np.array([0]))
    # Slacks: true class 1 - 0.5 = 0.5; others 1 + s: -1.0 (clipped to 0) and 1.25.
    assert loss == pytest.approx(0.5**2 + 1.25**2)
    np.testing.assert_allclose(dscores, [[-2 * 0.5, 0.0, 2 * 1.25]])


def test_softmax_cross_entropy_matches_scipy():
    rng = np.random.default_rng(0)
    scores = 10 * rng.standard_normal((6, 4))
    y = np.array([0, 1, 2, 3, 0, 1])
    loss, dscores = softmax_cross_entropy(scores, y)
    assert loss == pytest.approx(-log_softmax(scores, axis=1)[np.arange(6), y].mean())
    expected = softmax(scores)
    expected[np.arange(6), y] -= 1
    np.testing.assert_allclose(dscores, expected / 6)


def test_softmax_is_stable_for_huge_scores():
    probabilities = softmax(np.array([[1000.0, 0.0], [-1000.0, -1000.0]], dtype=np.float32))
    np.testing.assert_allclose(probabilities, [[1.0, 0.0], [0.5, 0.5]])


@pytest.mark.parametrize("loss", featurepipe.list("loss"))
def test_losses_keep_float32(loss):
    scores = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    _, dscores = create("loss", loss)(scores, np.array([0, 1, 2, 0, 1]))
    assert dscores.dtype == np.float32


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="'perceptron'"):
        create("loss", "perceptron")


def test_penalty_value_and_gradient_skip_biases():
    weights = np.array([[1.0, -2.0], [0.0, 3.0]])
    bias = np.array([5.0, -7.0])
    grads = [np.zeros_like(weights), np.zeros_like(bias)]
    value = Penalty(l2=0.5, l1=0.1).add_to_gradients([weights, bias], grads)
    assert value == pytest.approx(0.5 * 0.5 * 14 + 0.1 * 6)
    np.testing.assert_allclose(grads[0], 0.5 * weights + 0.1 * np.sign(weights))
    np.testing.assert_array_equal(grads[1], 0)


@pytest.mark.parametrize(
    "name, z, expected",
    [
        ("relu", [-2.0, 0.0, 3.0], [0.0, 0.0, 3.0]),
        ("leaky_relu", [-2.0, 0.0, 3.0], [-0.02, 0.0, 3.0]),
        ("sigmoid", [-np.log(3), 0.0, np.log(3)], [0.25, 0.5, 0.75]),
        ("tanh", [-np.log(2), 0.0, np.log(2)], [-0.6, 0.0, 0.6]),
        ("elu", [-np.log(2), 0.0, 3.0], [-0.5, 0.0, 3.0]),
        ("softplus", [-np.log(3), 0.0, np.log(3)], [np.log(4 / 3), np.log(2), np.log(4)]),
    ],
)
def test_activation_values(name, z, expected):
    a, _ = create("activation", name).forward(np.array([z]))
    np.testing.assert_allclose(a, [expected], atol=1e-12)


def test_maxout_takes_the_maximum_of_consecutive_groups():
    z = np.array([[1.0, 4.0, -1.0, -3.0, 2.0, 2.5]])
    a, cache = Maxout(pieces=3).forward(z)
    np.testing.assert_array_equal(a, [[4.0, 2.5]])
    dz = Maxout(pieces=3).backward(np.array([[10.0, 20.0]]), cache)
    np.testing.assert_array_equal(dz, [[0.0, 10.0, 0.0, 0.0, 0.0, 20.0]])


@pytest.mark.parametrize("name", featurepipe.list("activation"))
def test_activations_keep_float32(name):
    z = np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6)
    activation = create("activation", name)
    a, cache = activation.forward(z.copy())
    assert a.dtype == np.float32
    assert activation.backward(np.ones_like(a), cache).dtype == np.float32


def test_unknown_activation_lists_the_known_ones():
    with pytest.raises(ValueError, match="relu"):
        create("activation", "swish")


def test_he_and_xavier_scales():
    rng = np.random.default_rng(0)
    he = he_normal(400, 500, rng)
    assert he.dtype == np.float32
    assert he.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    xavier = xavier_uniform(400, 500, rng)
    limit = np.sqrt(6 / 900)
    assert np.abs(xavier).max() <= limit
    assert xavier.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)


def test_inverted_dropout_keeps_the_expected_activation():
    mask = inverted_dropout_mask((200, 500), 0.3, np.random.default_rng(0), np.float32)
    assert mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.7)}
    assert (mask == 0).mean() == pytest.approx(0.3, abs=0.01)
    assert mask.mean() == pytest.approx(1.0, abs=0.01)
