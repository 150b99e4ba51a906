"""The trained-head folder: what ``featurepipe train`` writes and ``evaluate`` / ``predict`` read.

``<output>/<head name>/``:

- ``head.npz``: the head (arrays + JSON, no pickle; ``heads.persistence``);
- ``normalization.npz``: the fitted normalisation's arrays;
- ``manifest.json``: what the head expects -- the feature pipeline's fingerprint and dimension, the
  classes, the normalisation (spec, values, shapes), the head's input width, the training images' size
  and the SHA-256 of every file above -- and the run's config with resolved paths, so the same
  features can be recomputed from anywhere;
- ``pipeline.npz`` (data-driven pipelines): the fitted pipeline's arrays;
- ``metrics.json`` and PNG figures.

Loading checks everything the manifest records against the files, and the features the head is applied
to against the manifest: an edited or damaged folder is refused with one line, never used.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core import restore_state, stage_state
from .files import read_json, read_npz, write_json_atomic, write_npz_atomic
from .normalize import Normalization

FORMAT, VERSION = "featurepipe.trained", 1
_ARRAYS = ("head.npz", "normalization.npz", "pipeline.npz")


class TrainedFolderError(ValueError):
    """A trained-head folder that is incomplete, edited or does not match what it is applied to."""


@dataclass
class Trained:
    folder: Path
    config: dict
    model: object
    normalization: Normalization
    manifest: dict
    pipeline_state: tuple | None  # (arrays, values, fingerprint) of a data-driven pipeline


def save_trained(folder, result, config: dict, pipeline) -> Path:
    """Write the folder of a ``fitting.HeadResult`` trained on features of ``pipeline`` under ``config``."""
    from .heads import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(result.model, folder / "head.npz")
    arrays, values = stage_state(result.normalization)
    write_npz_atomic(folder / "normalization.npz", arrays)
    pipeline_arrays, pipeline_values = stage_state(pipeline)
    if pipeline_arrays or pipeline_values:
        write_npz_atomic(folder / "pipeline.npz", pipeline_arrays)
    record = result.record
    files = {name: _sha256(folder / name) for name in _ARRAYS if (folder / name).exists()}
    write_json_atomic(folder / "manifest.json", {
        "format": FORMAT, "version": VERSION, "config": config,
        "pipeline": {"fingerprint": pipeline.fingerprint(), "values": pipeline_values,
                     "fitted": bool(pipeline_arrays or pipeline_values)},
        "feature_dim": record["feature_dim"], "input_dim": record["input_dim"], "classes": record["classes"],
        "normalization": {"spec": record["chosen"]["normalize"], "values": values,
                          "shapes": {k: list(v.shape) for k, v in arrays.items()}},
        "image_shape": record.get("image_shape"), "files": files,
    })
    return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fail(folder, message):
    raise TrainedFolderError(f"{folder}: {message}")


def load_trained(folder) -> Trained:
    """Read and check a trained-head folder; ``TrainedFolderError`` with one line on any inconsistency."""
    from .heads import load_model

    folder = Path(folder)
    if not (folder / "manifest.json").exists():
        _fail(folder, "not a trained head (no manifest.json; `featurepipe train` writes one)")
    try:
        manifest = read_json(folder / "manifest.json")
    except (OSError, ValueError) as e:
        _fail(folder, f"manifest.json is unreadable ({e})")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        _fail(folder, f"manifest.json is not a trained-head manifest of version {VERSION}")
    for name, digest in dict(manifest.get("files") or {}).items():
        if name not in _ARRAYS or not (folder / name).exists():
            _fail(folder, f"{name} is missing")
        if _sha256(folder / name) != digest:
            _fail(folder, f"{name} was changed after training (its SHA-256 differs from the manifest's)")
    try:
        from .config import Config

        Config.model_validate(manifest["config"])
        model = load_model(folder / "head.npz")
        arrays = read_npz(folder / "normalization.npz")
        normalization = Normalization.from_spec(manifest["normalization"]["spec"])
        restore_state(normalization, arrays, manifest["normalization"]["values"], None, "normalization.npz")
        pipeline_state = None
        if manifest["pipeline"]["fitted"]:
            pipeline_state = (read_npz(folder / "pipeline.npz"), manifest["pipeline"]["values"],
                              manifest["pipeline"]["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError, EOFError, AttributeError) as e:
        _fail(folder, f"damaged or edited ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
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
    return Trained(folder, manifest["config"], model, normalization, manifest, pipeline_state)


def check_features(trained: Trained, pipeline, dimension: int) -> None:
    """Refuse features that are not those the head was trained on: other pipeline, other width."""
    if pipeline.fingerprint() != trained.manifest["pipeline"]["fingerprint"]:
        _fail(trained.folder, "the feature pipeline differs from the one the head was trained on "
                              "(config.pipeline edited, or other code/library versions); retrain the head")
    if dimension != trained.manifest["feature_dim"]:
        _fail(trained.folder, f"the features have {dimension} values, the head was trained on "
                              f"{trained.manifest['feature_dim']}")
