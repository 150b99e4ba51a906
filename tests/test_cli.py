"""The command line end to end: exit codes, summary lines, config errors naming their key, cache commands."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import write_rgb

from featurepipe.cli import EXIT_FAILED, EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, main

CONFIG = {
    "dataset": {"path": None},
    "pipeline": {"preprocess": [{"resize": {"size": [32, 32]}}],
                 "extractor": {"concat": {"extractors": [{"hog": {"cells_per_block": [2, 2]}}, {"hsv_hist": {}}]}}},
    "run": {"chunk_size": 8, "progress": False},
}


@pytest.fixture
def config(tmp_path, image_folder, cache_dir):
    cfg = {**CONFIG, "dataset": {"path": str(image_folder)}, "run": {**CONFIG["run"], "cache_dir": str(cache_dir)}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_extract_then_warm_rerun(config, capsys):
    assert main(["extract", "--config", str(config)]) == EXIT_OK
    first = capsys.readouterr().out
    assert "extracted 36 items (36 computed)" in first and "36 ok, 0 skipped" in first
    assert first.splitlines()[1].startswith("features in ") and "next: " in first  # what to run next
    assert main(["extract", "--config", str(config)]) == EXIT_OK
    assert "(from the cache)" in capsys.readouterr().out


def test_skipped_files_exit_code_and_ledger(config, image_folder, capsys):
    (image_folder / "train" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    assert main(["extract", "--config", str(config)]) == EXIT_SKIPPED
    out = capsys.readouterr().out
    assert "36 ok, 1 skipped; entry" in out and "ledger: " in out
    ledger = out.split("ledger: ")[1].splitlines()[0]
    assert "broken.png" in open(ledger).read()
    assert main(["extract", "--config", str(config), "--on-error", "fail"]) == EXIT_FAILED
    assert "broken.png" in capsys.readouterr().err


@pytest.mark.parametrize("override, message", [
    ("run.jobs=many", "run.jobs: Input should be a valid integer"),
    ("run.bogus=1", "run.bogus: Extra inputs are not permitted"),
    ("pipeline.extractor.concat.extractors.0.hog.orientations=0", "pipeline.extractor.concat.extractors[0].hog.orientations: must be"),
    ("pipeline.extractor={nope: {}}", "pipeline.extractor: unknown extractor 'nope'"),
    ("pipeline.preprocess.0.resize.size=[0, 5]", "pipeline.preprocess[0].resize.size: must be"),
    ("dataset.path=/no/such/folder", "dataset.path: dataset folder not found: /no/such/folder (a config's path is "
                                     "relative to the config's folder; pass the folder with --data FOLDER"),
])
def test_malformed_config_is_one_line_naming_the_key(config, capsys, override, message):
    assert main(["extract", "--config", str(config), "--set", override]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_invalid_yaml_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset:\n  path: [unclosed\n")
    assert main(["extract", "--config", str(bad)]) == EXIT_USAGE
    assert "bad.yaml: line" in capsys.readouterr().err


def test_cache_ls_verify_rm(config, cache_dir, capsys):
    main(["extract", "--config", str(config)])
    capsys.readouterr()
    assert main(["cache", "ls", "--cache-dir", str(cache_dir)]) == EXIT_OK
    lines = capsys.readouterr().out.strip().splitlines()
    line = next(line for line in lines if line.startswith("features"))
    key = line.split()[1]
    assert "complete" in line and "36 x 396" in line
    assert any(line.startswith("aliases") and key in line for line in lines)
    assert main(["cache", "verify", "--cache-dir", str(cache_dir)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"features {key}: ok"
    chunk = next((cache_dir / "features" / key / "features" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    chunk.write_bytes(chunk.read_bytes()[:-3] + b"xyz")  # corrupt one stored chunk
    assert main(["cache", "verify", key, "--cache-dir", str(cache_dir)]) == EXIT_FAILED
    assert re.search(r": chunk \d+: features chunk fails its checksum", capsys.readouterr().out)
    assert main(["cache", "rm", key, "--cache-dir", str(cache_dir)]) == EXIT_OK
    assert not (cache_dir / "features" / key).exists() and not list((cache_dir / "aliases").iterdir())


def test_list_shows_extractors_with_defaults(capsys):
    assert main(["list"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "hog(orientations=9, pixels_per_cell=(8, 8)" in out and "resize(size=(32, 32)" in out


def test_console_script_runs_the_demo(tmp_path):
    env = {**os.environ, "FEATUREPIPE_CACHE": str(tmp_path / "cache")}
    demo = os.path.join(os.path.dirname(__file__), "..", "configs", "demo.yaml")
    done = subprocess.run([sys.executable, "-m", "featurepipe", "extract", "--config", demo, "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "extracted 330 items (330 computed)" in done.stdout and "330 ok, 0 skipped" in done.stdout


def test_cache_rm_refuses_anything_but_an_entry_key(config, cache_dir, capsys):
    main(["extract", "--config", str(config)])
    (cache_dir / "keep.txt").write_text("not ours to delete")
    for bad in ("..", "", "0" * 32):
        assert main(["cache", "rm", bad, "--cache-dir", str(cache_dir)]) == EXIT_FAILED
    assert (cache_dir / "keep.txt").exists() and len(list((cache_dir / "features").iterdir())) == 1
    assert "not an entry key" in capsys.readouterr().err


def test_jobs_zero_is_a_config_error(config, capsys):
    assert main(["extract", "--config", str(config), "--jobs", "0"]) == EXIT_USAGE
    assert "run.jobs: Value error, must be a number of processes" in capsys.readouterr().err


def test_option_values_are_taken_literally(config, image_folder, tmp_path, capsys):
    odd = tmp_path / "data #1: odd"
    image_folder.rename(odd)
    assert main(["extract", "--config", str(config), "--data", str(odd)]) == EXIT_OK
    assert "36 ok" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(os.listdir(os.path.join(os.path.dirname(__file__), "..", "configs"))))
def test_every_shipped_config_builds_its_pipeline(name):
    from featurepipe.extract import build_config_pipeline
    from featurepipe.config import load_config

    from featurepipe.fitting import named_heads

    cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "configs", name))
    if cfg.pipeline is not None:  # train: the config's pipeline and the heads' own
        pipelines = [cfg.pipeline, *(h.pipeline for h in cfg.heads if h.pipeline is not None)]
    else:  # bench: every pipeline's, a late fusion naming pipelines that are there
        entries = cfg.bench.pipelines
        pipelines = [p.pipeline() for p in entries.values() if p.late is None]
        assert all(set(p.late) <= set(entries) for p in entries.values() if p.late is not None)
    for pipeline in pipelines:  # extract, and the features of every bench cell
        build_config_pipeline(cfg.model_copy(update={"pipeline": pipeline})).extractor.validate_params()
    named_heads(cfg)  # train (and bench): every config names heads, with known models and parameters
    for spec in cfg.heads:
        from featurepipe.normalize import Normalization
        from featurepipe.selection import normalization_options

        for option in normalization_options(spec.normalize or cfg.train.normalize):
            Normalization.from_spec(option)
