"""The comparison matrix: every pipeline x every head on one data set, all through the feature store,
and its report (Markdown, CSV, JSON tables, PNG figures and one self-contained HTML page).

Each cell's result is cached under ``<cache>/results/`` by (feature entry, head settings, training
settings, head code), and each entry's features by the store, so a re-run only computes what changed.
"""
from __future__ import annotations

import base64
import csv
import html
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np

from .api import config_dataset, extract_features, fitted_pipeline
from .config import Config, ConfigError
from .datasets import read_image
from .fingerprint import HEAD_CODE, code_version, digest
from .heads import load_model, save_model
from .pipeline import iter_stages
from .store import FeatureStore, write_json_atomic
from .train import Standardizer, head_name, make_head, score_split, train_val_test
from . import plots

COLUMNS = ["pipeline", "head", "kind", "feature_dim", "extract_images_per_s", "fit_seconds", "train_accuracy",
           "val_accuracy", "test_accuracy", "peak_fit_mib"]


def _cell(cfg: Config, name: str, head_spec: dict, index: int, key: str, fs, cell_dir: Path) -> dict:
    """Fit one head on one feature set; record accuracies, time, peak traced memory and history."""
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = train_val_test(fs, cfg)
    scale = Standardizer.fit(X_tr) if cfg.train.standardize else Standardizer.identity(X_tr.shape[1])
    model = make_head(head_spec, index)
    tracemalloc.start()
    start = time.perf_counter()
    model.fit(scale(X_tr), y_tr)
    fit_seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    classes = np.array(fs.classes)
    scores = {split: score_split(model, scale(X), y, classes)
              for split, (X, y) in {"train": (X_tr, y_tr), "val": (X_va, y_va), "test": (X_te, y_te)}.items()}
    cell_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, cell_dir / "head.npz")
    return {"head": name, "feature_key": key, "feature_dim": int(X_tr.shape[1]), "fit_seconds": fit_seconds,
            "peak_fit_mib": peak / 2**20, "train_accuracy": scores["train"]["accuracy"],
            "val_accuracy": scores["val"]["accuracy"], "test_accuracy": scores["test"]["accuracy"],
            "confusion_matrix": scores["test"]["confusion_matrix"], "classes": fs.classes,
            "history": model.history_, "model_path": str(cell_dir / "head.npz")}


def run_bench(cfg: Config, quick: bool = False, output=None) -> list[dict]:
    """Run (or reuse) every cell of the matrix and write the report; returns one row per cell."""
    if cfg.bench is None:
        raise ConfigError("bench: missing (name the pipelines to compare under bench.pipelines)")
    if not cfg.heads:
        raise ConfigError("heads: name at least one head")
    output = Path(output or cfg.output)
    dataset = config_dataset(cfg)
    if quick:
        dataset = dataset.take(cfg.bench.quick)
    store = FeatureStore(cfg.run.cache_dir)
    heads = [(head_name(spec, i), spec, i) for i, spec in enumerate(cfg.heads)]
    rows, total = [], len(cfg.bench.pipelines) * len(heads)
    for p, (pipeline_name, pipeline_spec) in enumerate(cfg.bench.pipelines.items()):
        sub = cfg.model_copy(update={"pipeline": pipeline_spec})
        print(f"[{p * len(heads) + 1}/{total}] {pipeline_name}: features for {len(dataset)} images", flush=True)
        extracted = extract_features(sub, dataset)
        summary = store.summary(extracted.key)
        rate = summary["computed"] / summary["seconds"] if summary.get("computed") else None
        extract_seconds = len(dataset) / rate if rate else 0.0
        fs = None
        for h, (name, spec, index) in enumerate(heads):
            cell_key = digest({"features": extracted.key, "head": spec, "train": cfg.train.model_dump(),
                               "code": code_version(HEAD_CODE)})[:32]
            cached = store.root / "results" / f"{cell_key}.json"
            if cached.exists():
                cell = json.loads(cached.read_text())
                print(f"[{p * len(heads) + h + 1}/{total}] {pipeline_name} x {name}: cached "
                      f"(test {cell['test_accuracy']:.1%})", flush=True)
            else:
                fs = fs if fs is not None else store.read(extracted.key)
                print(f"[{p * len(heads) + h + 1}/{total}] {pipeline_name} x {name}: fitting on "
                      f"{fs.X.shape[1]}-d features", flush=True)
                cell = _cell(sub, name, spec, index, extracted.key, fs, store.root / "results" / cell_key)
                write_json_atomic(cached, cell)
                print(f"    test {cell['test_accuracy']:.1%}, fit {cell['fit_seconds']:.1f} s", flush=True)
            kind = _kind(pipeline_name in cfg.bench.learned, spec.get("model") == "mlp")
            rows.append({**cell, "pipeline": pipeline_name, "kind": kind, "extract_images_per_s": rate,
                         "extract_seconds": extract_seconds, "fit_seconds": cell["fit_seconds"]})
    write_report(rows, cfg, dataset, output, quick)
    return rows


def _kind(raw_input: bool, mlp: bool) -> str:
    """A cell's family: features learned by an MLP from raw input, or hand-designed features + a head."""
    if raw_input:
        return "learned" if mlp else "raw pixels + linear"
    return "hand-designed + MLP" if mlp else "hand-designed + linear"


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


def _feature_pictures(cfg: Config, dataset, store: FeatureStore, rows, folder: Path) -> dict[str, Path]:
    """Pictures of what the features see: HOG glyphs, an HSV histogram, visual words, MLP templates."""
    figures = {}
    ok_ids = store.read(rows[0]["feature_key"], "test" if dataset.splits else None).ids  # files that decoded
    image = read_image(dataset.root / ok_ids[0])
    figures["HOG glyphs"] = plots.hog_glyphs(image, folder / "hog_glyphs.png")
    from .extractors import create_extractor

    hist = create_extractor("hsv_hist", bins=(8, 3, 3)).transform(image[None])[0]
    figures["HSV histogram"] = plots.hsv_histogram(image, hist, (8, 3, 3), folder / "hsv_histogram.png")
    for name, spec in cfg.bench.pipelines.items():
        pipeline = fitted_pipeline(cfg.model_copy(update={"pipeline": spec}), dataset, store)
        for _, stage in iter_stages(pipeline):
            words = _patch_words(stage)
            if words is not None:
                figures[f"visual words ({name})"] = plots.montage(words[:128], folder / f"words_{name}.png",
                                                                  f"k-means centroids of {name} (whitened patches), first 128")
    learned = [r for r in rows if r["kind"] == "learned"]
    if learned:
        model = load_model(learned[0]["model_path"])
        weights = model.coefs_[0].T[:64]
        side = int(round((weights.shape[1] / 3) ** 0.5))
        if side * side * 3 == weights.shape[1]:
            figures["MLP first-layer templates"] = plots.montage(weights.reshape(-1, side, side, 3),
                                                                 folder / "mlp_templates.png",
                                                                 "first-layer weights of the MLP on raw pixels")
    return figures


HEADER = ("pipeline", "head", "kind", "dim", "extract img/s", "fit s", "train", "val", "test", "peak fit MiB")


def _display(rows) -> list[tuple]:
    """Table cells as text, best test accuracy first."""
    out = []
    for r in sorted(rows, key=lambda r: -r["test_accuracy"]):
        rate = f"{r['extract_images_per_s']:,.0f}" if r["extract_images_per_s"] else "n/a"
        out.append((r["pipeline"], r["head"], r["kind"], r["feature_dim"], rate, f"{r['fit_seconds']:.1f}",
                    f"{r['train_accuracy']:.1%}", f"{r['val_accuracy']:.1%}", f"{r['test_accuracy']:.1%}",
                    f"{r['peak_fit_mib']:.0f}"))
    return out


def table_markdown(rows) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(map(str, cells)) + " |" for cells in _display(rows)]
    return "\n".join(lines)


def _table_html(rows) -> str:
    header = "".join(f"<th>{h}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells) + "</tr>" for cells in _display(rows))
    return f"<table><tr>{header}</tr>{body}</table>"


def write_report(rows, cfg: Config, dataset, output: Path, quick: bool) -> Path:
    """results.{md,csv,json}, figures/*.png and report.html (images inlined, viewable offline)."""
    figures_dir = output / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(rows, indent=1))
    with open(output / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
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
    figures.update(_feature_pictures(cfg, dataset, FeatureStore(cfg.run.cache_dir), rows, figures_dir))
    n_train = sum(s == "train" for s in dataset.splits)
    title = f"featurepipe bench: {dataset.root.name}{' (quick)' if quick else ''}"
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>{len(dataset)} images ({n_train} train, of which {cfg.train.validation_fraction:.0%} held out for "
            f"validation; {len(dataset) - n_train} test), {len(rows)} cells, written {time.strftime('%Y-%m-%d %H:%M')}."
            " Best cells are chosen on validation accuracy; test accuracy is reported once per cell.</p>",
            _table_html(rows)]
    for label, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        body.append(f"<h2>{html.escape(label)}</h2><img alt='{html.escape(label)}' src='data:image/png;base64,{data}'>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
            "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
            "td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}img{max-width:100%}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    (output / "report.html").write_text(page)
    return output / "report.html"
