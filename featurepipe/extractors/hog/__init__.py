"""Histogram of Oriented Gradients over whole batches, numerically matching ``skimage.feature.hog``.

skimage loops over cells and orientation bins image by image. Here each step is one array operation
over a part of the batch small enough to stay in the CPU cache: several small images, or a band of
whole cell rows of a large one (read with one more row above and below, for its gradients). Each
pixel's vote comes from ``votes`` (an exact integer route for 8-bit images, see there); cell
histograms are one ``bincount`` per part; blocks are normalised as the columns of one float32 array.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ...core import Boolean, Integer, Options, Sequence, register
from ...imageops import to_grey
from ..base import Extractor
from . import kernel
from .votes import float_votes, integer_votes, key_bins, parts

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")
_EPS = 1e-5  # skimage's block-normalisation epsilon


@lru_cache(maxsize=16)
def _vote_slots(strips: int, rows: int, width: int, top: int, voting_rows: int, cell, cells_across: int,
                slot_width: int) -> np.ndarray:
    """First histogram slot of every pixel of ``strips`` strips of ``rows`` x ``width`` pixels: (strip, cell)
    * ``slot_width``, cells counted from row ``top``.

    Only rows ``top`` to ``top + voting_rows`` vote; the other rows (the neighbours of a band, there for its
    gradients) and the pixels right of the last whole cell vote into one spare cell after the last strip.
    """
    cells_down = voting_rows // cell[0]
    row = np.arange(rows) - top
    col = np.arange(width)
    inside = ((row >= 0) & (row < voting_rows))[:, None] & (col < cells_across * cell[1])[None, :]
    cell_id = (row // cell[0])[:, None] * cells_across + col // cell[1]
    cell_id = cell_id + (np.arange(strips) * cells_down * cells_across)[:, None, None]
    cell_id[:, ~inside] = strips * cells_down * cells_across
    slots = (cell_id * slot_width).ravel()
    slots.flags.writeable = False
    return slots


def _cell_histograms(images, orientations, cell, n_cells, transform_sqrt):
    """Per-cell orientation histograms ``(n, cells_r, cells_c, orientations)``, float32, / cell area.

    8-bit images go through ``kernel`` when numba is installed. Otherwise each cell has
    ``orientations + 1`` slots, the last for pixels in no bin, and each part of the batch (see ``parts``)
    is read with the rows just above and below it, for its gradients; those rows vote nowhere.
    """
    n, h, w, _ = images.shape
    integer = images.dtype == np.uint8 and not transform_sqrt
    if integer and kernel.available():
        return kernel.cell_histograms(images, cell, n_cells, key_bins(orientations, True), orientations)
    slot_width = orientations + 1
    votes = np.empty((n, n_cells[0], n_cells[1], slot_width), np.float32)
    for first, end, top, bottom in parts(images.shape, cell, n_cells):
        above, below = max(top - 1, 0), min(bottom + 1, h)
        part = images[first:end, above:below]
        if integer:
            magnitude, bins = integer_votes(part, orientations)
        else:
            magnitude, bins = float_votes(part, orientations, transform_sqrt)
        slots = _vote_slots(end - first, below - above, w, top - above, bottom - top, cell, n_cells[1],
                            slot_width)
        cells = votes[first:end, top // cell[0]:bottom // cell[0]]
        counts = np.bincount(slots + bins, magnitude, minlength=cells.size + slot_width)
        cells[...] = counts[:cells.size].reshape(cells.shape)
    return votes[..., :orientations] / np.float32(cell[0] * cell[1])


def _block_columns(hist, block):
    """The overlapping blocks of cells of ``hist`` ``(n, cells_r, cells_c, orientations)`` as the columns of
    one float32 array, in skimage's block order, filled with one copy per cell position in the block.

    Each copy runs along the longer contiguous stretch: a row of blocks (the histograms transposed,
    orientation first), or, for narrow images, a cell's histogram (the block rows transposed after).
    """
    n, cells_r, cells_c, bins = hist.shape
    down, across = cells_r - block[0] + 1, cells_c - block[1] + 1
    if across >= bins:
        by_bin = cv2.transpose(hist.reshape(-1, bins)).reshape(bins, n, cells_r, cells_c)
        columns = np.empty(block + (bins, n, down, across), np.float32)
        for i in range(block[0]):
            for j in range(block[1]):
                columns[i, j] = by_bin[:, :, i:i + down, j:j + across]
        return columns.reshape(block[0] * block[1] * bins, -1)
    rows = np.empty((n, down, across) + block + (bins,), np.float32)
    for i in range(block[0]):
        for j in range(block[1]):
            rows[:, :, :, i, j] = hist[:, i:i + down, j:j + across]
    return cv2.transpose(rows.reshape(n * down * across, -1))


def _normalise_blocks(hist, block, block_norm):
    """Overlapping blocks of cells, each normalised as skimage does: float32 (n, br, bc, b_r, b_c, orientations).

    The blocks are normalised as the columns of one float32 array: every step is then a loop along a row
    of blocks. float32 arithmetic changes the output by an ulp at most.
    """
    n, cells_r, cells_c, bins = hist.shape
    columns = _block_columns(hist, block)
    if block_norm in ("L1", "L1-sqrt"):
        columns /= columns.sum(axis=0) + np.float32(_EPS)  # histograms are non-negative
        if block_norm == "L1-sqrt":
            np.sqrt(columns, out=columns)
    else:
        columns /= _l2_norms(columns)
        if block_norm == "L2-Hys":
            cv2.threshold(columns, 0.2, 0.2, cv2.THRESH_TRUNC, dst=columns)  # np.minimum, several times faster
            columns /= _l2_norms(columns)
    return cv2.transpose(columns).reshape((n, cells_r - block[0] + 1, cells_c - block[1] + 1) + block + (bins,))


def _l2_norms(columns):
    """skimage's ``sqrt(sum(v**2) + eps**2)`` of each column, as a row."""
    return np.sqrt(np.einsum("ij,ij->j", columns, columns) + np.float32(_EPS**2))


def hog(images, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3), block_norm="L2-Hys",
        transform_sqrt=False, channel_axis=None, feature_vector=True):
    """HOG of one image or a batch, with ``skimage.feature.hog``'s parameters and output.

    ``images`` is one image (``(H, W)``, or ``(H, W, C)`` with ``channel_axis=-1``) or a batch with one
    more leading axis. Colour images take, per pixel, the gradient of the channel with the largest
    magnitude. Returns float32 ``(n, d)`` for a batch (``(d,)`` for one image) when ``feature_vector``,
    else the ``(n, blocks_r, blocks_c, b_r, b_c, orientations)`` block array.
    """
    images = np.asarray(images)
    single = images.ndim == (2 if channel_axis is None else 3)
    if images.ndim != (3 if channel_axis is None else 4) and not single:
        raise ValueError(f"hog: images of shape {images.shape} with channel_axis={channel_axis}: give grey images "
                         "(H, W) or (n, H, W), or colour ones with channel_axis=-1")
    if single:
        images = images[None]
    if channel_axis is None:
        images = images[..., None]
    elif channel_axis not in (-1, images.ndim - 2):
        images = np.moveaxis(images, channel_axis + (1 if channel_axis >= 0 else 0), -1)
    cell, block = tuple(pixels_per_cell), tuple(cells_per_block)
    n_cells = (images.shape[1] // cell[0], images.shape[2] // cell[1])
    if n_cells[0] < block[0] or n_cells[1] < block[1]:
        raise ValueError(f"image of {images.shape[1]}x{images.shape[2]} pixels is smaller than one HOG block "
                         f"({block[0] * cell[0]}x{block[1] * cell[1]} pixels)")
    hist = _cell_histograms(images, orientations, cell, n_cells, transform_sqrt)
    out = _normalise_blocks(hist, block, block_norm)
    if feature_vector:
        out = out.reshape(len(out), -1)
    return out[0] if single else out


@register("extractor", "hog")
class HOG(Extractor):
    """Histogram of Oriented Gradients (Dalal & Triggs), with ``skimage.feature.hog``'s parameters.

    ``channel_axis=-1`` takes colour gradients (per pixel, the strongest channel); ``None`` works on the
    BT.601 luminance.
    """

    size_dependent = True
    _constraints = {
        "orientations": Integer(1, 360),
        "pixels_per_cell": Sequence(Integer(1), length=2, message="must be [rows, cols] > 0"),
        "cells_per_block": Sequence(Integer(1), length=2, message="must be [rows, cols] > 0"),
        "block_norm": Options(*BLOCK_NORMS, message=f"must be one of {BLOCK_NORMS}"),
        "transform_sqrt": Boolean(),
        "channel_axis": Options(-1, None, message="must be -1 (colour) or null (grey)"),
    }

    def __init__(self, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3), block_norm="L2-Hys",
                 transform_sqrt=False, channel_axis=-1):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.transform_sqrt = transform_sqrt
        self.channel_axis = channel_axis

    def _feature_names(self, shape):
        """``hog_b3_c2_o7``: block 3 (row-major over the image), cell 2 of that block (row-major), orientation
        bin 7, in ``skimage.feature.hog``'s order."""
        height, width = self._needs_shape(shape)[:2]
        (cell_r, cell_c), (block_r, block_c) = self.pixels_per_cell, self.cells_per_block
        blocks = max(height // cell_r - block_r + 1, 0) * max(width // cell_c - block_c + 1, 0)
        return [f"hog_b{b}_c{c}_o{o}" for b in range(blocks) for c in range(block_r * block_c)
                for o in range(self.orientations)]

    def _transform_batch(self, batch):
        grey = self.channel_axis is None or batch.shape[-1] == 1  # grey images give the same as channel_axis None
        return hog(to_grey(batch) if grey else batch, self.orientations, self.pixels_per_cell, self.cells_per_block,
                   self.block_norm, self.transform_sqrt, None if grey else -1)
