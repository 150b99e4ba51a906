"""Fitted heads on disk, in one checked format: the head bundle (the trained-head folder, ``head_folder.py``,
is built on it).

A head bundle is a folder of

- ``head.npz``: the head (arrays + JSON, no pickle; ``heads.persistence``);
- ``normalization.npz``: the fitted normalisation's arrays;
- ``calibration.npz``, for a head that gives scores but no probabilities (the hinge losses): the Platt
  scaling that turns its scores into probabilities (``calibration.py``);
- ``out_of_fold.npz``, for a head fitted by this featurepipe: its decision values on the validation rows of
  its search, at the chosen setting (``calibration.OutOfFold``: what late fusion learns its weights from);
- ``manifest.json``: what the head expects -- the feature dimension, the classes, the normalisation (spec,
  values, shapes), the head's input width, the training images' size, whether it is calibrated -- and the
  SHA-256 and size of every array file.

The store keeps each head it fitted as a bundle (``heads/<key>/``).

A folder is data, never orders, and one received from anyone is checked before use: every manifest field
by name, type and range, a fixed list of files each a regular file of its recorded size and SHA-256,
arrays without pickle, state names those of the registered stages, and a trial score. Anything else is
refused with one line (``TrainedFolderError``), never used. This module reads no feature pipeline: the
fit-and-score path (``fitting.py``) depends on it, and its code version must not follow the extractors'.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from .calibration import OutOfFold, PlattScaling
from .core import restore_state, stage_state
from .errors import TrainedFolderError
from .files import is_temporary, read_regular, write_json_atomic, write_npz_atomic
from .normalize import Normalization

FORMAT, VERSION = "featurepipe.trained", 2
FUSED_FORMAT = "featurepipe.fused"  # a late fusion of trained heads (``fused_folder.py``)
HEAD_FILES = ("head.npz", "normalization.npz")  # every bundle's
CALIBRATION_FILE = "calibration.npz"  # a calibrated bundle's
OUT_OF_FOLD_FILE = "out_of_fold.npz"  # a bundle with its search's out-of-fold decision values
MAX_MANIFEST_BYTES = 16 << 20
MAX_ARRAY_FILE_BYTES = 64 << 30

_Count = Annotated[int, Field(ge=1, le=2**31)]
_Side = Annotated[int, Field(ge=1, le=2**16)]
Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class StrictRecord(BaseModel):
    """A manifest section: known keys only, values of exactly the declared types."""

    model_config = ConfigDict(extra="forbid", strict=True)


class FileRecord(StrictRecord):
    sha256: Digest
    size: Annotated[int, Field(ge=0, le=MAX_ARRAY_FILE_BYTES)]


class NormalizationRecord(StrictRecord):
    spec: JsonValue
    values: dict[str, JsonValue]
    shapes: dict[str, list[Annotated[int, Field(ge=0, le=2**40)]]]


class BundleManifest(StrictRecord):
    """A head bundle's manifest: every field the loader reads, and nothing else."""

    FORMAT: ClassVar[str] = FORMAT
    format: Literal["featurepipe.trained"]
    version: Literal[2]
    feature_dim: _Count
    input_dim: _Count
    classes: Annotated[list[str | int], Field(min_length=1, max_length=1_000_000)]
    normalization: NormalizationRecord
    image_shape: Annotated[list[_Side], Field(min_length=2, max_length=3)] | None
    calibration: Literal["platt"] | None = None  # absent from folders written before calibration existed
    out_of_fold: Literal[True] | None = None  # absent from folders written before late fusion existed
    files: dict[str, FileRecord]

    def expected_files(self) -> set[str]:
        """The files a folder of this kind has, no more, no fewer."""
        return (set(HEAD_FILES) | ({CALIBRATION_FILE} if self.calibration else set())
                | ({OUT_OF_FOLD_FILE} if self.out_of_fold else set()))


@dataclass
class Trained:
    """A loaded bundle (its manifest as checked JSON); a trained folder's also has its feature pipeline,
    fitted state restored."""

    folder: Path
    model: object
    normalization: Normalization
    manifest: dict
    pipeline: object = None
    calibration: PlattScaling | None = None
    out_of_fold: OutOfFold | None = None

    def predict_proba(self, features) -> np.ndarray:
        """Class probabilities of rows of features (columns in ``model.classes_`` order): the head's own
        (softmax), else its Platt-scaled scores."""
        self.check_probabilities()
        X = self.normalization.transform(features)
        if hasattr(self.model, "predict_proba"):
            return self.model.predict_proba(X)
        return self.calibration.predict_proba(self.model.decision_function(X))

    def check_probabilities(self) -> None:
        """Refuse a head that gives neither: a hinge-loss head's folder written before calibration existed."""
        if not hasattr(self.model, "predict_proba") and self.calibration is None:
            fail(self.folder, "the head gives scores, not probabilities, and holds no calibration (written by "
                              "an older featurepipe); retrain it")


# -- writing --------------------------------------------------------------------------------------------
def save_bundle(folder, result, arrays: dict | None = None, **parts) -> Path:
    """Write the bundle of a ``fitting.HeadResult`` into ``folder``, with the array files ``arrays`` (file
    name -> arrays) beside the head's and ``parts`` in the manifest."""
    from .heads import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(result.model, folder / "head.npz")
    normalization_arrays, values = stage_state(result.normalization)
    written = {"normalization.npz": normalization_arrays, **(arrays or {})}
    if result.calibration is not None:
        written[CALIBRATION_FILE] = result.calibration.arrays()
    if result.out_of_fold is not None:
        written[OUT_OF_FOLD_FILE] = result.out_of_fold.arrays()
    for name, content in written.items():
        write_npz_atomic(folder / name, content)
    record = result.record
    write_json_atomic(folder / "manifest.json", {
        "format": FORMAT, "version": VERSION, **parts,
        "feature_dim": record["feature_dim"], "input_dim": record["input_dim"], "classes": record["classes"],
        "normalization": {"spec": record["chosen"]["normalize"], "values": values,
                          "shapes": {k: list(v.shape) for k, v in normalization_arrays.items()}},
        "image_shape": record.get("image_shape"),
        **({"calibration": "platt"} if result.calibration is not None else {}),
        **({"out_of_fold": True} if result.out_of_fold is not None else {}),
        "files": {name: file_record((folder / name).read_bytes()) for name in ("head.npz", *written)},
    })
    return folder


def file_record(data: bytes) -> dict:
    """A manifest's record of a file's bytes: their SHA-256 and size."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


# -- reading --------------------------------------------------------------------------------------------
def fail(folder, message):
    """Refuse ``folder``: one line naming it and what is wrong."""
    raise TrainedFolderError(f"{folder}: {message}")


def damaged(folder, error):
    """Refuse ``folder`` whose files could not be turned into a head: the error's first line."""
    text = str(error).splitlines()[0] if str(error) else ""
    fail(folder, f"damaged or edited ({type(error).__name__}: {text})")


def load_bundle(folder) -> Trained:
    """Read and check a head bundle; ``TrainedFolderError`` with one line on any inconsistency."""
    folder = Path(folder)
    manifest = read_manifest(folder, BundleManifest)
    return assemble(folder, manifest, read_files(folder, manifest))


def read_manifest(folder: Path, schema: type[StrictRecord]) -> StrictRecord:
    """The manifest of ``folder``, every field checked against ``schema``."""
    if is_temporary(folder):
        fail(folder, "a temporary folder (a write in progress, or left by one that was killed), not a head")
    try:
        text = read_regular(folder / "manifest.json", at_most=MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        fail(folder, "not a trained head (no manifest.json; `featurepipe train` writes one)")
    except (OSError, ValueError) as e:
        fail(folder, _reason("manifest.json", e))
    try:
        tree = json.loads(text)
    except ValueError as e:
        fail(folder, f"manifest.json is not JSON ({e})")
    if isinstance(tree, dict) and tree.get("format") == FORMAT and tree.get("version") == 1:
        fail(folder, "manifest.json is of version 1, which held run settings; retrain the head with this featurepipe")
    if isinstance(tree, dict) and tree.get("format") == FUSED_FORMAT != schema.FORMAT:
        fail(folder, f"a late fusion of several heads: `featurepipe compare` takes it whole; predict and evaluate take "
                     f"one head, such as one of the folders in {folder / 'members'}")
    try:
        return schema.model_validate(tree)
    except ValidationError as e:
        fail(folder, f"manifest.json: {_first_error(e)}")


def _reason(name: str, error: Exception) -> str:
    """Why the file ``name`` could not be read, in one line (``read_regular``'s messages name it already)."""
    return f"{name}: {error.strerror}" if isinstance(error, OSError) and error.strerror else str(error)


def _first_error(error: ValidationError) -> str:
    e = error.errors()[0]
    where = ".".join(str(p) for p in e["loc"])
    return f"{where}: {e['msg']}" if where else e["msg"]


def read_files(folder: Path, manifest: BundleManifest) -> dict[str, dict]:
    """The arrays of every file the manifest lists -- exactly those its kind of folder has --, each read
    once its type, size and SHA-256 match."""
    listed, expected = set(manifest.files), manifest.expected_files()
    for name in sorted(expected - listed):
        fail(folder, f"manifest.json records no SHA-256 for {name}")
    for name in sorted(listed - expected):
        fail(folder, f"manifest.json lists {name!r}, which is not a file of a trained head")
    return {name: _arrays(folder, name, record) for name, record in sorted(manifest.files.items())}


def _arrays(folder: Path, name: str, record: FileRecord) -> dict:
    try:
        data = read_regular(folder / name, record.size)
    except FileNotFoundError:
        fail(folder, f"{name} is missing")
    except (OSError, ValueError) as e:
        fail(folder, _reason(name, e))
    if hashlib.sha256(data).hexdigest() != record.sha256:
        fail(folder, f"{name} was changed after training (its SHA-256 differs from the manifest's)")
    try:
        return _npz(data)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        damaged(folder, e)


def _npz(data: bytes) -> dict:
    """The arrays of an npz file's bytes, refused when they would unpack to more than the file holds (npz
    files are written uncompressed) or need pickle."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(member.file_size for member in archive.infolist()) > len(data):
            raise ValueError("its arrays unpack to more bytes than the file holds")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def assemble(folder: Path, manifest: BundleManifest, files: dict) -> Trained:
    """The head and normalisation from their checked arrays, checked against each other and the manifest."""
    from .heads.persistence import model_from_arrays

    record = manifest.normalization
    try:
        model = model_from_arrays(files["head.npz"], "head.npz")
        arrays = files["normalization.npz"]
        normalization = Normalization.from_spec(record.spec)
        restore_state(normalization, arrays, record.values, None, "the normalisation's state")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        damaged(folder, e)
    shapes = {k: list(v.shape) for k, v in arrays.items()}
    if shapes != record.shapes:
        fail(folder, f"normalization.npz has arrays {shapes}, the manifest records {record.shapes}")
    if normalization.n_outputs(manifest.feature_dim) != manifest.input_dim or model.n_features_in_ != manifest.input_dim:
        fail(folder, f"the head takes {model.n_features_in_} inputs; the manifest records {manifest.input_dim} "
                      f"after normalising {manifest.feature_dim} features")
    _check_normalization_widths(folder, normalization, manifest.feature_dim)
    if [str(c) for c in model.classes_] != [str(c) for c in manifest.classes]:
        fail(folder, f"the head's classes {list(map(str, model.classes_))} differ from the manifest's {manifest.classes}")
    if not all(np.isfinite(p).all() for p in model._network_params()) or not all(
            np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f"):
        fail(folder, "the head or its normalisation holds non-finite numbers")
    _trial(folder, model, normalization, manifest.feature_dim)
    return Trained(folder, model, normalization, manifest.model_dump(mode="json"),
                   calibration=_checked(folder, files, CALIBRATION_FILE, PlattScaling, len(manifest.classes)),
                   out_of_fold=_checked(folder, files, OUT_OF_FOLD_FILE, OutOfFold, len(manifest.classes)))


def _checked(folder, files: dict, name: str, kind, n_classes: int):
    """The ``kind`` (``PlattScaling``, ``OutOfFold``) stored in file ``name``, checked by its ``from_arrays``
    (names, shapes, finite values), or None without that file."""
    if name not in files:
        return None
    try:
        return kind.from_arrays(files[name], n_classes)
    except ValueError as e:
        fail(folder, f"{name}: {e}")


def _trial(folder, model, normalization, width: int) -> None:
    """Score one row of zeros: state that passed every check but cannot compute (a value of the wrong type)
    is refused here, not in the middle of a run."""
    try:
        model.decision_function(normalization.transform(np.zeros((1, width), np.float32)))
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        damaged(folder, e)


def _check_normalization_widths(folder, normalization, width: int) -> None:
    """Each learnt array spans the width its step receives."""
    for i, step in enumerate(normalization.steps):
        problem = step.check_state(width)
        if problem:
            fail(folder, f"normalization step {i} ({step.name}) {problem}")
        width = step.n_outputs(width)
