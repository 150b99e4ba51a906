"""What subnormal weights cost a matrix product: the forward pass of an MLP's first layer.

    python scripts/bench_subnormals.py [--rows 256] [--features 6400] [--hidden 500] [--dead 0.2] [--rounds 20]

A mini-batch of standard-normal float32 rows times a ``features x hidden`` layer, three ways: the layer as
drawn (He scale), the same layer with a ``--dead`` fraction of its units' columns set to subnormal values
(what Adam with an L2 penalty leaves of a unit no input reaches, before ``Adam`` flushed them), and those
columns set to zero (what it leaves now). Products alternate, ``--rounds`` times (``best_times`` of
``bench_extractors.py``); prints each one's best time in milliseconds and the ratios to the normal layer.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from bench_extractors import best_times

from featurepipe import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--features", type=int, default=6400)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--dead", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.features), dtype=np.float32)
    normal = rng.standard_normal((args.features, args.hidden), dtype=np.float32) * np.sqrt(2 / args.features)
    dead = slice(0, int(round(args.dead * args.hidden)))
    subnormal, zero = normal.copy(), normal.copy()
    subnormal[:, dead] = normal[:, dead] * np.float32(1e-38)   # below float32's smallest normal, 1.2e-38
    zero[:, dead] = 0
    assert np.all(np.abs(subnormal[:, dead]) < np.finfo(np.float32).tiny)
    layers = {"normal": normal, "subnormal": subnormal, "zero": zero}
    seconds = best_times({name: (lambda W=W: X @ W) for name, W in layers.items()}, args.rounds)
    best = {name: round(s * 1e3, 3) for name, s in seconds.items()}
    print(json.dumps({"machine": machine.describe(), "rows": args.rows, "features": args.features,
                      "hidden": args.hidden, "dead": args.dead, "best_ms": best,
                      "ratio_to_normal": {name: round(b / best["normal"], 2) for name, b in best.items()}}))


if __name__ == "__main__":
    main()
