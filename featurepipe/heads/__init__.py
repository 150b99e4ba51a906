"""Classifiers trained on feature matrices, in numpy: a linear head (and its cross-validated form,
``LinearClassifierCV``) and a multi-layer perceptron.

All three are scikit-learn estimators; the two heads are also registered stages (the CV form is not:
a config searches ``alpha: auto`` itself). Losses, activations, optimisers and schedules
are registered stages of their own kinds, so any head takes any optimiser by name
(``featurepipe.list("optimizer")``) or as an object.
"""
from . import activations, lbfgs, losses, optimizers, schedules  # noqa: F401  (each registers its kind)
from .cv import LinearClassifierCV
from .linear import LinearClassifier
from .mlp import MLPClassifier
from .persistence import load_model, save_model
from .training import DivergenceError

__all__ = ["DivergenceError", "LinearClassifier", "LinearClassifierCV", "MLPClassifier", "load_model", "save_model"]
