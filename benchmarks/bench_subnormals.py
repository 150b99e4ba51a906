"""What subnormal weights cost a matrix product: the forward pass of an MLP's first layer.

    python benchmarks/bench_subnormals.py [--rows 256] [--features 6400] [--hidden 500] [--dead 0.2] [--rounds 20]

A mini-batch of standard-normal float32 rows times a ``features x hidden`` layer, three ways: the layer as
drawn (He scale), the same layer with a ``--dead`` fraction of its units' columns set to subnormal values
(what Adam with an L2 penalty leaves of a unit no input reaches, before ``Adam`` flushed them), and those
columns set to zero (what it leaves now). Products alternate, ``--rounds`` times (``harness.best_times``); prints each one's best time in milliseconds and the ratios to the normal layer.
"""
from __future__ import annotations

import json

import harness
import numpy as np


def main() -> None:
    args = harness.parser(__doc__, rows=256, features=6400, hidden=500, dead=0.2, rounds=20).parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.features), dtype=np.float32)
    normal = rng.standard_normal((args.features, args.hidden), dtype=np.float32) * np.sqrt(2 / args.features)
    dead = slice(0, int(round(args.dead * args.hidden)))
    subnormal, zero = normal.copy(), normal.copy()
    subnormal[:, dead] = normal[:, dead] * np.float32(1e-38)   # below float32's smallest normal, 1.2e-38
    zero[:, dead] = 0
    assert np.all(np.abs(subnormal[:, dead]) < np.finfo(np.float32).tiny)
    layers = {"normal": normal, "subnormal": subnormal, "zero": zero}
    seconds = harness.best_times({name: (lambda W=W: X @ W) for name, W in layers.items()}, args.rounds)
    best = {name: round(s * 1e3, 3) for name, s in seconds.items()}
    print(json.dumps({"machine": harness.describe(), "rows": args.rows, "features": args.features,
                      "hidden": args.hidden, "dead": args.dead, "best_ms": best,
                      "ratio_to_normal": {name: round(b / best["normal"], 2) for name, b in best.items()}}))


if __name__ == "__main__":
    main()
