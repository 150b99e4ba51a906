"""Files written so that a reader sees all of them or none: JSON, npz arrays and CSV tables, each written
to a temporary sibling and renamed into place (a rename replaces a symbolic link itself, never writes through
it); whole folders swapped in the same way (``swap_in``); and files read from folders one did not write,
opened only when they are regular files of the expected size (``read_regular``). CSV cells take any file name: names that are not valid
UTF-8 (surrogate-escaped by Python) are written with their bytes escaped as ``\\xNN``, so the table stays
valid UTF-8 and the raw bytes stay recoverable (``os.fsencode(unescape_name(cell))``)."""
from __future__ import annotations

import csv
import ctypes
import errno
import json
import os
import re
import shutil
import socket
import stat
import uuid
from pathlib import Path

import numpy as np


def host_name() -> str:
    """This host's name without dots, as temporary names carry it."""
    return socket.gethostname().replace(".", "_")


def temporary_sibling(path: Path) -> Path:
    """A temporary name next to ``path`` that no other process or host will pick:
    ``.<name>.<host>.<pid>.<random>.tmp`` (``cache gc`` removes those of writers that died)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{host_name()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def replace_with(path: Path, write) -> Path:
    """Call ``write(temporary_path)`` then rename the result onto ``path`` (atomically)."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_cwd = -100  # AT_FDCWD
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def swap_in(new: Path, target: Path) -> Path:
    """Put the folder ``new`` (a ``temporary_sibling`` of ``target``) at ``target``, whatever ``target`` was:
    a folder, a symbolic link (replaced itself, never followed), a file or nothing. Readers see the old
    ``target`` or the new one, never a mix: an atomic exchange where Linux offers it, else the old one
    renamed aside, then the new one renamed in (``target`` is briefly absent, never partial). What was at
    ``target`` goes; a kill before it is removed leaves it under a temporary name, which is no run."""
    new, target = Path(new), Path(target)
    if not os.path.lexists(target):
        os.rename(new, target)
        return target
    if not _exchange(new, target):
        old = temporary_sibling(target)
        os.rename(target, old)
        os.rename(new, target)
        new = old
    if new.is_dir() and not new.is_symlink():
        shutil.rmtree(new)
    else:
        new.unlink()
    return target


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is named as ``temporary_sibling`` names things: a write in progress or left over."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".tmp")


def read_regular(path: Path, size: int | None = None, at_most: int | None = None) -> bytes:
    """The bytes of ``path`` when it is a regular file of exactly ``size`` bytes (or of at most ``at_most``):
    never a symbolic link (not followed), a FIFO (not waited on) or a device, never more bytes read than
    expected; ``ValueError`` saying what is wrong, ``OSError`` when it cannot be opened."""
    name = Path(path).name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"{name} is a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as f:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise ValueError(f"{name} is not a regular file")
        expected = found.st_size if size is None else size
        if found.st_size != expected or (at_most is not None and expected > at_most):
            raise ValueError(f"{name} has {found.st_size} bytes, "
                             + (f"more than {at_most}" if size is None else f"the manifest records {size}"))
        data = f.read(expected + 1)
    if len(data) != expected:
        raise ValueError(f"{name} changed while it was read")
    return data


def write_json_atomic(path, obj) -> Path:
    return replace_with(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1)))


def read_json(path):
    return json.loads(Path(path).read_text())


def write_npz_atomic(path, arrays: dict) -> Path:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return replace_with(path, write)


def read_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


_SURROGATE = re.compile("[\udc80-\udcff]")
_ESCAPED = re.compile(r"\\x([89a-f][0-9a-f])")


def escape_name(name: str) -> str:
    """A file name as printable UTF-8: undecodable bytes (surrogates ``\\udc80-\\udcff``) become ``\\xNN``.
    Backslashes before such an escape are doubled, so ``unescape_name`` is exact."""
    name = name.replace("\\x", "\\\\x")
    return _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", name)


def unescape_name(text: str) -> str:
    """Undo ``escape_name``: the name as Python holds it (``os.fsencode`` gives its raw bytes)."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("\\\\x", i):
            out.append("\\x")
            i += 3
        elif (m := _ESCAPED.match(text, i)) is not None:
            out.append(chr(0xDC00 + int(m.group(1), 16)))
            i = m.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text: a ``'`` before a cell that would start a formula (OWASP's
    CSV-injection rule: ``=``, ``+``, ``-``, ``@``, tab, carriage return)."""
    return f"'{cell}" if cell.startswith(_FORMULA_LEADS) else cell


def write_csv_atomic(path, header: list[str], rows, name_columns: tuple[int, ...] = (0,)) -> Path:
    """A CSV table; the cells of ``name_columns`` are file names, escaped with ``escape_name``."""

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(header)
            for row in rows:
                out.writerow([escape_name(str(cell)) if i in name_columns else cell for i, cell in enumerate(row)])

    return replace_with(path, write)
