"""Fitted heads on disk, in one checked format: the head bundle, and the trained-head folder built on it.

A head bundle is a folder of

- ``head.npz``: the head (arrays + JSON, no pickle; ``heads.persistence``);
- ``normalization.npz``: the fitted normalisation's arrays;
- ``manifest.json``: what the head expects -- the feature dimension, the classes, the normalisation (spec,
  values, shapes), the head's input width, the training images' size -- and the SHA-256 of every array file.

The store keeps each head it fitted as a bundle (``heads/<key>/``). A trained-head folder, what ``featurepipe
train`` writes and ``evaluate`` / ``predict`` read (``<output>/<head name>/``), is a bundle whose manifest
also holds the run's config with resolved paths (so the same features can be recomputed from anywhere) and
the feature pipeline's fingerprint, with ``pipeline.npz`` (data-driven pipelines: the fitted pipeline's
arrays, hashed too), ``metrics.json`` and PNG figures beside it.

Loading checks everything the manifest records against the files, and the features the head is applied
to against the manifest: an edited or damaged folder is refused with one line, never used.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config
from .core import restore_state, stage_state
from .files import read_json, read_npz, write_json_atomic, write_npz_atomic
from .normalize import Normalization

FORMAT, VERSION = "featurepipe.trained", 1
_HEAD = ("head.npz", "normalization.npz")  # every bundle's
_ARRAYS = (*_HEAD, "pipeline.npz")


class TrainedFolderError(ValueError):
    """A trained-head folder that is incomplete, edited or does not match what it is applied to."""


@dataclass
class Trained:
    """A loaded bundle; a trained folder's also has its run's config and, for a data-driven pipeline, the
    pipeline's state (arrays, values, fingerprint)."""

    folder: Path
    model: object
    normalization: Normalization
    manifest: dict
    config: Config | None = None
    pipeline_state: tuple | None = None


def save_bundle(folder, result, arrays: dict | None = None, **parts) -> Path:
    """Write the bundle of a ``fitting.HeadResult`` into ``folder``, with the array files ``arrays`` (file
    name -> arrays) beside the head's and ``parts`` in the manifest."""
    from .heads import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(result.model, folder / "head.npz")
    normalization_arrays, values = stage_state(result.normalization)
    for name, content in {"normalization.npz": normalization_arrays, **(arrays or {})}.items():
        write_npz_atomic(folder / name, content)
    record = result.record
    write_json_atomic(folder / "manifest.json", {
        "format": FORMAT, "version": VERSION, **parts,
        "feature_dim": record["feature_dim"], "input_dim": record["input_dim"], "classes": record["classes"],
        "normalization": {"spec": record["chosen"]["normalize"], "values": values,
                          "shapes": {k: list(v.shape) for k, v in normalization_arrays.items()}},
        "image_shape": record.get("image_shape"),
        "files": {name: _sha256(folder / name) for name in _ARRAYS if (folder / name).exists()},
    })
    return folder


def save_trained(folder, result, config: Config, pipeline) -> Path:
    """Write the folder of a ``fitting.HeadResult`` trained on features of ``pipeline`` under ``config``: its
    bundle with the config and the pipeline (metrics and figures are the caller's)."""
    arrays, values = stage_state(pipeline)
    fitted = bool(arrays or values)
    return save_bundle(folder, result, {"pipeline.npz": arrays} if fitted else {}, config=config.model_dump(),
                       pipeline={"fingerprint": pipeline.fingerprint(), "values": values, "fitted": fitted})


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fail(folder, message):
    raise TrainedFolderError(f"{folder}: {message}")


def load_bundle(folder) -> Trained:
    """Read and check a head bundle; ``TrainedFolderError`` with one line on any inconsistency."""
    from .heads import load_model

    folder = Path(folder)
    manifest = _manifest(folder)
    try:
        model = load_model(folder / "head.npz")
        arrays = read_npz(folder / "normalization.npz")
        normalization = Normalization.from_spec(manifest["normalization"]["spec"])
        restore_state(normalization, arrays, manifest["normalization"]["values"], None, "normalization.npz")
    except (OSError, ValueError, KeyError, TypeError, EOFError, AttributeError) as e:
        _damaged(folder, e)
    shapes = {k: list(v.shape) for k, v in arrays.items()}
    if shapes != manifest["normalization"]["shapes"]:
        _fail(folder, f"normalization.npz has arrays {shapes}, the manifest records {manifest['normalization']['shapes']}")
    if normalization.n_outputs(manifest["feature_dim"]) != manifest["input_dim"] or model.n_features_in_ != manifest["input_dim"]:
        _fail(folder, f"the head takes {model.n_features_in_} inputs; the manifest records {manifest['input_dim']} "
                      f"after normalising {manifest['feature_dim']} features")
    width = manifest["feature_dim"]
    for i, step in enumerate(normalization.steps):  # each learnt array spans the width its step receives
        for name, array in step.fitted_state().items():
            if isinstance(array, np.ndarray) and array.ndim and array.shape[0] != width:
                _fail(folder, f"normalization step {i} ({step.name}) has {name} for {array.shape[0]} features, "
                              f"it receives {width}")
        width = step.n_outputs(width)
    if [str(c) for c in model.classes_] != [str(c) for c in manifest["classes"]]:
        _fail(folder, f"the head's classes {list(map(str, model.classes_))} differ from the manifest's {manifest['classes']}")
    if not all(np.isfinite(p).all() for p in model._network_params()) or not all(
            np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f"):
        _fail(folder, "the head or its normalisation holds non-finite numbers")
    return Trained(folder, model, normalization, manifest)


def load_trained(folder) -> Trained:
    """Read and check a trained-head folder (``load_bundle``, then its config and pipeline state)."""
    trained = load_bundle(folder)
    manifest = trained.manifest
    try:
        trained.config = Config.model_validate(manifest["config"])
        if manifest["pipeline"]["fitted"]:
            trained.pipeline_state = (read_npz(trained.folder / "pipeline.npz"), manifest["pipeline"]["values"],
                                      manifest["pipeline"]["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
        _damaged(trained.folder, e)
    return trained


def _manifest(folder: Path) -> dict:
    """The manifest of ``folder``, once every file it lists -- the head's two at least -- has its SHA-256."""
    if not (folder / "manifest.json").exists():
        _fail(folder, "not a trained head (no manifest.json; `featurepipe train` writes one)")
    try:
        manifest = read_json(folder / "manifest.json")
    except (OSError, ValueError) as e:
        _fail(folder, f"manifest.json is unreadable ({e})")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        _fail(folder, f"manifest.json is not a trained-head manifest of version {VERSION}")
    files = dict(manifest.get("files") or {})
    for name in sorted(set(_HEAD) - set(files)):
        _fail(folder, f"manifest.json records no SHA-256 for {name}")
    for name, digest in files.items():
        if name not in _ARRAYS or not (folder / name).exists():
            _fail(folder, f"{name} is missing")
        if _sha256(folder / name) != digest:
            _fail(folder, f"{name} was changed after training (its SHA-256 differs from the manifest's)")
    return manifest


def _damaged(folder, error):
    text = str(error).splitlines()[0] if str(error) else ""
    _fail(folder, f"damaged or edited ({type(error).__name__}: {text})")


def check_features(trained: Trained, pipeline, dimension: int) -> None:
    """Refuse features that are not those the head was trained on: other pipeline, other width."""
    if pipeline.fingerprint() != trained.manifest["pipeline"]["fingerprint"]:
        _fail(trained.folder, "the feature pipeline differs from the one the head was trained on "
                              "(config.pipeline edited, or other code/library versions); retrain the head")
    if dimension != trained.manifest["feature_dim"]:
        _fail(trained.folder, f"the features have {dimension} values, the head was trained on "
                              f"{trained.manifest['feature_dim']}")
