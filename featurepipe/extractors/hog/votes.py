"""The per-pixel votes of HOG: for each pixel, the gradient of its strongest channel as (magnitude,
orientation bin), exactly as ``skimage.feature.hog`` computes them, over a part of a batch at a time.

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

Other dtypes and ``transform_sqrt`` take skimage's floating-point route, vectorised.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

PART_VALUES = 1 << 17  # pixels x channels per part: fastest measured, between cache misses and per-call costs

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
def key_bins(orientations: int, flag_outranked: bool) -> np.ndarray:
    """Orientation bin of every key; with ``flag_outranked``, outranked keys get ``orientations + 1`` more."""
    bins = _orientation_bins(*_all_pairs(), orientations)
    if flag_outranked:
        bins = bins + (orientations + 1) * _outranked_keys()
    return bins.astype(np.uint8 if 2 * (orientations + 1) <= 256 else np.uint16)


def parts(shape, cell, n_cells):
    """The parts of the batch processed at once, as (first image, end image, first row, end row).

    Small images are taken whole, several at a time; a large one in bands of whole cell rows. Each part
    holds about ``PART_VALUES`` values: its int32 temporaries then stay in the caches, and the fixed cost
    of each numpy call is spread over enough pixels. Rows below the last whole cell vote nowhere and are
    left out.
    """
    n, _, w, c = shape
    rows = n_cells[0] * cell[0]
    per_image = rows * w * c
    if per_image <= PART_VALUES:
        step = PART_VALUES // per_image
        return [(first, min(first + step, n), 0, rows) for first in range(0, n, step)]
    band = max(1, PART_VALUES // (cell[0] * w * c)) * cell[0]
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
    return key_bins(orientations, False)[chosen + _KEY_OFFSET]


def integer_votes(part: np.ndarray, orientations: int):
    """Per pixel of uint8 ``part``: (float32 magnitude, orientation bin) of the strongest channel."""
    _, rows, w, channels = part.shape
    g_row, g_col = _central_differences(_planes(part), rows, w)
    keys = g_row * _SPAN
    keys += g_col
    energy = np.square(g_row, out=g_row)
    energy += np.square(g_col, out=g_col)
    if channels == 1:
        bins = np.take(key_bins(orientations, False), keys[0] + _KEY_OFFSET, mode="clip")
        return np.sqrt(energy[0], dtype=np.float32), bins
    energy, chosen = _strongest_channel(energy)
    key = np.take(keys, chosen, mode="clip")  # indices are valid: "clip" skips numpy's buffered check
    key += _KEY_OFFSET
    bins = np.take(key_bins(orientations, True), key, mode="clip")
    outranked = np.flatnonzero(bins > orientations)
    if outranked.size:
        bins[outranked] = _settled_bins(keys[:, outranked], orientations)
    return np.sqrt(energy, dtype=np.float32), bins


def float_votes(images: np.ndarray, orientations: int, transform_sqrt: bool):
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
