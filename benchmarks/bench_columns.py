"""Why a grid of alphas is fitted together: a product with a tall float32 matrix costs little more for 60
columns than for 10, because reading the matrix, not the arithmetic, bounds it.

    python benchmarks/bench_columns.py [--rows 45000] [--features 8000] [--repeats 3]

Times, for 10 to 60 columns (one linear head's 10 classes per alpha, up to six alphas), an L-BFGS
evaluation's two products ``X @ W`` and ``X.T @ G`` on a random ``rows x features`` matrix, and the two
triangular solves of the Gram preconditioner with a factor ``features + 1`` wide. Prints seconds per
evaluation and the ratio to 10 columns.
"""
from __future__ import annotations

import json

import harness
import numpy as np
from scipy.linalg import solve_triangular


def main() -> None:
    args = harness.parser(__doc__, rows=45000, features=8000, repeats=3).parse_args()
    rng = np.random.default_rng(0)
    X = rng.random((args.rows, args.features), dtype=np.float32)
    d = args.features + 1
    factor = np.asfortranarray(np.tril(rng.random((d, d), dtype=np.float32) * 0.01) + 10 * np.eye(d, dtype=np.float32))
    upper = np.asfortranarray(factor.T)
    report = {"machine": harness.describe(), "rows": args.rows, "features": args.features, "columns": []}
    for columns in (10, 20, 30, 40, 60):
        W = rng.random((args.features, columns), dtype=np.float32)
        G = rng.random((args.rows, columns), dtype=np.float32)
        V = rng.random((d, columns), dtype=np.float32)
        best = harness.best_times({
            "products": lambda: (X @ W, X.T @ G),
            "solves": lambda: (solve_triangular(factor, V, lower=True, trans="T", check_finite=False),
                               solve_triangular(upper, V, trans="T", check_finite=False))}, args.repeats)
        report["columns"].append({"columns": columns, "products_seconds": round(best["products"], 3),
                                  "solves_seconds": round(best["solves"], 3)})
        print(json.dumps(report["columns"][-1]), flush=True)
    base = report["columns"][0]
    for row in report["columns"]:
        row["products_ratio"] = round(row["products_seconds"] / base["products_seconds"], 2)
        row["solves_ratio"] = round(row["solves_seconds"] / base["solves_seconds"], 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
