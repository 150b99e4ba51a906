"""Figures written as PNG (matplotlib, no display needed): training curves, validation accuracy over a grid,
confusion matrices, the bench's accuracy against cost and learning curves, montages of tiles, and rows of
pictures of what a pipeline sees (``show.py`` chooses them). Figures use constrained layout and keep their
legends inside the canvas; a log axis is labelled with plain numbers that never overlap."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import replace_with

EPOCH = "epoch (iteration for L-BFGS)"


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


def distinct_colours(n: int) -> list:
    """``n`` colours told apart at a glance: tab10's, and past ten, tab20's darker shades before its lighter
    ones (tab20 in order pairs each colour with its own lighter shade)."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    return [colormaps["tab20"](order[i % 20]) for i in range(n)]


def _log_scale_if_decades(ax, which: str, values) -> None:
    """A log scale on axis ``which`` ("x" or "y") of ``ax`` when positive ``values`` span a decade or more,
    labelled with plain numbers at 1, 2 and 5 times powers of ten (powers of ten only past three decades)
    and no minor labels, so that labels never crowd each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    values = np.asarray(values, np.float64)
    if not len(values) or values.min() <= 0 or values.max() / values.min() < 10:
        return
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(subs=(1.0,) if values.max() / values.min() > 1000 else (1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def training_curves(history: dict, path, title: str = "", validation: float | None = None) -> Path:
    """Training loss (left) and accuracy (right) per epoch: training accuracy, and validation accuracy per
    epoch when early stopping recorded it, else the chosen setting's validation accuracy from the search
    (``validation``) as a dashed line."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    loss = history["loss"]
    loss_ax.plot(np.arange(1, len(loss) + 1), loss, color="C0")
    _log_scale_if_decades(loss_ax, "y", loss)
    loss_ax.set(xlabel=EPOCH, ylabel="training loss", title="training loss")
    train = history.get("train_accuracy") or []
    acc_ax.plot(np.arange(1, len(train) + 1), train, color="C0", label="training")
    if history.get("val_accuracy"):
        val = history["val_accuracy"]
        acc_ax.plot(np.arange(1, len(val) + 1), val, color="C1", label="validation (early-stopping split)")
    elif validation is not None:
        acc_ax.axhline(validation, color="C1", linestyle="--", label=f"validation, chosen setting: {validation:.1%}")
    acc_ax.set(xlabel=EPOCH, ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    acc_ax.legend(loc="lower right", fontsize=8)
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(plt, fig, path)


def confusion_matrix(matrix, classes, path, title: str = "") -> Path:
    """Row-normalised confusion matrix with the counts written in the cells."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * len(classes) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size), layout="constrained")
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black")
    return _save(plt, fig, path)


def accuracy_vs_cost(rows: list[dict], path) -> Path:
    """Test accuracy against everything each cell cost (``cost_seconds``: the pipeline's fit and extraction,
    the search over settings, the refit), one point per cell: the colour names the pipeline, the marker the
    head."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.8), layout="constrained")
    pipelines = sorted({r["pipeline"] for r in rows})
    colours = dict(zip(pipelines, distinct_colours(len(pipelines))))
    markers = {h: "osD^vP*X"[i % 8] for i, h in enumerate(sorted({r["head"] for r in rows}))}
    for r in rows:
        ax.scatter(r["cost_seconds"], r["test_accuracy"], color=colours[r["pipeline"]], marker=markers[r["head"]],
                   s=60, edgecolor="black", linewidth=0.5, zorder=3)
    _log_scale_if_decades(ax, "x", [r["cost_seconds"] for r in rows])
    ax.set(xlabel="cost of the cell: pipeline fit + extraction + search + refit (seconds)", ylabel="test accuracy",
           title="accuracy against cost")
    ax.grid(alpha=0.3)
    handles = [Line2D([], [], linestyle="", marker="o", color=c, markeredgecolor="black", markeredgewidth=0.5,
                      label=name) for name, c in colours.items()]
    handles += [Line2D([], [], linestyle="", marker=m, color="white", markeredgecolor="black", label=f"head: {name}")
                for name, m in markers.items()]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    return _save(plt, fig, path)


def learning_curves(rows: list[dict], path) -> Path:
    """Every cell's refit, one column per head: its training loss per epoch (top) and validation accuracy
    (bottom) -- per epoch when early stopping held data out, else the chosen setting's validation accuracy
    from the search, as a star at the refit's last epoch. One colour per pipeline, as in accuracy_vs_cost."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    heads = sorted({r["head"] for r in rows})
    pipelines = sorted({r["pipeline"] for r in rows})
    colours = dict(zip(pipelines, distinct_colours(len(pipelines))))
    fig, axes = plt.subplots(2, len(heads), figsize=(3.6 * len(heads) + 2.4, 5.6), squeeze=False, sharex="col",
                             layout="constrained")
    starred = False
    for column, head in enumerate(heads):
        loss_ax, val_ax = axes[0][column], axes[1][column]
        losses = []
        for r in (r for r in rows if r["head"] == head):
            colour, loss = colours[r["pipeline"]], r["history"].get("loss") or []
            loss_ax.plot(np.arange(1, len(loss) + 1), loss, color=colour)
            losses += loss
            val = r["history"].get("val_accuracy")
            if val:
                val_ax.plot(np.arange(1, len(val) + 1), val, color=colour)
            else:
                val_ax.plot([max(len(loss), 1)], [r["val_accuracy"]], linestyle="", marker="*", markersize=11,
                            color=colour, markeredgecolor="black", markeredgewidth=0.5)
                starred = True
        _log_scale_if_decades(loss_ax, "y", losses)
        loss_ax.set(title=f"head: {head}", ylabel="training loss" if column == 0 else None)
        val_ax.set(xlabel=EPOCH, ylabel="validation accuracy" if column == 0 else None)
        for ax in (loss_ax, val_ax):
            ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, label=name) for name, c in colours.items()]
    if starred:
        handles.append(Line2D([], [], linestyle="", marker="*", markersize=11, color="grey",
                              label="validation accuracy of the\nchosen setting (search)"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
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
    scale when it spans decades), one line per combination of the settings that vary besides it (legend
    below the plot); a bar per point otherwise."""
    plt = _pyplot()
    varying = [k for k in grid[0]["params"] if len({repr(r["params"].get(k)) for r in grid}) > 1]
    numeric = [k for k in varying if all(isinstance(r["params"].get(k), (int, float))
                                         and not isinstance(r["params"].get(k), bool) for r in grid)]
    several_norms = len({repr(r["normalize"]) for r in grid}) > 1
    lines: dict = {}
    if numeric:
        axis = max(numeric, key=lambda k: len({r["params"][k] for r in grid}))
        for r in grid:
            label = _setting(r["normalize"] if several_norms else None,
                             {k: r["params"].get(k) for k in varying if k != axis})
            lines.setdefault(label, []).append((r["params"][axis], r["val_accuracy"]))
    columns = 2 if max(map(len, lines), default=0) <= 45 else 1
    legend_rows = -(-len(lines) // columns) if len(lines) > 1 else 0
    fig, ax = plt.subplots(figsize=(7.5, 3.8 + 0.17 * legend_rows), layout="constrained")
    if numeric:
        for label, points in lines.items():
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label or None)
        _log_scale_if_decades(ax, "x", [r["params"][axis] for r in grid])
        ax.set_xlabel(axis)
        if legend_rows:
            fig.legend(loc="outside lower center", ncols=columns, fontsize=7)
    else:
        ax.bar(range(len(grid)), [r["val_accuracy"] for r in grid])
        ax.set_xticks(range(len(grid)), [_setting(r["normalize"] if several_norms else None,
                                                  {k: r["params"].get(k) for k in varying}) for r in grid],
                      rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="validation accuracy", title=title)
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def _setting(normalize, params: dict) -> str:
    """``normalize: [power, standardize]; hidden_layer_sizes=[64]``: a grid point's varying settings."""
    parts = [] if normalize is None else [f"normalize: {_spec_text(normalize)}"]
    parts += [f"{k}={_spec_text(v)}" for k, v in params.items()]
    return "; ".join(parts)


def _spec_text(value) -> str:
    """A config value as it reads in YAML flow style: ``[power, standardize]``, ``{standardize: {eps: 0.01}}``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_spec_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_spec_text(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- what a pipeline sees: a row of pictures, each drawn by a function of one Axes -------------------------
def picture_row(pictures: list, path, title: str) -> Path:
    """One row of pictures, each ``(title, draw, width)``: ``draw(ax)`` fills its axes, ``width`` is its
    share of the row."""
    plt = _pyplot()
    widths = [width for _, _, width in pictures]
    fig, axes = plt.subplots(1, len(pictures), figsize=(2.9 * sum(widths) + 0.4, 3.4), width_ratios=widths,
                             squeeze=False, layout="constrained")
    for ax, (label, draw, _) in zip(axes[0], pictures):
        draw(ax)
        ax.set_title(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path)


def image_drawer(image: np.ndarray):
    """Draws an ``(H, W, 3)`` or ``(H, W, 1)`` uint8 image as it is (grey in grey)."""
    def draw(ax):
        _show_image(ax, image)
    return draw


def _show_image(ax, image, **kwargs):
    grey = image.ndim == 2 or image.shape[-1] == 1
    ax.imshow(image[..., 0] if grey and image.ndim == 3 else image, cmap="gray" if grey else None, vmin=0,
              vmax=255, interpolation="nearest", **kwargs)
    ax.axis("off")


def hog_drawer(image: np.ndarray, orientations: int, pixels_per_cell, colour: bool):
    """Draws the HOG cells of ``image`` as scikit-image's ``hog(visualize=True)`` does: per cell, a star of
    lines, one per orientation bin, as bright as the bin's vote (the brightest 1% of pixels saturate, so
    that weak cells still show). A small image is enlarged first (its cells with it) so that each glyph has
    pixels enough to be seen."""
    from skimage.feature import hog

    zoom = max(1, 128 // min(image.shape[:2]))
    big = np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1)
    cell = (pixels_per_cell[0] * zoom, pixels_per_cell[1] * zoom)
    _, glyphs = hog(big if colour else big[..., 0], orientations=orientations, pixels_per_cell=cell,
                    cells_per_block=(1, 1), visualize=True, channel_axis=-1 if colour else None)

    bright = np.percentile(glyphs[glyphs > 0], 99) if (glyphs > 0).any() else 1.0

    def draw(ax):
        ax.imshow(glyphs, cmap="gray", vmin=0, vmax=bright, interpolation="nearest")
        ax.axis("off")
    return draw


def histogram_drawer(histogram: np.ndarray, colours: np.ndarray, xlabel: str):
    """Draws a colour histogram: one bar per bin, painted in its bin's colour (``colours`` (bins, 3) in [0, 1]).
    Past 128 bins (a joint RGB histogram has 512) only the bins that count pixels are drawn, in bin order,
    so that each bar stays wide enough to show its colour."""
    shown = np.arange(len(histogram))
    if len(histogram) > 128:
        shown = np.flatnonzero(histogram)
        xlabel = f"the {len(shown)} bins of {len(histogram)} that count pixels, in bin order"

    def draw(ax):
        ax.bar(np.arange(len(shown)), histogram[shown], width=0.9, color=colours[shown], edgecolor="black",
               linewidth=0.3)
        ax.set(xlabel=xlabel, ylabel="share of the pixels", xlim=(-0.5, len(shown) - 0.5))
        if len(shown) < len(histogram):
            ax.set_xticks([])
        ax.grid(alpha=0.3, axis="y")
    return draw


def keypoints_drawer(image: np.ndarray, positions: np.ndarray, words=None, n_words: int | None = None,
                     grid: int = 1):
    """Draws the keypoints of local descriptors over ``image`` (``positions``: (N, 2) fractions of its height
    and width) as dots, with, given ``words`` (each keypoint's vocabulary entry, of ``n_words``), the
    visual-word map beneath -- each pixel in the colour of its nearest keypoint's word, one colour per word --
    and the cells of a ``grid`` x ``grid`` spatial pyramid level as white lines."""
    from matplotlib import colormaps

    height, width = image.shape[:2]
    rows, cols = positions[:, 0] * height - 0.5, positions[:, 1] * width - 0.5  # pixel i is centred at i

    def draw(ax):
        _show_image(ax, image, alpha=0.4 if words is not None else 1.0)
        if words is not None:
            word_map = _word_map((height, width), rows, cols, np.asarray(words))
            hues = np.random.default_rng(0).permutation(n_words) / max(n_words, 1)  # neighbouring words, far hues
            colours = colormaps["hsv"](hues[np.maximum(word_map, 0)])
            colours[..., 3] = np.where(word_map >= 0, 0.7, 0.0)
            ax.imshow(colours, interpolation="nearest")
        dots = 5 if words is None else 1
        ax.scatter(cols, rows, s=dots, color="yellow" if words is None else "black", linewidth=0)
        for edge in range(1, grid):  # the pyramid's cell boundaries
            ax.axhline(edge * height / grid - 0.5, color="white", linewidth=1.2)
            ax.axvline(edge * width / grid - 0.5, color="white", linewidth=1.2)
    return draw


def _word_map(shape, rows, cols, words) -> np.ndarray:
    """The word of the keypoint nearest to each pixel of an image of ``shape`` along the grid the keypoints
    lie on (the first keypoint at a position, when several sizes share it); -1 farther than a grid step."""
    grid_rows, grid_cols = np.unique(rows), np.unique(cols)
    grid = np.full((len(grid_rows), len(grid_cols)), -1)
    first = np.arange(len(words))[::-1]  # written last, so the first keypoint at a position wins
    grid[np.searchsorted(grid_rows, rows[first]), np.searchsorted(grid_cols, cols[first])] = words[first]
    nearest = []
    for pixels, centres in ((np.arange(shape[0]), grid_rows), (np.arange(shape[1]), grid_cols)):
        step = np.diff(centres).min() if len(centres) > 1 else max(shape)
        distance = np.abs(pixels[:, None] - centres[None, :])
        index = distance.argmin(axis=1)
        nearest.append(np.where(distance[pixels, index] <= step, index, -1))
    word_map = grid[np.maximum(nearest[0], 0)[:, None], np.maximum(nearest[1], 0)[None, :]]
    word_map[(nearest[0] < 0)[:, None] | (nearest[1] < 0)[None, :]] = -1
    return word_map
