"""Progress of long computations inside stages (a codebook's k-means, a mixture's EM): the stage says how far
it is, its caller says whether and how that is shown (the runner: a tqdm bar, none with ``--no-progress``).
Stages stay free of output: outside ``shown_by`` their bars are silent."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

_MAKE_BAR: ContextVar = ContextVar("featurepipe_progress", default=None)


class _Silent:
    """A bar that shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def reset(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


@contextmanager
def shown_by(make_bar):
    """Within the block, ``progress_bar`` opens its bars with ``make_bar(total=, desc=, unit=)`` (a tqdm-like
    context manager with ``update`` and ``set_postfix_str``); None keeps them silent."""
    token = _MAKE_BAR.set(make_bar)
    try:
        yield
    finally:
        _MAKE_BAR.reset(token)


def progress_bar(total: int, desc: str, unit: str):
    """A bar over ``total`` steps, shown as the caller chose (see ``shown_by``), else silent."""
    make_bar = _MAKE_BAR.get()
    return _Silent() if make_bar is None else make_bar(total=total, desc=desc, unit=unit)
