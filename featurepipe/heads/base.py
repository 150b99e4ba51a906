"""The scikit-learn side shared by the heads: validation, ``fit`` and the prediction methods.

A head is a ``DenseNetwork`` (``network.py``) trained on an ``Objective`` (``objective.py``) by an
optimiser (``optimizers.py``). Subclasses say which network to build and how its parameters map to
their fitted attributes.
"""
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..core import NULL, Boolean, Integer, Part, Real, Stage, require
from .losses import softmax
from .objective import Objective
from .regularization import Penalty
from .schedules import LinearWarmup
from .training import run_epoch, train_full_batch, train_full_batch_together, train_minibatch
from .weights import CLASS_WEIGHT, mean_one, row_weights


@dataclass
class _FitSetup:
    """What one fit trains: the rows it fits (``X``, in ``space`` when not None), the class indices ``y``, the
    rows' weights (scaled to mean 1, or None), the optimiser, objective, initial parameters and, for L-BFGS,
    the preconditioner."""

    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    optimizer: object
    objective: Objective
    params: list
    preconditioner: object
    space: object
    rng: np.random.Generator
    seed: int


@dataclass
class Start:
    """Where a fit may start: a fitted head's parameters and classes, and the preconditioner its fit kept."""

    params: list
    classes: np.ndarray
    preconditioner: object = None

    @classmethod
    def of(cls, head):
        """The start ``head`` offers, or None when it is not fitted."""
        if not _trained(head):
            return None
        return cls([np.array(p, np.float32) for p in head._network_params()], head.classes_,
                   getattr(head, "_kept_preconditioner", None))


@dataclass
class _Stream:
    """What ``partial_fit`` carries from one call to the next: the parameters, the optimiser's state, the
    random generator (shuffling, dropout) and the epochs done (the schedule's position)."""

    params: list
    state: object
    rng: np.random.Generator
    epochs: int = 0


def fit_together(heads, X, y, *, preconditioners=None, starts=None, sample_weight=None):
    """Fit full-batch (L-BFGS) ``heads`` on the same ``X, y`` (and ``sample_weight``) at once, each as
    ``head._fit(X, y, start=, preconditioner=, sample_weight=)`` would: their runs are evaluated together
    (``train_full_batch_together``), so that a grid of alphas reads ``X`` once per round for all of them; each
    head weighs the rows by its own ``class_weight``. ``preconditioners``: one per head (None builds its own),
    shared objects change variables in one solve; ``starts``: a ``Start`` (or None) per head. The heads must
    fit the same rows: the same ``RowSpace``, if any."""
    preconditioners = preconditioners or [None] * len(heads)
    starts = starts or [None] * len(heads)
    setups = [head._set_up(X, y, start, p, sample_weight) for head, start, p in zip(heads, starts, preconditioners)]
    if (any(not s.optimizer.full_batch for s in setups) or len({id(s.space) for s in setups}) > 1
            or len({(head.max_iter, head.tol, head.verbose) for head in heads}) > 1):
        raise ValueError("fit_together needs full-batch heads with the same max_iter, tol and verbose, fitting the "
                         "same rows (one row space, if any)")
    first = heads[0]
    results = train_full_batch_together(
        [s.objective for s in setups], [s.params for s in setups], setups[0].X, setups[0].y,
        optimizer=setups[0].optimizer, max_iter=first.max_iter, tol=first.tol,
        preconditioners=[s.preconditioner for s in setups], weights_list=[s.weights for s in setups],
        verbose=first.verbose)
    return [head._finish(setup, result) for head, setup, result in zip(heads, setups, results)]


class BaseHead(ClassifierMixin, Stage, BaseEstimator):
    """Fit and predict for a classifier whose scores come from a ``DenseNetwork``.

    A stage like every registered part (its loss, optimiser and schedule are nested parts), and a
    scikit-learn estimator. Parameters are validated once per ``fit``, nested parts included.
    """

    kind = "head"
    _constraints = {
        "loss": Part("loss"),
        "optimizer": Part("optimizer"),
        "schedule": Part("schedule"),
        "alpha": Real(0),
        "l1": Real(0),
        "weight_decay": NULL | Real(0),
        "learning_rate": NULL | Real(0, low_open=True),
        "warmup_epochs": Real(0),
        "batch_size": Integer(1),
        "max_iter": Integer(1),
        "tol": Real(0),
        "n_iter_no_change": Integer(1),
        "shuffle": Boolean(),
        "early_stopping": Boolean(),
        "warm_start": Boolean(),
        "class_weight": CLASS_WEIGHT,
    }

    def _build_network(self, n_features, n_classes):
        """The untrained network for ``n_features`` inputs and ``n_classes`` scores."""
        raise NotImplementedError

    def _network_params(self):
        """The fitted parameters as the network's flat ``[W1, b1, ...]`` list."""
        raise NotImplementedError

    def _store_network_params(self, params):
        """Set the fitted attributes from the network's trained parameters."""
        raise NotImplementedError

    def fit(self, X, y, sample_weight=None):
        """Train on features ``X`` of shape ``(n_samples, n_features)`` and class labels ``y``, each row's loss
        weighted by ``sample_weight`` times its class's ``class_weight``: the objective is ``sum_i w_i L_i /
        sum_i w_i`` plus the penalty, so integer weights equal repeated rows and a zero weight a dropped one.

        With ``warm_start``, the fit starts from the previous fit's parameters when their shapes and classes
        match this fit's -- a mini-batch fit with a fresh optimiser state and schedule, an L-BFGS fit reusing
        the preconditioner the previous fit built when it applies (see ``warm_start``); else it starts from a
        random initialisation.
        """
        return self._fit(X, y, sample_weight=sample_weight)

    def _fit(self, X, y, start=None, preconditioner=None, sample_weight=None):
        """``fit``, starting from ``start`` (a ``Start``) when given, and for L-BFGS with ``preconditioner``
        (built beforehand, e.g. for several fits on the same rows; one built on a ``RowSpace`` of ``X`` makes
        the fit go through that row space) instead of building one."""
        setup = self._set_up(X, y, start, preconditioner, sample_weight)
        if setup.optimizer.full_batch:
            result = train_full_batch(
                setup.objective, setup.params, setup.X, setup.y, optimizer=setup.optimizer, max_iter=self.max_iter,
                tol=self.tol, preconditioner=setup.preconditioner, weights=setup.weights, verbose=self.verbose,
            )
        else:
            result = self._train_minibatch(setup.objective, setup.params, X=setup.X, y=setup.y,
                                           weights=setup.weights, optimizer=setup.optimizer, rng=setup.rng,
                                           seed=setup.seed)
        return self._finish(setup, result)

    def _set_up(self, X, y, start, preconditioner, sample_weight=None):
        """Validate the data and parameters and build what training needs (``_FitSetup``)."""
        warm = Start.of(self) if self.warm_start else None  # read before this fit replaces it
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes, "
                f"got 1 class: {classes[0]!r}"
            )
        self.validate_params()
        weights = self._weights(X, y, sample_weight)
        self.classes_, y = classes, labels  # after every check: a refused fit leaves the head as it was
        loss = self._part("loss")
        optimizer = self._part("optimizer")
        if preconditioner is None:
            space = self._row_space(X, optimizer.full_batch)
            if warm is not None and space is None and _applies(warm.preconditioner, X, self.classes_):
                preconditioner = warm.preconditioner
        else:
            space = preconditioner.row_space
            if space is not None and space.features.shape[0] != X.shape[0]:
                raise ValueError(f"the preconditioner was built on the row space of {space.features.shape[0]} "
                                 f"rows, not of these {X.shape[0]}")
        X_fit = X if space is None else space.features
        network = self._build_network(X_fit.shape[1], len(self.classes_))
        if optimizer.full_batch and self.weight_decay:
            raise ValueError("weight_decay needs a first-order optimiser; with L-BFGS use alpha (L2)")
        if optimizer.full_batch and network.dropout:
            raise ValueError("dropout needs a first-order optimiser: L-BFGS needs a deterministic objective")

        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        rng = np.random.default_rng(seed)
        params = self._initial_params(start or warm, network, space)
        if params is None:
            params = network.init_params(rng)
        objective = Objective(network, loss, Penalty(l2=self.alpha, l1=self.l1))
        if optimizer.full_batch and preconditioner is None:
            preconditioner = self._preconditioner(X_fit, len(self.classes_), space, weights)
        return _FitSetup(X_fit, y, weights, optimizer, objective, params, preconditioner, space, rng, seed)

    def _weights(self, X, y, sample_weight=None):
        """The weights of the rows of ``X`` (labels ``y``: this fit's) -- ``sample_weight`` times ``class_weight``
        (``'balanced'`` from ``y``'s counts) -- scaled to mean 1, or None when every row weighs the same."""
        weights = mean_one(row_weights(X, y, np.unique(y), sample_weight, self.class_weight))
        if weights is not None and len(np.unique(np.asarray(y)[weights > 0])) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes with a non-zero weight, "
                             f"got 1 class: {np.unique(np.asarray(y)[weights > 0])[0]!r}")
        return weights

    def _finish(self, setup, result):
        """Set the fitted attributes from the trained parameters and warn if training did not converge.
        With ``warm_start``, keep the preconditioner for the next fit, unless it belongs to a row space."""
        self._store_network_params(setup.params if setup.space is None else setup.space.expand(setup.params))
        self._kept_preconditioner = setup.preconditioner if self.warm_start and setup.space is None else None
        self._stream = None  # a partial_fit after this fit starts a new stream from its parameters
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.loss_curve_ = result.history["loss"]
        self.validation_scores_ = result.history["val_accuracy"] or None
        if not result.converged:
            if result.n_iter < self.max_iter and result.message:  # L-BFGS's line search gave up
                detail = result.message.removeprefix("ABNORMAL:").strip() or (
                    "its line search found no lower objective; float32 precision is reached near the optimum, "
                    "so a tol this small cannot be met")
                reason = f"L-BFGS stopped after {result.n_iter} iterations: {detail}"
            else:
                reason = f"stopped at max_iter={self.max_iter} before converging; raise max_iter or the learning rate"
            warnings.warn(f"{type(self).__name__} {reason}", ConvergenceWarning)
        return self

    def _preconditioner(self, X, n_classes, space=None, weights=None):
        """The change of variables for L-BFGS (see ``preconditioning.py``) on ``X`` (the features of
        ``space``, a ``RowSpace``, when not None) with its rows' ``weights``, or None for none."""
        return None

    def _row_space(self, X, full_batch):
        """The ``RowSpace`` this head fits ``X`` in, or None to fit on ``X`` itself."""
        return None

    def _initial_params(self, start, network, space=None):
        """Copies of the parameters of ``start`` (a ``Start``; taken into ``space`` when given), or None when
        there is none or they do not fit ``network`` and the classes."""
        if start is None:
            return None
        params = start.params
        if space is not None and params[0].shape[0] == space.basis.shape[0]:
            params = space.reduce(params)
        shapes = [p.shape for p in network.init_params(np.random.default_rng(0))]
        if [p.shape for p in params] != shapes or not np.array_equal(start.classes, self.classes_):
            return None
        return [np.array(p, np.float32) for p in params]

    def _train_minibatch(self, objective, params, *, X, y, weights, optimizer, rng, seed):
        """Mini-batch training, on all of ``X`` or with a stratified validation split held out (scored by plain
        accuracy; the rows trained on keep their weights, scaled to mean 1 again)."""
        validation = None
        if self.early_stopping:
            split = train_test_split(X, y, *([] if weights is None else [weights]),
                                     test_size=self.validation_fraction, stratify=y, random_state=seed)
            X, X_val, y, y_val = split[:4]
            weights = None if weights is None else split[4] * (len(split[4]) / split[4].sum())
            validation = (X_val, y_val)
        return train_minibatch(
            objective,
            params,
            X,
            y,
            optimizer=optimizer,
            schedule=self._schedule(),
            batch_size=min(self.batch_size, X.shape[0]),
            max_epochs=self.max_iter,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            shuffle=self.shuffle,
            rng=rng,
            weights=weights,
            validation=validation,
            verbose=self.verbose,
        )

    def _has_partial_fit(self):
        """Whether ``partial_fit`` applies: for first-order optimisers only (an ``AttributeError`` saying why
        otherwise, as scikit-learn's MLPClassifier hides it for L-BFGS)."""
        try:
            full_batch = self._part("optimizer").full_batch
        except ValueError:  # a bad optimiser: partial_fit's validation names it
            return True
        if full_batch:
            raise AttributeError(f"partial_fit needs a first-order optimiser (sgd, adam, ...), not {self.optimizer!r}: "
                                 f"L-BFGS minimises the whole objective at once and has no step to take on some rows")
        return True

    @available_if(_has_partial_fit)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over the rows ``X, y`` in mini-batches, continuing the previous call's training: its
        parameters, optimiser state (Adam's moments and step count) and place in the schedule, which spans
        ``max_iter`` calls and then stays at its end (``'cosine'`` ends at learning rate 0: use
        ``schedule='constant'`` for a stream without end).

        ``classes``: every label the calls will see, required on the first call (unless the head is fitted:
        then the stream starts from ``fit``'s parameters and classes, with a fresh optimiser state); a later
        call's labels must be among them. ``sample_weight`` and a ``class_weight`` dict weigh the rows as given
        (not scaled to mean 1: a call has no whole set to scale over); ``'balanced'`` needs the counts of every
        call, so it is refused. No validation split is held out (``early_stopping`` is ``fit``'s). ``fit`` after
        ``partial_fit`` starts afresh unless ``warm_start``.
        """
        stream = getattr(self, "_stream", None)
        X, y = validate_data(self, X, y, dtype=np.float32, reset=stream is None)
        check_classification_targets(y)
        if isinstance(self.class_weight, str):
            raise ValueError("class_weight='balanced' needs every row's label, which partial_fit never sees at "
                             "once: pass a dict, e.g. from sklearn.utils.class_weight.compute_class_weight")
        if stream is None:
            known = self._stream_classes(classes)
        else:
            self._ensure_valid()
            known = self.classes_
            if classes is not None and not np.array_equal(np.unique(classes), known):
                raise ValueError(f"partial_fit: classes {np.unique(classes).tolist()} differ from the first call's "
                                 f"{known.tolist()}")
        unknown = np.setdiff1d(y, known)
        if unknown.size:
            raise ValueError(f"partial_fit: label {unknown.tolist()[0]!r} is not among the classes of the first call "
                             f"({', '.join(map(repr, known.tolist()))}); pass every label as classes= then")
        if stream is None:  # every check passed: nothing of the head changes before this
            stream = self._start_stream(X, known)
        weights = row_weights(X, y, self.classes_, sample_weight, self.class_weight)
        network = self._build_network(X.shape[1], len(self.classes_))
        objective = Objective(network, self._part("loss"), Penalty(l2=self.alpha, l1=self.l1))
        loss, accuracy = run_epoch(
            objective, stream.params, X, np.searchsorted(self.classes_, y), optimizer=self._part("optimizer"),
            state=stream.state, schedule=_held_at_end(self._schedule(), self.max_iter), epoch=stream.epochs,
            batch_size=min(self.batch_size, X.shape[0]), order=np.arange(X.shape[0]), shuffle=self.shuffle,
            rng=stream.rng, weights=weights)
        stream.epochs += 1
        self._store_network_params(stream.params)
        self.n_iter_ = stream.epochs
        self.history_["loss"].append(loss)
        self.history_["train_accuracy"].append(accuracy)
        self.loss_curve_ = self.history_["loss"]
        self.validation_scores_ = None
        return self

    def _stream_classes(self, classes) -> np.ndarray:
        """The classes of a first ``partial_fit`` call: ``classes``, or a fitted head's own."""
        if classes is None and not hasattr(self, "classes_"):
            raise ValueError("partial_fit: classes is required on the first call: every label the calls will see")
        known = np.unique(self.classes_ if classes is None else classes)
        if len(known) < 2:
            raise ValueError(f"partial_fit: classes must hold at least 2 classes, got {known.tolist()}")
        return known

    def _start_stream(self, X, classes):
        """The first ``partial_fit`` call's set-up: ``classes``, initial parameters (``fit``'s when the head is
        fitted on the same features and classes) and a fresh optimiser state."""
        self.validate_params()
        start = Start.of(self)  # fit's parameters, read before the classes are set
        self.classes_ = classes
        network = self._build_network(X.shape[1], len(self.classes_))
        rng = np.random.default_rng(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        params = self._initial_params(start, network)
        params = network.init_params(rng) if params is None else params
        self._stream = _Stream(params, self._part("optimizer").init_state(params), rng)
        self.history_ = {"loss": [], "train_accuracy": [], "val_accuracy": []}
        return self._stream

    def decision_function(self, X):
        """Class scores, ``(n_samples, n_classes)``; for two classes the score of ``classes_[1]``
        minus that of ``classes_[0]``, ``(n_samples,)``, positive where ``classes_[1]`` wins."""
        scores = self._scores(X)
        if len(self.classes_) == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict(self, X):
        """The class with the highest score for each row of ``X``."""
        scores = self._scores(X)
        return self.classes_[scores.argmax(axis=1)]

    def _part_overrides(self, name):
        if name == "optimizer":
            return {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay}
        return {}

    def _schedule(self):
        """The learning-rate schedule of a training of ``max_iter`` epochs, with ``warmup_epochs`` in front."""
        schedule = self._part("schedule").for_training(self.max_iter)
        return LinearWarmup(schedule, self.warmup_epochs) if self.warmup_epochs else schedule

    def _has_probabilities(self):
        # Hinge losses train scores with a margin, not calibrated probabilities.
        return self.loss == "log_loss"

    @available_if(_has_probabilities)
    def predict_proba(self, X):
        """Class probabilities, the softmax of the scores; only for ``loss='log_loss'``."""
        return softmax(self._scores(X))

    def _scores(self, X):
        check_is_fitted(self)
        if not _trained(self):  # a fit that failed after its checks (a divergence) leaves no parameters
            raise NotFittedError(f"This {type(self).__name__} has no trained parameters: its last fit failed")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        network = self._build_network(self.n_features_in_, len(self.classes_))
        scores, _ = network.forward(self._network_params(), X)
        return scores

    def _check_combination(self):
        if self.early_stopping:
            require(Real(0, 1, low_open=True, high_open=True).holds(self.validation_fraction), "validation_fraction",
                    "must be in (0, 1) with early_stopping", self.validation_fraction)


def _held_at_end(schedule, end):
    """``schedule`` that stays at its value at ``end`` after it (a ``partial_fit`` stream outlasting ``max_iter``
    calls: a step schedule would otherwise go on dividing the learning rate)."""
    return lambda t: schedule(min(t, end))


def _trained(head) -> bool:
    """Whether ``head`` has classes and trained parameters for them: a fit that failed midway leaves its
    classes beside no parameters, or beside an earlier fit's for other classes."""
    try:
        return hasattr(head, "classes_") and head._network_params()[-1].shape[-1] == len(head.classes_)
    except AttributeError:
        return False


def _applies(preconditioner, X, classes) -> bool:
    """Whether ``preconditioner``, kept by a previous fit, serves a fit of ``X`` on ``classes``: built on
    features (not a row space) of the same width, for as many classes. It only has to be close: built on
    other rows of the same features (a holdout search's fit rows, for the refit on every row), it serves."""
    return (preconditioner is not None and preconditioner.row_space is None
            and preconditioner.shape == (X.shape[1] + 1, len(classes)))
