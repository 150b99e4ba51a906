"""The bench report: Markdown, CSV and JSON tables, PNG figures and one self-contained HTML page."""
from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

import numpy as np

from . import plots, show
from .config import Config
from .core import iter_stages
from .datasets import read_image
from .extract import fitted_pipeline
from .files import write_csv_atomic
from .fitting import load_head
from .store import OK, FeatureStore
from .summary import interval_text, p_text, significant

COLUMNS = ["pipeline", "head", "kind", "feature_dim", "extract_images_per_s", "search_seconds", "fit_seconds",
           "cost_seconds",
           "train_accuracy", "train_95_low", "train_95_high", "val_accuracy", "val_95_low", "val_95_high",
           "test_accuracy", "test_95_low", "test_95_high", "test_mean_per_class", "test_n", "vs_best_p", "same_as_best", "peak_fit_mib"]


def _best(rows, kind_prefix):
    candidates = [r for r in rows if r["kind"].startswith(kind_prefix)]
    return max(candidates, key=lambda r: r["val_accuracy"]) if candidates else None


def _patch_words(stage):
    """A patch codebook's centroids as (k, size, size, 3) tiles, in the (whitened) space they were learnt in;
    None for other stages (SIFT words, PCA-reduced patches)."""
    centroids = getattr(stage, "centroids_", None)
    if centroids is None or getattr(stage, "projection", None) not in ("zca", "none"):
        return None
    size = int(round((centroids.shape[1] / 3) ** 0.5))
    if size * size * 3 != centroids.shape[1]:
        return None
    return centroids.reshape(-1, size, size, 3)  # patch descriptors are laid out row, column, channel


def _feature_pictures(cfg: Config, dataset, store: FeatureStore, rows, folder: Path) -> tuple[dict, list[str]]:
    """Pictures of what the features see, and one line per picture left out: a test image through each
    pipeline that has a kind of feature not drawn yet (HOG, colour histograms, local descriptors: see
    ``show.py``), the visual words of patch codebooks, an MLP's first-layer templates."""
    figures, notes, drawn = {}, [], set()
    image = read_image(dataset.root / _first_decoded(store, rows[0]["feature_key"], "test" if dataset.splits else None))
    for name, spec in ((n, s) for n, s in cfg.bench.pipelines.items() if s.late is None):
        pipeline, _, _ = fitted_pipeline(cfg.model_copy(update={"pipeline": spec.pipeline()}), dataset, store)
        kinds = show.drawn_kinds(pipeline)
        if kinds - drawn:
            drawn |= kinds
            pictures, left_out = show.pictures_of(pipeline, image)
            notes += [f"pipeline {name}: {line}" for line in left_out]
            if len(pictures) > 1:  # more than the image itself
                figures[f"what {name} sees"] = plots.picture_row(pictures, folder / f"sees_{name}.png",
                                                                 f"a test image as pipeline {name} sees it")
        for _, stage in iter_stages(pipeline):
            words = _patch_words(stage)
            if words is not None:
                figures[f"visual words ({name})"] = plots.montage(words[:128], folder / f"words_{name}.png",
                                                                  f"k-means centroids of {name} (whitened patches), first 128")
    learned = [r for r in rows if r["kind"] == "learned"]
    if learned:
        model = load_head(store, learned[0]["head_key"]).model
        weights = model.coefs_[0].T[:64]
        side = int(round((weights.shape[1] / 3) ** 0.5))
        if side * side * 3 == weights.shape[1]:
            figures["MLP first-layer templates"] = plots.montage(weights.reshape(-1, side, side, 3),
                                                                 folder / "mlp_templates.png",
                                                                 "first-layer weights of the MLP on raw pixels")
    return figures, notes


def _first_decoded(store: FeatureStore, key: str, split: str | None) -> str:
    """The id of the first item of entry ``key`` (of ``split``, when given) whose features were computed: its
    item list and status only, no features read."""
    items = store.items(key)
    usable = store.status(key) == OK
    if split is not None:
        usable &= np.asarray(items["splits"]) == split
    return items["ids"][int(np.flatnonzero(usable)[0])]


HEADER = ("pipeline", "head", "kind", "dim", "extract img/s", "search s", "refit s", "cost s", "train (95%)",
          "val (95%)", "test (95%)", "test per class", "vs best", "peak fit MiB")
LEGEND = ("cost s: all the cell took (pipeline fit, extraction, search and refit), the x axis of the accuracy against "
          "cost plot. Accuracies with their 95% Wilson interval; test per class: the mean of the classes' test accuracies. vs best: McNemar's exact p-value against the best test accuracy "
          "on the same test images; ≈ marks a cell indistinguishable from the best (p ≥ 0.05).")


def _display(rows) -> list[tuple]:
    """Table cells as text, best test accuracy first; floats to three significant digits."""
    out = []
    for rank, r in enumerate(sorted(rows, key=lambda r: -r["test_accuracy"])):
        rate = significant(r["extract_images_per_s"]) if r["extract_images_per_s"] else "n/a"
        versus = "best" if rank == 0 else f"{'≈ ' if r['same_as_best'] else ''}{p_text(r['vs_best_p'])}"
        out.append((r["pipeline"], r["head"], r["kind"], r["feature_dim"], rate, significant(r["search_seconds"]),
                    significant(r["fit_seconds"]), significant(r["cost_seconds"]),
                    *(interval_text(r[f"{split}_accuracy"], r[f"{split}_95_low"], r[f"{split}_95_high"])
                      for split in ("train", "val", "test")),
                    f"{r['test_mean_per_class']:.1%}", versus, significant(r["peak_fit_mib"])))
    return out


def table_markdown(rows) -> str:
    """The table in Markdown, and its legend."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(map(str, cells)) + " |" for cells in _display(rows)]
    return "\n".join(lines + ["", LEGEND])


def _table_html(rows) -> str:
    """The table in HTML, and its legend."""
    header = "".join(f"<th>{h}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells) + "</tr>" for cells in _display(rows))
    return f"<table><tr>{header}</tr>{body}</table><p>{html.escape(LEGEND)}</p>"


def write_report(rows, cfg: Config, dataset, output: Path, quick: bool, name: str | None = None) -> Path:
    """results.{md,csv,json}, figures/*.png and report.html (images inlined, viewable offline), titled with
    ``name`` (the config's name; default: the name of the config's output folder)."""
    figures_dir = output / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(rows, indent=1))
    write_csv_atomic(output / "results.csv", COLUMNS, ([r[c] for c in COLUMNS] for r in rows), name_columns=())
    table = table_markdown(rows)
    (output / "results.md").write_text(table + "\n")
    figures = {"accuracy against cost": plots.accuracy_vs_cost(rows, figures_dir / "accuracy_vs_cost.png"),
               "learning curves": plots.learning_curves(rows, figures_dir / "learning_curves.png")}
    for label, prefix in (("best hand-designed + linear", "hand-designed + linear"), ("best learned", "learned")):
        best = _best(rows, prefix)
        if best:
            figures[f"confusion: {label} ({best['pipeline']} x {best['head']})"] = plots.confusion_matrix(
                best["confusion_matrix"], best["classes"], figures_dir / f"confusion_{prefix.split()[0]}.png",
                f"{best['pipeline']} x {best['head']}: test {best['test_accuracy']:.1%}")
    pictures, notes = _feature_pictures(cfg, dataset, FeatureStore(cfg.run.cache_dir), rows, figures_dir)
    figures.update(pictures)
    n_train = sum(s == "train" for s in dataset.splits)
    title = f"featurepipe bench: {name or Path(cfg.output).name}{' (quick)' if quick else ''}"
    source = f"the built-in {cfg.dataset.builtin} set" if cfg.dataset.builtin else str(dataset.root)
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>Data: {html.escape(source)}, {len(dataset)} images ({n_train} train, {len(dataset) - n_train} test"
            f"{', a per-class subset' if quick else ''}); {len(rows)} cells, written "
            f"{time.strftime('%Y-%m-%d %H:%M')}. Each cell's settings are chosen on the training split "
            f"(selection: {cfg.train.selection}) and refit on it; test accuracy is reported once per cell, and the "
            "best cells are chosen on validation accuracy.</p>",
            _table_html(rows)]
    for label, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        body.append(f"<h2>{html.escape(label)}</h2><img alt='{html.escape(label)}' src='data:image/png;base64,{data}'>")
    body += [f"<p class='note'>{html.escape(line)}</p>" for line in notes]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
            "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
            "td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}img{max-width:100%}p.note{color:#666}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    (output / "report.html").write_text(page)
    return output / "report.html"
