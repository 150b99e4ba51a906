"""Wall time of a data-driven pipeline on a data set: fitting (on the training split) and encoding every image.

    python benchmarks/bench_kmeans_features.py --config configs/cifar10-kmeans.yaml --data /tmp/cifar \\
        --cache-dir /tmp/fpcache-kmeans [--set key=value ...] [--jobs 2]

Runs ``featurepipe extract`` (``featurepipe.extract.extract_features``) into an empty cache and reports the
phase timings the library records in the entry's summary: the fit (decoding the training images,
sampling descriptors, the projection, the vocabulary) and the encoding of every image across ``--jobs``
worker processes. Before that it measures this machine's SGEMM rate (float32, this process's BLAS
threads) on the encoding's product shape (patches x dimension times dimension x words) and on a square
2,048 product, so that the timings can be set against the floor the matrix products alone impose.
Prints one JSON object.
"""
from __future__ import annotations

import json
import time

import harness
import numpy as np

from featurepipe.extract import extract_features
from featurepipe.config import load_config
from featurepipe.store import FeatureStore


def sgemm_rates(dim: int, words: int, seconds: float = 3.0) -> dict:
    """GFLOP/s of float32 matrix products: (16384 x dim) @ (dim x words), and 2048 x 2048 squared."""
    rng = np.random.default_rng(0)
    rates = {}
    for name, a, b in [("encode_shape", rng.random((16384, dim), np.float32), rng.random((dim, words), np.float32)),
                       ("square_2048", rng.random((2048, 2048), np.float32), rng.random((2048, 2048), np.float32))]:
        a @ b
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        rates[name] = round(2 * a.shape[0] * a.shape[1] * b.shape[1] * count / (time.perf_counter() - start) / 1e9, 1)
    return rates


def main() -> None:
    parser = harness.parser(__doc__, jobs=2)
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", required=True, help="data set folder (train/ and test/ class folders)")
    parser.add_argument("--cache-dir", required=True, help="an empty folder: the whole recipe is timed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    cfg = load_config(args.config, [*args.set, f"dataset.path={args.data}", f"run.cache_dir={args.cache_dir}",
                                    f"run.jobs={args.jobs}", "run.progress=false"])
    report = {"config": args.config, "overrides": args.set, "jobs": args.jobs, "machine": harness.describe()}
    extractor = cfg.pipeline.extractor
    params = next(iter(extractor.values())) if isinstance(extractor, dict) else {}
    size = params.get("descriptor", {}).get("patches", {}).get("size", 6)
    report["sgemm_gflops"] = sgemm_rates(size * size * 3, params.get("n_words", 1600))
    result, seconds = harness.timed(extract_features, cfg)
    summary = FeatureStore(cfg.run.cache_dir).summary(result.key)
    report.update(wall_seconds=round(seconds, 1), images=result.n_items,
                  encoded_now=result.computed, key=result.key, load_after=harness.describe()["load"],
                  fit_seconds={k: round(v, 1) for k, v in summary["fit"].items()},
                  encode_seconds=round(summary["seconds"], 1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
