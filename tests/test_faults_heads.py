"""The fault corpus of trained-head folders (issue 24): a head, a cache or a config from elsewhere is data,
never orders. Each case replays a hostile or damaged folder as a user would meet it -- through
``featurepipe.cli.main``, or a subprocess with a timeout where the fault could hang or exhaust the process --
and asserts one line on stderr, no traceback, the documented exit code, and nothing written outside the
folders the user named. Select one with ``pytest -k <fault>``."""
import csv
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import class_images, make_image_folder, write_rgb

from featurepipe.cli import EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parent.parent
HEAD = "softmax"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained run (one linear head) whose first class is named like a spreadsheet formula: (config,
    cache, run folder)."""
    root = tmp_path_factory.mktemp("trained")
    images = make_image_folder(root / "images", np.random.default_rng(0))
    for split in ("train", "test"):
        (images / split / "red").rename(images / split / "@red")
    cache = root / "cache"
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"path": str(images)}, "pipeline": {"extractor": {"color_hist": {"bins": 4}}},
        "run": {"cache_dir": str(cache), "progress": False}, "output": str(root / "runs"),
        "heads": [{"name": HEAD, "model": "linear", "params": {"max_iter": 50, "random_state": 0}}]}))
    assert main(["train", "--config", str(config)]) == EXIT_OK
    return config, cache, root / "runs"


@pytest.fixture
def head(trained, tmp_path):
    """A copy of the trained head in this test's folder."""
    return Path(shutil.copytree(trained[2] / HEAD, tmp_path / "received" / HEAD, symlinks=True))


@pytest.fixture
def unlabelled(tmp_path):
    folder = tmp_path / "new"
    for i, image in enumerate(class_images(np.random.default_rng(5), 2, 32, colour=0)):
        write_rgb(folder / f"img{i}.png", image)
    return folder


def tree(root: Path) -> set:
    """Every path below ``root``, links not followed: what a command wrote shows as a difference."""
    return {Path(d) / name for d, dirs, files in os.walk(root) for name in dirs + files}


def edit_manifest(folder: Path, edit) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def refused(argv, capsys, expected: str) -> None:
    """``main(argv)`` exits 2 with one line on stderr holding ``expected``."""
    capsys.readouterr()
    assert main(argv) == EXIT_USAGE
    assert expected in one_line(capsys.readouterr().err)


def commands(head, unlabelled, tmp_path):
    return {"predict": ["predict", str(head), str(unlabelled), "--out", str(tmp_path / "p.csv"),
                        "--cache-dir", str(tmp_path / "cache")],
            "evaluate": ["evaluate", str(head), "--cache-dir", str(tmp_path / "cache")]}


# -- folders refused on loading, in-process ---------------------------------------------------------------
def _negated_weights_without_files(folder, tmp_path):
    with np.load(folder / "head.npz") as data:
        arrays = {k: (-data[k] if k.startswith("param_") else data[k]) for k in data.files}
    np.savez(folder / "head.npz", **arrays)
    edit_manifest(folder, lambda m: m.update(files={}))


def _run_section(folder, tmp_path):
    edit_manifest(folder, lambda m: m.update(run={"cache_dir": str(tmp_path / "elsewhere"), "jobs": 64}))


def _legacy_config(folder, tmp_path):
    edit_manifest(folder, lambda m: m.update(version=1, config={"run": {"cache_dir": str(tmp_path / "elsewhere")}}))


def _dunder_state(name):
    def edit(folder, tmp_path):
        edit_manifest(folder, lambda m: m["pipeline"]["values"].update({name: {"x": 1}}))
    return edit


def _listed_file(folder, tmp_path):
    edit_manifest(folder, lambda m: m["files"].update({"../../outside.npz": m["files"]["head.npz"]}))


def _grown_file(folder, tmp_path):
    with open(folder / "normalization.npz", "ab") as f:
        f.write(b"\0")


def _symlinked_head(folder, tmp_path):
    (tmp_path / "outside.npz").write_bytes((folder / "head.npz").read_bytes())
    (folder / "head.npz").unlink()
    (folder / "head.npz").symlink_to(tmp_path / "outside.npz")


def _field(path, value):
    def edit(folder, tmp_path):
        def change(manifest):
            *parents, last = path
            node = manifest
            for key in parents:
                node = node[key]
            node[last] = value
        edit_manifest(folder, change)
    return edit


REFUSED = [
    ("files-empty-negated-weights", _negated_weights_without_files, "records no SHA-256 for head.npz"),
    ("run-section-cache-dir", _run_section, "run: Extra inputs are not permitted"),
    ("legacy-manifest-with-config-run", _legacy_config, "version 1, which held run settings"),
    ("state-name-dunder-class", _dunder_state("__class__"), "no '__class__'"),
    ("state-name-dunder-dict", _dunder_state("__dict__"), "no '__dict__'"),
    ("state-name-method", _dunder_state("extractor.transform"), "no 'extractor.transform'"),
    ("file-list-extra-name", _listed_file, "lists '../../outside.npz'"),
    ("file-size-differs", _grown_file, "the manifest records"),
    ("head-symlink", _symlinked_head, "head.npz is a symbolic link"),
    ("unknown-manifest-key", _field(["exec"], "rm -rf ~"), "exec: Extra inputs are not permitted"),
    ("feature-dim-wrong-type", _field(["feature_dim"], "12"), "feature_dim: Input should be a valid integer"),
    ("feature-dim-out-of-range", _field(["feature_dim"], -1), "feature_dim: Input should be greater than"),
    ("dataset-unknown-key", _field(["dataset", "scheduler"], "tcp://127.0.0.1:1"), "dataset.scheduler: Extra"),
    ("pipeline-unknown-parameter", _field(["pipeline", "spec", "extractor"], {"color_hist": {"__class__": 1}}),
     "__class__"),
]


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("fault, damage, expected", REFUSED, ids=[case[0] for case in REFUSED])
def test_a_hostile_folder_is_refused_and_nothing_is_written(fault, damage, expected, command, head, unlabelled,
                                                            tmp_path, capsys):
    damage(head, tmp_path)
    before = tree(tmp_path)
    refused(commands(head, unlabelled, tmp_path)[command], capsys, expected)
    assert tree(tmp_path) == before


def test_a_leftover_temporary_folder_is_no_run(head, unlabelled, tmp_path, capsys):
    leftover = head.rename(head.with_name(f".{HEAD}.host.123.0badc0de.tmp"))
    refused(commands(leftover, unlabelled, tmp_path)["predict"], capsys, "a temporary folder")


# -- files that would hang or exhaust the reader: a subprocess with a timeout -----------------------------
def _dev_zero(folder):
    (folder / "normalization.npz").unlink()
    (folder / "normalization.npz").symlink_to("/dev/zero")


def _fifo(folder):
    (folder / "head.npz").unlink()
    os.mkfifo(folder / "head.npz")


UNREADABLE = [("normalization-symlink-to-dev-zero", _dev_zero, "normalization.npz is a symbolic link"),
              ("head-fifo", _fifo, "head.npz is not a regular file")]


@pytest.mark.parametrize("fault, damage, expected", UNREADABLE, ids=[case[0] for case in UNREADABLE])
def test_a_special_file_is_not_read(fault, damage, expected, head, unlabelled, tmp_path):
    damage(head)
    before = tree(tmp_path)
    done = subprocess.run([sys.executable, "-m", "featurepipe", *commands(head, unlabelled, tmp_path)["predict"]],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == EXIT_USAGE and expected in one_line(done.stderr)
    assert tree(tmp_path) == before


# -- a folder naming a scheduler opens no connection ------------------------------------------------------
def _names_scheduler(folder, address, legacy):
    run = {"backend": "dask", "scheduler": address}
    edit_manifest(folder, (lambda m: m.update(version=1, config={"run": run})) if legacy else
                  (lambda m: m.update(run=run)))


@pytest.mark.parametrize("legacy", [False, True], ids=["run-section", "legacy-config-run"])
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_scheduler_named_by_the_folder_gets_no_connection(command, legacy, head, unlabelled, tmp_path, capsys):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        _names_scheduler(head, f"tcp://127.0.0.1:{listener.getsockname()[1]}", legacy)
        refused(commands(head, unlabelled, tmp_path)[command], capsys, "")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_a_hostile_dask_scheduler_receives_no_client(head, unlabelled, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=False, n_workers=1, protocol="tcp", host="127.0.0.1", scheduler_port=0,
                                  dashboard_address=None) as cluster:
        clients = set(cluster.scheduler.clients)
        _names_scheduler(head, cluster.scheduler_address, legacy=True)
        refused(commands(head, unlabelled, tmp_path)["predict"], capsys, "version 1")
        assert set(cluster.scheduler.clients) == clients


# -- writes: never through a link, a run folder whole or absent -------------------------------------------
@pytest.mark.parametrize("name", ["metrics.json", "curves.png"], ids=["metrics-symlink", "curves-symlink"])
def test_train_replaces_a_link_in_its_folder_and_never_writes_through_it(name, trained, tmp_path):
    config, _, runs = trained
    output = tmp_path / "runs"
    shutil.copytree(runs / HEAD, output / HEAD)
    target = tmp_path / "outside.txt"
    target.write_text("not yours")
    (output / HEAD / name).unlink()
    (output / HEAD / name).symlink_to(target)
    assert main(["train", "--config", str(config), "--output", str(output), "--force"]) == EXIT_OK
    assert target.read_text() == "not yours"
    assert not (output / HEAD / name).is_symlink() and (output / HEAD / name).stat().st_size > 0


def test_a_train_killed_between_manifest_and_metrics_leaves_the_old_run_whole(trained, unlabelled, tmp_path, capsys):
    config, _, runs = trained
    output = tmp_path / "runs"
    shutil.copytree(runs / HEAD, output / HEAD)
    old = {p.name: p.read_bytes() for p in (output / HEAD).iterdir()}
    kill_at_metrics = ("import os, signal, sys; import featurepipe.train as train; "
                       "train.write_json_atomic = lambda *a: os.kill(os.getpid(), signal.SIGKILL); "
                       "from featurepipe.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", kill_at_metrics, "train", "--config", str(config), "--output",
                           str(output), "--force", "--set", "heads.0.params.max_iter=7"],
                          capture_output=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL
    assert {p.name: p.read_bytes() for p in (output / HEAD).iterdir()} == old
    leftovers = [p for p in output.iterdir() if p.name != HEAD]
    assert leftovers and all(p.name.endswith(".tmp") for p in leftovers)
    refused(commands(leftovers[0], unlabelled, tmp_path)["predict"], capsys, "a temporary folder")


# -- what a valid folder does: writes only where the user said, formula cells neutralised -----------------
def test_predictions_neutralise_formula_cells_and_write_only_where_named(head, tmp_path, capsys):
    images = tmp_path / "new"
    names = ["=1+1.png", "@sum.png", "+cmd.png", "-x.png", "\tt.png", "plain.png"]
    for name, image in zip(names, class_images(np.random.default_rng(5), len(names), 32, colour=0)):
        write_rgb(images / name, image)
    before = tree(tmp_path)
    out, cache = tmp_path / "p.csv", tmp_path / "cache"
    assert main(["predict", str(head), str(images), "--out", str(out), "--cache-dir", str(cache), "--jobs", "1",
                 "--backend", "loky"]) == EXIT_OK
    assert main(["evaluate", str(head), "--cache-dir", str(cache)]) == EXIT_OK
    assert {p for p in tree(tmp_path) - before if cache not in p.parents} == {out, tmp_path / "p.refused.csv", cache}
    rows = {r["path"]: r["label"] for r in csv.DictReader(open(out, newline=""))}
    assert set(rows) == {"'" + n for n in names[:-1]} | {"plain.png"}
    assert set(rows.values()) == {"'@red"}


def test_evaluate_reads_the_data_set_where_the_user_says(trained, head, tmp_path, capsys):
    moved = Path(shutil.copytree(trained[0].parent / "images", tmp_path / "moved"))
    edit_manifest(head, lambda m: m["dataset"].update(path=str(tmp_path / "gone")))
    evaluate = ["evaluate", str(head), "--cache-dir", str(tmp_path / "cache")]
    assert main(evaluate) == EXIT_USAGE and "gone" in one_line(capsys.readouterr().err)
    assert main([*evaluate, "--data", str(moved)]) == EXIT_OK
    assert "test accuracy" in capsys.readouterr().out


def test_a_stored_head_records_every_file_with_its_size(head):
    manifest = json.loads((head / "manifest.json").read_text())
    assert "run" not in manifest and "config" not in manifest
    for name, record in manifest["files"].items():
        data = (head / name).read_bytes()
        assert record == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
