"""featurepipe at a million items: cold and warm extracts, ``cache ls`` and ``cache verify``.

    python benchmarks/scale_million.py ROOT [--items 1000000] [--distinct 500] [--jobs 2]

Builds ``ROOT/data``: ``--items`` small PNG files in train/test class folders, hard links to ``--distinct``
generated 32x32 images (so a million items cost a directory's worth of disk). Then runs, each as its own
``featurepipe`` process with the cache in ``ROOT/cache``, and records wall time and the peak resident
memory of the whole process tree (the main process and its workers, sampled from /proc):

- a cold ``extract`` (HSV histograms, 72 values per image);
- a warm ``extract`` of the same folder (everything from the cache);
- ``cache ls`` and ``cache verify``.

Prints one JSON line per step and a summary. The folder is kept for re-runs; ``--items`` smaller than a
previous run builds a new folder.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import harness
import numpy as np

CONFIG = """dataset: {{path: {data}}}
pipeline: {{extractor: {{hsv_hist: {{bins: [8, 3, 3]}}}}}}
run: {{jobs: {jobs}, chunk_size: 4096, cache_dir: {cache}, progress: false}}
"""


def build(folder: Path, items: int, distinct: int) -> None:
    """``items`` files in ``folder``/{train,test}/class_k/, hard links to ``distinct`` generated images."""
    marker = folder / f".built-{items}"
    if marker.exists():
        return
    sources = folder.parent / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(distinct):
        image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(sources / f"{i}.png"), image)
    per_folder = 10_000
    for i in range(items):
        split = "test" if i % 10 == 0 else "train"  # every class in both splits: the class is the next digit
        target = folder / split / f"class_{i // 10 % 10}" / f"part_{i // per_folder:03d}"
        if i % per_folder < 100:  # the first 100 items of a block reach every (split, class) folder
            target.mkdir(parents=True, exist_ok=True)
        os.link(sources / f"{i % distinct}.png", target / f"{i:07d}.png")
    marker.write_text("built\n")


def measure(argv: list[str]) -> dict:
    """Run ``featurepipe ARGV``: wall seconds, peak tree RSS (MiB), exit code, last output line."""
    result = harness.run_measured([sys.executable, "-m", "featurepipe.cli", *argv])
    return {"command": " ".join(argv[:2]), "seconds": round(result["seconds"], 2),
            "peak_rss_mib": round(result["peak_rss_mib"]), "exit": result["exit"],
            "output": result["output"].splitlines()[-1] if result["output"] else ""}


def main() -> None:
    parser = harness.parser(__doc__, items=1_000_000, distinct=500, jobs=2)
    parser.add_argument("root", type=Path)
    args = parser.parse_args()

    data = args.root / f"data-{args.items}"
    seconds = harness.timed(build, data, args.items, args.distinct)[1]
    print(json.dumps({"step": "build", "items": args.items, "seconds": round(seconds, 1)}), flush=True)
    cache = args.root / f"cache-{args.items}"
    config = args.root / f"config-{args.items}.yaml"
    config.write_text(CONFIG.format(data=data, jobs=args.jobs, cache=cache))
    results = {"machine": harness.describe(), "items": args.items}
    for step, argv in (("cold extract", ["extract", "--config", str(config)]),
                       ("warm extract", ["extract", "--config", str(config)]),
                       ("cache ls", ["cache", "ls", "--cache-dir", str(cache)]),
                       ("cache verify", ["cache", "verify", "--cache-dir", str(cache)])):
        results[step] = measure(argv)
        print(json.dumps({"step": step, **results[step]}), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
