"""Exceptions shared by the layers (kept free of heavy imports, so the runner and CLI load fast)."""


class ConfigError(ValueError):
    """A config problem, as one line: ``<file>: <dotted.key>: <problem>``."""


class MixedSizeError(ValueError):
    """Images of several sizes given to an extractor whose output length depends on the size."""


class ExtractError(RuntimeError):
    """Extraction stopped: the first bad file under ``on_error='fail'``, or a problem with the pipeline."""


class TrainedFolderError(ValueError):
    """A trained-head folder that is incomplete, edited, unsafe to read or does not match what it is applied
    to (``trained.py``); the command line answers it with exit code 2."""


class UsageError(ValueError):
    """A command-line value that cannot be used as given (a malformed size, a key prefix that several entries
    share); the command line answers it with one line and exit code 2."""
