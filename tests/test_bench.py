"""`featurepipe bench --quick` on the CIFAR-10 bench config's matrix, over a small synthetic folder:
the report's tables are filled, every figure it names exists, and a re-run trains nothing."""
import json
import re
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml

from featurepipe.fitting import load_head
from featurepipe.metrics import wilson_interval
from featurepipe.report import HEADER, _patch_words
from featurepipe.store import FeatureStore
from featurepipe.cli import EXIT_OK, main
from featurepipe.local.patches import Patches


def test_quick_bench_report(image_folder, tmp_path, capsys):
    config = yaml.safe_load(open("configs/cifar10-bench.yaml"))
    config["dataset"]["path"] = str(image_folder)
    config["run"] = {"cache_dir": str(tmp_path / "cache"), "progress": False, "chunk_size": 16}
    config["bench"]["quick"] = {"train": 6, "test": 3}
    for head in config["heads"]:
        head["params"]["max_iter"] = 5
    config["heads"][2]["params"]["hidden_layer_sizes"] = [16]
    config["bench"]["pipelines"]["pca_sift_bow"]["extractor"]["pca_sift"].update(n_words=8, n_components=16)
    for name in ("kmeans", "kmeans_soft"):
        config["bench"]["pipelines"][name]["extractor"]["bovw"].update(n_words=16, max_iter=5, n_samples=5000)
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    out = tmp_path / "report"
    assert main(["bench", "--config", str(path), "--quick", "--output", str(out)]) == EXIT_OK
    log = capsys.readouterr().out
    n_cells = sum(len(p.get("heads") or config["heads"]) for p in config["bench"]["pipelines"].values())
    assert f"[{n_cells}/{n_cells}]" in log and "fitting on" in log
    assert "to go" in log and f"all {n_cells} cells in" in log  # each cell's line estimates the time left
    assert log.strip().splitlines()[-1].startswith(f"report: {out / 'report.html'}")
    assert not re.search(r"\d\.0*[1-9]\d{3,}", log)  # alphas to three significant digits

    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == n_cells
    for row in rows:
        for column in ("feature_dim", "fit_seconds", "train_accuracy", "val_accuracy", "test_accuracy", "peak_fit_mib"):
            assert row[column] is not None
        assert 0 <= row["test_accuracy"] <= 1 and row["extract_images_per_s"] > 0
        # a cell's cost is everything it took: its features (the pipeline's fit, extraction), search and refit
        assert row["features_seconds"] >= row["extract_seconds"] > 0
        assert row["cost_seconds"] == row["features_seconds"] + row["search_seconds"] + row["fit_seconds"]
        assert row["search_seconds"] > 0
    assert {r["kind"] for r in rows} == {"learned", "raw pixels + linear", "hand-designed + linear",
                                         "hand-designed + MLP"}
    store = FeatureStore(tmp_path / "cache")
    mirrored = {r["pipeline"] for r in rows if load_head(store, r["head_key"]).record["augment_keys"]}
    assert mirrored == {"kmeans", "kmeans_soft"}  # the pipelines whose entries name augment: [hflip]
    table = (out / "results.md").read_text().splitlines()
    assert len(table) == 2 + n_cells + 2 and all(" |  |" not in line for line in table[:2 + n_cells])
    assert "95% Wilson interval" in table[-1] and "McNemar" in table[-1]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:2 + n_cells]]
    best = max(rows, key=lambda r: r["test_accuracy"])
    column = {name: i for i, name in enumerate(HEADER)}
    versus, test = column["vs best"], column["test (95%)"]
    assert [c[versus] for c in cells].count("best") == 1 and cells[0][:2] == [best["pipeline"], best["head"]]
    for row in rows:
        cell = next(c for c in cells if c[:2] == [row["pipeline"], row["head"]])
        low, high = wilson_interval(round(row["test_accuracy"] * row["test_n"]), row["test_n"])
        assert cell[test] == f"{row['test_accuracy']:.1%} [{100 * low:.1f}, {100 * high:.1f}]"
        assert all(re.fullmatch(r"\d+\.\d% \[\d+\.\d, \d+\.\d\]", c) for c in cell[test - 2:test + 1])
        # the cost is everything the cell took, the search included
        assert float(cell[column["cost s"]]) == pytest.approx(float(f"{row['cost_seconds']:.3g}"))
        assert row["cost_seconds"] > row["search_seconds"] + row["fit_seconds"]
        assert row["same_as_best"] == (row["vs_best_p"] >= 0.05)
        if cell[versus] != "best":
            assert cell[versus] == f"{'≈ ' if row['same_as_best'] else ''}p={row['vs_best_p']:.3g}"
    assert len((out / "results.csv").read_text().splitlines()) == 1 + n_cells

    page = (out / "report.html").read_text()
    assert page.count("<tr>") == 1 + n_cells and "<td></td>" not in page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    assert len(images) == len(titles) >= 7
    assert any("confusion: best hand-designed" in t for t in titles) and any("best learned" in t for t in titles)
    assert "MLP first-layer templates" in titles and any(t.startswith("visual words (kmeans)") for t in titles)
    # one picture of a test image per kind of feature: the first pipeline of each
    assert [t for t in titles if t.startswith("what ")] == [f"what {name} sees" for name in
                                                            ("color_hist", "hsv_hist", "hog", "pca_sift_bow", "kmeans")]
    assert "<h1>featurepipe bench: bench (quick)</h1>" in page and f"Data: {image_folder}, " in page
    for name in ("accuracy_vs_cost", "learning_curves", "sees_hog", "sees_hsv_hist", "sees_kmeans", "mlp_templates"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 2000
    kmeans = [r for r in rows if r["pipeline"] == "kmeans"]
    assert kmeans[0]["features_seconds"] > kmeans[0]["extract_seconds"]  # its codebook's fit (and mirrored copies)

    assert main(["bench", "--config", str(path), "--quick", "--output", str(out)]) == EXIT_OK
    again = capsys.readouterr().out
    assert "fitting on" not in again and again.count(": cached (test") == n_cells


def test_visual_words_are_drawn_as_the_patches_they_describe():
    """The montage of a patch codebook shows each centroid as the patch it was computed from."""
    image = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    rows = Patches(size=4, stride=4, normalize=False).compute(image).values   # 4 patches, 48 values each
    words = _patch_words(SimpleNamespace(centroids_=rows, projection="none"))
    assert words.shape == (4, 4, 4, 3)
    np.testing.assert_array_equal(words[1], image[0, :4, 4:8])   # second patch: top right
    np.testing.assert_array_equal(words[2], image[0, 4:8, :4])


def test_a_grey_data_set_gets_no_colour_histogram(tmp_path, capsys):
    """A colour histogram of a grey image is all in its grey bins: the report says so instead of drawing it."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 2)):
        for label, brightness in (("dark", 60), ("light", 180)):
            for i in range(count):
                grey = np.clip(rng.normal(brightness, 30, (32, 32)), 0, 255).astype(np.uint8)
                path = tmp_path / "grey" / split / label / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), grey)
    config = {"dataset": {"path": str(tmp_path / "grey")}, "run": {"cache_dir": str(tmp_path / "cache"), "progress": False},
              "bench": {"pipelines": {"hsv": {"extractor": {"hsv_hist": {"bins": [8, 3, 3]}}},
                                      "hog": {"extractor": {"hog": {"pixels_per_cell": [8, 8], "cells_per_block": [2, 2]}}}}},
              "heads": [{"name": "softmax", "model": "linear", "params": {"max_iter": 20, "random_state": 0}}]}
    path = tmp_path / "grey-bench.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["bench", "--config", str(path), "--output", str(tmp_path / "report")]) == EXIT_OK
    page = (tmp_path / "report" / "report.html").read_text()
    assert re.findall(r"<h2>(what .*?)</h2>", page) == ["what hog sees"]
    assert "pipeline hsv: colour histogram (hsv_hist) not drawn: the image is grey" in page
    assert not (tmp_path / "report" / "figures" / "sees_hsv.png").exists()
