"""Classifiers trained on feature matrices, in numpy: a linear head and a multi-layer perceptron.

Both are scikit-learn estimators. Losses, activations, optimisers and schedules are separate
modules, so any head takes any optimiser by name (``list_optimizers()``) or as an object.
"""
from .linear import LinearClassifier
from .mlp import MLPClassifier
from .optimizers import create_optimizer, list_optimizers
from .persistence import load_model, save_model
from .training import DivergenceError

__all__ = [
    "DivergenceError",
    "LinearClassifier",
    "MLPClassifier",
    "create_optimizer",
    "list_optimizers",
    "load_model",
    "save_model",
]
