"""Local descriptors: many vectors per image, each at a position, for codebooks and encodings to consume.

Descriptors are registered stages of kind ``"descriptor"``, so a config can nest one inside an extractor
(``descriptor: {patches: {size: 6}}``) and ``featurepipe.list("descriptor")`` lists them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..core import Stage, as_batch
from ..core.progress import progress_bar


class LocalFeatures(NamedTuple):
    """The local descriptors of a batch of images, image after image."""

    values: np.ndarray     # (N, d) float32
    counts: np.ndarray     # (n_images,) int64: how many rows belong to each image, in order
    positions: np.ndarray  # (N, 2) float32: (row, col) of each descriptor's centre as a fraction of the image's
    #                        height and width, in [0, 1)


class Descriptor(Stage):
    """Base of local descriptors: ``compute(batch)`` gives the ``LocalFeatures`` of a stacked uint8 batch.

    Descriptors hold no fitted state; what is learnt from their samples (whitening, PCA, vocabularies)
    belongs to the extractor that uses them.
    """

    kind = "descriptor"

    @property
    def n_features(self) -> int:
        """Length of one descriptor."""
        raise NotImplementedError

    def compute(self, batch: np.ndarray) -> LocalFeatures:
        raise NotImplementedError

    def sample(self, images, n: int, rng: np.random.Generator) -> np.ndarray:
        """About ``n`` descriptors drawn at random from ``images`` (a list or a stacked array).

        Memory stays bounded by the sample plus one block of images.
        """
        self._ensure_valid()
        return draw_samples(images, n, rng, self._sample_block)

    def _sample_block(self, batch: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` random descriptors of one stacked block (all of them when it has fewer)."""
        values = self.compute(batch).values
        return values[np.sort(rng.choice(len(values), min(count, len(values)), replace=False))]


def iter_blocks(images, max_images: int):
    """Yield stacked ``(n, H, W, 3)`` uint8 blocks of at most ``max_images`` images of one size each.

    ``images`` is a stacked array or a list (images of several sizes are grouped by size), so no more
    than one block is copied at a time.
    """
    if isinstance(images, np.ndarray):
        batch = as_batch(images)
        for start in range(0, len(batch), max_images):
            yield batch[start:start + max_images]
        return
    images = list(images)
    by_shape: dict[tuple, list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(getattr(image, "shape", None), []).append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), max_images):
            yield as_batch([images[i] for i in indices[start:start + max_images]])


def draw_samples(images, n: int, rng: np.random.Generator, sample_block, max_images: int = 1024) -> np.ndarray:
    """Up to ``n`` descriptors from ``images``, each block contributing in proportion to its images.

    ``sample_block(batch, count, rng)`` draws ``count`` descriptors from one stacked block; a progress bar
    (``core.progress``) counts the images.
    """
    total = len(images)
    if total == 0:
        raise ValueError("no images to sample descriptors from")
    parts, seen = [], 0
    with progress_bar(total, "sample descriptors", "img") as bar:
        for block in iter_blocks(images, max_images):
            quota = round(n * (seen + len(block)) / total) - round(n * seen / total)
            seen += len(block)
            if quota > 0:
                parts.append(np.asarray(sample_block(block, quota, rng), np.float32))
            bar.update(len(block))
    return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)
