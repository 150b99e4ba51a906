"""Whether two trained heads differ on the same test images: a paired comparison from the store.

    python scripts/paired_heads.py --cache-dir CACHE HEAD_KEY_A HEAD_KEY_B [--resamples 10000]

Each head is read from the store's ``heads`` namespace (the keys are in ``featurepipe cache ls``), its
test rows are scored again from its feature entry, and the two are compared image by image: the
difference in accuracy with a 95% bootstrap interval over test images, and McNemar's exact test on the
images only one of them labels correctly. Both heads must be trained on the same data set's items.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.stats import binomtest

from featurepipe.fitting import load_head, predict_rows
from featurepipe.store import FeatureStore


def correct_on_test(store: FeatureStore, key: str) -> tuple[list, np.ndarray, float]:
    """The test items' ids, whether the head ``key`` labels each correctly, and its recorded test accuracy."""
    result = load_head(store, key)
    if result is None:
        raise SystemExit(f"{key}: no such head in {store.root}")
    features = result.record["feature_key"]
    items = store.items(features)
    labels, splits = np.asarray(items["labels"]), np.asarray(items["splits"])
    rows = np.flatnonzero(splits == "test")
    predicted = predict_rows(store, features, rows, result.model, result.normalization)
    ids = [items["ids"][row] for row in rows]
    return ids, predicted == labels[rows], result.record["test"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("heads", nargs=2, metavar="HEAD_KEY")
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    store = FeatureStore(args.cache_dir)
    (ids_a, right_a, recorded_a), (ids_b, right_b, recorded_b) = (correct_on_test(store, k) for k in args.heads)
    if ids_a != ids_b:
        raise SystemExit("the two heads were not tested on the same images")
    difference = right_a.astype(float) - right_b
    rng = np.random.default_rng(0)
    means = [difference[rng.integers(0, len(difference), len(difference))].mean() for _ in range(args.resamples)]
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    print(json.dumps({
        "heads": args.heads, "test_images": len(difference),
        "accuracy": [float(right_a.mean()), float(right_b.mean())], "recorded": [recorded_a, recorded_b],
        "difference_points": round(100 * float(difference.mean()), 2),
        "bootstrap_95_points": [round(100 * float(q), 2) for q in np.percentile(means, [2.5, 97.5])],
        "only_a_right": only_a, "only_b_right": only_b,
        "mcnemar_p": float(binomtest(only_a, only_a + only_b).pvalue) if only_a + only_b else 1.0,
    }))


if __name__ == "__main__":
    main()
