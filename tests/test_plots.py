"""Figures: every legend and tick label inside the canvas, log-axis labels that do not overlap, colours told
apart, validation shown where it is known."""
import numpy as np
import pytest

from featurepipe import plots


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions save, laid out as saved, kept open for inspection."""
    figures = []
    save = plots._save

    class KeepOpen:
        @staticmethod
        def close(fig):
            pass

    def keep(plt, fig, path):
        figures.append(fig)
        written = save(KeepOpen, fig, path)
        fig.canvas.draw()
        return written

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def inside(fig, artist) -> bool:
    box = artist.get_window_extent(fig.canvas.get_renderer())
    canvas = fig.bbox
    return box.x0 >= canvas.x0 - 1 and box.y0 >= canvas.y0 - 1 and box.x1 <= canvas.x1 + 1 and box.y1 <= canvas.y1 + 1


def legends(fig) -> list:
    return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]


def visible_tick_labels(ax, which):
    axis = ax.xaxis if which == "x" else ax.yaxis
    low, high = sorted(axis.get_view_interval())
    return [t for t in axis.get_ticklabels() if t.get_text() and low <= t.get_position()[0 if which == "x" else 1] <= high]


def bench_rows(n_pipelines=12, costs=None):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_pipelines):
        for head in ("softmax", "svm", "mlp"):
            history = {"loss": list(np.geomspace(2.0, 0.01, 30)), "train_accuracy": [1.0] * 30,
                       "val_accuracy": list(np.linspace(0.3, 0.8, 30)) if head == "mlp" else []}
            rows.append({"pipeline": f"pipeline_with_a_long_name_{i}", "head": head, "history": history,
                         "cost_seconds": float(costs[i] if costs is not None else rng.uniform(3, 4.5)),
                         "test_accuracy": float(rng.uniform(0.2, 0.9)), "val_accuracy": float(rng.uniform(0.2, 0.9))})
    return rows


@pytest.mark.parametrize("costs", [None, np.geomspace(0.05, 3000, 12)])  # within one decade; eleven decades
def test_accuracy_against_cost_keeps_its_legend_and_labels_readable(tmp_path, drawn, costs):
    plots.accuracy_vs_cost(bench_rows(costs=costs), tmp_path / "cost.png")
    fig = drawn[0]
    ax = fig.axes[0]
    assert legends(fig) and all(inside(fig, legend) for legend in legends(fig))
    labels = visible_tick_labels(ax, "x")
    assert len(labels) >= 2 and all(inside(fig, t) for t in labels)
    boxes = sorted((t.get_window_extent(fig.canvas.get_renderer()) for t in labels), key=lambda b: b.x0)
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), [t.get_text() for t in labels]
    assert "search" in ax.get_xlabel()
    # twelve pipelines, twelve colours no two of which are shades of one another
    colours = {tuple(np.round(c.get_facecolor()[0], 3)) for c in ax.collections}
    assert len(colours) == 12


def test_distinct_colours_put_a_colour_and_its_lighter_shade_far_apart():
    colours = plots.distinct_colours(12)
    assert len(set(colours)) == 12
    assert np.abs(np.subtract(colours[0], colours[1])).max() > 0.3  # tab20 starts with two blues


def test_learning_curves_show_training_loss_and_validation(tmp_path, drawn):
    plots.learning_curves(bench_rows(n_pipelines=3), tmp_path / "learning.png")
    fig = drawn[0]
    assert all(inside(fig, legend) for legend in legends(fig)) and len(fig.axes) == 6
    loss_panels, val_panels = fig.axes[:3], fig.axes[3:]  # row by row; heads in order: mlp, softmax, svm
    assert all(ax.get_yscale() == "log" for ax in loss_panels)  # a loss from 2 to 0.01
    mlp_val = val_panels[0]
    assert [len(line.get_xdata()) for line in mlp_val.get_lines()] == [30, 30, 30]  # per-epoch validation
    stars = val_panels[1].get_lines()
    assert len(stars) == 3 and all(line.get_marker() == "*" and len(line.get_xdata()) == 1 for line in stars)


def test_training_curves_show_validation_when_only_the_search_measured_it(tmp_path, drawn):
    history = {"loss": [1.0, 0.5, 0.2], "train_accuracy": [1.0, 1.0, 1.0], "val_accuracy": []}
    plots.training_curves(history, tmp_path / "curves.png", title="svm", validation=0.75)
    fig = drawn[0]
    loss_ax, acc_ax = fig.axes
    assert list(loss_ax.get_lines()[0].get_ydata()) == [1.0, 0.5, 0.2]
    validation = acc_ax.get_lines()[1]
    assert list(validation.get_ydata()) == [0.75, 0.75] and "75.0%" in validation.get_label()
    assert all(inside(fig, legend) for legend in legends(fig))


def test_validation_curve_legend_inside_the_canvas(tmp_path, drawn):
    grid = [{"params": {"alpha": alpha, "hidden_layer_sizes": [size]}, "normalize": normalize,
             "val_accuracy": 0.5 + alpha} for alpha in (1e-4, 1e-3, 1e-2, 1e-1) for size in (64, 500)
            for normalize in (["standardize"], ["power", "standardize"], [{"standardize": {"eps": 0.01}}])]
    plots.validation_curve(grid, tmp_path / "validation.png", title="mlp: validation accuracy over the grid")
    fig = drawn[0]
    legend = legends(fig)[0]
    assert inside(fig, legend) and len(legend.get_texts()) == 6
    assert "normalize: [power, standardize]; hidden_layer_sizes=[500]" in {t.get_text() for t in legend.get_texts()}
    assert fig.axes[0].get_xscale() == "log"
