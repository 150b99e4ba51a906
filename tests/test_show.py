"""`featurepipe show` end to end on generated images: HOG glyphs, a bag of words' keypoints and visual words
(with its cached fit, and without one), colour histograms, and none of a grey image."""
import numpy as np
import pytest
import yaml
from helpers import class_images, run_cli, write_rgb
from PIL import Image

from featurepipe.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from featurepipe.pipeline import build_pipeline
from featurepipe.show import pictures_of

HOG = {"hog": {"orientations": 9, "pixels_per_cell": [8, 8], "cells_per_block": [2, 2]}}
BOVW = {"bovw": {"descriptor": {"patches": {"size": 6, "stride": 2}}, "n_words": 8, "n_samples": 2000,
                 "max_iter": 5, "pyramid": [1]}}
HSV = {"hsv_hist": {"bins": [8, 3, 3]}}


@pytest.fixture
def image(tmp_path):
    return write_rgb(tmp_path / "one.png", class_images(np.random.default_rng(1), 1, 48, colour=0)[0])


def write_config(tmp_path, image_folder, cache_dir, extractor, preprocess=()):
    path = tmp_path / "show.yaml"
    path.write_text(yaml.safe_dump({"dataset": {"path": str(image_folder)},
                                    "pipeline": {"preprocess": list(preprocess), "extractor": extractor},
                                    "run": {"cache_dir": str(cache_dir), "progress": False}}))
    return path


def shown(out):
    """The PNG's (width, height), checked to be a picture of some size."""
    assert out.stat().st_size > 5000
    with Image.open(out) as png:
        assert png.format == "PNG"
        return png.size


@pytest.mark.parametrize("extractor, panels", [(HOG, 2), (HSV, 2), ({"concat": {"extractors": [HOG, HSV]}}, 3)])
def test_show_draws_each_extractor(tmp_path, image_folder, cache_dir, image, extractor, panels):
    config = write_config(tmp_path, image_folder, cache_dir, extractor)
    out = tmp_path / "seen.png"
    code, stdout, stderr = run_cli("show", image, "--config", config, "--out", out)
    assert (code, stderr) == (EXIT_OK, "") and stdout == f"wrote {out}\n"
    width, height = shown(out)
    assert 300 <= height <= 500 and width >= 280 * panels  # one picture per extractor, beside the image


def test_show_bag_of_words_words_with_the_cached_fit_and_keypoints_without(tmp_path, image_folder, cache_dir,
                                                                           image, monkeypatch):
    config = write_config(tmp_path, image_folder, cache_dir, BOVW)
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run_cli("show", image, "--config", config)
    assert code == EXIT_OK
    assert stderr.startswith("featurepipe: bovw: no fitted vocabulary for this config's data") and \
        stderr.count("\n") == 1 and "keypoint grid only" in stderr
    grid_only = shown(tmp_path / "one-pipeline.png")

    assert run_cli("extract", "--config", config)[0] == EXIT_OK
    code, stdout, stderr = run_cli("show", image, "--config", config)
    assert (code, stderr) == (EXIT_OK, "") and "one-pipeline.png" in stdout
    assert shown(tmp_path / "one-pipeline.png") == grid_only


def test_visual_words_are_those_of_the_fitted_codebook(image_folder, image):
    from featurepipe.datasets import read_image

    pipeline = build_pipeline({"extractor": BOVW})
    training = np.stack([class_images(np.random.default_rng(i), 1, 48, colour=i % 3)[0] for i in range(6)])
    pipeline.fit(training)
    features, words = pipeline.extractor.nearest_words(read_image(image)[None])
    assert len(words) == len(features.values) == 22 * 22 and words.max() < 8
    distances = ((features.values[:, None] - pipeline.extractor.centroids_[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(words, distances.argmin(axis=1))
    pictures, notes = pictures_of(pipeline, read_image(image))
    titles = [title for title, _, _ in pictures]
    assert titles[0] == "after preprocessing (48x48)"
    assert titles[1] == f"{len(np.unique(words))} of 8 words at {22 * 22} keypoints"
    assert notes == []


def test_no_colour_histogram_of_a_grey_image(tmp_path):
    grey = np.repeat(np.random.default_rng(0).integers(0, 256, (40, 40, 1), dtype=np.uint8), 3, axis=2)
    pipeline = build_pipeline({"extractor": {"concat": {"extractors": [HOG, HSV]}}})
    pictures, notes = pictures_of(pipeline, grey)
    assert [title.split(":")[0] for title, _, _ in pictures] == ["after preprocessing (40x40)", "HOG"]
    assert notes == ["colour histogram (hsv_hist) not drawn: the image is grey, it has no colours to count"]


def test_show_names_the_file_or_the_pipeline_it_cannot_use(tmp_path, image_folder, cache_dir, image):
    config = write_config(tmp_path, image_folder, cache_dir, HOG)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    code, _, stderr = run_cli("show", tmp_path / "bad.png", "--config", config, "--out", tmp_path / "x.png")
    assert code == EXIT_FAILED and stderr.startswith(f"featurepipe: error: {tmp_path / 'bad.png'}: ")
    assert stderr.count("\n") == 1 and not (tmp_path / "x.png").exists()
    code, _, stderr = run_cli("show", image, "--config", config, "--pipeline", "hog")
    assert code == EXIT_USAGE and "--pipeline: no pipeline 'hog' under bench.pipelines" in stderr
    bench = yaml.safe_load(config.read_text())
    bench["bench"] = {"pipelines": {"hog": bench.pop("pipeline"), "hsv": {"extractor": HSV}}}
    config.write_text(yaml.safe_dump(bench))
    code, _, stderr = run_cli("show", image, "--config", config)
    assert code == EXIT_USAGE and "--pipeline: name one of bench.pipelines: hog, hsv" in stderr


def test_a_fisher_vector_shows_its_gaussians(image):
    from featurepipe.datasets import read_image

    pipeline = build_pipeline({"extractor": {"fisher": {"descriptor": {"patches": {"size": 6, "stride": 2}},
                                                        "n_gaussians": 3, "pyramid": [1, 2], "random_state": 0}}})
    pipeline.fit(np.stack([class_images(np.random.default_rng(i), 1, 48, colour=i % 3)[0] for i in range(6)]))
    pictures, _ = pictures_of(pipeline, read_image(image))
    assert pictures[1][0].endswith("of 3 Gaussians at 484 keypoints, 2x2 pyramid")
