"""The linear head: class scores ``s = W x + b``."""
import numpy as np

from sklearn.base import clone
from threadpoolctl import threadpool_limits

from ..core import Boolean, register
from .base import BaseHead, Start, fit_together
from .network import DenseNetwork
from .preconditioning import build_preconditioner, row_space_preconditioner
from .row_space import RowSpace, applies


#: Values of a matrix up to which its products run on one BLAS thread and a path of alphas is fitted one alpha
#: after another, warm-started (above it, the alphas share passes over the matrix: ``fit_together``).
_SMALL = 1 << 24


@register("head", "linear")
class LinearClassifier(BaseHead):
    """Linear classifier trained by mini-batch optimisation (or L-BFGS) on a choice of losses.

    ``loss='log_loss'`` is multinomial logistic regression, ``'squared_hinge'`` a one-vs-rest
    L2-SVM like LinearSVC's, ``'hinge'`` the Weston-Watkins multiclass SVM.

    Parameters
    ----------
    loss : {'log_loss', 'hinge', 'squared_hinge'}, default='log_loss'
        Only ``'log_loss'`` gives ``predict_proba``; the hinge losses give scores only.
    alpha : float, default=1e-4
        L2 penalty ``0.5 * alpha * ||W||^2`` added to the mean loss. Biases are never penalised.
    l1 : float, default=0.0
        L1 penalty ``l1 * sum|W|`` added to the mean loss.
    weight_decay : float or None, default=None
        Decoupled weight decay applied by the optimiser at each step, ``W -= lr * weight_decay * W``.
        None keeps the optimiser's own (0 except for ``'adamw'``). Not available with L-BFGS.
    optimizer : str or optimiser object, default='adam'
        A name from ``featurepipe.heads.list_optimizers()`` or an object such as
        ``featurepipe.heads.optimizers.SGD(momentum=0.95)``; the object is copied, never changed.
    learning_rate : float or None, default=0.01
        Base learning rate; None keeps the optimiser's own. A convex linear problem takes larger
        steps than Adam's usual 1e-3.
    schedule : {'constant', 'step', 'cosine'} or schedule object, default='cosine'
        Learning-rate multiplier over the ``max_iter`` epochs (see ``schedules.py``). Cosine
        annealing ends training at learning rate 0, which settles the mini-batch noise.
    warmup_epochs : float, default=0
        Epochs of linear learning-rate warm-up before the schedule takes over.
    batch_size : int, default=256
        Mini-batch size, capped at the number of training samples. Ignored by L-BFGS.
    max_iter : int, default=50
        Maximum number of epochs (iterations for L-BFGS). Reaching it warns of non-convergence
        unless the schedule has annealed the learning rate to 0 by then.
    tol : float, default=1e-4
        Training stops when the monitored quantity (training loss, or validation accuracy with
        ``early_stopping``) has not improved by ``tol`` for ``n_iter_no_change`` epochs. For
        L-BFGS, the largest gradient component at convergence.
    n_iter_no_change : int, default=10
        Patience, in epochs, of the stopping rule above.
    shuffle : bool, default=True
        Reshuffle the training samples every epoch.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified), stop on its accuracy
        and keep the weights of the best epoch. Ignored by L-BFGS.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping``.
    precondition : bool, default=True
        With L-BFGS, optimise in variables that whiten the objective's curvature, estimated as
        ``alpha I + (c / n) [X 1]^T [X 1]`` over all the rows: tens of iterations instead of
        hundreds on correlated features, for one Gram matrix and one Cholesky factorisation
        (``n_features ** 2`` floats). Same minimum either way. Only L-BFGS uses it.
    warm_start : bool, default=False
        Start ``fit`` from the previous fit's (or ``partial_fit``'s) coefficients when the features and classes
        match. A mini-batch fit then runs with a fresh optimiser state and its whole schedule again, as
        scikit-learn's MLPClassifier does. An L-BFGS fit also reuses the preconditioner the previous fit built
        (kept on the head until the next fit: ``n_features ** 2`` floats) unless either fit goes through the
        row space: it only has to be close, so one built on other rows of the same features (a holdout
        search's, for the refit on every row) serves and its cost is saved.
    class_weight : None, 'balanced' or dict {label: weight}, default=None
        Multiplies each row's ``sample_weight`` by its class's weight: ``'balanced'`` is ``n_samples /
        (n_classes * count)`` from the labels of each fit (a search's fold fits weigh by the fold's own), a
        dict gives weights by label (1 for labels it leaves out; a label that is not a class is an error).
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and the validation split: equal seeds give bit-identical
        models.
    verbose : bool, default=False
        Show a progress bar over the epochs on stderr, with the training loss and accuracy (and
        the validation accuracy with ``early_stopping``) of the last epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (n_classes, n_features), float32
        One weight row per class, also for two classes.
    intercept_ : ndarray of shape (n_classes,), float32
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when ``X`` has string column names.
    n_iter_ : int
        Epochs run (L-BFGS iterations).
    loss_curve_ : list of float
        Training objective (mean loss plus penalties) per epoch.
    validation_scores_ : list of float or None
        Validation accuracy per epoch when ``early_stopping``, else None.
    history_ : dict of lists
        ``"loss"``, ``"train_accuracy"`` and ``"val_accuracy"`` per epoch, for plotting.
    """

    def __init__(
        self,
        loss="log_loss",
        *,
        alpha=1e-4,
        l1=0.0,
        weight_decay=None,
        optimizer="adam",
        learning_rate=0.01,
        schedule="cosine",
        warmup_epochs=0,
        batch_size=256,
        max_iter=50,
        tol=1e-4,
        n_iter_no_change=10,
        shuffle=True,
        early_stopping=False,
        validation_fraction=0.1,
        precondition=True,
        warm_start=False,
        class_weight=None,
        random_state=None,
        verbose=False,
    ):
        self.loss = loss
        self.alpha = alpha
        self.l1 = l1
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.precondition = precondition
        self.warm_start = warm_start
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    def _build_network(self, n_features, n_classes):
        return DenseNetwork([n_features, n_classes])

    _constraints = {**BaseHead._constraints, "precondition": Boolean()}
    _auto_from_python = "featurepipe.LinearClassifierCV(LinearClassifier(...), alphas='auto') cross-validates it"

    @staticmethod
    def auto_grid(stats):
        """The ``alpha`` grid that ``alpha: auto`` searches: six half-decades below and around
        ``mean ||x||^2 / n``, where a one-vs-rest SVM's C is 1 in units of the features' scale (largest
        first, so ties go to the stronger regularisation)."""
        scale = stats["mean_square_norm"] / stats["n_samples"]
        return {"alpha": [float(scale * 10 ** (k / 2)) for k in range(1, -5, -1)]}

    def _row_space(self, X, full_batch):
        return RowSpace(X) if applies(*X.shape, self.l1, full_batch) else None

    def _preconditioner(self, X, n_classes, space=None, weights=None):
        if not self.precondition:
            return None
        return self._build_preconditioner(X, n_classes, space, self.alpha, weights)

    def _build_preconditioner(self, X, n_classes, space, alpha, weights=None):
        """The Gram-matrix change of variables L-BFGS uses (see ``precondition``), built for ``alpha`` from the
        rows of ``X`` with their ``weights`` (``_weights``), or on the features of ``space`` (a ``RowSpace``:
        ``row_space_preconditioner``). One serves several fits on the same rows, even at other alphas: it only
        has to be close."""
        curvature = self._part("loss").curvature
        if space is not None:
            return row_space_preconditioner(space, n_classes, alpha=alpha, curvature=curvature, weights=weights)
        return build_preconditioner(X, n_classes, alpha=alpha, curvature=curvature, weights=weights)

    def _path_preconditioner(self, X, y, alphas, sample_weight=None):
        """The preconditioner one path of fits at ``alphas`` shares (built at their geometric mean), or None
        when this head's optimiser does not use one. With fewer rows than features it is built on their
        ``RowSpace``, which the fits then share too."""
        if not self._part("optimizer").full_batch or not self.precondition:
            return None
        middle = float(np.exp(np.mean(np.log(np.maximum(np.asarray(alphas, float), 1e-12)))))
        X = np.asarray(X, np.float32)
        return self._build_preconditioner(X, len(np.unique(y)), self._row_space(X, full_batch=True), middle,
                                          self._weights(X, y, sample_weight))

    def fit_path(self, X, y, alphas, sample_weight=None):
        """Fitted copies of this head, one per value of ``alpha``, in the order given, each fitted as
        ``fit(X, y, sample_weight)`` would.

        With L-BFGS and its preconditioner (shared by the path; with its ``RowSpace`` when there are fewer rows
        than features) on a matrix of more than ``_SMALL`` values the fits run together (``fit_together``):
        one pass over ``X`` per round evaluates every alpha still running, so the grid costs a small multiple
        of its slowest fit. Otherwise they are fitted from the largest alpha down -- on one BLAS thread for a
        small matrix, whose products gain nothing from more -- with L-BFGS each starting from the previous
        solution (the optimum does not depend on the start); a mini-batch fit starts afresh, as ``fit`` does,
        since where it ends depends on where it starts and on its schedule.
        """
        alphas = [float(a) for a in alphas]
        self.validate_params()
        preconditioner = self._path_preconditioner(X, y, alphas, sample_weight)
        distinct = sorted(set(alphas), reverse=True)
        models = [clone(self).set_params(alpha=alpha) for alpha in distinct]
        exact = [preconditioner.for_alpha(a) if hasattr(preconditioner, "for_alpha") else preconditioner
                 for a in distinct]
        if preconditioner is not None and np.size(X) > _SMALL:
            fit_together(models, X, y, preconditioners=exact, sample_weight=sample_weight)
        else:
            with threadpool_limits(1 if np.size(X) <= _SMALL else None, user_api="blas"):
                previous, warm = None, self._part("optimizer").full_batch
                for model, preconditioner in zip(models, exact):
                    start = Start.of(previous) if previous is not None and warm else None
                    previous = model._fit(X, y, start=start, preconditioner=preconditioner,
                                          sample_weight=sample_weight)
        fitted = dict(zip(distinct, models))
        return [fitted[a] for a in alphas]

    def solves_by_gram(self, n_samples, n_features) -> bool:
        """Whether a fit of ``n_samples`` rows of ``n_features`` goes through their row space (fewer rows than
        features, L2 only, L-BFGS with its preconditioner), so that a search can fit its folds on their Gram
        matrix (``fit_gram_path``) instead of their features."""
        return self.precondition and applies(n_samples, n_features, self.l1, self._part("optimizer").full_batch)

    def fit_by_gram(self, X, y, K, sample_weight=None):
        """``fit(X, y, sample_weight)`` through the row space of ``X`` built from its Gram matrix ``K = X X^T``,
        computed already (by a search, on the same rows in the same order), so it is not computed again; when
        ``solves_by_gram``."""
        space = RowSpace(X, K)
        weights = self._weights(X, y, sample_weight)
        preconditioner = self._build_preconditioner(X, len(np.unique(y)), space, self.alpha, weights)
        return self._fit(X, y, preconditioner=preconditioner, sample_weight=sample_weight)

    def fit_gram_path(self, space, y, alphas, start=None, sample_weight=None):
        """Fitted copies of this head, one per value of ``alpha`` (in the order given), on rows known by their
        ``GramSpace`` (built from their Gram matrix ``K = X X^T`` alone), weighted by ``sample_weight`` times
        ``class_weight`` as ``fit`` weighs them: the models are fitted on its features
        (``n_features_in_`` is its rank), so score other rows ``X'`` with ``model.predict(space.project(X'
        X^T))``. Each fit has its own exact preconditioner and starts from the solution at the next larger
        alpha (LIBLINEAR's warm-started C path); the largest starts from ``start`` when given (a ``Start``:
        e.g. another fold's solution taken into this space by ``GramSpace.transfer``).

        The folds of a cross-validated search share one Gram matrix of all their rows: a fold's fit then costs
        an ``n x n`` eigen-decomposition and iterations of ``n x r`` products, never a pass over ``d`` features.
        Products that small run fastest on one BLAS thread: OpenBLAS's threads cost more to wake than they
        save there, and L-BFGS-B's own vector work slows tenfold with them on a busy machine.
        """
        y = np.asarray(y)
        self.validate_params()
        base = row_space_preconditioner(space, len(np.unique(y)), alpha=max(alphas),
                                        curvature=self._part("loss").curvature,
                                        weights=self._weights(space.features, y, sample_weight))
        fitted = {}
        with threadpool_limits(1, user_api="blas"):
            for alpha in sorted(set(float(a) for a in alphas), reverse=True):
                model = clone(self).set_params(alpha=alpha)
                fitted[alpha] = model._fit(space.features, y, start=start, preconditioner=base.for_alpha(alpha),
                                           sample_weight=sample_weight)
                start = Start.of(model)
        return [fitted[float(a)] for a in alphas]

    def _network_params(self):
        return [self.coef_.T, self.intercept_]

    def _store_network_params(self, params):
        weights, self.intercept_ = params
        self.coef_ = np.ascontiguousarray(weights.T)
