"""Wall time of a data-driven pipeline on a data set: fitting (on the training split) and encoding every image.

    python scripts/bench_kmeans_features.py --config configs/cifar10-kmeans.yaml --data /tmp/cifar \\
        --cache-dir /tmp/fpcache-kmeans [--set key=value ...] [--jobs 2]

Before that it measures this machine's SGEMM rate in the fitting process (float32, its BLAS threads) on the
encoding's product shape (patches x dimension times dimension x words) and on a square 2,048 product, so
that the timings can be set against the floor the matrix products alone impose.

Does what ``featurepipe extract`` does -- fit on train (or reuse a saved fit), then encode both splits
into the cache -- and times each phase: the whole fit (decoding the training images included), within it
sampling descriptors, fitting the projection and k-means, then encoding all images across ``--jobs``
worker processes. Prints one JSON object: the timings (no ``fit_kmeans`` when a saved fit was reused),
the BLAS threads of the fitting process and of each worker, the load average before and after (the
machine may be shared), and the cache key of the features.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import contextmanager

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_info

from machine_info import cpu_model
from featurepipe import api, runner
from featurepipe.config import load_config
from featurepipe.extractors import bovw
from featurepipe.local.base import Descriptor
from featurepipe.store import FeatureStore


def blas_threads() -> list:
    return [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]


@contextmanager
def timed_attribute(module, name: str, seconds: dict, label: str):
    """Add the wall time of every call of ``module.name`` to ``seconds[label]`` while the block runs."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", required=True, help="data set folder (train/ and test/ class folders)")
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    cfg = load_config(args.config, [*args.set, f"dataset.path={args.data}", f"run.cache_dir={args.cache_dir}",
                                    f"run.jobs={args.jobs}", "run.progress=false"])
    report = {"config": args.config, "overrides": args.set, "jobs": args.jobs, "machine": cpu_model(),
              "cpus": os.cpu_count(), "load_before": os.getloadavg(), "fit_blas_threads": blas_threads()}
    with runner.parallel_backend("loky", args.jobs, None):
        report["worker_blas_threads"] = Parallel()(delayed(blas_threads)() for _ in range(args.jobs))

    extractor = cfg.pipeline.extractor
    params = next(iter(extractor.values())) if isinstance(extractor, dict) else {}
    size = params.get("descriptor", {}).get("patches", {}).get("size", 6)
    report["sgemm_gflops"] = sgemm_rates(size * size * 3, params.get("n_words", 1600))
    dataset = api.config_dataset(cfg)
    store = FeatureStore(cfg.run.cache_dir)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with timed_attribute(Descriptor, "sample", seconds, "fit_sample"), \
            timed_attribute(bovw, "fit_projection", seconds, "fit_projection"), \
            timed_attribute(bovw, "kmeans", seconds, "fit_kmeans"):
        pipeline = api.fitted_pipeline(cfg, dataset, store)
    seconds["fit_total"] = time.perf_counter() - start
    result = runner.extract(dataset, pipeline, store, chunk_rows=cfg.run.chunk_size, jobs=args.jobs,
                            on_error=cfg.run.on_error, progress=False)
    store.alias(api.recipe(cfg, dataset), result.key)
    seconds["encode_total"] = result.seconds
    report.update(seconds={k: round(v, 1) for k, v in seconds.items()}, images=result.n_items,
                  encoded_now=result.computed, key=result.key, load_after=os.getloadavg())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
