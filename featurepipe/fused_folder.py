"""The late-fusion head folder: what ``featurepipe train`` writes for a ``late`` head (``fusion.py``) and
``compare`` reads (``<output>/<head name>/``).

It holds ``members/<name>/``, each member's trained-head folder (``head_folder.py``: head, pipeline and
data set, checked as any); ``fusion.npz``, the members' weights; and ``manifest.json``: the members in
order with the SHA-256 of each one's manifest (which holds those of its files), the classes, and the
SHA-256 and size of ``fusion.npz``. Like any head folder it is data, read by a fixed schema: members by
name (no path), sizes and hashes checked, weights finite, non-negative and summing to 1, one per member.
``predict`` and ``evaluate`` take one head: they refuse this folder in one line naming a member to use.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from .files import read_regular, write_json_atomic, write_npz_atomic
from .fusion import MAX_MEMBERS
from .head_folder import load_trained
from .trained import (FUSED_FORMAT, MAX_MANIFEST_BYTES, Digest, FileRecord, StrictRecord, Trained, fail,
                      file_record, read_files, read_manifest)

FUSION_FILE = "fusion.npz"
MEMBERS = "members"
#: How far from 1 the stored weights may sum (they are multiples of ``fusion.WEIGHT_STEP``, in float64).
SUM_TOLERANCE = 1e-6


class MemberRecord(StrictRecord):
    name: Annotated[str, Field(pattern=r"^[^/\x00]{1,255}$")]
    manifest_sha256: Digest

    @field_validator("name")
    @classmethod
    def _one_folder(cls, name):
        if name in (".", ".."):
            raise ValueError("must name a folder of members/")
        return name


class FusedManifest(StrictRecord):
    """A late-fusion folder's manifest: every field the loader reads, and nothing else."""

    FORMAT: ClassVar[str] = FUSED_FORMAT
    format: Literal["featurepipe.fused"]
    version: Literal[1]
    members: Annotated[list[MemberRecord], Field(min_length=2, max_length=MAX_MEMBERS)]
    classes: Annotated[list[str | int], Field(min_length=1, max_length=1_000_000)]
    files: dict[str, FileRecord]

    def expected_files(self) -> set[str]:
        return {FUSION_FILE}


@dataclass
class Fused:
    """A loaded late-fusion folder: its members' trained heads (in order, each with its folder) and weights."""

    folder: Path
    members: list[Trained]
    weights: np.ndarray


def save_fused(folder, fused, member_folders: list[Path]) -> Path:
    """Write the folder of a ``fusion.FusedResult`` whose members' trained-head folders are ``member_folders``
    (in the members' order; each copied under ``members/`` by its folder's name: its manifest and the files
    it lists)."""
    folder = Path(folder)
    records = []
    for source in map(Path, member_folders):
        target = folder / MEMBERS / source.name
        target.mkdir(parents=True)
        manifest = json.loads((source / "manifest.json").read_text())
        for name in ["manifest.json", *manifest["files"]]:
            shutil.copyfile(source / name, target / name)
        records.append({"name": source.name,
                        "manifest_sha256": file_record((target / "manifest.json").read_bytes())["sha256"]})
    write_npz_atomic(folder / FUSION_FILE, {"weights": np.asarray(fused.weights, np.float64)})
    write_json_atomic(folder / "manifest.json", {
        "format": FUSED_FORMAT, "version": 1, "members": records, "classes": fused.record["classes"],
        "files": {FUSION_FILE: file_record((folder / FUSION_FILE).read_bytes())}})
    return folder


def is_fused(folder) -> bool:
    """Whether ``folder``'s manifest says it is a late fusion (an unreadable one is not: its reader says why)."""
    try:
        return json.loads(read_regular(Path(folder) / "manifest.json", at_most=MAX_MANIFEST_BYTES)).get(
            "format") == FUSED_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load_fused(folder) -> Fused:
    """Read and check a late-fusion folder and each of its members; ``TrainedFolderError`` with one line on
    any inconsistency."""
    folder = Path(folder)
    manifest = read_manifest(folder, FusedManifest)
    weights = _weights(folder, read_files(folder, manifest)[FUSION_FILE], len(manifest.members))
    names = [m.name for m in manifest.members]
    if len(set(names)) != len(names):
        fail(folder, "manifest.json names a member twice")
    # A stranger's members/ is read no further than one entry past what a fusion may hold.
    found = (sorted(p.name for p in itertools.islice((folder / MEMBERS).iterdir(), MAX_MEMBERS + 1))
             if _real_folder(folder / MEMBERS) else None)
    if found != sorted(names):
        fail(folder, f"{MEMBERS}/ holds {found}, the manifest lists {sorted(names)}")
    members = []
    for record in manifest.members:
        member = folder / MEMBERS / record.name
        if not _real_folder(member):
            fail(folder, f"{MEMBERS}/{record.name} is not a folder")
        try:
            text = read_regular(member / "manifest.json", at_most=MAX_MANIFEST_BYTES)
        except (OSError, ValueError) as e:
            fail(folder, f"{MEMBERS}/{record.name}/manifest.json: {getattr(e, 'strerror', None) or e}")
        if hashlib.sha256(text).hexdigest() != record.manifest_sha256:
            fail(folder, f"{MEMBERS}/{record.name} was changed after training (its manifest's SHA-256 differs)")
        trained = load_trained(member)
        if [str(c) for c in trained.manifest["classes"]] != [str(c) for c in manifest.classes]:
            fail(folder, f"member {record.name} has classes {trained.manifest['classes']}, "
                         f"the fusion {manifest.classes}")
        members.append(trained)
    return Fused(folder, members, weights)


def _weights(folder, arrays: dict, n_members: int) -> np.ndarray:
    """The weights in ``fusion.npz``: exactly one array, ``weights``, of ``n_members`` finite non-negative
    floats summing to 1."""
    if set(arrays) != {"weights"}:
        fail(folder, f"{FUSION_FILE} holds arrays {sorted(arrays)}, not ['weights']")
    weights = arrays["weights"]
    if weights.dtype.kind != "f" or weights.shape != (n_members,):
        fail(folder, f"{FUSION_FILE}: weights is {weights.dtype} {list(weights.shape)}; {n_members} members need "
                     f"float [{n_members}]")
    if not np.isfinite(weights).all() or (weights < 0).any() or abs(weights.sum() - 1) > SUM_TOLERANCE:
        fail(folder, f"{FUSION_FILE}: the weights must be finite, non-negative and sum to 1")
    return weights.astype(np.float64)


def _real_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()

