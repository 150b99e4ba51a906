"""Helpers shared by the tests: writing small synthetic images, running the command line in-process."""
import contextlib
import io

import cv2
import numpy as np


def write_rgb(path, image):
    """Write an RGB uint8 image with OpenCV (which expects BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def class_images(rng, n, size, colour):
    """``n`` noisy images dominated by one colour channel, so classes differ in colour and texture."""
    images = rng.integers(0, 90, (n, size, size, 3), dtype=np.uint8)
    images[..., colour] += rng.integers(100, 160, dtype=np.uint8)
    return images


def make_image_folder(root, rng, per_class=(8, 4), size=32, jpeg_every=2):
    """train/ and test/ splits of three colour-dominated classes; every ``jpeg_every``-th file a JPEG."""
    for split, count in zip(("train", "test"), per_class):
        for colour, name in enumerate(("red", "green", "blue")):
            for i, image in enumerate(class_images(rng, count, size, colour)):
                write_rgb(root / split / name / f"{name}_{i}.{'jpg' if i % jpeg_every == 0 else 'png'}", image)
    return root


def run_cli(*argv) -> tuple[int, str, str]:
    """``featurepipe ARGV`` in this process: (exit code, stdout, stderr)."""
    from featurepipe.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def stored_colour_histograms(root):
    """``fitting.TrainingData`` of 36 training images' (and 18 test images') colour histograms, 125 wide (fewer
    rows than features), extracted into a store under ``root``."""
    from featurepipe.datasets import open_dataset
    from featurepipe.fitting import TrainingData
    from featurepipe.pipeline import build_pipeline
    from featurepipe.runner import extract
    from featurepipe.store import FeatureStore

    folder = make_image_folder(root / "images", np.random.default_rng(0), per_class=(12, 6), size=24,
                               jpeg_every=10**6)
    store = FeatureStore(root / "cache")
    key = extract(open_dataset(folder), build_pipeline({"extractor": {"color_hist": {"bins": 5}}}), store,
                  chunk_rows=8, progress=False).key
    return TrainingData(store, key)
