"""`featurepipe extract` on CIFAR-10 (60,000 JPEGs, HOG + HSV histogram) against a joblib loop of
skimage.feature.hog + a hue histogram, side by side in interleaved rounds: each round runs featurepipe
cold (an empty cache), the baseline, then featurepipe warm (the same command again), so that a shared,
noisy machine slows every method alike. Also the peak memory of the whole process tree on 2,000 vs 60,000
images, and where a warm run's time goes.

    python benchmarks/bench_extract.py CIFAR_DIR [--jobs 2] [--rounds 3] [--skip-baseline]
"""
from __future__ import annotations

import datetime
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

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


def run_baseline(paths, jobs) -> float:
    from joblib import Parallel, delayed

    chunks = [paths[i:i + 1000] for i in range(0, len(paths), 1000)]
    return harness.timed(Parallel(n_jobs=jobs), (delayed(baseline_features)(c) for c in chunks))[1]


def extract(data, cache, jobs) -> dict:
    result = harness.run_measured([sys.executable, "-m", "featurepipe.cli", "extract", "--config", str(CONFIG),
                                   "--data", str(data), "--cache-dir", str(cache), "--jobs", str(jobs),
                                   "--no-progress"])
    if result["exit"] != 0:
        raise SystemExit(f"featurepipe extract failed: {result['output']}")
    return result


def warm_breakdown(data, cache):
    """Where a warm run's time goes, measured in a fresh interpreter, phase by phase."""
    code = f"""
import time; t0 = time.perf_counter()
from featurepipe.config import load_config
from featurepipe.extract import config_dataset, recipe
from featurepipe.store import FeatureStore
t1 = time.perf_counter()
cfg = load_config({str(CONFIG)!r}, ["dataset.path={data}", "run.cache_dir={cache}"])
t2 = time.perf_counter()
ds = config_dataset(cfg)
t3 = time.perf_counter()
store = FeatureStore(cfg.run.cache_dir)
key = store.resolve(recipe(cfg, ds))
t4 = time.perf_counter()
assert key and not store.damaged_chunks(key)
t5 = time.perf_counter()
print(f"imports {{t1-t0:.2f}} s, config {{t2-t1:.2f}} s, listing + stat of {{len(ds)}} files {{t3-t2:.2f}} s, "
      f"identity hash + recipe + cache lookup {{t4-t3:.2f}} s, chunk checks {{t5-t4:.2f}} s")
"""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return f"{out}; interpreter start and exit make up the rest of {time.perf_counter() - start:.2f} s"


def subset(data: Path, n: int, into: Path) -> Path:
    """A folder of symlinks to n/2 train and n/2 test images spread over the classes."""
    for split in ("train", "test"):
        files = sorted((data / split).glob("*/*.jpg"))
        for f in files[:: max(1, len(files) // (n // 2))][: n // 2]:
            target = into / split / f.parent.name / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)
    return into


def main():
    parser = harness.parser(__doc__, jobs=2, rounds=3)
    parser.add_argument("data", type=Path)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    paths = sorted(str(p) for p in args.data.glob("*/*/*.jpg"))
    print(f"# featurepipe extract vs skimage loop, {datetime.datetime.now():%Y-%m-%d %H:%M}, {len(paths)} images, "
          f"--jobs {args.jobs}\n{json.dumps(harness.describe())}\n")
    rounds = []
    for r in range(args.rounds):
        cache = work / f"cache-{r}"
        cold = extract(args.data, cache, args.jobs)
        base = None if args.skip_baseline else run_baseline(paths, args.jobs)
        warm = extract(args.data, cache, args.jobs)
        rounds.append((cold, base, warm))
        print(f"round {r + 1}: featurepipe cold {cold['seconds']:.1f} s (peak RSS {cold['peak_rss_mib']:.0f} MiB), "
              f"baseline {base and f'{base:.1f} s'}, warm {warm['seconds']:.2f} s (peak RSS "
              f"{warm['peak_rss_mib']:.0f} MiB); load {harness.describe()['load']}", flush=True)
        shutil.rmtree(cache) if r < args.rounds - 1 else None
    print(f"- last warm run: {rounds[-1][2]['output']}")
    print(f"- warm breakdown: {warm_breakdown(args.data, work / f'cache-{args.rounds - 1}')}")
    small = extract(subset(args.data, 2000, work / "subset"), work / "cache-small", args.jobs)
    print(f"- featurepipe cold on 2,000 images: {small['seconds']:.1f} s, peak RSS {small['peak_rss_mib']:.0f} MiB")
    speedups = [base / cold["seconds"] for cold, base, _ in rounds if base]
    warm_ratio = [cold["seconds"] / warm["seconds"] for cold, _, warm in rounds]
    if speedups:
        print(f"\ncold speed-up over the baseline per round: {', '.join(f'{s:.1f}x' for s in speedups)} "
              f"(median {statistics.median(speedups):.1f}x)")
    print(f"warm re-run faster than cold per round: {', '.join(f'{s:.1f}x' for s in warm_ratio)} "
          f"(median {statistics.median(warm_ratio):.1f}x)")


if __name__ == "__main__":
    main()
