"""Throughput of featurepipe's HOG and colour histograms against scikit-image and OpenCV 4.

    python benchmarks/bench_extractors.py CIFAR_DIR [--images 2000] [--repeats 7]

CIFAR_DIR is any folder of 32x32 images (searched recursively); our HOG takes them as one stacked batch.
The 320x240 and 640x480 sets are scikit-image's sample photographs, resized; every method, ours included,
takes those one image at a time. Run it where OpenCV 4 is installed: OpenCV 5 has no
``cv2.HOGDescriptor``, so there the OpenCV HOG rows are left out.

The machine may be shared, so every method runs on the same images in each round, the rounds are
interleaved, and the best round counts. OpenCV and BLAS run on one thread, like everything else here.
Prints the load averages before and after, and a Markdown table of microseconds per image and ratios.
With numba installed our HOG takes its compiled loop; the numpy route it replaces is timed beside it.
"""
from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import cv2
import harness
import numpy as np
import skimage
from problems import image_paths, sample_photos
from skimage.feature import hog as skimage_hog
from threadpoolctl import threadpool_limits

import featurepipe
from featurepipe import create
from featurepipe.extractors.hog import kernel as hog_kernel
from featurepipe.extractors.hog import hog

HOG_PARAMS = dict(orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys",
                  channel_axis=-1)
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "colorwheel")


def load_folder(root: Path, limit: int) -> np.ndarray:
    """The first ``limit`` images under ``root`` (sorted paths) as an RGB uint8 stack."""
    paths = image_paths(root)[:limit]
    return np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])


def hog_methods(images: np.ndarray, skimage_count: int, batch: bool) -> dict:
    """Ours on the stacked batch (``batch``) or one image at a time; scikit-image and OpenCV 4 one image at
    a time (OpenCV on BGR copies)."""
    subset = images[:skimage_count]
    ours = (lambda: hog(images, **HOG_PARAMS)) if batch else (lambda: [hog(im, **HOG_PARAMS) for im in images])
    methods = {"ours": (len(images), ours),
               "skimage": (skimage_count, lambda: [skimage_hog(im, **HOG_PARAMS) for im in subset])}
    if hog_kernel.available():
        methods["numpy"] = (len(images), numpy_route(ours))
    if hasattr(cv2, "HOGDescriptor"):
        height, width = images.shape[1:3]
        descriptor = cv2.HOGDescriptor((width, height), (16, 16), (8, 8), (8, 8), 9)
        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images]
        methods["opencv"] = (len(images), lambda: [descriptor.compute(im) for im in bgr])
    return methods


def numpy_route(run):
    """``run`` with HOG's compiled loop switched off: the route taken where numba is not installed."""
    def call():
        compiled = hog_kernel.available
        hog_kernel.available = lambda: False
        try:
            run()
        finally:
            hog_kernel.available = compiled
    return call


def colour_methods(images: np.ndarray) -> dict:
    rgb, hsv = create("extractor", "color_hist"), create("extractor", "hsv_hist")
    ranges = [0, 256] * 3
    return {"color_hist": (len(images), lambda: rgb.transform(images)),
            "hsv_hist": (len(images), lambda: hsv.transform(images)),
            "calcHist": (len(images), lambda: [cv2.calcHist([im], [0, 1, 2], None, [8, 8, 8], ranges)
                                               for im in images]),
            # The like-for-like peer of hsv_hist: OpenCV's HSV conversion, then a joint 8x3x3 calcHist.
            "cvtColor+calcHist": (len(images), lambda: [
                cv2.calcHist([cv2.cvtColor(im, cv2.COLOR_RGB2HSV)], [0, 1, 2], None, [8, 3, 3], [0, 180, 0, 256, 0, 256])
                for im in images])}


def per_image_us(methods: dict, repeats: int) -> dict:
    seconds = harness.best_times({name: run for name, (_, run) in methods.items()}, repeats)
    return {name: seconds[name] / count * 1e6 for name, (count, _) in methods.items()}


def hog_parity(images: np.ndarray, count: int) -> float:
    """Largest absolute difference between our HOG and scikit-image's over ``count`` images, ours taking
    them as a batch and one at a time."""
    ours = hog(images[:count], **HOG_PARAMS)
    return float(max(max(np.abs(ours[i] - skimage_hog(images[i], **HOG_PARAMS)).max(),
                         np.abs(hog(images[i], **HOG_PARAMS) - ours[i]).max()) for i in range(count)))


def main(argv=None):
    parser = harness.parser(__doc__)
    parser.add_argument("cifar_dir", type=Path, help="folder of 32x32 images, searched recursively")
    parser.add_argument("--images", type=int, default=2000, help="32x32 images to time (default 2000)")
    parser.add_argument("--skimage-images", type=int, default=200,
                        help="32x32 images for the slow scikit-image loop (default 200)")
    parser.add_argument("--repeats", type=int, default=7, help="rounds; the best one counts (default 7)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    threadpool_limits(1)

    small = load_folder(args.cifar_dir, args.images)
    large = {size: sample_photos(SAMPLES, *size) for size in ((320, 240), (640, 480))}
    load_before = os.getloadavg()
    hog_small = per_image_us(hog_methods(small, min(args.skimage_images, len(small)), True), args.repeats)
    hog_large = {size: per_image_us(hog_methods(images, len(images), False), args.repeats)
                 for size, images in large.items()}
    colour = per_image_us(colour_methods(small), args.repeats)
    load_after = os.getloadavg()
    parity = max([hog_parity(small, min(args.skimage_images, len(small)))] +
                 [hog_parity(images, len(images)) for images in large.values()])

    print(f"- machine: {harness.cpu_and_cores()}; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"- Python {platform.python_version()}, numpy {np.__version__}, scikit-image {skimage.__version__}, "
          f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} thread), featurepipe {featurepipe.__version__}")
    print(f"- load averages (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_before)} before the timings, "
          f"{' '.join(f'{x:.2f}' for x in load_after)} after")
    print(f"- images: {len(small)} from {args.cifar_dir} ({small.shape[2]}x{small.shape[1]}, ours as one batch; "
          f"scikit-image on the first {min(args.skimage_images, len(small))}), "
          f"{' and '.join(f'{len(images)} at {w}x{h}' for (w, h), images in large.items())} (one image at a "
          f"time); best of {args.repeats} interleaved rounds")
    print(f"- HOG: 9 orientations, 8x8 cells, 2x2 blocks, L2-Hys, colour; largest difference from "
          f"scikit-image {parity:.1e}; ours {'compiled (numba)' if hog_kernel.available() else 'numpy route'}")
    print()
    print("| task | ours (us/img) | peer | peer (us/img) | peer / ours |")
    print("|---|---:|---|---:|---:|")
    rows = [("32x32 batch", hog_small)] + [(f"{w}x{h} single", times) for (w, h), times in hog_large.items()]
    for size, times in rows:
        for peer, label in (("skimage", "skimage.feature.hog"), ("opencv", "cv2.HOGDescriptor"),
                            ("numpy", "ours, numpy route (no numba)")):
            if peer not in times:
                continue
            print(f"| HOG {size} | {times['ours']:.1f} | {label} | {times[peer]:.1f} | "
                  f"{times[peer] / times['ours']:.2f} |")
    for ours, peer, label in (("color_hist", "calcHist", "cv2.calcHist 8x8x8"),
                              ("hsv_hist", "calcHist", "cv2.calcHist 8x8x8 (RGB, no conversion)"),
                              ("hsv_hist", "cvtColor+calcHist", "cv2.cvtColor HSV + calcHist 8x3x3")):
        print(f"| {ours} 32x32 | {colour[ours]:.1f} | {label} | {colour[peer]:.1f} | {colour[peer] / colour[ours]:.2f} |")


if __name__ == "__main__":
    main()
