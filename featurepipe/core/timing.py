"""Phase timings that the library records itself (fit: sampling, projection, vocabulary; encode), so
that nobody has to patch it to know where time goes."""
from __future__ import annotations

import time
from contextlib import contextmanager


@contextmanager
def timed(record: dict, phase: str):
    """Add the wall time of the block to ``record[phase]`` (seconds)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        record[phase] = record.get(phase, 0.0) + time.perf_counter() - start
