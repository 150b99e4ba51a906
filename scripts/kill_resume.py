"""Kill `featurepipe extract` with SIGKILL at random moments, let it finish, and compare with an
uninterrupted run bit for bit.

    python scripts/kill_resume.py CIFAR_DIR [--kills 6] [--seed 0]

Each kill takes the whole process group (the main process and its loky workers) at a random moment
while chunks are being written; the next run resumes from the committed chunks.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from featurepipe.store import FeatureStore

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cifar10-hog-hsv.yaml"


def command(data, cache):
    return [sys.executable, "-m", "featurepipe.cli", "extract", "--config", str(CONFIG), "--data", str(data),
            "--cache-dir", str(cache), "--jobs", "2", "--chunk-size", "512", "--no-progress"]


def committed(cache: Path) -> int:
    return sum(1 for _ in cache.glob("features/*/chunks/*.json"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    clean, killed = work / "clean", work / "killed"

    start = time.perf_counter()
    subprocess.run(command(args.data, clean), check=True)
    full = time.perf_counter() - start
    print(f"uninterrupted run: {full:.1f} s")

    kills = 0
    while kills < args.kills:
        proc = subprocess.Popen(command(args.data, killed), start_new_session=True)
        before = committed(killed)
        # A random moment after this run has committed at least one new chunk (so each kill lands mid-run).
        while committed(killed) == before and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, full / (args.kills + 2)))
        if proc.poll() is not None:
            print("run finished before the kill; starting over is not needed")
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        print(f"kill {kills}: SIGKILL after {committed(killed)} committed chunks")
    subprocess.run(command(args.data, killed), check=True)

    a, b = FeatureStore(clean), FeatureStore(killed)
    keys_a, keys_b = [e["key"] for e in a.entries()], [e["key"] for e in b.entries()]
    assert keys_a == keys_b and len(keys_a) == 1, (keys_a, keys_b)
    fa, fb = a.read(keys_a[0]), b.read(keys_b[0])
    identical = fa.X.tobytes() == fb.X.tobytes() and np.array_equal(fa.ids, fb.ids) and \
        np.array_equal(fa.labels, fb.labels)
    print(f"{kills} kills; features {fa.X.shape}; bit-identical to the uninterrupted run: {identical}; "
          f"verify: {b.verify(keys_b[0]) or 'ok'}")
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
