"""Saving fitted heads as plain arrays plus JSON, never pickle.

A head is one ``.npz`` file (read with ``allow_pickle=False``) holding the weights, the classes and
a JSON document under ``"metadata"``: the format version, the estimator class, its parameters,
and the training record. Any numpy user can read it back without featurepipe.
"""
import json
import os
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._version import __version__
from ..core import REGISTRY
from . import activations, lbfgs, linear, losses, mlp, optimizers, schedules  # noqa: F401  (they register what this module saves)

FORMAT = "featurepipe.head"
FORMAT_VERSION = 1


def _classes(*kinds) -> dict:
    """Registered classes of ``kinds`` by class name: what a head file may name."""
    return {f.__name__: f for kind in kinds for f in REGISTRY.factories(kind).values() if isinstance(f, type)}


def _estimators() -> dict:
    return _classes("head")


def _param_objects() -> dict:
    """Classes of parameter values that are stage objects (losses, activations, optimisers, schedules): saved
    by class name and parameters."""
    return _classes("loss", "activation", "optimizer", "schedule")


def save_model(model, path):
    """Write the fitted ``model`` to ``path`` (an ``.npz`` file), replacing it atomically."""
    check_is_fitted(model)
    name = type(model).__name__
    if name not in _estimators():
        raise TypeError(f"save_model saves {sorted(_estimators())}, not {name}")
    params = model._network_params()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "featurepipe_version": __version__,
        "estimator": name,
        "params": {key: _encode(key, value) for key, value in model.get_params(deep=False).items()},
        "n_features_in": model.n_features_in_,
        "n_params": len(params),
        "n_iter": model.n_iter_,
        "history": model.history_,
    }
    arrays = {f"param_{i}": param for i, param in enumerate(params)}
    arrays["classes"] = _plain_array(model.classes_, "classes_")
    if hasattr(model, "feature_names_in_"):
        arrays["feature_names_in"] = _plain_array(model.feature_names_in_, "feature_names_in_")
    arrays["metadata"] = np.array(json.dumps(metadata))

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:
        np.savez(file, **arrays)
    os.replace(partial, path)


def load_model(path):
    """Read a head written by ``save_model``; it predicts exactly as the saved one did."""
    with np.load(path, allow_pickle=False) as data:
        return model_from_arrays(data, path)


def model_from_arrays(data, path):
    """The head held by the arrays of a file written by ``save_model`` (``path`` names it in errors)."""
    if "metadata" not in data:
        raise ValueError(f"{path} is not a featurepipe head file: it has no metadata")
    metadata = json.loads(data["metadata"].item())
    _check_format(path, metadata)
    model = _estimators()[metadata["estimator"]](
        **{key: _decode(value) for key, value in metadata["params"].items()}
    )
    model.validate_params()  # a stranger's file: every parameter by the head's own constraints, as fit checks them
    model.classes_ = data["classes"]
    model.n_features_in_ = metadata["n_features_in"]
    if "feature_names_in" in data:
        model.feature_names_in_ = data["feature_names_in"].astype(object)
    model._store_network_params([data[f"param_{i}"] for i in range(metadata["n_params"])])
    model.n_iter_ = metadata["n_iter"]
    model.history_ = metadata["history"]
    model.loss_curve_ = model.history_["loss"]
    model.validation_scores_ = model.history_["val_accuracy"] or None
    return model


def _check_format(path, metadata):
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a featurepipe head file (format {metadata.get('format')!r})")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path} has an unknown head format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written in head format version {version} by featurepipe "
            f"{metadata.get('featurepipe_version')}; this featurepipe ({__version__}) reads versions "
            f"up to {FORMAT_VERSION}: upgrade featurepipe to load it"
        )
    if metadata.get("estimator") not in _estimators():
        raise ValueError(f"{path} holds an unknown estimator {metadata.get('estimator')!r}")


def _encode(name, value):
    """A JSON value for the estimator parameter ``name``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_encode(name, item) for item in value]
    if isinstance(value, dict):  # class_weight {label: weight}: pairs, as JSON keys would turn labels into text
        return {"pairs": [[_encode(name, label), _encode(name, weight)] for label, weight in value.items()]}
    if type(value).__name__ in _param_objects():
        settings = {key: _encode(name, item) for key, item in value.get_params(deep=False).items()}
        return {"class": type(value).__name__, "params": settings}
    if name == "random_state":
        # A RandomState instance is state, not a setting; a loaded model does not train again.
        return None
    raise TypeError(
        f"cannot save parameter {name}={value!r}: only numbers, strings, tuples and featurepipe "
        "loss, activation, optimiser and schedule objects are saved"
    )


def _decode(value):
    if isinstance(value, list):
        return tuple(_decode(item) for item in value)
    if isinstance(value, dict) and "pairs" in value:
        return {label: weight for label, weight in value["pairs"]}
    if isinstance(value, dict):
        settings = {key: _decode(item) for key, item in value["params"].items()}
        return _param_objects()[value["class"]](**settings)
    return value


def _plain_array(values, name):
    """``values`` as an array numpy can save without pickle (strings as unicode, not objects)."""
    array = np.asarray(values)
    if array.dtype == object:
        array = np.array(array.tolist())
    if array.dtype == object:
        raise TypeError(f"cannot save {name} of mixed or non-array types without pickle: {values!r}")
    return array
