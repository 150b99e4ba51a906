"""Dense SIFT on a stacked batch of grey images, in VLFeat's ``vl_dsift`` / PHOW design.

Every descriptor of a grid shares the same size and orientation, so the per-keypoint histogram loops of
``cv2.SIFT.compute`` collapse into image-wide operations (Vedaldi & Fulkerson 2008). Per bin width:

1. smooth the image once with a Gaussian matched to the bin width (PHOW), or to a fixed blur at every
   bin width (``smoothing``: OpenCV's 1.6);
2. take the gradient (central differences) and split its magnitude into 8 orientation planes, linearly
   interpolated between the two nearest orientations;
3. bin each plane spatially with a triangular (bilinear) kernel of half-width one bin. The binned planes
   are only needed at the bin centres, so the separable convolution is two matrix products, columns
   then rows, against the kernel weights of the needed centres: BLAS calls on the whole batch at once,
   a band of centres at a time on large images (a centre only weighs pixels within a bin width);
4. gather each keypoint's 4 x 4 bins, weight them by a Gaussian window and normalise: unit L2 norm,
   clamp at 0.2, unit norm again.

Geometry
--------
Pixel ``(r, c)`` covers ``[r, r + 1) x [c, c + 1)``. Descriptor centres lie every ``step`` pixels at
``((i + 0.5) * step, (j + 0.5) * step)``, pixel index ``(i + 0.5) * step - 0.5`` (the OpenCV keypoint
``pt``), and bin ``b`` in 0..3 along an axis is centred ``(b - 1.5) * bin_width`` away from the centre.

* OpenCV: a keypoint of diameter ``size`` has scale ``sigma = size / 2`` and spatial bins of
  ``3 * sigma = 1.5 * size`` pixels (``SIFT_DESCR_SCL_FCTR``): the 4 x 4 bins span ``6 * size`` pixels.
  OpenCV describes every keypoint given to ``compute`` on the same image, smoothed to sigma 1.6.
* VLFeat: ``binSize`` is the bin width in pixels; ``vl_sift`` frames of scale ``sigma`` correspond to
  ``binSize = magnif * sigma`` with ``magnif = 3`` (as OpenCV); PHOW smooths each scale with
  ``sqrt((binSize / 6)^2 - 0.25)``.
* Here: ``bin_width = BIN_WIDTH_PER_SIZE * size = 1.5 * size`` (the OpenCV area; VLFeat PHOW's bin sizes
  4, 6, 8, 10 are keypoint sizes 8/3, 4, 16/3, 20/3) and PHOW's smoothing,
  ``sigma = sqrt((bin_width / magnification)^2 - 0.25)`` with ``magnification = 6``. The grid is
  featurepipe's, not ``vl_dsift``'s (whose first frame has its corner bin centred on pixel 0).

Orientation bin ``o`` holds gradients at ``45 * o`` degrees counter-clockwise from the column axis, rows
pointing up (image rows go down, so a gradient towards the top of the image is 90 degrees); a
descriptor is laid out (bin row, bin column, orientation), rows top to bottom, as ``cv2.SIFT``'s
(VLFeat's C code measures angles with rows pointing down).

Differences from ``cv2.SIFT.compute`` on the same keypoints: by default smoothing grows with the bin
width (OpenCV keeps sigma 1.6 at every size; ``smoothing=1.6`` does too) and the Gaussian window (sigma ``window`` = 2 bins, OpenCV's and
``vl_dsift``'s default; PHOW uses 1.5) weights each bin by its value at the bin centre rather than each
pixel. With OpenCV's smoothing the descriptors agree with OpenCV's to a mean cosine above 0.99; with
PHOW's, measured 0.99 (size 8) and 0.92 (size 16) on CIFAR-10, 0.95 (16) and 0.92 (24) on 256x256
photographs.
Gradients are zero on the image's outermost pixels and outside the image (OpenCV skips those pixels),
so descriptors overlapping the border describe what they see.

Speed: float32 throughout; images go by blocks of about 16,384 pixels (their planes stay in cache) and
descriptors are gathered and normalised 1,024 at a time. The binning products are small BLAS calls: a
multi-threaded BLAS on a busy machine makes them wait for busy cores (2 to 5 times slower measured with
two threads on a loaded 2-core machine), so give each process one BLAS thread, as joblib's workers get
when there are as many jobs as cores.

Low contrast: a descriptor is all zeros when its norm before normalisation -- of window-weighted mean
gradient magnitudes, in grey levels per pixel -- is below ``MIN_CONTRAST`` (1e-3). An edge of one grey
level gives 0.01 (bins of 36 pixels) to 0.2 (6 pixels), float32 rounding on flat images below 1e-5.
OpenCV normalises any histogram that is not exactly zero; VLFeat's PHOW zeroes descriptors whose norm
as ``vl_dsift`` reports it is below 0.005 on images scaled to [0, 1].
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

BIN_WIDTH_PER_SIZE = 1.5  # OpenCV: bin width = 3 * (keypoint diameter / 2)
MAGNIFICATION = 6.0       # PHOW: smoothing sigma = bin width / 6 (less the image's own 0.5)
WINDOW = 2.0              # Gaussian window sigma, in bins
CLAMP = 0.2
MIN_CONTRAST = 1e-3
_NUM_BINS, _NUM_ORIENTATIONS = 4, 8
_LENGTH = _NUM_BINS * _NUM_BINS * _NUM_ORIENTATIONS
_HISTOGRAM = np.dtype((np.void, 4 * _NUM_ORIENTATIONS))  # one bin's 8 float32 orientations, moved as one item
_BLOCK_PIXELS = 1 << 14   # images per block: about this many pixels, so a block's planes stay in cache
_CHUNK_ROWS = 1024        # descriptors gathered and normalised at once: 512 KiB, in cache
_BAND_BINS = 3.0          # binning products a band of centres at a time, spanning about this many bin widths
_ONE, _ONES = np.ones((1, 1), np.float32), np.ones(_LENGTH, np.float32)


def grid_centres(length: int, step: int) -> np.ndarray:
    """Descriptor centres along one axis of ``length`` pixels: ``(i + 0.5) * step`` from the edge."""
    return (np.arange(length // step) + 0.5) * step


def grid_positions(height: int, width: int, step: int, n_sizes: int) -> np.ndarray:
    """Relative (row, col) centres of one image's descriptors, row-major, repeated once per size."""
    centres = np.stack(np.meshgrid(grid_centres(height, step), grid_centres(width, step), indexing="ij"), -1)
    return (np.tile(centres.reshape(-1, 2), (n_sizes, 1)) / (height, width)).astype(np.float32)


def smoothing_sigma(bin_width: float, smoothing: float | None = None) -> float:
    """The Gaussian that blurs the image (taken as already blurred by 0.5) to ``smoothing``, or with
    ``None`` to PHOW's ``bin_width / MAGNIFICATION``."""
    target = bin_width / MAGNIFICATION if smoothing is None else smoothing
    return float(np.sqrt(max(target ** 2 - 0.25, 0.0)))


class _Axis:
    """Spatial binning along one axis: the bin centres that keypoints need and their kernel weights.

    For bin ``b``, the centres of the keypoints' bins are an arithmetic progression of stride ``step``;
    bins whose offsets differ by whole steps share one progression. ``matrix`` holds, for every centre
    that weighs some pixel, the triangular weights of the pixels divided by the bin width (they sum to
    one); ``bins()`` says which row each keypoint's bins use.
    """

    def __init__(self, length: int, step: int, bin_width: float):
        self.count = length // step
        offsets = (np.arange(_NUM_BINS) - (_NUM_BINS - 1) / 2) * bin_width / step  # in steps
        shift = np.floor(offsets)
        phase = np.round(offsets - shift, 9)
        positions, self.first = [], np.empty(_NUM_BINS, np.int64)
        for p in np.unique(phase):
            bins = np.flatnonzero(phase == p)
            lo, hi = shift[bins].min(), shift[bins].max()
            self.first[bins] = sum(map(len, positions)) + (shift[bins] - lo)
            positions.append((np.arange(self.count + hi - lo) + lo + p + 0.5) * step - 0.5)
        centres = np.concatenate(positions)
        weights = np.maximum(1 - np.abs(np.arange(length) - centres[:, None]) / bin_width, 0)
        used = weights.any(axis=1)  # centres beyond a bin width off the image weigh nothing
        self.row = np.where(used, np.cumsum(used) - 1, -1)
        self.matrix = (weights[used] / bin_width).astype(np.float32)
        # Each centre weighs only the pixels within a bin width of it: on images much larger than a bin,
        # the products take a band of a few consecutive centres of a progression at a time.
        size = max(1, int(_BAND_BINS * bin_width / step))
        progression = np.repeat(np.arange(len(positions)), [len(p) for p in positions])[used]
        runs = [np.flatnonzero(progression == p) for p in np.unique(progression)]
        if 4 * size >= len(self.matrix):
            size, runs = len(self.matrix), [np.arange(len(self.matrix))]
        self.bands = []  # (start, stop, lo, hi): rows start:stop of matrix are zero outside pixels lo:hi
        for run in runs:
            for first in range(run[0], run[-1] + 1, size):
                stop = min(first + size, run[-1] + 1)
                pixels = np.flatnonzero(self.matrix[first:stop].any(axis=0))
                self.bands.append((first, stop, pixels[0], pixels[-1] + 1))

    def bins(self) -> np.ndarray:
        """Row of ``matrix`` for each (keypoint, bin), -1 where the bin lies off the image: (count, 4)."""
        return self.row[self.first[None, :] + np.arange(self.count)[:, None]]


class _Scale:
    """What one bin width needs that does not depend on the images."""

    def __init__(self, height: int, width: int, step: int, bin_width: float, smoothing: float | None):
        sigma = smoothing_sigma(bin_width, smoothing)
        self.kernel = cv2.getGaussianKernel(2 * int(np.ceil(4 * sigma)) + 1, sigma, cv2.CV_32F) if sigma > 0 else None
        self.rows, self.cols = _Axis(height, step, bin_width), _Axis(width, step, bin_width)
        self.rows.matrix *= 0.5  # central differences are twice the derivative
        self.shape = (len(self.rows.matrix), len(self.cols.matrix))  # binned histograms per image

    def index(self, n: int, zero: int) -> np.ndarray:
        """Where the 16 histograms of each image's keypoints lie among (rows, n, cols) binned ones, or
        ``zero`` for bins off the image: (n, keypoints * 16)."""
        r, c = self.rows.bins()[:, None, :, None], self.cols.bins()[None, :, None, :]  # keypoint row, col, bins
        index = (r * (n * self.shape[1]) + c).reshape(1, -1) + (np.arange(n) * self.shape[1])[:, None]
        return np.where(((r < 0) | (c < 0)).reshape(1, -1), zero, index)


class _Plan:
    """Dense SIFT of images of one shape: per-scale binning, gathering indices and window. Read-only once
    built, so calls (and threads) share it; the buffers come from ``workspace``."""

    def __init__(self, height, width, step, bin_widths, smoothing, window, root):
        self.shape, self.root = (height, width), root
        self.scales = [_Scale(height, width, step, b, smoothing) for b in bin_widths]
        self.n_points = (height // step) * (width // step) * len(self.scales)
        self.block, self.chunk = max(1, _BLOCK_PIXELS // (height * width)), _CHUNK_ROWS
        g = np.exp(-0.5 * ((np.arange(_NUM_BINS) - (_NUM_BINS - 1) / 2) / window) ** 2)
        weights = np.repeat(np.outer(g, g).ravel(), _NUM_ORIENTATIONS)
        self.window = np.tile(weights, (self.chunk, 1)).astype(np.float32)  # a chunk's worth, for cv2.multiply
        self.full_index = self.index(self.block)

    def index(self, n: int) -> np.ndarray:
        """Gathering index of a block of ``n`` images, in image, scale, keypoint, bin order; the
        histogram after all scales' is zero."""
        offsets = np.cumsum([0] + [n * r * c for r, c in (s.shape for s in self.scales)])
        return np.concatenate([s.index(n, offsets[-1] - o) + o for s, o in zip(self.scales, offsets)], axis=1).ravel()

    def workspace(self, n: int) -> dict:
        """Buffers for blocks of up to ``n`` images."""
        (h, w), rows, cols = self.shape, max(s.shape[0] for s in self.scales), max(s.shape[1] for s in self.scales)
        pixels = h * w * n
        return {name: np.empty(size, np.float32) for name, size in [
            ("x", pixels), ("smooth", pixels), ("vertical", pixels), ("gx", pixels), ("gy", pixels),
            ("magnitude", pixels), ("angle", pixels), ("buffer", pixels), ("planes", _NUM_ORIENTATIONS * pixels),
            ("columns", _NUM_ORIENTATIONS * h * n * cols), ("rows", _NUM_ORIENTATIONS * rows * n * cols),
            ("binned", _NUM_ORIENTATIONS * (n * sum(r * c for r, c in (s.shape for s in self.scales)) + 1))]}

    def describe(self, grey: np.ndarray, out: np.ndarray, work: dict) -> None:
        """Descriptors of an (n, H, W) block into ``out`` (n, n_points, 128), ``work`` from ``workspace(n)``
        or larger."""
        n, h, w = grey.shape
        x = _buffer(work, "x", h, n, w)
        x[...] = grey.transpose(1, 0, 2)  # rows of all images side by side: one BLAS call per axis
        gx, gy = _buffer(work, "gx", h, n, w), _buffer(work, "gy", h, n, w)
        for g in (gx, gy):
            g[[0, -1]] = 0
            g[:, :, [0, -1]] = 0
        magnitude, angle = _buffer(work, "magnitude", h, n * w), _buffer(work, "angle", h, n * w)
        planes, buffer = _buffer(work, "planes", h, _NUM_ORIENTATIONS, n * w), _buffer(work, "buffer", h, n * w)
        binned, start = work["binned"], 0
        for scale in self.scales:
            smooth = x
            if scale.kernel is not None:  # each image on its own: down the (H, n W) view, along (H n, W)
                vertical = cv2.sepFilter2D(x.reshape(h, n * w), -1, _ONE, scale.kernel,
                                           borderType=cv2.BORDER_REFLECT_101, dst=_buffer(work, "vertical", h, n * w))
                smooth = cv2.sepFilter2D(vertical.reshape(h * n, w), -1, scale.kernel, _ONE,
                                         borderType=cv2.BORDER_REFLECT_101, dst=_buffer(work, "smooth", h * n, w))
                smooth = smooth.reshape(h, n, w)
            np.subtract(smooth[1:-1, :, 2:], smooth[1:-1, :, :-2], out=gx[1:-1, :, 1:-1])
            np.subtract(smooth[:-2, :, 1:-1], smooth[2:, :, 1:-1], out=gy[1:-1, :, 1:-1])  # rows point up
            cv2.cartToPolar(gx.reshape(h, -1), gy.reshape(h, -1), magnitude=magnitude, angle=angle,
                            angleInDegrees=True)
            _orientation_planes(magnitude, angle, planes, buffer)
            (r, c), size = scale.shape, _NUM_ORIENTATIONS * scale.shape[0] * n * scale.shape[1]
            # Planes (H, 8, n, W): both products are single BLAS calls over all orientations and images.
            columns, flat = _buffer(work, "columns", h * _NUM_ORIENTATIONS * n, c), planes.reshape(-1, w)
            for first, stop, lo, hi in scale.cols.bands:
                np.matmul(flat[:, lo:hi], scale.cols.matrix[first:stop, lo:hi].T, out=columns[:, first:stop])
            columns, rows = columns.reshape(h, -1), _buffer(work, "rows", r, _NUM_ORIENTATIONS, n * c)
            for first, stop, lo, hi in scale.rows.bands:
                np.matmul(scale.rows.matrix[first:stop, lo:hi], columns[lo:hi], out=rows.reshape(r, -1)[first:stop])
            # Orientations last: (rows, n, cols, 8), so a histogram moves as one 32-byte item.
            cv2.merge([rows[:, o] for o in range(_NUM_ORIENTATIONS)],
                      dst=binned[start:start + size].reshape(r, n * c, _NUM_ORIENTATIONS))
            start += size
        binned[start:start + _NUM_ORIENTATIONS] = 0  # the bins off the image
        histograms = binned[:start + _NUM_ORIENTATIONS].view(_HISTOGRAM)
        index = self.full_index if n == self.block else self.index(n)
        values = out.reshape(-1, _LENGTH)
        bins = _NUM_BINS * _NUM_BINS
        for first in range(0, len(values), self.chunk):  # gathered and normalised while in cache
            chunk = values[first:first + self.chunk]
            np.take(histograms, index[first * bins:(first + len(chunk)) * bins],
                    out=chunk.view(_HISTOGRAM).reshape(-1), mode="clip")  # valid indices; "clip" does not buffer
            self._normalise(chunk)

    def _normalise(self, values: np.ndarray) -> None:
        """In place: Gaussian window, unit L2 norm, clamp at ``CLAMP``, unit norm again (or RootSIFT's L1
        norm and square root); descriptors below ``MIN_CONTRAST`` become zeros."""
        cv2.multiply(values, self.window[:len(values)], dst=values)
        norm = np.sqrt(np.einsum("ij,ij->i", values, values))
        values[norm < MIN_CONTRAST] = 0
        np.minimum(values, (CLAMP * norm)[:, None], out=values)  # clamp the unit vector at CLAMP
        norm = values @ _ONES if self.root else np.sqrt(np.einsum("ij,ij->i", values, values))  # L1: BLAS
        norm[norm == 0] = np.inf
        np.multiply(values, (1 / norm)[:, None], out=values)
        if self.root:
            cv2.sqrt(values, dst=values)


@functools.lru_cache(maxsize=16)
def _plan(*key) -> _Plan:
    """The plan for ``(height, width, step, bin_widths, smoothing, window, root)``, built once: that
    takes milliseconds, as long as describing a few dozen small images."""
    return _Plan(*key)


def _buffer(work: dict, name: str, *shape) -> np.ndarray:
    return work[name][:np.prod(shape)].reshape(shape)


def _orientation_planes(magnitude: np.ndarray, angle: np.ndarray, planes: np.ndarray, buffer: np.ndarray) -> None:
    """Split gradient magnitudes (H, n W) into ``planes[:, o]``, linear in the angle (degrees) between the
    two nearest of the orientations ``45 * o``."""
    width = 360 / _NUM_ORIENTATIONS
    for o in range(_NUM_ORIENTATIONS):
        plane = planes[:, o]
        if o == 0:  # circular distance to 0 degrees
            cv2.min(cv2.subtract(360.0, angle, dst=buffer), angle, dst=buffer)
        else:
            cv2.absdiff(angle, o * width, dst=buffer)
        cv2.threshold(buffer, width, width, cv2.THRESH_TRUNC, dst=buffer)
        cv2.subtract(width, buffer, dst=buffer)  # exactly >= 0
        cv2.multiply(magnitude, buffer, dst=plane, scale=1 / width)


def iter_dense_sift(grey: np.ndarray, step: int, bin_widths, *, smoothing: float | None = None,
                    window: float = WINDOW, root: bool = False):
    """Yield ``(start, descriptors)`` a block of images at a time, ``descriptors`` of shape
    ``(n_block, len(bin_widths) * n_points, 128)`` for images ``start:start + n_block``; see ``dense_sift``."""
    n, h, w = grey.shape
    plan = _plan(h, w, step, tuple(map(float, bin_widths)), None if smoothing is None else float(smoothing),
                 float(window), bool(root))
    work = plan.workspace(min(n, plan.block))
    for start in range(0, n, plan.block):
        part = grey[start:start + plan.block]
        out = np.empty((len(part), plan.n_points, _LENGTH), np.float32)
        if out.size:
            plan.describe(part, out, work)
        yield start, out


def dense_sift(grey: np.ndarray, step: int, bin_widths, *, smoothing: float | None = None,
               window: float = WINDOW, root: bool = False) -> np.ndarray:
    """Dense SIFT descriptors ``(n, len(bin_widths) * n_points, 128)`` float32 of a grey ``(n, H, W)`` batch.

    ``grey`` holds grey levels in 0..255 (uint8 or float). Each image's descriptors are those of every
    grid point (``grid_positions``) at the first bin width, then at the second, and so on; ``bin_widths``
    are in pixels (``BIN_WIDTH_PER_SIZE * size`` for OpenCV keypoint diameters). ``smoothing``: the blur
    (Gaussian sigma, pixels) every scale is described at, or None for PHOW's, growing with the bin width
    (see ``smoothing_sigma``). ``root`` gives RootSIFT
    (Arandjelovic & Zisserman 2012): the clamped descriptor L1-normalised, then square-rooted. Images
    are processed a block at a time, so memory beyond the result stays bounded.
    """
    n, h, w = grey.shape
    plan = _plan(h, w, step, tuple(map(float, bin_widths)), None if smoothing is None else float(smoothing),
                 float(window), bool(root))
    out = np.empty((n, plan.n_points, _LENGTH), np.float32)
    if out.size:
        work = plan.workspace(min(n, plan.block))
        for start in range(0, n, plan.block):
            plan.describe(grey[start:start + plan.block], out[start:start + plan.block], work)
    return out
