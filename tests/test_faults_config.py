"""A config from elsewhere is data: the faults a hostile run found, one case each (``pytest -k <fault>``).

Each runs the command as a user would and expects exit 2, one stderr line naming the key, no traceback and
nothing extracted. The bombs run in a subprocess capped at 2 GiB of address space: they pass because the
config is refused before anything is expanded, not because they are timed."""
import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import featurepipe
from featurepipe.cli import EXIT_OK, EXIT_USAGE, main
from featurepipe.limits import MAX_LINE

ROOT = Path(featurepipe.__file__).resolve().parent.parent
MEMORY_CAP = 2 << 30


def _alias_bomb() -> str:
    """Nine levels of nine-fold aliases inside ``hog.orientations``: 9^9 values once expanded, 0.4 KB written."""
    levels = ["&l0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    return f"      orientations: [{', '.join(levels)}]\n"


def _bomb_config(folder, cache) -> str:
    return (f"dataset: {{path: {folder}}}\nrun: {{cache_dir: {cache}, progress: false}}\n"
            f"pipeline:\n  extractor:\n    hog:\n{_alias_bomb()}")


def _deep_config(folder, cache) -> str:
    return f"dataset: {{path: {folder}}}\nrun: {{cache_dir: {cache}}}\ntrain:\n  augment: {'[' * 1000}{']' * 1000}\n"


def _huge_config(folder, cache) -> str:
    return f"dataset: {{path: {folder}}}\nrun: {{cache_dir: {cache}}}\njunk: [{', '.join(['0'] * 5_000_000)}]\n"


#: (fault, config text, the key the line names): run in a capped subprocess.
BOMBS = [
    pytest.param(_bomb_config, "pipeline.extractor.hog.orientations", id="alias_bomb_in_hog_orientations"),
    pytest.param(_deep_config, "train.augment[0][0]", id="nesting_1000_deep"),
    pytest.param(_huge_config, "config.yaml: more than 262144 bytes", id="ten_mb_list_under_unknown_key"),
]

#: (fault, command, options, the key the line names): run in-process through ``cli.main``.
FAULTS = [
    pytest.param("extract", ["--chunk-size", "1000000000000"], "run.chunk_size: 1000000000000 rows of 396 float32",
                 id="chunk_size_beyond_memory"),
    pytest.param("train", ["--set", "heads.0.model=mlp", "--set", "heads.0.params.hidden_layer_sizes=[1000000000]"],
                 "heads[0].params.hidden_layer_sizes: (1000000000,) on 396 features", id="mlp_layers_beyond_memory"),
    pytest.param("train", ["--set", "pipeline.extractor={bovw: {n_words: 1000000000, n_samples: 1000000000}}"],
                 "pipeline.extractor.bovw.n_words: 1000000000 words", id="codebook_beyond_memory"),
    pytest.param("train", ["--set", "train.normalize=standardise"],
                 "train.normalize[0]: unknown normalizer 'standardise'; registered: ", id="normalize_standardise"),
    pytest.param("train", ["--set", "heads.0.params.alpha=-1"], "heads[0].params.alpha: must be", id="alpha_negative"),
    pytest.param("train", ["--set", "heads.0.params.max_iter=0"], "heads[0].params.max_iter: must be",
                 id="max_iter_zero"),
    pytest.param("train", ["--set", "heads.0.params.alpha=[0.1, -1]"], "heads[0].params.alpha: must be",
                 id="grid_value_negative"),
    pytest.param("train", ["--set", "train.folds=1000"], "train.folds: class 'blue' has 8 training items",
                 id="folds_beyond_smallest_class"),
    pytest.param("train", ["--set", "train.selection=holdout", "--set", "train.validation_fraction=0.99"],
                 "train.validation_fraction: 0.99", id="validation_fraction_leaves_no_fit_rows"),
    pytest.param("train", ["--set", "train.augment=[hfilp]"], "train.augment[0]: unknown preprocess 'hfilp'",
                 id="augment_step_unknown"),
    pytest.param("extract", ["--set", f"junk=[{', '.join(['0'] * 40_000)}]"], "--set junk=[0, 0",
                 id="set_value_beyond_cap"),
    pytest.param("extract", ["--set", f"run.jobs={'1' * 5000}"], "--set run.jobs=1111",
                 id="integer_of_5000_digits"),
    pytest.param("extract", ["--set", f"run.jobs=[{'x' * 5000}]"], "run.jobs: Input should be a valid integer",
                 id="long_value_quoted_short"),
]


@pytest.fixture
def config(tmp_path, image_folder, cache_dir):
    cfg = {"dataset": {"path": str(image_folder)},
           "pipeline": {"preprocess": [{"resize": {"size": [32, 32]}}],
                        "extractor": {"concat": {"extractors": [{"hog": {"cells_per_block": [2, 2]}},
                                                                {"hsv_hist": {}}]}}},
           "run": {"chunk_size": 8, "progress": False, "cache_dir": str(cache_dir)},
           "heads": [{"model": "linear", "params": {"max_iter": 5}}],
           "train": {"selection": "kfold", "folds": 2}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def assert_refused(code: int, err: str, key: str, cache_dir: Path) -> None:
    lines = err.strip().splitlines()
    assert code == EXIT_USAGE, err
    assert len(lines) == 1 and key in lines[0] and len(lines[0]) <= MAX_LINE, err
    assert "Traceback" not in err
    assert not list((cache_dir / "features").glob("*")), "nothing may be extracted"


@pytest.mark.parametrize("command, options, key", FAULTS)
def test_fault_is_refused_before_extraction(config, cache_dir, capsys, command, options, key):
    code = main([command, "--config", str(config), *options])
    assert_refused(code, capsys.readouterr().err, key, cache_dir)


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.mark.parametrize("write, key", BOMBS)
def test_bomb_is_refused_before_expansion(tmp_path, image_folder, cache_dir, write, key):
    path = tmp_path / "config.yaml"
    path.write_text(write(image_folder, cache_dir))
    run = subprocess.run([sys.executable, "-m", "featurepipe", "extract", "--config", str(path)], capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, preexec_fn=_cap_memory)
    assert_refused(run.returncode, run.stderr, key, cache_dir)


def test_jobs_beyond_the_cores_are_capped_with_a_notice(config, capsys, monkeypatch):
    monkeypatch.setattr("featurepipe.config.cores", lambda: 2)
    assert main(["extract", "--config", str(config), "--jobs", "10000"]) == EXIT_OK
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["featurepipe: run.jobs: 10000 is more than this machine's 2 cores; using 2"]


def test_jobs_are_not_capped_for_a_dask_cluster(config, monkeypatch):
    from featurepipe.config import load_config

    cfg = load_config(config, ["run.backend=dask", "run.jobs=10000"])
    assert cfg.run.jobs == 10000


def test_chunk_size_is_the_entrys_and_never_poisons_it(config, cache_dir, capsys):
    assert main(["extract", "--config", str(config), "--chunk-size", "5"]) == EXIT_OK
    assert main(["extract", "--config", str(config), "--chunk-size", "7"]) == EXIT_OK
    assert "(from the cache)" in capsys.readouterr().out  # another chunk size: the same entry
    meta = next((cache_dir / "features").glob("*/zarr.json"))
    record = json.loads(meta.read_text())
    record["attributes"]["chunk_rows"] = 10 ** 12  # written elsewhere: data, not an order to allocate
    meta.write_text(json.dumps(record))
    for alias in (cache_dir / "aliases").glob("*.json"):
        alias.unlink()
    assert main(["extract", "--config", str(config), "--set", "run.on_error=fail"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "36 computed" in out and "computing it anew" in err
    assert json.loads(meta.read_text())["attributes"]["chunk_rows"] == 8


def test_a_chunk_is_never_longer_than_the_entry(config, cache_dir):
    assert main(["extract", "--config", str(config), "--chunk-size", "1000"]) == EXIT_OK
    meta = next((cache_dir / "features").glob("*/zarr.json"))
    assert json.loads(meta.read_text())["attributes"]["chunk_rows"] == 36
