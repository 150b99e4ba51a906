"""Dense SIFT: featurepipe's batched ``dense_sift`` against ``cv2.SIFT.compute`` on the same grid.

    python benchmarks/bench_dsift.py [CIFAR_DIR] [--images 2000] [--opencv-images 200] [--rounds 5]

(from a checkout that is not the installed one: ``PYTHONPATH=. python benchmarks/bench_dsift.py ...``; the
header names the featurepipe that ran.)

Two settings, the grid and keypoint sizes of the SIFT descriptor (``sizes`` are OpenCV keypoint
diameters; ours uses bins of ``1.5 * size`` pixels, the area OpenCV's cover):

(a) 256x256 grey images, keypoints every 8 pixels at sizes 16 and 24 (2,048 per image): scikit-image's
    sample photographs, resized, and their mirror images;
(b) 32x32 grey images at step 2, sizes 8 and 16 (512 per image, the CIFAR-10 configs): images under
    CIFAR_DIR (searched recursively, evenly spaced over the sorted paths), else the samples resized.

Both run on one thread (``cv2.setNumThreads(1)``, BLAS limited by threadpoolctl). Ours describes blocks
of about 65,536 pixels per call (64 images of 32x32, one of 256x256), as featurepipe's pooling calls it;
OpenCV one image at a time, on the first ``--opencv-images`` of ours. The machine may be shared, so the methods
alternate within every round; the table gives the best round of each, and the median over rounds of the
per-round ratio. Cosine similarity compares our descriptors with OpenCV's on the same keypoints, with
our default (PHOW) smoothing and with OpenCV's (sigma 1.6 at every size).
"""
from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import cv2
import harness
import numpy as np
from problems import image_paths, sample_photos
from threadpoolctl import threadpool_limits

import featurepipe
from featurepipe.local.dsift import BIN_WIDTH_PER_SIZE, dense_sift
from featurepipe.local.sift import SIFT

BLOCK_PIXELS = 1 << 16  # featurepipe.local.pooling describes images in blocks of about this many pixels
SAMPLES = ("camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "moon", "page", "text", "brick",
           "grass", "gravel")


def load_folder(root: Path, count: int) -> np.ndarray:
    """``count`` grey images evenly spaced over the sorted image paths under ``root``."""
    paths = image_paths(root)
    chosen = [paths[i] for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).astype(int)]
    return np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in chosen])


def opencv(grey: np.ndarray, step: int, sizes) -> np.ndarray:
    """``cv2.SIFT.compute`` one image at a time on the grid of featurepipe's SIFT (its ``dense_opencv`` mode's
    keypoints), unnormalised: (n, keypoints, 128)."""
    keypoints = SIFT(step=step, sizes=sizes).opencv_keypoints(*grey.shape[1:])
    sift = cv2.SIFT_create()
    return np.stack([sift.compute(image, keypoints)[1] for image in grey])


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1, 128).astype(np.float64), b.reshape(-1, 128).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    described = norms > 0
    return float(((a * b).sum(axis=1)[described] / norms[described]).mean())


def compare(grey: np.ndarray, n_opencv: int, step: int, sizes, rounds: int) -> dict:
    """Per-image seconds of both methods over interleaved rounds, and the cosine similarities."""
    widths = [BIN_WIDTH_PER_SIZE * s for s in sizes]
    subset, block = grey[:n_opencv], max(1, BLOCK_PIXELS // (grey.shape[1] * grey.shape[2]))

    def ours_in_blocks():
        for first in range(0, len(grey), block):
            dense_sift(grey[first:first + block], step, widths)

    seconds = harness.timed_rounds({"ours": ours_in_blocks, "opencv": lambda: opencv(subset, step, sizes)}, rounds)
    ours, theirs = np.array(seconds["ours"]) / len(grey), np.array(seconds["opencv"]) / len(subset)
    reference = opencv(subset, step, sizes)
    per_size = reference.shape[1] // len(sizes)
    matched = np.concatenate([dense_sift(subset, step, [w], smoothing=1.6) for w in widths], axis=1)
    return {"ours": min(ours), "opencv": min(theirs),
            "median_ratio": float(np.median(theirs / ours)),
            "cosine": mean_cosine(dense_sift(subset, step, widths), reference),
            "cosine_per_size": [mean_cosine(dense_sift(subset, step, [w]),
                                            reference[:, i * per_size:(i + 1) * per_size])
                                for i, w in enumerate(widths)],
            "cosine_opencv_smoothing": mean_cosine(matched, reference),
            "keypoints": reference.shape[1]}


def main(argv=None):
    parser = harness.parser(__doc__)
    parser.add_argument("cifar_dir", type=Path, nargs="?", help="folder of 32x32 images, searched recursively")
    parser.add_argument("--images", type=int, default=2000, help="32x32 images for ours (default 2000)")
    parser.add_argument("--opencv-images", type=int, default=200, help="32x32 images for OpenCV (default 200)")
    parser.add_argument("--large-opencv-images", type=int, default=4,
                        help="256x256 images for OpenCV (default 4; ours describes all 24)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    large = sample_photos(SAMPLES, 256, 256, grey=True)
    if args.cifar_dir is not None:
        small, source = load_folder(args.cifar_dir, args.images), str(args.cifar_dir)
    else:
        small, source = sample_photos(SAMPLES, 32, 32, grey=True), "scikit-image samples"
        small = small[np.arange(args.images) % len(small)]
    with threadpool_limits(1):
        results = {
            "(a) 256x256, step 8, sizes 16, 24": compare(large, args.large_opencv_images, 8, (16, 24), args.rounds),
            "(b) 32x32, step 2, sizes 8, 16": compare(small, args.opencv_images, 2, (8, 16), args.rounds)}

    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"- {harness.cpu_and_cores()}, load average {os.getloadavg()[0]:.1f}; {now:%Y-%m-%d %H:%M} UTC; "
          f"Python {platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}, "
          f"featurepipe {featurepipe.__version__} ({Path(featurepipe.__file__).parent}); one thread each")
    print(f"- (a): {len(large)} scikit-image samples at 256x256 for ours, the first {args.large_opencv_images} for "
          f"OpenCV; (b): {len(small)} images from {source} for ours, the first {min(args.opencv_images, len(small))} "
          f"for OpenCV; {args.rounds} interleaved rounds")
    print()
    print("| setting | keypoints/img | ours (ms/img) | cv2.SIFT.compute (ms/img) | cv2 / ours (best) "
          "| cv2 / ours (median round) | cosine | cosine per size | cosine, OpenCV smoothing |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['keypoints']} | {r['ours'] * 1e3:.3f} | {r['opencv'] * 1e3:.1f} | "
              f"{r['opencv'] / r['ours']:.0f}x | {r['median_ratio']:.0f}x | {r['cosine']:.3f} | "
              f"{', '.join(f'{c:.3f}' for c in r['cosine_per_size'])} | {r['cosine_opencv_smoothing']:.3f} |")


if __name__ == "__main__":
    main()
