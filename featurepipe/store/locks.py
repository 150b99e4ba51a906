"""Per-entry locks: what lets several processes share one cache.

Each entry has a lock file, ``<root>/.locks/<namespace>.<key>.lock`` (outside the entry, so removing the
entry never removes its lock while someone holds it). Writers of an entry (``extract``) hold it shared for
their whole run, so several of them may fill the same entry at once; a process the store has served a
feature entry or a data set to (to read its rows or images) holds it shared until it ends (``hold``).
``cache rm`` and ``cache gc`` take it exclusive without waiting, and say the entry is in use instead of
removing it under a writer or a reader; a process's own holds do not stop its own removals.

What the lock guarantees: between processes that use these locks, an entry is never removed while a
writer or a reader holds it, and a writer never starts on an entry while it is being removed (it waits
for the removal, then builds the entry afresh). The locks are advisory (``fcntl.flock``): on a local file system
they hold between all processes of the host; on NFS, Linux emulates them with POSIX byte-range locks,
which hold between hosts when the server runs a lock manager (NFSv4, or NFSv3 with lockd). A file system
that offers no locks makes taking one fail (``OSError``, one line) rather than pass silently; one that
keeps them local to a host (some SMB or FUSE mounts) guarantees nothing across hosts. Programs that
ignore the locks (``rm -rf``) are not stopped; a stub they leave is rebuilt by the next ``extract`` (see
``features.py``). A lock dies with its process (or, on NFS, with its host's lease), so a killed writer
never leaves an entry locked. A lock file stays while its entry does; removal deletes it, and a process
that locked the deleted file sees so and locks the new one.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class EntryInUseError(OSError):
    """An entry another process is writing or reading: it was left in place (an ``OSError``, as a busy
    resource is)."""


_held: dict[Path, int] = {}  # lock file -> descriptor: what this process holds shared until it ends


def _lock_path(root: Path, namespace: str, key: str) -> Path:
    return Path(os.path.abspath(root)) / ".locks" / f"{namespace}.{key}.lock"  # one name per file: see _held


def _open_locked(path: Path, mode: int) -> int:
    """A descriptor of ``path`` holding lock ``mode``; retried when the file was replaced meanwhile (removed by
    the holder of an exclusive lock), so a lock is always on the file that the path names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, mode)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


@contextlib.contextmanager
def shared(root: Path, namespace: str, key: str):
    """Hold entry ``key``'s lock shared (waiting for a removal in progress to finish): a writer's lock."""
    fd = _open_locked(_lock_path(root, namespace, key), fcntl.LOCK_SH)
    try:
        yield
    finally:
        os.close(fd)


def hold(root: Path, namespace: str, key: str) -> None:
    """Hold entry ``key``'s lock shared until this process ends (waiting for a removal in progress to finish):
    the lock of a process that reads the entry, which the store took from it once."""
    path = _lock_path(root, namespace, key)
    if path not in _held:
        _held[path] = _open_locked(path, fcntl.LOCK_SH)


@contextlib.contextmanager
def exclusive(root: Path, entries):
    """Hold the locks of ``entries`` ((namespace, key) pairs) exclusive, without waiting: ``EntryInUseError``
    names the first one in use. Their lock files go on release (a waiter then locks a fresh one). This
    process's own holds give way (it removes what it read), and are taken again when another holds one."""
    entries = list(entries)
    own = [path for path in (_lock_path(root, *entry) for entry in entries) if path in _held]
    for path in own:
        os.close(_held.pop(path))
    try:
        with _exclusive(root, entries):
            yield
    except EntryInUseError:
        for path in own:
            _held[path] = _open_locked(path, fcntl.LOCK_SH)
        raise


@contextlib.contextmanager
def _exclusive(root: Path, entries):
    held = []
    try:
        for namespace, key in entries:
            path = _lock_path(root, namespace, key)
            try:
                held.append((path, _open_locked(path, fcntl.LOCK_EX | fcntl.LOCK_NB)))
            except BlockingIOError:
                raise EntryInUseError(f"{namespace} entry {key} is in use (a run is writing or reading it); "
                                      f"try again when it ends") from None
        yield
    finally:
        for path, fd in held:
            path.unlink(missing_ok=True)
            os.close(fd)
