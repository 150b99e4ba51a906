"""Histogram of Oriented Gradients over whole batches, numerically matching ``skimage.feature.hog``.

skimage loops over cells and orientation bins image by image. Here each step is one array operation
over a part of the batch small enough to stay in the CPU cache: several small images, or a band of
whole cell rows of a large one (read with one more row above and below, for its gradients).

For 8-bit images every gradient is an integer pair (g_row, g_col) in [-255, 255]^2, coded as one
integer ``key``. Three facts keep this integer route exact:

* skimage picks the channel with the largest float64 ``hypot``. Distinct integer energies
  ``g_row**2 + g_col**2`` are ordered as their ``hypot``, so the channel is chosen on the exact energy,
  the first channel winning ties as ``argmax`` does. Equal energies can still differ in ``hypot`` by an
  ulp: 648 keys are "outranked" by another pair of their energy. The bin table flags them; the few
  pixels whose chosen key is flagged then get the bin of the channel skimage's own ``hypot`` and
  ``argmax`` choose among their channels' keys.
* The orientation bin of each key comes from a table built with skimage's own float64 formulas for the
  angle and the bin edges, so pixels on a bin edge land where skimage puts them.
* The magnitude is the float32 square root of the exact energy, within 1e-7 of ``hypot``.

Other dtypes and ``transform_sqrt`` take skimage's floating-point route, vectorised. Cell histograms
are one ``bincount`` per part; blocks are normalised as the columns of one float32 array.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..core import Boolean, Integer, Options, Sequence, register
from ..imageops import to_grey
from .base import Extractor

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")
_EPS = 1e-5  # skimage's block-normalisation epsilon
_PART_VALUES = 1 << 17  # pixels x channels per part: fastest measured, between cache misses and per-call costs

# key = (g_row + 255) * 511 + (g_col + 255), in [0, 511**2).
_SPAN = 511
_KEY_OFFSET = 255 * _SPAN + 255


@lru_cache(maxsize=None)
def _bin_edges(orientations: int) -> np.ndarray:
    """Lower bin edges as skimage computes them: ``(180 / n) * i`` in float64."""
    return (180.0 / orientations) * np.arange(orientations + 1)


def _orientation_bins(g_row: np.ndarray, g_col: np.ndarray, orientations: int) -> np.ndarray:
    """Bin index of each gradient's unsigned orientation; ``orientations`` marks a pixel in no bin."""
    angle = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    return np.searchsorted(_bin_edges(orientations), angle, side="right") - 1


def _all_pairs():
    """Every integer gradient pair, in key order: (g_row, g_col) as float64 arrays of 511**2."""
    g = np.arange(-255, 256, dtype=np.float64)
    return np.repeat(g, _SPAN), np.tile(g, _SPAN)


@lru_cache(maxsize=1)
def _outranked_keys() -> np.ndarray:
    """Keys whose float64 ``hypot`` is below that of another pair of the same energy (648 of 261121).

    Only at these can skimage prefer a later channel of equal energy over the first one.
    """
    g_row, g_col = _all_pairs()
    energy = (g_row**2 + g_col**2).astype(np.intp)
    magnitude = np.hypot(g_row, g_col)
    largest = np.zeros(energy.max() + 1)
    np.maximum.at(largest, energy, magnitude)
    return magnitude < largest[energy]


@lru_cache(maxsize=None)
def _key_bins(orientations: int, flag_outranked: bool) -> np.ndarray:
    """Orientation bin of every key; with ``flag_outranked``, outranked keys get ``orientations + 1`` more."""
    bins = _orientation_bins(*_all_pairs(), orientations)
    if flag_outranked:
        bins = bins + (orientations + 1) * _outranked_keys()
    return bins.astype(np.uint8 if 2 * (orientations + 1) <= 256 else np.uint16)


def _parts(shape, cell, n_cells):
    """The parts of the batch processed at once, as (first image, end image, first row, end row).

    Small images are taken whole, several at a time; a large one in bands of whole cell rows. Each part
    holds about ``_PART_VALUES`` values: its int32 temporaries then stay in the caches, and the fixed cost
    of each numpy call is spread over enough pixels. Rows below the last whole cell vote nowhere and are
    left out.
    """
    n, _, w, c = shape
    rows = n_cells[0] * cell[0]
    per_image = rows * w * c
    if per_image <= _PART_VALUES:
        step = _PART_VALUES // per_image
        return [(first, min(first + step, n), 0, rows) for first in range(0, n, step)]
    band = max(1, _PART_VALUES // (cell[0] * w * c)) * cell[0]
    return [(image, image + 1, top, min(top + band, rows)) for image in range(n) for top in range(0, rows, band)]


def _planes(part: np.ndarray) -> np.ndarray:
    """The channels of uint8 ``(m, rows, w, C)`` as int32 planes ``(C, m * rows * w)``.

    With one plane per channel, every later step, the maximum over channels included, is a contiguous loop.
    """
    m, rows, w, c = part.shape
    planes = np.empty((c, m * rows * w), np.int32)
    planes.reshape(c, m, rows, w)[...] = part.transpose(3, 0, 1, 2)
    return planes


def _central_differences(planes: np.ndarray, rows: int, width: int):
    """skimage's gradients (g_row, g_col) of int32 planes of images of ``rows`` x ``width`` pixels.

    On a flat plane every difference is one long contiguous loop; the first and last row and column of each
    image then get zero, as skimage's border does.
    """
    g_row = np.empty_like(planes)
    g_col = np.empty_like(planes)
    np.subtract(planes[:, 2 * width:], planes[:, :-2 * width], out=g_row[:, width:-width])
    np.subtract(planes[:, 2:], planes[:, :-2], out=g_col[:, 1:-1])
    g_row.reshape(len(planes), -1, rows, width)[:, :, ::max(rows - 1, 1)] = 0
    g_col.reshape(len(planes), -1, width)[:, :, ::max(width - 1, 1)] = 0
    return g_row, g_col


@lru_cache(maxsize=8)
def _channel_layout(channels: int, length: int):
    """For ``channels`` planes of ``length``: each plane's priority ``channels - 1 - channel`` as a column,
    and the flat index of each pixel in the last plane."""
    priority = np.arange(channels - 1, -1, -1, dtype=np.int32)[:, None]
    last_plane = np.arange((channels - 1) * length, channels * length, dtype=np.int32)
    priority.flags.writeable = last_plane.flags.writeable = False  # cached: shared by every call
    return priority, last_plane


def _strongest_channel(energy: np.ndarray):
    """Per pixel of int32 energy planes ``(C, L)`` (overwritten): the largest energy and the flat index of
    its channel's value, the first channel on ties, as ``argmax`` picks.

    Each energy is shifted left and its channel's priority put in the freed bits, so one maximum over the
    planes finds both.
    """
    channels, length = energy.shape
    bits = (channels - 1).bit_length()
    priority, last_plane = _channel_layout(channels, length)
    rank = np.left_shift(energy, bits, out=energy)
    rank += priority
    best = np.maximum(rank[0], rank[1])
    for plane in rank[2:]:
        np.maximum(best, plane, out=best)
    chosen = np.bitwise_and(best, (1 << bits) - 1)
    chosen *= length
    np.subtract(last_plane, chosen, out=chosen)
    return np.right_shift(best, bits, out=best), chosen


def _settled_bins(keys: np.ndarray, orientations: int) -> np.ndarray:
    """Orientation bins of pixels whose strongest channel's key is outranked, from the keys ``(C, k)`` of
    all their channels (without the offset): the channel is the one skimage's float64 ``hypot`` and
    ``argmax`` choose, which has the largest energy too, so the fast path's magnitude stands."""
    g_row, g_col = np.divmod(keys + _KEY_OFFSET, _SPAN)
    pick = np.hypot(g_row - 255.0, g_col - 255.0).argmax(axis=0)
    chosen = np.take_along_axis(keys, pick[None], axis=0)[0]
    return _key_bins(orientations, False)[chosen + _KEY_OFFSET]


def _integer_votes(part: np.ndarray, orientations: int):
    """Per pixel of uint8 ``part``: (float32 magnitude, orientation bin) of the strongest channel."""
    _, rows, w, channels = part.shape
    g_row, g_col = _central_differences(_planes(part), rows, w)
    keys = g_row * _SPAN
    keys += g_col
    energy = np.square(g_row, out=g_row)
    energy += np.square(g_col, out=g_col)
    if channels == 1:
        bins = np.take(_key_bins(orientations, False), keys[0] + _KEY_OFFSET, mode="clip")
        return np.sqrt(energy[0], dtype=np.float32), bins
    energy, chosen = _strongest_channel(energy)
    key = np.take(keys, chosen, mode="clip")  # indices are valid: "clip" skips numpy's buffered check
    key += _KEY_OFFSET
    bins = np.take(_key_bins(orientations, True), key, mode="clip")
    outranked = np.flatnonzero(bins > orientations)
    if outranked.size:
        bins[outranked] = _settled_bins(keys[:, outranked], orientations)
    return np.sqrt(energy, dtype=np.float32), bins


def _float_votes(images: np.ndarray, orientations: int, transform_sqrt: bool):
    """Per pixel: (magnitude, orientation bin) of the strongest channel, in skimage's floating point."""
    dtype = np.float32 if images.dtype in (np.float16, np.float32) else np.float64
    images = np.sqrt(images, dtype=dtype) if transform_sqrt else images.astype(dtype, copy=False)
    g_row = np.zeros(images.shape, dtype)
    g_col = np.zeros(images.shape, dtype)
    g_row[:, 1:-1] = images[:, 2:] - images[:, :-2]
    g_col[:, :, 1:-1] = images[:, :, 2:] - images[:, :, :-2]
    pick = np.hypot(g_row, g_col).argmax(axis=-1)[..., None]
    g_row, g_col = (np.take_along_axis(g, pick, -1).astype(np.float64).ravel() for g in (g_row, g_col))
    return np.hypot(g_col, g_row), _orientation_bins(g_row, g_col, orientations)


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

    Each cell has ``orientations + 1`` slots, the last for pixels in no bin. Each part of the batch (see
    ``_parts``) is read with the rows just above and below it, for its gradients; those rows vote nowhere.
    """
    n, h, w, _ = images.shape
    integer = images.dtype == np.uint8 and not transform_sqrt
    slot_width = orientations + 1
    votes = np.empty((n, n_cells[0], n_cells[1], slot_width), np.float32)
    for first, end, top, bottom in _parts(images.shape, cell, n_cells):
        above, below = max(top - 1, 0), min(bottom + 1, h)
        part = images[first:end, above:below]
        if integer:
            magnitude, bins = _integer_votes(part, orientations)
        else:
            magnitude, bins = _float_votes(part, orientations, transform_sqrt)
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

    def _transform_batch(self, batch):
        grey = self.channel_axis is None or batch.shape[-1] == 1  # grey images give the same as channel_axis None
        return hog(to_grey(batch) if grey else batch, self.orientations, self.pixels_per_cell, self.cells_per_block,
                   self.block_norm, self.transform_sqrt, None if grey else -1)
