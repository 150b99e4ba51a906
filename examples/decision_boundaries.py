"""Capacity and regularisation of the heads on two interleaved spirals, which no line separates.

Top row: the linear head, then MLPs with 3, 6 and 20 hidden units. Bottom row: the 20-unit MLP
with L2 strengths 0.001, 0.01 and 0.1. Writes docs/decision_boundaries.png by default.

    python examples/decision_boundaries.py [--output PATH]
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from featurepipe.heads import LinearClassifier, MLPClassifier  # noqa: E402

HIDDEN_SIZES = (3, 6, 20)
L2_STRENGTHS = (0.001, 0.01, 0.1)
COLOURS = ("#1f77b4", "#d62728")


def two_spirals(n_per_class=200, turns=1.25, noise=0.08, seed=0):
    """Points on two spirals, the second the first turned by half a revolution."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1, n_per_class)) * turns * 2 * np.pi
    arm = np.column_stack([t * np.cos(t), t * np.sin(t)]) / (turns * 2 * np.pi)
    X = np.vstack([arm, -arm]) + noise * rng.standard_normal((2 * n_per_class, 2))
    y = np.repeat([0, 1], n_per_class)
    return X.astype(np.float32), y


def plot_boundary(ax, model, X, y, title):
    grid = np.linspace(-1.4, 1.4, 300, dtype=np.float32)
    xx, yy = np.meshgrid(grid, grid)
    decision = model.decision_function(np.column_stack([xx.ravel(), yy.ravel()])).reshape(xx.shape)
    ax.contourf(xx, yy, decision > 0, levels=[-0.5, 0.5, 1.5], colors=COLOURS, alpha=0.25)
    ax.contour(xx, yy, decision, levels=[0], colors="k", linewidths=1)
    ax.scatter(X[:, 0], X[:, 1], c=np.take(COLOURS, y), s=6)
    ax.set_title(f"{title}\ntraining accuracy {model.score(X, y):.2f}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / "docs" / "decision_boundaries.png"
    parser.add_argument("--output", type=Path, default=default)
    args = parser.parse_args()

    X, y = two_spirals()
    # L-BFGS trains these small problems to convergence, so the panels show capacity, not luck.
    def mlp(hidden, alpha):
        return MLPClassifier((hidden,), alpha=alpha, optimizer="lbfgs", max_iter=3000, random_state=0)

    fig, axes = plt.subplots(2, 4, figsize=(14, 7.5))
    plot_boundary(axes[0, 0], LinearClassifier(optimizer="lbfgs").fit(X, y), X, y, "linear head")
    for ax, hidden in zip(axes[0, 1:], HIDDEN_SIZES):
        plot_boundary(ax, mlp(hidden, 1e-4).fit(X, y), X, y, f"MLP, {hidden} hidden units, L2 1e-4")
    axes[1, 0].axis("off")
    axes[1, 0].text(
        0.5, 0.5, "Bottom row: MLP with\n20 ReLU hidden units and\nrising L2 penalty",
        ha="center", va="center", fontsize=11,
    )
    for ax, alpha in zip(axes[1, 1:], L2_STRENGTHS):
        plot_boundary(ax, mlp(20, alpha).fit(X, y), X, y, f"MLP, 20 hidden units, L2 {alpha:g}")
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
