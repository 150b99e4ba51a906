"""The trained-head folder: what ``featurepipe train`` writes and ``evaluate`` / ``predict`` read
(``<output>/<head name>/``).

It is a head bundle (``trained.py``) whose manifest also holds what the features are computed from -- the
data set it was trained on (resolved paths: ``evaluate`` finds its data from anywhere), the feature
pipeline (spec, fitted values, fingerprint) and the training settings -- with ``pipeline.npz`` (a
data-driven pipeline's fitted arrays) and ``metrics.json`` and PNG figures beside it.

It holds no run settings: backend, scheduler, cache folder and jobs come from the invocation
(``config``), so a folder from anyone cannot choose where featurepipe connects or writes.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from .config import Config, DatasetConfig, PipelineConfig, RunConfig, TrainConfig
from .core import restore_state, stage_state
from .trained import (BundleManifest, Digest, StrictRecord, Trained, assemble, damaged, fail,
                      read_files, read_manifest, save_bundle)

PIPELINE_FILE = "pipeline.npz"  # when the pipeline learnt from data


class PipelineRecord(StrictRecord):
    spec: PipelineConfig
    fingerprint: Digest
    values: dict[str, JsonValue]
    fitted: bool


class TrainedManifest(BundleManifest):
    """A trained folder's manifest: the bundle's, with what the features are computed from (data, not
    run settings)."""

    dataset: DatasetConfig
    pipeline: PipelineRecord
    train: TrainConfig

    def expected_files(self) -> set[str]:
        return super().expected_files() | ({PIPELINE_FILE} if self.pipeline.fitted else set())


def save_trained(folder, result, config: Config, pipeline) -> Path:
    """Write the folder of a ``fitting.HeadResult`` trained on features of ``pipeline`` under ``config``: its
    bundle with the data set, pipeline and training settings, never the run settings (metrics and figures
    are the caller's)."""
    arrays, values = stage_state(pipeline)
    fitted = bool(arrays or values)
    return save_bundle(folder, result, {PIPELINE_FILE: arrays} if fitted else {},
                       dataset=config.dataset.model_dump(), train=config.train.model_dump(),
                       pipeline={"spec": config.pipeline.model_dump(), "fingerprint": pipeline.fingerprint(),
                                 "values": values, "fitted": fitted})


def load_trained(folder) -> Trained:
    """Read and check a trained-head folder: the bundle, then its pipeline with its fitted state."""
    folder = Path(folder)
    manifest = read_manifest(folder, TrainedManifest)
    files = read_files(folder, manifest)
    trained = assemble(folder, manifest, files)
    trained.pipeline = _pipeline(folder, manifest.pipeline, files.get(PIPELINE_FILE, {}))
    return trained


def config(trained: Trained, run: RunConfig, data=None) -> Config:
    """The config to compute a trained head's features with: its data set (``data`` replaces the recorded
    path), pipeline and training settings, run as the caller says (``run``), never as the folder says."""
    dataset = trained.manifest["dataset"]
    if data is not None:
        dataset = {**dataset, "path": str(Path(data).expanduser().resolve()), "builtin": None}
    return Config(dataset=dataset, pipeline=trained.manifest["pipeline"]["spec"], train=trained.manifest["train"],
                  run=run)


def _pipeline(folder: Path, record: PipelineRecord, arrays: dict):
    """The feature pipeline the manifest describes, with its fitted state, when it has the recorded
    fingerprint (same description, state and code)."""
    from .pipeline import build_pipeline

    try:
        pipeline = build_pipeline(record.spec.model_dump())
        restore_state(pipeline, arrays, record.values, None, "the pipeline's state")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        damaged(folder, e)
    _check_fingerprint(folder, pipeline, record.fingerprint)
    return pipeline


def _check_fingerprint(folder, pipeline, recorded: str) -> None:
    if pipeline.fingerprint() != recorded:
        fail(folder, "the feature pipeline differs from the one the head was trained on "
                     "(pipeline edited, or other code/library versions); retrain the head")


def check_features(trained: Trained, pipeline, dimension: int) -> None:
    """Refuse features that are not those the head was trained on: other pipeline, other width."""
    _check_fingerprint(trained.folder, pipeline, trained.manifest["pipeline"]["fingerprint"])
    if dimension != trained.manifest["feature_dim"]:
        fail(trained.folder, f"the features have {dimension} values, the head was trained on "
                             f"{trained.manifest['feature_dim']}")
