"""Classifiers trained on feature matrices, in numpy: a linear head and a multi-layer perceptron.

Both are scikit-learn estimators and registered stages. Losses, activations, optimisers and schedules
are registered stages of their own kinds, so any head takes any optimiser by name
(``featurepipe.list("optimizer")``) or as an object.
"""
from . import activations, lbfgs, losses, optimizers, schedules  # noqa: F401  (each registers its kind)
from .linear import LinearClassifier
from .mlp import MLPClassifier
from .persistence import load_model, save_model
from .training import DivergenceError

__all__ = ["DivergenceError", "LinearClassifier", "MLPClassifier", "load_model", "save_model"]
