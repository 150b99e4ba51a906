"""`featurepipe extract` on CIFAR-10 (60,000 JPEGs, HOG + HSV histogram) against a joblib loop of
skimage.feature.hog + a hue histogram, side by side: cold run, warm re-run, peak memory on 2,000 vs
60,000 images, and where a warm run's time goes.

    pip install psutil   # to follow the memory of the whole process tree
    python scripts/bench_extract.py CIFAR_DIR [--jobs 2] [--skip-baseline]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "cifar10-hog-hsv.yaml"


def baseline_features(paths):
    """One chunk of the baseline: skimage HOG (same parameters as ours) + a 10-bin hue histogram."""
    import cv2
    import numpy as np
    from skimage.color import rgb2hsv
    from skimage.feature import hog

    rows = []
    for path in paths:
        image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        h = hog(image, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), channel_axis=-1)
        hue = np.histogram(rgb2hsv(image)[..., 0], bins=10, range=(0, 1), density=True)[0]
        rows.append(np.concatenate([h, hue]))
    return np.array(rows, np.float32)


def run_baseline(paths, jobs):
    from joblib import Parallel, delayed

    start = time.perf_counter()
    chunks = [paths[i:i + 1000] for i in range(0, len(paths), 1000)]
    Parallel(n_jobs=jobs)(delayed(baseline_features)(c) for c in chunks)
    return time.perf_counter() - start


def run_tracked(cmd):
    """Run ``cmd``; return (wall seconds, peak summed RSS of it and its children in MiB, stdout)."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def watch():
        nonlocal peak
        while not stop.is_set():
            try:
                procs = [proc] + proc.children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed with exit code {proc.returncode}")
    return wall, peak / 2**20, out.strip()


def extract_cmd(data, cache, jobs):
    return [sys.executable, "-m", "featurepipe.cli", "extract", "--config", str(CONFIG), "--data", str(data),
            "--cache-dir", str(cache), "--jobs", str(jobs), "--no-progress"]


def warm_breakdown(data, cache):
    """Where a warm run's time goes, measured in a fresh interpreter, phase by phase."""
    code = f"""
import time; t0 = time.perf_counter()
from featurepipe.config import load_config
from featurepipe.api import config_dataset, recipe
from featurepipe.store import FeatureStore
t1 = time.perf_counter()
cfg = load_config({str(CONFIG)!r}, ["dataset.path={data}", "run.cache_dir={cache}"])
t2 = time.perf_counter()
ds = config_dataset(cfg)
t3 = time.perf_counter()
key = FeatureStore(cfg.run.cache_dir).resolve(recipe(cfg, ds))
t4 = time.perf_counter()
assert key
print(f"imports {{t1-t0:.2f}} s, config {{t2-t1:.2f}} s, listing + stat of {{len(ds)}} files {{t3-t2:.2f}} s, "
      f"identity hash + cache lookup {{t4-t3:.2f}} s")
"""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return f"{out}; interpreter start and exit make up the rest of {time.perf_counter() - start:.2f} s"


def subset(data: Path, n: int, into: Path) -> Path:
    """A folder of symlinks to the first n/2 train and n/2 test images (class folders kept)."""
    for split in ("train", "test"):
        files = sorted((data / split).glob("*/*.jpg"))[:: max(1, len(list((data / split).glob("*/*.jpg"))) // (n // 2))]
        for f in files[: n // 2]:
            target = into / split / f.parent.name / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)
    return into


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    paths = sorted(str(p) for p in args.data.glob("*/*/*.jpg"))

    print(f"# featurepipe extract vs skimage loop — {datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {len(paths)} images, --jobs {args.jobs}\n")
    cold, cold_mem, out = run_tracked(extract_cmd(args.data, work / "cache", args.jobs))
    print(f"- featurepipe cold: {cold:.1f} s wall, peak RSS {cold_mem:.0f} MiB ({out})")
    warm, warm_mem, out = run_tracked(extract_cmd(args.data, work / "cache", args.jobs))
    print(f"- featurepipe warm: {warm:.2f} s wall, peak RSS {warm_mem:.0f} MiB ({out})")
    print(f"- warm breakdown: {warm_breakdown(args.data, work / 'cache')}")
    small = subset(args.data, 2000, work / "subset")
    small_wall, small_mem, out = run_tracked(extract_cmd(small, work / "cache-small", args.jobs))
    print(f"- featurepipe cold on 2,000 images: {small_wall:.1f} s, peak RSS {small_mem:.0f} MiB ({out})")
    if not args.skip_baseline:
        base = run_baseline(paths, args.jobs)
        print(f"- baseline joblib loop (skimage hog + hue histogram): {base:.1f} s")
        print(f"\ncold speed-up over the baseline: {base / cold:.1f}x; warm re-run {cold / warm:.1f}x faster than cold")
    else:
        print(f"\nwarm re-run {cold / warm:.1f}x faster than cold")


if __name__ == "__main__":
    main()
