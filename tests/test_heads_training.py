"""Training behaviour: repeatability, divergence, stopping rules, schedules and accuracy."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from featurepipe.heads import DivergenceError, LinearClassifier, MLPClassifier
from featurepipe.heads.activations import ReLU
from featurepipe.heads.lbfgs import LBFGS
from featurepipe.heads.losses import softmax_cross_entropy
from featurepipe.heads.network import DenseNetwork
from featurepipe.heads.objective import Objective
from featurepipe.heads.optimizers import SGD, Adam
from featurepipe.heads.schedules import Schedule
from featurepipe.heads.training import train_full_batch, train_minibatch

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    return train_test_split(X, y, test_size=0.3, random_state=0)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=300, centers=4, n_features=5, cluster_std=3.0, random_state=0)
    return X.astype(np.float32), y


def test_equal_seeds_give_bit_identical_models(blobs):
    def fit(seed):
        return MLPClassifier(
            (12, 8), dropout=0.2, early_stopping=True, batch_size=32, max_iter=15, random_state=seed
        ).fit(*blobs)

    first, second, other = fit(3), fit(3), fit(4)
    for a, b in zip(first.coefs_ + first.intercepts_, second.coefs_ + second.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert first.history_ == second.history_
    assert not np.array_equal(first.coefs_[0], other.coefs_[0])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_divergence_raises_instead_of_returning_nan(blobs):
    X, y = blobs
    model = LinearClassifier(optimizer="sgd", learning_rate=1e30, max_iter=5)
    with pytest.raises(DivergenceError, match="lower the learning rate"):
        model.fit(X * 1e10, y)
    assert issubclass(DivergenceError, ValueError)
    assert not hasattr(model, "coef_")


def test_lbfgs_divergence_raises(blobs):
    X, y = blobs

    def overflowing_loss(scores, y):
        return np.float32(np.inf), np.ones_like(scores)

    network = DenseNetwork([X.shape[1], 4])
    with pytest.raises(DivergenceError, match="L-BFGS diverged"):
        train_full_batch(
            Objective(network, overflowing_loss), network.init_params(None), X, y,
            optimizer=LBFGS(), max_iter=5, tol=1e-4,
        )


def test_training_stops_when_the_loss_plateaus(blobs):
    model = LinearClassifier(learning_rate=0.05, max_iter=500, tol=1e-3, n_iter_no_change=5, random_state=0).fit(*blobs)
    assert model.n_iter_ < 500
    curve = model.loss_curve_
    # Each of the last 5 epochs failed to beat the best loss before it by tol; the epoch before did.
    assert all(curve[i] > min(curve[:i]) - 1e-3 for i in range(len(curve) - 5, len(curve)))
    assert curve[-6] <= min(curve[:-6]) - 1e-3


def test_a_loss_bouncing_above_its_best_cuts_the_learning_rate_instead_of_stopping():
    """Adam's steps of about ``learning_rate`` per weight against a penalty whose optimum has weights of 1e-3:
    the loss bounced far above its best, the plateau rule stopped it at an arbitrary point and the model
    labelled 0% of its own training rows right. A bouncing plateau cuts the learning rate and goes on."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 16)
    X = rng.normal(size=(48, 256)) + 0.3 * y[:, None] * rng.normal(size=256)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    optimum = LinearClassifier(alpha=213, optimizer="lbfgs", max_iter=500).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        adam = LinearClassifier(alpha=213, random_state=0).fit(X, y)
    assert adam.loss_curve_[-1] < 1.05 * optimum.loss_curve_[-1]  # it was 1.73 against 1.082
    assert np.mean(adam.predict(X) == y) > 0.7 and np.mean(optimum.predict(X) == y) == 1.0


def test_early_stopping_keeps_the_best_epoch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 10)).astype(np.float32)
    y = (X[:, 0] + 0.8 * rng.standard_normal(200) > 0).astype(int)
    network = DenseNetwork([10, 32, 2], ReLU())
    params = network.init_params(rng)
    validation = (X[150:], y[150:])
    result = train_minibatch(
        Objective(network, softmax_cross_entropy), params, X[:150], y[:150],
        optimizer=Adam(learning_rate=0.05), schedule=lambda t: 1.0, batch_size=16, max_epochs=100,
        tol=1e-6, n_iter_no_change=8, shuffle=True, rng=rng, validation=validation,
    )
    scores = result.history["val_accuracy"]
    assert result.converged and result.n_iter == len(scores) < 100
    best_epoch = int(np.argmax(scores))
    assert result.n_iter == best_epoch + 1 + 8
    val_scores, _ = network.forward(params, validation[0])
    assert np.mean(val_scores.argmax(axis=1) == validation[1]) == scores[best_epoch]


def test_early_stopping_on_the_estimator_records_validation_scores(blobs):
    model = MLPClassifier((16,), early_stopping=True, n_iter_no_change=3, max_iter=200, random_state=0)
    model.fit(*blobs)
    assert len(model.validation_scores_) == model.n_iter_ < 200
    assert model.validation_scores_ == model.history_["val_accuracy"]


def test_max_iter_warns_unless_the_schedule_annealed_to_zero(blobs):
    settings = dict(max_iter=3, n_iter_no_change=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LinearClassifier(schedule="cosine", **settings).fit(*blobs)
    assert not [warning for warning in caught if warning.category is ConvergenceWarning]
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        LinearClassifier(schedule="constant", **settings).fit(*blobs)


def test_the_schedule_sees_fractional_epochs(blobs):
    X, y = blobs
    seen = []

    class Recording(Schedule):
        """The constant factor 1, recording the times it is asked for."""

        def __call__(self, t):
            seen.append(t)
            return 1.0

    LinearClassifier(schedule=Recording(), batch_size=100, max_iter=2, n_iter_no_change=10).fit(X, y)
    # One call before each of the 3 steps of each epoch.
    assert seen[:6] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0, 4 / 3, 5 / 3])


def test_warmup_slows_the_first_epoch(blobs):
    def first_step_size(warmup_epochs):
        model = LinearClassifier(
            optimizer=SGD(learning_rate=0.1), warmup_epochs=warmup_epochs, batch_size=300,
            max_iter=1, shuffle=False,
        ).fit(*blobs)
        return np.abs(model.coef_).sum()

    assert first_step_size(10) == pytest.approx(0.01 * first_step_size(0), rel=1e-4)


def test_weight_decay_shrinks_the_weights(blobs):
    def norm(weight_decay):
        model = LinearClassifier(optimizer="adam", weight_decay=weight_decay, learning_rate=0.05, alpha=0.0,
                                 max_iter=40, random_state=0)
        return np.linalg.norm(model.fit(*blobs).coef_)

    assert norm(3.0) < 0.5 * norm(0.0)


def test_l1_makes_weights_sparser(blobs):
    X, y = blobs
    noisy = np.hstack([X, np.random.default_rng(0).standard_normal((len(X), 20)).astype(np.float32)])

    def n_small(l1):
        model = LinearClassifier(optimizer="lbfgs", l1=l1, alpha=0.0, max_iter=50).fit(noisy, y)
        return np.sum(np.abs(model.coef_) < 1e-3)

    assert n_small(0.05) > n_small(0.0) + 50


def test_verbose_shows_an_epoch_progress_bar(blobs, capsys):
    model = LinearClassifier(max_iter=3, verbose=True, early_stopping=True).fit(*blobs)
    out, err = capsys.readouterr()
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert out == "" and "3/3" in last and f"val_acc={model.validation_scores_[-1]:.4f}" in last
    LinearClassifier(optimizer="lbfgs", max_iter=3, verbose=True).fit(*blobs)
    assert "iteration" in capsys.readouterr().err
    LinearClassifier(max_iter=3).fit(*blobs)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("precondition", [False, True])
def test_lbfgs_log_loss_head_is_logistic_regression(digits, precondition):
    # With alpha = 1 / (C n) both minimise the same objective, so they find the same weights, to
    # within what a float32 objective resolves along its flattest directions (curvature alpha).
    X_train, X_test, y_train, _ = digits
    reference = LogisticRegression(C=1.0, tol=1e-8, max_iter=5000).fit(X_train, y_train)
    ours = LinearClassifier(optimizer="lbfgs", alpha=1 / len(X_train), tol=1e-6, max_iter=1000,
                            precondition=precondition)
    ours.fit(X_train, y_train)
    np.testing.assert_allclose(ours.coef_, reference.coef_, atol=2e-3)
    np.testing.assert_allclose(ours.predict_proba(X_test), reference.predict_proba(X_test), atol=5e-3)


def test_minibatch_linear_heads_match_scikit_learn_accuracy(digits):
    X_train, X_test, y_train, y_test = digits
    settings = dict(learning_rate=0.01, schedule="cosine", max_iter=40, batch_size=64, random_state=0)
    reference = LogisticRegression().fit(X_train, y_train).score(X_test, y_test)
    ours = LinearClassifier("log_loss", **settings).fit(X_train, y_train)
    assert ours.score(X_test, y_test) >= reference - 0.01

    reference = LinearSVC().fit(X_train, y_train).score(X_test, y_test)
    ours = LinearClassifier("squared_hinge", **settings).fit(X_train, y_train)
    assert ours.score(X_test, y_test) >= reference - 0.01


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"])
def test_mlp_learns_digits_with_each_optimizer(optimizer, digits):
    X_train, X_test, y_train, y_test = digits
    learning_rate = {"momentum": 0.05, "nesterov": 0.05, "adagrad": 0.05}.get(optimizer, 3e-3)
    model = MLPClassifier(
        (64,), optimizer=optimizer, learning_rate=learning_rate, schedule="cosine", max_iter=20,
        batch_size=64, random_state=0,
    )
    assert model.fit(X_train, y_train).score(X_test, y_test) > 0.95


def ill_conditioned(n=3000, d=200, k=4):
    """Standardised features mixed so that their covariance spans four decades, and noisy labels."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((n, d))
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = Z @ (U * np.logspace(0, -2, d)) @ V.T + 3
    y = (Z[:, :k] + Z[:, -k:] + rng.standard_normal((n, k))).argmax(axis=1)
    return ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32), y


@pytest.mark.parametrize("loss", ["squared_hinge", "log_loss"])
def test_preconditioned_lbfgs_reaches_the_same_minimum_in_far_fewer_iterations(loss):
    X, y = ill_conditioned()
    settings = dict(optimizer="lbfgs", alpha=1e-3, tol=1e-5, max_iter=5000, random_state=0)
    plain = LinearClassifier(loss, precondition=False, **settings).fit(X, y)
    fast = LinearClassifier(loss, **settings).fit(X, y)
    assert fast.n_iter_ * 5 < plain.n_iter_
    assert fast.loss_curve_[-1] <= plain.loss_curve_[-1] * (1 + 1e-5)
    assert np.mean(fast.predict(X) == plain.predict(X)) > 0.99


def test_warm_start_continues_an_lbfgs_fit_and_reuses_its_preconditioner(blobs):
    X, y = blobs
    head = LinearClassifier("squared_hinge", optimizer="lbfgs", alpha=0.01, tol=1e-6, max_iter=500, random_state=0)
    cold = LinearClassifier(**head.get_params(deep=False)).fit(X, y)
    first = head.set_params(warm_start=True).fit(X[:200], y[:200])
    kept = first._kept_preconditioner
    assert kept is not None and kept.row_space is None
    warm = head.fit(X, y)  # more rows, same features and classes: starts where the first fit ended
    assert warm._kept_preconditioner is kept and warm.n_iter_ < cold.n_iter_
    np.testing.assert_allclose(warm.loss_curve_[-1], cold.loss_curve_[-1], rtol=1e-4)
    assert LinearClassifier(**{**head.get_params(deep=False), "warm_start": False}).fit(X, y)._kept_preconditioner is None


def test_warm_start_starts_afresh_when_the_classes_change(blobs):
    X, y = blobs
    params = {"optimizer": "lbfgs", "alpha": 0.01, "max_iter": 500, "random_state": 0, "warm_start": True}
    three = y < 3
    head = LinearClassifier(**params).fit(X, y)
    refit = head.fit(X[three], y[three])
    np.testing.assert_array_equal(refit.coef_, LinearClassifier(**params).fit(X[three], y[three]).coef_)
