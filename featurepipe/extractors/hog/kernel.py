"""HOG's cell histograms of 8-bit images in one compiled pass, when numba is installed (``featurepipe[fast]``).

The numpy route (``votes``) makes about a dozen passes over every part of the batch (planes,
differences, energies, the strongest channel, keys, bins, magnitudes, ``bincount``); this loop reads each
pixel once and adds its vote to its cell while the cell row is in cache. Its arithmetic is the integer
route's, step by step (see ``votes``): exact integer gradients and energies, the first channel of
largest energy, orientation bins from the same key table, skimage's float64 ``hypot`` and ``argmax``
for outranked keys, float32 magnitudes summed in float64, so the histograms equal the numpy route's to
float32 rounding (the order of the float64 sums differs).
"""
from __future__ import annotations

import functools
from importlib.util import find_spec

import numpy as np


@functools.cache
def available() -> bool:
    """Whether the compiled route can run: numba is installed (imported only when first used, as it takes
    a few tenths of a second)."""
    return find_spec("numba") is not None


def _cell_histograms(images, channels, cell_rows, cell_cols, cells_down, cells_across, key_bins, orientations, out):
    """Fill ``out`` ``(n, cells_down, cells_across, orientations)`` float32 with the cell histograms of uint8
    ``images`` ``(n, H, W * channels)``, divided by the cell area; ``key_bins`` is ``votes``'s flagged
    table.

    Row by row, in loops the compiler vectorises: every channel value's energy and key, then each pixel's
    strongest channel and magnitude; then each pixel's bin and vote. Loops index slices from zero: an
    index that might be negative costs numba a wrap-around check, and the loop its vectorisation. Even
    and odd columns add into separate sums, so consecutive votes into one bin do not wait for each other.
    """
    n, h, length = images.shape
    width = length // channels
    area = np.float32(cell_rows * cell_cols)
    spare = orientations + 1  # a slot per cell for votes in no bin (bin ``orientations``)
    sums = np.zeros((2, cells_across, 2 * spare), np.float64)  # slots spare.. catch outranked keys' votes
    energies, keys = np.zeros(length, np.int32), np.zeros(length, np.int32)
    best_energy, best_key = np.zeros(width, np.int32), np.zeros(width, np.int32)
    magnitudes = np.zeros(width, np.float32)
    inner_keys, inner_energies = keys[channels:length - channels], energies[channels:length - channels]
    for i in range(n):
        for cell_row in range(cells_down):
            sums[:] = 0.0
            for r in range(cell_row * cell_rows, (cell_row + 1) * cell_rows):
                row = images[i, r]
                inner = 0 < r < h - 1  # border rows have no vertical gradient: the row itself above and below
                above = images[i, r - 1] if inner else row
                below = images[i, r + 1] if inner else row
                for k in range(length):
                    g_row = np.int32(below[k]) - np.int32(above[k])
                    keys[k] = (g_row + 255) * 511 + 255  # g_col = 0 in the first and last column
                    energies[k] = g_row * g_row
                ahead = row[2 * channels:]
                for k in range(length - 2 * channels):
                    g_col = np.int32(ahead[k]) - np.int32(row[k])
                    inner_keys[k] += g_col
                    inner_energies[k] += g_col * g_col
                best_energy[:] = energies[0::channels]
                best_key[:] = keys[0::channels]
                for ch in range(1, channels):  # the first channel of largest energy, as argmax
                    energy, key = energies[ch::channels], keys[ch::channels]
                    for c in range(width):
                        stronger = energy[c] > best_energy[c]
                        best_key[c] = key[c] if stronger else best_key[c]
                        best_energy[c] = energy[c] if stronger else best_energy[c]
                for c in range(width):
                    magnitudes[c] = np.sqrt(np.float32(best_energy[c]))
                outranked = False
                for j in range(cells_across):
                    even, odd = sums[0, j], sums[1, j]
                    first = j * cell_cols
                    cell_keys, cell_magnitudes = best_key[first:first + cell_cols], magnitudes[first:first + cell_cols]
                    for t in range(cell_cols):
                        b = key_bins[cell_keys[t]]
                        outranked |= b > orientations  # its vote lands in a slot never read, and is redone below
                        if t & 1:
                            odd[b] += cell_magnitudes[t]
                        else:
                            even[b] += cell_magnitudes[t]
                if outranked:  # rare (0.05% of a photograph's pixels): off the hot loop
                    for c in range(cells_across * cell_cols):
                        if key_bins[best_key[c]] > orientations:  # skimage's float64 hypot and argmax
                            best_hypot, best = -1.0, 0
                            for key in keys[c * channels:(c + 1) * channels]:
                                g_row, g_col = divmod(key, 511)
                                length_k = np.hypot(np.float64(g_row - 255), np.float64(g_col - 255))
                                if length_k > best_hypot:
                                    best_hypot, best = length_k, key
                            sums[c & 1, c // cell_cols, key_bins[best] % spare] += magnitudes[c]
            for j in range(cells_across):
                for o in range(orientations):
                    out[i, cell_row, j, o] = np.float32(sums[0, j, o] + sums[1, j, o]) / area


@functools.cache
def _compiled():
    """``_cell_histograms`` compiled (once per process; numba caches the machine code on disk)."""
    import numba

    return numba.njit(cache=True, nogil=True, boundscheck=False)(_cell_histograms)


def cell_histograms(images, cell, n_cells, key_bins, orientations):
    """Cell histograms ``(n, cells_r, cells_c, orientations)`` float32 of uint8 ``(n, H, W, C)`` images."""
    n, h, w, channels = images.shape
    out = np.empty((n,) + tuple(n_cells) + (orientations,), np.float32)
    _compiled()(np.ascontiguousarray(images).reshape(n, h, w * channels), channels, cell[0], cell[1], n_cells[0],
                n_cells[1], key_bins, orientations, out)
    return out
