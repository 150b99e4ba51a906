"""Wall time of a data-driven pipeline on a data set: fitting (on the training split) and encoding every image.

    python scripts/bench_kmeans_features.py --config configs/cifar10-kmeans.yaml --data /tmp/cifar \\
        --cache-dir /tmp/fpcache-kmeans [--set key=value ...] [--jobs 2]

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
import platform
import time
from contextlib import contextmanager

from joblib import Parallel, delayed
from threadpoolctl import threadpool_info

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
    report = {"config": args.config, "overrides": args.set, "jobs": args.jobs, "machine": platform.processor(),
              "cpus": os.cpu_count(), "load_before": os.getloadavg(), "fit_blas_threads": blas_threads()}
    with runner.parallel_backend("loky", args.jobs, None):
        report["worker_blas_threads"] = Parallel()(delayed(blas_threads)() for _ in range(args.jobs))

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
