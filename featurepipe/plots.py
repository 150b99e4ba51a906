"""Figures written as PNG: training curves and confusion matrices (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import replace_with


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path) -> Path:
    """Write ``fig`` as a PNG at ``path`` through a temporary file renamed into place (a link at ``path`` is
    replaced, never written through), and close it."""
    try:
        return replace_with(Path(path), lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)


def training_curves(history: dict, path, title: str = "") -> Path:
    """Loss and accuracy per epoch (train, and validation when recorded), side by side."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    loss_ax.plot(epochs, history["loss"], label="train loss")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "validation")):
        if history.get(key):
            acc_ax.plot(np.arange(1, len(history[key]) + 1), history[key], label=label)
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    acc_ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return _save(plt, fig, path)


def confusion_matrix(matrix, classes, path, title: str = "") -> Path:
    """Row-normalised confusion matrix with the counts written in the cells."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * len(classes) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    return _save(plt, fig, path)


def accuracy_vs_cost(rows: list[dict], path) -> Path:
    """Test accuracy against total cost (extraction of every image + fitting), one point per cell."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    pipelines = sorted({r["pipeline"] for r in rows})
    colours = {p: plt.cm.tab20(i % 20) for i, p in enumerate(pipelines)}
    markers = {h: "osD^vP*X"[i % 8] for i, h in enumerate(sorted({r["head"] for r in rows}))}
    for r in rows:
        ax.scatter(r["extract_seconds"] + r["fit_seconds"], r["test_accuracy"], color=colours[r["pipeline"]],
                   marker=markers[r["head"]], s=55, edgecolor="black", linewidth=0.5)
    for name, colour in colours.items():
        ax.scatter([], [], color=colour, label=name)
    for name, marker in markers.items():
        ax.scatter([], [], color="grey", marker=marker, label=f"head: {name}")
    ax.set_xscale("log")
    ax.set(xlabel="total cost: extraction + fit (seconds, log scale)", ylabel="test accuracy",
           title="accuracy against cost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return _save(plt, fig, path)


def learning_curves(rows: list[dict], path) -> Path:
    """Accuracy per epoch of every cell, one panel per head: validation accuracy when every head of the
    panel held out data for early stopping, else training accuracy (the axis says which)."""
    plt = _pyplot()
    heads = sorted({r["head"] for r in rows})
    fig, axes = plt.subplots(1, len(heads), figsize=(4.2 * len(heads), 3.4), squeeze=False)
    for ax, head in zip(axes[0], heads):
        cells = [r for r in rows if r["head"] == head]
        key = "val_accuracy" if all(r["history"].get("val_accuracy") for r in cells) else "train_accuracy"
        for r in cells:
            curve = r["history"].get(key) or []
            ax.plot(np.arange(1, len(curve) + 1), curve, label=r["pipeline"])
        ax.set(title=f"head: {head}", xlabel="epoch", ylabel=key.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return _save(plt, fig, path)


def hog_glyphs(image: np.ndarray, path, pixels_per_cell=(8, 8)) -> Path:
    """An image beside its HOG cells drawn as oriented glyphs (scikit-image's visualisation)."""
    from skimage.exposure import rescale_intensity
    from skimage.feature import hog

    plt = _pyplot()
    # Small images are enlarged (cells with them) so that each cell's glyph is drawn with enough pixels.
    zoom = max(1, 128 // min(image.shape[:2]))
    image = np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1)
    cell = (pixels_per_cell[0] * zoom, pixels_per_cell[1] * zoom)
    _, glyphs = hog(image, orientations=9, pixels_per_cell=cell, cells_per_block=(1, 1), visualize=True,
                    channel_axis=-1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3.2))
    a.imshow(image, interpolation="nearest")
    a.set_title("image")
    b.imshow(rescale_intensity(glyphs, out_range=(0, 1)), cmap="gray", interpolation="nearest")
    b.set_title("HOG cells")
    for ax in (a, b):
        ax.axis("off")
    fig.tight_layout()
    return _save(plt, fig, path)


def hsv_histogram(image: np.ndarray, histogram: np.ndarray, bins, path) -> Path:
    """An image beside its joint HSV histogram, each bar painted in its bin's centre colour."""
    import cv2

    plt = _pyplot()
    nh, ns, nv = bins
    h, s, v = np.meshgrid(np.arange(nh), np.arange(ns), np.arange(nv), indexing="ij")
    centres = np.stack([(h * 180 // nh) % 180, (s + 0.5) * 256 / ns, (v + 0.5) * 256 / nv], -1).astype(np.uint8)
    colours = cv2.cvtColor(centres.reshape(1, -1, 3), cv2.COLOR_HSV2RGB).reshape(-1, 3) / 255
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3), gridspec_kw={"width_ratios": [1, 3]})
    a.imshow(image, interpolation="nearest")
    a.axis("off")
    b.bar(np.arange(len(histogram)), histogram, color=colours, edgecolor="black", linewidth=0.3)
    b.set(title=f"HSV histogram ({nh} hues x {ns} saturations x {nv} values)", xlabel="bin", ylabel="share")
    fig.tight_layout()
    return _save(plt, fig, path)


def montage(tiles: np.ndarray, path, title: str, columns: int = 16) -> Path:
    """Tiles (n, h, w[, 3]) each rescaled to [0, 1] and laid out in a grid: visual words, MLP templates."""
    plt = _pyplot()
    tiles = tiles.astype(np.float64)
    axes = tuple(range(1, tiles.ndim))
    low, high = tiles.min(axis=axes, keepdims=True), tiles.max(axis=axes, keepdims=True)
    tiles = (tiles - low) / np.maximum(high - low, 1e-12)
    rows = -(-len(tiles) // columns)
    fig, axs = plt.subplots(rows, columns, figsize=(columns * 0.55, rows * 0.55 + 0.5), squeeze=False)
    for ax in axs.ravel():
        ax.axis("off")
    for ax, tile in zip(axs.ravel(), tiles):
        ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, interpolation="nearest")
    fig.suptitle(title, fontsize=9)
    return _save(plt, fig, path)


def validation_curve(grid: list[dict], path, title: str = "") -> Path:
    """Validation accuracy of every grid point: against the one numeric parameter that varies most (log
    scale when it spans decades), one line per combination of the others; a bar per point otherwise."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    numeric = [k for k in grid[0]["params"] if all(isinstance(r["params"].get(k), (int, float))
                                                   and not isinstance(r["params"].get(k), bool) for r in grid)]
    varying = [k for k in numeric if len({r["params"][k] for r in grid}) > 1]
    if varying:
        axis = max(varying, key=lambda k: len({r["params"][k] for r in grid}))
        lines: dict = {}
        for r in grid:
            rest = {k: v for k, v in r["params"].items() if k != axis}
            lines.setdefault(f"{r['normalize']} {rest}" if rest or len({str(g['normalize']) for g in grid}) > 1
                             else "", []).append((r["params"][axis], r["val_accuracy"]))
        for label, points in lines.items():
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label[:60] or None)
        values = [r["params"][axis] for r in grid]
        if min(values) > 0 and max(values) / min(values) >= 30:
            ax.set_xscale("log")
        ax.set_xlabel(axis)
        if any(lines):
            ax.legend(fontsize=6)
    else:
        ax.bar(range(len(grid)), [r["val_accuracy"] for r in grid])
        ax.set_xticks(range(len(grid)), [str(r["normalize"])[:20] for r in grid], rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="validation accuracy", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(plt, fig, path)
