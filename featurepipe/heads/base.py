"""The scikit-learn side shared by the heads: validation, ``fit`` and the prediction methods.

A head is a ``DenseNetwork`` (``network.py``) trained on an ``Objective`` (``objective.py``) by an
optimiser (``optimizers.py``). Subclasses say which network to build and how its parameters map to
their fitted attributes.
"""
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, check_scalar
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .losses import get_loss, softmax
from .objective import Objective
from .optimizers import create_optimizer
from .regularization import Penalty
from .schedules import create_schedule
from .training import train_full_batch, train_minibatch


class BaseHead(ClassifierMixin, BaseEstimator):
    """Fit and predict for a classifier whose scores come from a ``DenseNetwork``."""

    def _build_network(self, n_features, n_classes):
        """The untrained network for ``n_features`` inputs and ``n_classes`` scores."""
        raise NotImplementedError

    def _network_params(self):
        """The fitted parameters as the network's flat ``[W1, b1, ...]`` list."""
        raise NotImplementedError

    def _store_network_params(self, params):
        """Set the fitted attributes from the network's trained parameters."""
        raise NotImplementedError

    def fit(self, X, y):
        """Train on features ``X`` of shape ``(n_samples, n_features)`` and class labels ``y``."""
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, y = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes, "
                f"got 1 class: {self.classes_[0]!r}"
            )
        loss = get_loss(self.loss)
        self._check_training_settings()
        optimizer = create_optimizer(
            self.optimizer, learning_rate=self.learning_rate, weight_decay=self.weight_decay
        )
        network = self._build_network(X.shape[1], len(self.classes_))
        if optimizer.full_batch and self.weight_decay:
            raise ValueError("weight_decay needs a first-order optimiser; with L-BFGS use alpha (L2)")
        if optimizer.full_batch and network.dropout:
            raise ValueError("dropout needs a first-order optimiser: L-BFGS needs a deterministic objective")

        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        rng = np.random.default_rng(seed)
        params = network.init_params(rng)
        objective = Objective(network, loss, Penalty(l2=self.alpha, l1=self.l1))
        if optimizer.full_batch:
            result = train_full_batch(
                objective, params, X, y, optimizer=optimizer, max_iter=self.max_iter, tol=self.tol,
                preconditioner=self._preconditioner(X, len(self.classes_), rng), verbose=self.verbose,
            )
        else:
            result = self._train_minibatch(objective, params, X, y, optimizer, rng, seed)

        self._store_network_params(params)
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.loss_curve_ = result.history["loss"]
        self.validation_scores_ = result.history["val_accuracy"] or None
        if not result.converged:
            if result.n_iter < self.max_iter and result.message:  # L-BFGS's line search gave up
                reason = f"L-BFGS stopped after {result.n_iter} iterations: {result.message}"
            else:
                reason = f"stopped at max_iter={self.max_iter} before converging; raise max_iter or the learning rate"
            warnings.warn(f"{type(self).__name__} {reason}", ConvergenceWarning)
        return self

    def _preconditioner(self, X, n_classes, rng):
        """The change of variables for L-BFGS (see ``preconditioning.py``), or None for none."""
        return None

    def _train_minibatch(self, objective, params, X, y, optimizer, rng, seed):
        """Mini-batch training, on all of ``X`` or with a stratified validation split held out."""
        validation = None
        if self.early_stopping:
            X, X_val, y, y_val = train_test_split(
                X, y, test_size=self.validation_fraction, stratify=y, random_state=seed
            )
            validation = (X_val, y_val)
        return train_minibatch(
            objective,
            params,
            X,
            y,
            optimizer=optimizer,
            schedule=create_schedule(self.schedule, self.max_iter, self.warmup_epochs),
            batch_size=min(self.batch_size, X.shape[0]),
            max_epochs=self.max_iter,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            shuffle=self.shuffle,
            rng=rng,
            validation=validation,
            verbose=self.verbose,
        )

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

    def _has_probabilities(self):
        # Hinge losses train scores with a margin, not calibrated probabilities.
        return self.loss == "log_loss"

    @available_if(_has_probabilities)
    def predict_proba(self, X):
        """Class probabilities, the softmax of the scores; only for ``loss='log_loss'``."""
        return softmax(self._scores(X))

    def _scores(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        network = self._build_network(self.n_features_in_, len(self.classes_))
        scores, _ = network.forward(self._network_params(), X)
        return scores

    def _check_training_settings(self):
        """Validate the settings every head shares; the network's and the optimiser's own are
        checked when they are built."""
        check_scalar(self.alpha, "alpha", numbers.Real, min_val=0)
        check_scalar(self.l1, "l1", numbers.Real, min_val=0)
        check_scalar(self.batch_size, "batch_size", numbers.Integral, min_val=1)
        check_scalar(self.max_iter, "max_iter", numbers.Integral, min_val=1)
        check_scalar(self.tol, "tol", numbers.Real, min_val=0)
        check_scalar(self.n_iter_no_change, "n_iter_no_change", numbers.Integral, min_val=1)
        check_scalar(self.warmup_epochs, "warmup_epochs", numbers.Real, min_val=0)
        if self.early_stopping:
            check_scalar(
                self.validation_fraction, "validation_fraction", numbers.Real,
                min_val=0, max_val=1, include_boundaries="neither",
            )
