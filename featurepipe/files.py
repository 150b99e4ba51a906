"""Files written so that a reader sees all of them or none: JSON, npz arrays and CSV tables, each written
to a temporary sibling and renamed into place. CSV cells take any file name: names that are not valid
UTF-8 (surrogate-escaped by Python) are written with their bytes escaped as ``\\xNN``, so the table stays
valid UTF-8 and the raw bytes stay recoverable (``os.fsencode(unescape_name(cell))``)."""
from __future__ import annotations

import csv
import json
import os
import re
import socket
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


def write_csv_atomic(path, header: list[str], rows, name_columns: tuple[int, ...] = (0,)) -> Path:
    """A CSV table; the cells of ``name_columns`` are file names, escaped with ``escape_name``."""

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(header)
            for row in rows:
                out.writerow([escape_name(str(cell)) if i in name_columns else cell for i, cell in enumerate(row)])

    return replace_with(path, write)
