"""Histogram of Oriented Gradients over whole batches, numerically matching ``skimage.feature.hog``.

skimage loops over cells and orientation bins image by image. Here each step is one array operation
over a slice of the batch small enough to stay in the CPU cache.

For 8-bit images every gradient is an integer pair (g_row, g_col) in [-255, 255]^2, coded as one
integer ``key``. Three facts keep this integer route exact:

* skimage picks the channel with the largest float64 ``hypot``. Distinct integer energies
  ``g_row**2 + g_col**2`` are ordered as their ``hypot``, so the channel is chosen on the exact energy,
  the first channel winning ties as ``argmax`` does. Equal energies can still differ in ``hypot`` by an
  ulp: 648 keys are "outranked" by another pair of their energy. The bin table flags them; their votes
  are set aside and placed afterwards by skimage's own ``hypot`` and ``argmax``.
* The orientation bin of each key comes from a table built with skimage's own float64 formulas for the
  angle and the bin edges, so pixels on a bin edge land where skimage puts them.
* The magnitude is the float32 square root of the exact energy, within 1e-7 of ``hypot``.

Other dtypes and ``transform_sqrt`` take skimage's floating-point route, vectorised. Cell histograms
are one ``bincount`` per slice; blocks are normalised as the rows of one float32 array.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core import Boolean, Integer, Options, Sequence, register
from ..imageops import to_grey
from .base import Extractor

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")
_EPS = 1e-5  # skimage's block-normalisation epsilon
_SLICE_VALUES = 1 << 16  # pixels x channels per slice: the int32 temporaries stay in the L2 cache

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


def _central_differences(images: np.ndarray):
    """skimage's gradients (g_row, g_col) of ``(n, H, W, C)`` images, zero on the border, as flat int32.

    On the flat interleaved array every difference is one long contiguous loop.
    """
    n, h, w, c = images.shape
    x = images.astype(np.int32).ravel()
    row = w * c
    g_row = np.empty_like(x)
    g_col = np.empty_like(x)
    np.subtract(x[2 * row:], x[:-2 * row], out=g_row[row:-row])
    per_image = g_row.reshape(n, h * row)
    per_image[:, :row] = 0
    per_image[:, -row:] = 0
    np.subtract(x[2 * c:], x[:-2 * c], out=g_col[c:-c])
    per_row = g_col.reshape(n * h, row)
    per_row[:, :c] = 0
    per_row[:, -c:] = 0
    return g_row, g_col


@lru_cache(maxsize=8)
def _channel_layout(channels: int, length: int):
    """For a flat interleaved array of ``length`` values: each value's priority ``channels - 1 - channel``,
    and the index of each pixel's last channel."""
    priority = np.tile(np.arange(channels - 1, -1, -1, dtype=np.int32), length // channels)
    return priority, np.arange(channels - 1, length, channels)


def _strongest_channel(energy: np.ndarray, channels: int):
    """Per pixel of flat interleaved ``energy`` (overwritten): the largest energy and the flat index of
    its channel, the first one on ties, as ``argmax`` picks."""
    bits = (channels - 1).bit_length()
    priority, last_channel = _channel_layout(channels, len(energy))
    rank = np.left_shift(energy, bits, out=energy)
    rank += priority
    best = np.maximum(rank[0::channels], rank[1::channels])
    for channel in range(2, channels):
        np.maximum(best, rank[channel::channels], out=best)
    chosen = last_channel - (best & ((1 << bits) - 1))
    return np.right_shift(best, bits, out=best), chosen


def _integer_votes(images: np.ndarray, orientations: int):
    """Per pixel of uint8 ``images``: (float32 magnitude, orientation bin) of the strongest channel.

    The bin of a colour pixel whose key is outranked is flagged: ``orientations + 1`` more.
    """
    channels = images.shape[-1]
    g_row, g_col = _central_differences(images)
    key = g_row * _SPAN
    key += g_col
    energy = np.square(g_row, out=g_row)
    energy += np.square(g_col, out=g_col)
    if channels > 1:
        energy, chosen = _strongest_channel(energy, channels)
        key = np.take(key, chosen, mode="clip")  # indices are valid: "clip" skips numpy's buffered check
    key += _KEY_OFFSET
    bins = np.take(_key_bins(orientations, channels > 1), key, mode="clip")
    return np.sqrt(energy, dtype=np.float32), bins


def _pixel_gradients(images: np.ndarray, image, row, col):
    """skimage's per-channel gradients (g_row, g_col) at the given pixels of uint8 ``images``, ``(m, C)`` int."""
    h, w = images.shape[1:3]
    inner_row = ((row > 0) & (row < h - 1))[:, None]  # the gradient is zero on the border
    inner_col = ((col > 0) & (col < w - 1))[:, None]
    up, down = np.maximum(row - 1, 0), np.minimum(row + 1, h - 1)
    left, right = np.maximum(col - 1, 0), np.minimum(col + 1, w - 1)
    g_row = (images[image, down, col].astype(np.intp) - images[image, up, col]) * inner_row
    g_col = (images[image, row, right].astype(np.intp) - images[image, row, left]) * inner_col
    return g_row, g_col


def _place_flagged_votes(votes, images, flagged, cell, orientations):
    """Add the vote of each ``flagged`` pixel (flat index) to the bin of the channel skimage's float64
    ``hypot`` and ``argmax`` choose. ``votes`` is ``(n, cells_r, cells_c, 2, orientations + 1)``."""
    image, row, col = np.unravel_index(flagged, images.shape[:3])
    cell_r, cell_c = row // cell[0], col // cell[1]
    inside = (cell_r < votes.shape[1]) & (cell_c < votes.shape[2])
    image, row, col, cell_r, cell_c = (a[inside] for a in (image, row, col, cell_r, cell_c))
    g_row, g_col = _pixel_gradients(images, image, row, col)
    pick = np.arange(len(image)), np.hypot(g_row, g_col).argmax(axis=1)
    g_row, g_col = g_row[pick], g_col[pick]
    magnitude = np.sqrt(g_row * g_row + g_col * g_col, dtype=np.float32)  # as the fast path voted
    chosen = _key_bins(orientations, False)[g_row * _SPAN + g_col + _KEY_OFFSET]
    np.add.at(votes, (image, cell_r, cell_c, 0, chosen), magnitude)


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


def _vote_slots(shape, cell, n_cells, width: int, count: int) -> np.ndarray:
    """First histogram slot of every pixel of ``count`` images: (image, cell) * ``width``.

    Pixels outside the cells' area vote into one spare cell after the last image.
    """
    per_image = n_cells[0] * n_cells[1]
    rows = np.arange(shape[0]) // cell[0]
    cols = np.arange(shape[1]) // cell[1]
    outside = (rows >= n_cells[0])[:, None] | (cols >= n_cells[1])[None, :]
    cell_id = rows[:, None] * n_cells[1] + cols[None, :] + (np.arange(count) * per_image)[:, None, None]
    cell_id[:, outside] = count * per_image
    return (cell_id * width).ravel()


def _cell_histograms(images, orientations, cell, n_cells, transform_sqrt):
    """Per-cell orientation histograms ``(n, cells_r, cells_c, orientations)``, float32, / cell area.

    Each cell has two rows of ``orientations + 1`` slots, the last slot for pixels in no bin. Flagged bins
    of the integer path vote into the second row, which is dropped once they are placed.
    """
    n, h, w, c = images.shape
    integer = images.dtype == np.uint8 and not transform_sqrt
    step = max(1, _SLICE_VALUES // (h * w * c))
    slots = _vote_slots((h, w), cell, n_cells, 2 * (orientations + 1), step)
    votes = np.empty((n, n_cells[0], n_cells[1], 2, orientations + 1), np.float32)
    per_image = votes[0].size
    flagged = []
    for start in range(0, n, step):
        part = images[start:start + step]
        if integer:
            magnitude, bins = _integer_votes(part, orientations)
        else:
            magnitude, bins = _float_votes(part, orientations, transform_sqrt)
        flagged.append(np.flatnonzero(bins > orientations) + start * h * w)
        counts = np.bincount(slots[:bins.size] + bins, magnitude, minlength=(step + 1) * per_image)
        votes[start:start + step] = counts[:len(part) * per_image].reshape((-1,) + votes.shape[1:])
    flagged = np.concatenate(flagged)
    if flagged.size:
        _place_flagged_votes(votes, images, flagged, cell, orientations)
    return votes[..., 0, :orientations] / np.float32(cell[0] * cell[1])


def _normalise_blocks(hist, block, block_norm):
    """Overlapping blocks of cells, each normalised as skimage does: float32 (n, br, bc, b_r, b_c, orientations).

    Blocks are rows of one contiguous float32 array; float32 arithmetic changes the output by an ulp at most.
    """
    blocks = sliding_window_view(hist, block, axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    shape = blocks.shape
    rows = np.array(blocks, np.float32, order="C").reshape(-1, block[0] * block[1] * shape[-1])
    if block_norm in ("L1", "L1-sqrt"):
        rows /= rows.sum(axis=1, keepdims=True) + np.float32(_EPS)  # histograms are non-negative
        if block_norm == "L1-sqrt":
            np.sqrt(rows, out=rows)
    else:
        rows /= _l2_norms(rows)
        if block_norm == "L2-Hys":
            np.minimum(rows, np.float32(0.2), out=rows)
            rows /= _l2_norms(rows)
    return rows.reshape(shape)


def _l2_norms(rows):
    """skimage's ``sqrt(sum(v**2) + eps**2)`` of each row, as a column."""
    return np.sqrt(np.einsum("ij,ij->i", rows, rows) + np.float32(_EPS**2))[:, None]


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
