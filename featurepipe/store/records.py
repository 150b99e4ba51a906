"""What the store hands back: the outcome of filling an entry, and features with their items aligned."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class ExtractResult:
    """The outcome of filling an entry: its key, item counts, the ledger, and what this run computed."""

    key: str
    n_items: int
    n_ok: int
    n_failed: int
    ledger: Path
    seconds: float
    computed: int  # items computed in this run (0 when everything came from the cache)


@dataclass
class FeatureSet:
    """Features of the successfully processed items, with ids, labels and splits aligned row by row."""

    X: np.ndarray
    ids: np.ndarray
    labels: np.ndarray | None
    splits: np.ndarray | None
    classes: list[str]

    def subset(self, split: str) -> "FeatureSet":
        if self.splits is None:
            raise ValueError("these features have no train/test splits")
        mask = self.splits == split
        pick = lambda a: None if a is None else a[mask]  # noqa: E731
        return FeatureSet(self.X[mask], self.ids[mask], pick(self.labels), self.splits[mask], self.classes)
