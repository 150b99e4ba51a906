"""Sample and class weights, warm starts and partial_fit on the heads: the weighted objective is
``sum_i w_i L_i / sum_i w_i`` plus the penalty, on every path a head is fitted by."""
import json

import numpy as np
import pytest
import yaml
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_classification
from sklearn.exceptions import NotFittedError
from sklearn.metrics import recall_score
from sklearn.utils import shuffle
from sklearn.utils.class_weight import compute_sample_weight

from featurepipe import create
from featurepipe.cli import EXIT_OK, EXIT_USAGE, main
from featurepipe.heads import LinearClassifier, MLPClassifier
from featurepipe.heads.network import DenseNetwork
from featurepipe.heads.objective import Objective
from featurepipe.heads.regularization import Penalty
from featurepipe.heads.row_space import GramSpace, gram
from test_heads_gradients import numerical_gradients

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

LBFGS_HEADS = [
    LinearClassifier(optimizer="lbfgs", alpha=1e-2, tol=1e-6, max_iter=500),
    LinearClassifier("squared_hinge", optimizer="lbfgs", alpha=1e-2, tol=1e-6, max_iter=500),
    MLPClassifier((8,), activation="tanh", optimizer="lbfgs", alpha=1e-2, tol=1e-6, max_iter=500, random_state=0),
]
ids = ["linear-log_loss", "linear-squared_hinge", "mlp"]


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=150, centers=3, n_features=6, cluster_std=3.0, random_state=0)
    return X.astype(np.float32), y


def _close(a, b, atol):
    """Decision values equal to float32 L-BFGS's precision: its objective is flat there, so values agree to a
    share of their scale (``atol``), not to float rounding."""
    np.testing.assert_allclose(a, b, rtol=0, atol=atol * np.abs(b).max())


@pytest.mark.parametrize("head", LBFGS_HEADS, ids=ids)
def test_integer_weights_equal_repeated_rows_and_zero_weights_dropped_rows(head):
    """scikit-learn's check_sample_weight_equivalence protocol (15 rows, 30 features: the row space for the
    linear head; weights 0 to 4, the weighted rows shuffled), at float32 precision."""
    rng = np.random.RandomState(42)
    X, y, weights = rng.rand(15, 30), rng.randint(0, 3, size=15), rng.randint(0, 5, size=15)
    repeated = clone(head).fit(X.repeat(weights, axis=0), y.repeat(weights))
    weighted = clone(head).fit(*shuffle(X, y, random_state=0), sample_weight=shuffle(weights, random_state=0))
    _close(weighted.decision_function(X), repeated.decision_function(X), 2e-3)
    np.testing.assert_array_equal(weighted.predict(X), repeated.predict(X))


@pytest.mark.parametrize("head", LBFGS_HEADS, ids=ids)
def test_all_ones_weights_are_the_unweighted_fit_bit_for_bit(head, blobs):
    X, y = blobs
    plain = clone(head).fit(X, y)
    ones = clone(head).fit(X, y, sample_weight=np.ones(len(y)))
    np.testing.assert_array_equal(ones.decision_function(X), plain.decision_function(X))
    assert ones.n_iter_ == plain.n_iter_


def test_a_zero_weight_row_is_a_dropped_row_for_mini_batch_too(blobs):
    """All rows in one batch and no shuffling: the mini-batch trajectory is the full objective's, so a zero
    weight must equal dropping the row to float rounding (the mean weight is rescaled to 1)."""
    X, y = blobs
    head = LinearClassifier(batch_size=1000, shuffle=False, max_iter=20, random_state=0)
    weights = np.ones(len(y))
    weights[::5] = 0
    kept = weights > 0
    _close(clone(head).fit(X, y, sample_weight=weights).decision_function(X),
           clone(head).fit(X[kept], y[kept]).decision_function(X), 1e-5)


@pytest.mark.parametrize("loss", ["log_loss", "hinge", "squared_hinge"])
def test_the_weighted_objective_has_the_gradient_of_its_value(loss):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 5)), np.arange(8) % 3
    weights = rng.uniform(0, 3, 8)
    network = DenseNetwork([5, 4, 3], create("activation", "tanh"))
    params = network.init_params(rng, dtype=np.float64)
    objective = Objective(network, create("loss", loss), Penalty(l2=0.3))
    value, analytic, _ = objective(params, X, y, weights=weights)
    # The value is the weighted mean: sum_i w_i L_i / n, with each row's own loss from an unweighted call.
    rows = [objective.loss(network.forward(params, X[i:i + 1])[0], y[i:i + 1])[0] for i in range(8)]
    np.testing.assert_allclose(value - Penalty(l2=0.3).add_to_gradients(params, [np.zeros_like(p) for p in params]),
                               np.dot(weights, rows) / 8, rtol=1e-12)
    numeric = numerical_gradients(lambda: objective(params, X, y, weights=weights)[0], params)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("loss", ["squared_hinge", "log_loss"])
def test_a_weighted_gram_path_scores_new_rows_as_the_weighted_fit_on_features(loss):
    """The search's Gram path (``fit_gram_path``, its own weighted preconditioner) and the primal fit minimise
    the same weighted objective; ``class_weight`` weighs by the path's own labels."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((130, 300)) @ rng.standard_normal((300, 300)) * 0.05).astype(np.float32)
    y = rng.integers(0, 3, 130)
    fit, val = slice(0, 100), slice(100, None)
    weights = rng.integers(0, 4, 100).astype(float)
    head = LinearClassifier(loss, optimizer="lbfgs", max_iter=3000, tol=1e-6, class_weight={0: 3.0},
                            random_state=0)
    K = gram(X)
    space = GramSpace(K[fit, fit])
    alphas = [1e-1, 1e-2]
    path = head.fit_gram_path(space, y[fit], alphas, sample_weight=weights)
    for alpha, model in zip(alphas, path):
        single = clone(head).set_params(alpha=alpha).fit(X[fit], y[fit], sample_weight=weights)
        _close(model.decision_function(space.project(K[val, fit])), single.decision_function(X[val]), 2e-2)


@pytest.mark.parametrize("together", [True, False], ids=["together", "warm-path"])
def test_a_path_of_alphas_weighs_as_fit_does(together, blobs, monkeypatch):
    X, y = blobs
    weights = np.random.default_rng(1).uniform(0, 2, len(y))
    head = LinearClassifier(optimizer="lbfgs", tol=1e-6, max_iter=500, class_weight="balanced", random_state=0)
    if together:
        monkeypatch.setattr("featurepipe.heads.linear._SMALL", 0)  # fit_together
    together = head.fit_path(X, y, [1e-1, 1e-2], sample_weight=weights)
    for model in together:
        single = clone(head).set_params(alpha=model.alpha).fit(X, y, sample_weight=weights)
        np.testing.assert_allclose(model.loss_curve_[-1], single.loss_curve_[-1], rtol=1e-5)
        _close(model.decision_function(X), single.decision_function(X), 5e-3)


def test_balanced_class_weight_raises_minority_recall_and_equals_balanced_sample_weights():
    X, y = make_classification(n_samples=400, n_features=8, weights=[0.9, 0.1], class_sep=0.5, random_state=0)
    head = LinearClassifier(optimizer="lbfgs", alpha=1e-3, tol=1e-6, max_iter=500)
    plain = clone(head).fit(X, y)
    balanced = clone(head).set_params(class_weight="balanced").fit(X, y)
    assert recall_score(y, balanced.predict(X)) > recall_score(y, plain.predict(X)) + 0.2
    by_hand = clone(head).fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    np.testing.assert_array_equal(balanced.decision_function(X), by_hand.decision_function(X))
    as_dict = clone(head).set_params(class_weight={1: 9.0}).fit(X, y)
    assert recall_score(y, as_dict.predict(X)) > recall_score(y, plain.predict(X)) + 0.2


@pytest.mark.parametrize("fit, message", [
    (lambda X, y: LinearClassifier(class_weight={"cat": 2.0}).fit(X, y), r"class_weight: 'cat' is not a class of y"),
    (lambda X, y: LinearClassifier(class_weight="balance").fit(X, y), r"class_weight: must be None, 'balanced'"),
    (lambda X, y: LinearClassifier().fit(X, y, sample_weight=np.ones(3)), r"sample_weight"),
    (lambda X, y: LinearClassifier().fit(X, y, sample_weight=-np.ones(len(y))), r"[Nn]egative.*sample_weight"),
    (lambda X, y: LinearClassifier().fit(X, y, sample_weight=np.full(len(y), np.nan)), r"NaN"),
    (lambda X, y: LinearClassifier().fit(X, y, sample_weight=np.zeros(len(y))), r"weight.*zero|zero.*weight"),
    (lambda X, y: LinearClassifier().fit(X, y, sample_weight=(y == 0) * 1.0), r"at least 2 classes with a non-zero"),
    (lambda X, y: LinearClassifier(class_weight={0: np.inf}).fit(X, y), r"a dict \{label: finite weight >= 0\}"),
    (lambda X, y: LinearClassifier(class_weight={0: 0, 1: 0, 2: 0}).fit(X, y), r"^class_weight: the weights"),
])
def test_bad_weights_are_one_clear_error(fit, message, blobs):
    with pytest.raises(ValueError, match=message):
        fit(*blobs)


def test_a_class_weight_dict_is_saved_and_loaded(blobs, tmp_path):
    from featurepipe.heads import load_model, save_model

    X, y = blobs
    model = LinearClassifier(class_weight={0: 2.0, 2: 0.5}, max_iter=3).fit(X, y)
    save_model(model, tmp_path / "head.npz")
    assert load_model(tmp_path / "head.npz").class_weight == {0: 2.0, 2: 0.5}


@pytest.mark.parametrize("head", [LinearClassifier(learning_rate=0.05), MLPClassifier((16,), learning_rate=0.01)],
                         ids=["linear", "mlp"])
def test_partial_fit_over_batches_reaches_fits_accuracy_and_keeps_the_optimiser_state(head, blobs):
    X, y = blobs
    head = clone(head).set_params(batch_size=32, max_iter=20, random_state=0)
    fitted = clone(head).fit(X, y).score(X, y)
    stream = clone(head).set_params(max_iter=60)  # the schedule spans the calls: 60 thirds of the rows
    for epoch in range(20):
        for part in range(3):
            stream.partial_fit(X[part::3], y[part::3], classes=np.unique(y) if epoch == part == 0 else None)
    assert stream.score(X, y) >= fitted - 0.05
    assert stream._stream.state.steps == 20 * 3 * 2  # Adam's step count: 2 batches of 32 in each 50 rows
    assert stream.n_iter_ == 60 and len(stream.loss_curve_) == 60


def test_partial_fit_errors_are_clear(blobs):
    X, y = blobs
    with pytest.raises(AttributeError) as caught:
        LinearClassifier(optimizer="lbfgs").partial_fit(X, y, classes=[0, 1, 2])
    assert "partial_fit needs a first-order optimiser" in str(caught.value.__cause__)
    assert not hasattr(MLPClassifier(optimizer="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="classes is required on the first call"):
        LinearClassifier().partial_fit(X, y)
    head = LinearClassifier().partial_fit(X[y < 2], y[y < 2], classes=[0, 1])
    with pytest.raises(ValueError, match=r"label 2 is not among the classes of the first call \(0, 1\)"):
        head.partial_fit(X, y)
    with pytest.raises(ValueError, match="class_weight='balanced'"):
        LinearClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def test_fit_after_partial_fit_starts_afresh_unless_warm_start(blobs):
    X, y = blobs
    head = LinearClassifier(max_iter=5, random_state=0)
    streamed = clone(head).partial_fit(X, y, classes=[0, 1, 2])
    np.testing.assert_array_equal(streamed.fit(X, y).coef_, clone(head).fit(X, y).coef_)
    warm = clone(head).set_params(warm_start=True).partial_fit(X, y, classes=[0, 1, 2])
    assert warm.fit(X, y).loss_curve_[0] < clone(head).fit(X, y).loss_curve_[0]


@pytest.mark.parametrize("head", [LinearClassifier(learning_rate=0.05), MLPClassifier((16,), learning_rate=0.01)],
                         ids=["linear", "mlp"])
def test_warm_start_continues_a_mini_batch_fit_from_its_parameters(head, blobs):
    X, y = blobs
    head = clone(head).set_params(max_iter=5, random_state=0, warm_start=True)
    first = head.fit(X, y).loss_curve_[0]
    second = head.fit(X, y).loss_curve_[0]
    assert second < first


@pytest.fixture
def weighted_config(tmp_path, image_folder, cache_dir):
    """A config whose heads weigh classes: ``balanced`` for a mini-batch head, a dict for an L-BFGS one."""
    cfg = {"dataset": {"path": str(image_folder)},
           "pipeline": {"extractor": {"color_hist": {"bins": 4}}},
           "run": {"cache_dir": str(cache_dir), "progress": False},
           "heads": [{"name": "adam", "model": "linear",
                      "params": {"class_weight": "balanced", "max_iter": 30, "random_state": 0}},
                     {"name": "lbfgs", "model": "linear",
                      "params": {"class_weight": {"red": 2.0}, "optimizer": "lbfgs", "alpha": "auto",
                                 "random_state": 0}},
                     {"name": "mlp", "model": "mlp",
                      "params": {"class_weight": "balanced", "hidden_layer_sizes": [8], "max_iter": 30,
                                 "alpha": [1e-1, 1e-2, 1e-3, 1e-4], "learning_rate": 0.01, "random_state": 0}}],
           "train": {"validation_fraction": 0.25, "normalize": "l2"}, "output": str(tmp_path / "runs")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_with_class_weights_searches_and_refits(weighted_config, tmp_path, monkeypatch):
    """``class_weight`` in a config goes through every path of the search (k-fold here: the primal path with
    ``fit_path`` for the adam head, the Gram path for the L-BFGS one and its refit from the search's Gram
    matrix, successive halving for the MLP's grid) and the refits; the head folder keeps it."""
    real, row_space_refits = LinearClassifier.fit_by_gram, []
    monkeypatch.setattr(LinearClassifier, "fit_by_gram",
                        lambda self, *args, **kw: row_space_refits.append(self.class_weight) or real(self, *args, **kw))
    assert main(["train", "--config", str(weighted_config)]) == EXIT_OK
    assert row_space_refits == [{"red": 2.0}]
    for name, solver, weight in (("adam", "primal", "balanced"), ("lbfgs", "gram", {"red": 2.0}),
                                 ("mlp", "primal", "balanced")):
        metrics = json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
        assert metrics["solvers"][0]["solver"] == solver and metrics["chosen"]["params"]["class_weight"] == weight
        assert name == "mlp" or metrics["test"]["accuracy"] >= 0.9  # colour-dominated classes: easy for a linear head
    assert any("eliminated_at" in point for point in metrics["grid"])  # the MLP's grid was halved


def test_a_class_weight_label_that_is_not_a_class_is_refused_before_any_work(weighted_config, capsys):
    assert main(["train", "--config", str(weighted_config), "--set", "heads.1.params.class_weight={rd: 2.0}"]) \
        == EXIT_USAGE
    assert capsys.readouterr().err.strip() == ("featurepipe: config error: heads[1].params.class_weight: 'rd' is not "
                                               "a class of the data set (classes: 'blue', 'green', 'red')")


def test_a_refused_fit_leaves_the_head_as_it_was(blobs):
    """A fit refused by its checks sets nothing a prediction or a warm start would read: a new head stays
    unfitted, a fitted one keeps its model."""
    X, y = blobs
    head = LinearClassifier(class_weight={5: 2.0})
    with pytest.raises(ValueError, match="class_weight: 5 is not a class"):
        head.fit(X, y)
    with pytest.raises(NotFittedError):
        head.predict(X)
    fitted = LinearClassifier(optimizer="lbfgs").fit(X, y)
    before = fitted.predict(X)
    with pytest.raises(ValueError, match="class_weight"):
        fitted.set_params(class_weight={5: 2.0}).fit(X, np.where(y == 2, 3, y))
    np.testing.assert_array_equal(fitted.predict(X), before)


def test_partial_fit_takes_a_class_weight_dict_on_batches_without_its_class(blobs):
    X, y = blobs
    head = LinearClassifier(class_weight={2: 5.0}, random_state=0)
    head.partial_fit(X, y, classes=[0, 1, 2])
    head.partial_fit(X[y < 2], y[y < 2])  # the rare class's weight is not needed here
    assert head.n_iter_ == 2


def test_a_refused_first_partial_fit_starts_nothing(blobs):
    X, y = blobs
    head = LinearClassifier()
    with pytest.raises(ValueError, match="label 2 is not among the classes"):
        head.partial_fit(X, y, classes=[0, 1])
    assert not hasattr(head, "classes_") and not hasattr(head, "_stream")
    head.partial_fit(X, y, classes=[0, 1, 2])  # the corrected call starts the stream
    assert head.n_iter_ == 1


def test_a_partial_fit_stream_stays_at_the_end_of_its_schedule(blobs):
    """A step schedule over ``max_iter`` calls: after them the learning rate stays where the schedule ends."""
    from featurepipe.heads.base import _held_at_end

    schedule = LinearClassifier(schedule="step", max_iter=3)._schedule()
    held = _held_at_end(schedule, 3)
    assert [held(t) for t in (3, 6, 9)] == [schedule(3)] * 3 and schedule(9) < schedule(3)
    head = LinearClassifier(schedule="step", max_iter=3, learning_rate=0.05, random_state=0)
    for _ in range(8):
        head.partial_fit(*blobs, classes=[0, 1, 2])
    before = head.coef_.copy()
    head.partial_fit(*blobs)  # call 9: still at the end's rate (5e-5), not divided twice more (5e-11)
    assert head.n_iter_ == 9 and np.abs(head.coef_ - before).max() > 1e-6
