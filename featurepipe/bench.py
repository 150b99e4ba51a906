"""The comparison matrix: every pipeline x every head on one data set, all through the feature store and
the one fit-and-score path (``fitting.py``), so each cell is the best its head reaches on those features
with settings chosen on the training split. Each entry's features and each cell's head are kept in the
store, so a re-run only computes what changed. ``report.py`` writes the tables, figures and HTML page.
"""
from __future__ import annotations

from pathlib import Path

from .checks import check_bench
from .config import Config, ConfigError
from .extract import config_dataset, training_data
from .fitting import cached_head, fit_and_score, head_key, named_heads
from .report import write_report


def run_bench(cfg: Config, quick: bool = False, output=None) -> list[dict]:
    """Run (or reuse) every cell of the matrix and write the report; returns one row per cell."""
    if cfg.bench is None:
        raise ConfigError("bench: missing (name the pipelines to compare under bench.pipelines)")
    heads = named_heads(cfg)
    output = Path(output or cfg.output)
    dataset = config_dataset(cfg)
    if quick:
        dataset = dataset.take(cfg.bench.quick)
    check_bench(cfg, dataset, heads)
    cells = [(p, head) for p, entry in cfg.bench.pipelines.items() for head in heads
             if entry.heads is None or head.name in entry.heads]
    unknown = sorted({h for entry in cfg.bench.pipelines.values() for h in entry.heads or []} - {h.name for h in heads})
    if unknown:
        raise ConfigError(f"bench.pipelines: no head named {unknown[0]!r} under heads")
    rows, total, done = [], len(cells), 0
    for pipeline_name, entry in cfg.bench.pipelines.items():
        sub = cfg.model_copy(update={"pipeline": entry.pipeline(), "train": entry.train(cfg.train)})
        print(f"[{done + 1}/{total}] {pipeline_name}: features for {len(dataset)} images", flush=True)
        data = training_data(sub, dataset)
        summary = data.store.summary(data.key)
        rate = summary["computed"] / summary["seconds"] if summary.get("computed") else None
        extract_seconds = len(dataset) / rate if rate else 0.0
        for _, spec in (c for c in cells if c[0] == pipeline_name):
            done += 1
            where = f"[{done}/{total}] {pipeline_name} x {spec.name}"
            head = spec.model_copy(update={"normalize": spec.normalize or entry.normalize})
            key = head_key(data, head, sub.train)
            cached = cached_head(data.store, key) is not None
            if not cached:
                print(f"{where}: fitting on {data.store.dimension(data.key)}-d features", flush=True)
            record = fit_and_score(data, head, sub.train).record
            print(f"{where}: {'cached (' if cached else '    '}test {record['test']['accuracy']:.1%}"
                  f"{')' if cached else ''}, chosen {record['chosen']['params']}, fit {record['fit_seconds']:.1f} s",
                  flush=True)
            rows.append({"pipeline": pipeline_name, "head": spec.name, "head_key": key, "feature_key": data.key,
                         "kind": _kind(pipeline_name in cfg.bench.learned, spec.model == "mlp"),
                         "feature_dim": record["feature_dim"], "extract_images_per_s": rate,
                         "extract_seconds": extract_seconds, "fit_seconds": record["fit_seconds"],
                         "search_seconds": record["search_seconds"], "peak_fit_mib": record["peak_fit_mib"],
                         "train_accuracy": record["train"]["accuracy"], "val_accuracy": record["val"]["accuracy"],
                         "test_accuracy": record["test"]["accuracy"], "chosen": record["chosen"],
                         "confusion_matrix": record["test"]["confusion_matrix"], "classes": record["classes"],
                         "history": record["history"]})
    write_report(rows, cfg, dataset, output, quick)
    return rows


def _kind(raw_input: bool, mlp: bool) -> str:
    """A cell's family: features learned by an MLP from raw input, or hand-designed features + a head."""
    if raw_input:
        return "learned" if mlp else "raw pixels + linear"
    return "hand-designed + MLP" if mlp else "hand-designed + linear"
