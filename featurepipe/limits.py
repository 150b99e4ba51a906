"""Bounds a config must stay within before anything runs: the size of what is read, how far YAML aliases
expand, how deep values nest, how many workers start, and how much memory its sizes ask for.

A config from elsewhere is data: every bound is checked before the value is used (aliases are measured
on the YAML node graph without being expanded), and a refusal is one line naming the key."""
from __future__ import annotations

import os

#: Bytes of a config file and of one ``--set`` value.
MAX_CONFIG_BYTES = 256 << 10
MAX_SET_BYTES = 64 << 10
#: Values (scalars, lists and mappings) of a document once its aliases are expanded, and its nesting depth.
MAX_VALUES = 100_000
MAX_DEPTH = 32
#: Characters of a value quoted in an error, and of a whole error line.
MAX_QUOTE = 80
MAX_LINE = 300


def physical_memory() -> int:
    """Bytes of physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cores() -> int:
    return os.cpu_count() or 1


def quote(value) -> str:
    """``repr(value)``, cut to ``MAX_QUOTE`` characters: what an error shows of a value."""
    text = repr(value)
    return text if len(text) <= MAX_QUOTE else f"{text[:MAX_QUOTE - 3]}..."


def one_line(message: str) -> str:
    """``message`` on one line of at most ``MAX_LINE`` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_LINE else f"{text[:MAX_LINE - 3]}..."


def human_bytes(n: float) -> str:
    """``n`` bytes as ``1.6 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def human_duration(seconds: float) -> str:
    """``seconds`` in the largest unit of which it holds two or more: ``40s``, ``12m``, ``5h``, ``31d``."""
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * length:
            return f"{seconds // length:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def refuse_oversize(key: str, what: str, nbytes: int) -> None:
    """Raise ``ConfigError`` ``<key>: <what> would need <n>; this machine has <m>`` when ``nbytes`` exceeds
    the machine's physical memory."""
    from .errors import ConfigError

    memory = physical_memory()
    if nbytes > memory:
        raise ConfigError(f"{key}: {what} would need {human_bytes(nbytes)}; this machine has {human_bytes(memory)}")
