"""Image sources -> ``Dataset``: class folders (with optional train/test splits), unlabelled folders, CSV lists."""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fingerprint import digest

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".pbm", ".pgm",
                  ".ppm", ".pnm", ".pxm", ".sr", ".ras", ".jp2", ".exr", ".hdr", ".pic", ".avif", ".gif"}
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Dataset:
    """Items in a fixed order: ``ids`` (path relative to ``root``), labels and splits (or None), stamps.

    A stamp is ``size:mtime_ns:ctime_ns:inode`` or a content hash; (id, stamp, label, split) of every item
    make the dataset's identity, so any added, removed, relabelled or touched file changes it -- also a
    rewrite that keeps size and modification time, since it changes the inode's ctime. ``problems`` are
    [path, reason] of what the listing could not enter (symbolic link loops, unreadable folders): they go
    to the error ledger with the files that fail to decode. ``hashed``: the stamps are content hashes
    (``--hash``), so extraction can check that the bytes it decodes are those the identity names.
    """

    root: Path
    ids: tuple[str, ...]
    stamps: tuple[str, ...]
    labels: tuple[str, ...] | None = None
    splits: tuple[str, ...] | None = None
    problems: tuple = ()
    hashed: bool = False

    def __len__(self):
        return len(self.ids)

    def path(self, i: int) -> Path:
        return self.root / self.ids[i]

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels)) if self.labels is not None else []

    def identity(self) -> str:
        """sha256 of every (id, stamp, label, split) and the listing's problems: each column joined by NUL
        (which no path, stamp or folder name holds) and fed to the hash in turn, not one JSON document."""
        h = hashlib.sha256(b"featurepipe-dataset-1")
        for column in (self.ids, self.stamps, self.labels, self.splits):
            h.update(b"\1" if column is None else b"\2" + "\0".join(column).encode("utf-8", "surrogateescape"))
        if self.problems:
            h.update(digest(self.problems).encode())
        return h.hexdigest()

    def subset(self, split: str) -> "Dataset":
        """The items of one split, in order."""
        if self.splits is None:
            raise ValueError(f"{self.root} has no train/test splits")
        return self._select([i for i, s in enumerate(self.splits) if s == split])

    def take(self, per_class: dict[str, int]) -> "Dataset":
        """The first ``per_class[split]`` items of every class in each split (a quick, balanced subset)."""
        if self.splits is None or self.labels is None:
            raise ValueError(f"{self.root}: a per-class subset needs labels and train/test splits")
        seen: dict[tuple[str, str], int] = {}
        keep = []
        for i, key in enumerate(zip(self.splits, self.labels)):
            if seen.get(key, 0) < per_class.get(key[0], 0):
                seen[key] = seen.get(key, 0) + 1
                keep.append(i)
        return self._select(keep)

    def hold_out_test(self, fraction: float, seed: int) -> "Dataset":
        """The data set with ``fraction`` of each class's images (rounded, at least one, never all) marked
        ``test`` and the rest ``train``, drawn by ``seed``: a test split for class folders that have none.
        Items already in a ``train`` split stay candidates; a data set with a test split is refused."""
        if self.labels is None:
            raise ValueError(f"{self.root}: a test split needs labelled images (class sub-folders)")
        if self.splits is not None and "test" in self.splits:
            raise ValueError(f"{self.root} already has a test split; remove test_fraction or that split")
        labels = np.asarray(self.labels)
        rng = np.random.default_rng(seed)
        splits = np.full(len(self), "train", dtype=object)
        for label in sorted(set(self.labels)):
            members = np.flatnonzero(labels == label)
            if len(members) < 2:
                raise ValueError(f"class {label!r} has {len(members)} image; a test split needs at least 2 per class")
            n_test = min(max(round(fraction * len(members)), 1), len(members) - 1)
            splits[rng.choice(members, n_test, replace=False)] = "test"
        return Dataset(self.root, self.ids, self.stamps, self.labels, tuple(splits), self.problems, self.hashed)

    def _select(self, rows) -> "Dataset":
        pick = lambda seq: None if seq is None else tuple(seq[i] for i in rows)  # noqa: E731
        return Dataset(self.root, pick(self.ids), pick(self.stamps), pick(self.labels), pick(self.splits),
                       self.problems, self.hashed)

    def split_mask(self, split: str) -> np.ndarray:
        return np.array([s == split for s in self.splits]) if self.splits else np.zeros(len(self), bool)


def content_stamp(data: bytes) -> str:
    """The stamp ``--hash`` gives a file: the first 32 hexadecimal digits of its content's SHA-256."""
    return hashlib.sha256(data).hexdigest()[:32]


def _stamps(root, files, hashed: bool) -> tuple[str, ...]:
    """The stamps of listed ``files`` (relative path, stat stamp), or the sha256 of each file's content
    (``--hash``); an unreadable file is stamped so (it fails again when read, and goes to the error
    ledger)."""
    if not hashed:
        return tuple(stamp for _, stamp in files)
    stamps = []
    for rel, _ in files:
        try:
            stamps.append(content_stamp(Path(root, rel).read_bytes()))
        except OSError:
            stamps.append("unreadable")
    return tuple(stamps)


def _stat_stamp(st) -> str:
    """``size:mtime_ns:ctime_ns:inode``: all from the one ``stat`` that listing makes anyway."""
    return "unreadable" if st is None else f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _stat(entry: os.DirEntry):
    try:
        return entry.stat()
    except OSError:  # a dangling link, or a file removed while listing
        return None


def _image_files(folder: Path):
    """(relative path, stat stamp) of image files below ``folder``, recursively, sorted, hidden entries skipped;
    and [relative path, reason] of what could not be entered. A folder reached again through a link (a
    loop, or a second way in) is entered once; no single bad path stops the listing."""
    found, problems = [], []
    top = os.stat(folder)
    seen = {(top.st_dev, top.st_ino)}
    stack = [""]
    suffixes = IMAGE_SUFFIXES
    while stack:
        prefix = stack.pop()
        try:
            with os.scandir(os.path.join(folder, prefix)) as listing:
                entries = list(listing)
        except OSError as e:
            problems.append([prefix.rstrip(os.sep), f"unreadable folder: {e.strerror or e}"])
            continue
        for entry in entries:
            name = entry.name
            if name[0] == ".":
                continue
            try:
                is_dir = entry.is_dir()
            except OSError as e:  # a link to itself, or a chain too long
                problems.append([prefix + name, f"unreadable link: {e.strerror or e}"])
                continue
            if is_dir:
                identity = _folder_identity(entry)
                if identity in seen:
                    problems.append([prefix + name, "symbolic link to a folder already listed (a loop?); skipped"])
                elif identity is not None:
                    seen.add(identity)
                    stack.append(prefix + name + os.sep)
            elif name[name.rfind("."):].lower() in suffixes:
                found.append((prefix + name, _stat_stamp(_stat(entry))))
    found.sort()
    problems.sort()
    return found, problems


def _folder_identity(entry: os.DirEntry):
    st = _stat(entry)
    return None if st is None else (st.st_dev, st.st_ino)


def from_folder(root, content_hash: bool = False) -> Dataset:
    """One sub-folder per class, optionally below ``train/`` and ``test/`` (as CIFAR-10's JPEG copy)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    has_splits = any((root / s).is_dir() for s in SPLITS)
    depth = 1 if has_splits else 0
    files, labels, splits = [], [], []
    listed, problems = _image_files(root)
    names = {}  # one string per class and split name, not one per item
    for item in listed:
        parts = item[0].split(os.sep, depth + 1)
        if len(parts) < depth + 2 or (has_splits and parts[0] not in SPLITS):
            continue  # not inside a class folder (of a split)
        files.append(item)
        labels.append(names.setdefault(parts[depth], parts[depth]))
        splits.append(names.setdefault(parts[0], parts[0]) if has_splits else None)
    ids = tuple(rel for rel, _ in files)
    if not ids:
        raise ValueError(f"no images in class sub-folders of {root}")
    return Dataset(root, ids, _stamps(root, files, content_hash), tuple(labels),
                   tuple(splits) if has_splits else None, tuple(map(tuple, problems)), content_hash)


def from_unlabelled(root, content_hash: bool = False) -> Dataset:
    """Every image below ``root``, recursively, without labels; or the one image file ``root`` (any suffix:
    it was named, so the decoder decides)."""
    root = Path(root)
    if root.is_file():
        files, problems, root = [(root.name, _stat_stamp(root.stat()))], [], root.parent
    elif root.is_dir():
        files, problems = _image_files(root)
    else:
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if not files:
        raise ValueError(f"no images below {root}")
    return Dataset(root, tuple(r for r, _ in files), _stamps(root, files, content_hash),
                   problems=tuple(map(tuple, problems)), hashed=content_hash)


def from_csv(path, content_hash: bool = False) -> Dataset:
    """A CSV of ``path,label`` rows (a header row ``path,label`` is optional; an optional third column
    ``split``); relative paths are relative to the CSV's folder. Missing files are kept: they fail
    to read later and go to the error ledger like any unreadable file."""
    path = Path(path)
    root = path.parent
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    if rows and rows[0][0].strip().lower() == "path":
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path}: no rows")
    bad = next((i for i, r in enumerate(rows) if len(r) < 2), None)
    if bad is not None:
        raise ValueError(f"{path}: row {bad + 1} needs path,label")
    ids = tuple(r[0].strip() for r in rows)
    stamps = []
    for rel in ids:
        try:
            stamps.append(_stamps(root, [(rel, _stat_stamp((root / rel).stat()))], content_hash)[0])
        except OSError:
            stamps.append("missing")
    labels = tuple(r[1].strip() for r in rows)
    splits = tuple(r[2].strip() for r in rows) if all(len(r) > 2 for r in rows) else None
    return Dataset(root, ids, tuple(stamps), labels, splits, hashed=content_hash)


def open_dataset(path, kind: str = "auto", content_hash: bool = False) -> Dataset:
    """Open ``path`` as ``kind`` ('folder', 'unlabelled', 'csv'); 'auto' picks csv for a .csv file,
    else folder when the top level holds only sub-folders, else unlabelled."""
    path = Path(path).expanduser().resolve()  # absolute, so workers elsewhere (Dask) find the files
    if kind == "auto":
        if path.suffix.lower() == ".csv":
            kind = "csv"
        elif path.is_dir() and not any(f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES for f in path.iterdir()):
            kind = "folder"
        else:
            kind = "unlabelled"
    openers = {"folder": from_folder, "unlabelled": from_unlabelled, "csv": from_csv}
    return openers[kind](path, content_hash)
