"""The multi-layer perceptron head: ``f(x) = W2 act(W1 x + b1) + b2``, and deeper."""
from ..core import Integer, Part, Real, Satisfies, register
from .base import BaseHead
from .network import DenseNetwork


def _layer_sizes(value) -> list:
    return list(value) if hasattr(value, "__iter__") else [value]


@register("head", "mlp")
class MLPClassifier(BaseHead):
    """Fully connected network with any number and width of hidden layers.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Width of each hidden layer. With ``activation='maxout'`` each unit takes the maximum of
        two pre-activations, so the weight matrices are twice as wide.
    activation : {'relu', 'leaky_relu', 'sigmoid', 'tanh', 'elu', 'softplus', 'maxout'}, default='relu'
        Hidden-layer activation; weights start He-initialised for the ReLU family and maxout,
        Xavier-initialised for sigmoid and tanh.
    dropout : float, default=0.0
        Probability of zeroing a hidden unit at each training step (inverted dropout, so nothing
        changes at prediction time). Not available with L-BFGS.
    learning_rate : float or None, default=None
        Base learning rate; None keeps the optimiser's own (1e-3 for Adam).
    loss, alpha, l1, weight_decay, optimizer, schedule, warmup_epochs, batch_size, max_iter, tol,
    n_iter_no_change, shuffle, early_stopping, validation_fraction, warm_start, class_weight, random_state,
    verbose
        As for ``LinearClassifier``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coefs_ : list of ndarray, float32
        Weight matrices, ``coefs_[i]`` of shape ``(fan_in, fan_out)`` for layer ``i``.
    intercepts_ : list of ndarray, float32
        Bias vectors, ``intercepts_[i]`` of shape ``(fan_out,)``.
    n_features_in_, feature_names_in_, n_iter_, loss_curve_, validation_scores_, history_
        As for ``LinearClassifier``.
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        dropout=0.0,
        loss="log_loss",
        alpha=1e-4,
        l1=0.0,
        weight_decay=None,
        optimizer="adam",
        learning_rate=None,
        schedule="cosine",
        warmup_epochs=0,
        batch_size=256,
        max_iter=50,
        tol=1e-4,
        n_iter_no_change=10,
        shuffle=True,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        class_weight=None,
        random_state=None,
        verbose=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
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
        self.warm_start = warm_start
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    _constraints = {
        **BaseHead._constraints,
        "hidden_layer_sizes": Satisfies(
            lambda v: len(_layer_sizes(v)) > 0 and all(Integer(1).holds(w) for w in _layer_sizes(v)),
            "must be a positive integer or a list of them, at least one layer (LinearClassifier has none)"),
        "activation": Part("activation"),
        "dropout": Real(0, 1, high_open=True),
    }

    @staticmethod
    def auto_grid(stats):
        """The ``alpha`` grid that ``alpha: auto`` searches: a prior precision of 500, 50 and 5 on the weights,
        i.e. ``alpha = lambda / n``: less regularisation the more training rows."""
        return {"alpha": [lam / stats["n_samples"] for lam in (500.0, 50.0, 5.0)]}

    def _build_network(self, n_features, n_classes):
        return DenseNetwork(
            [n_features, *_layer_sizes(self.hidden_layer_sizes), n_classes], self._part("activation"),
            self.dropout
        )

    def _network_params(self):
        return [param for layer in zip(self.coefs_, self.intercepts_) for param in layer]

    def _store_network_params(self, params):
        self.coefs_ = params[0::2]
        self.intercepts_ = params[1::2]
