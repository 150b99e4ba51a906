"""The comparison matrix: every pipeline x every head on one data set, all through the feature store and
the one fit-and-score path (``fitting.py``), so each cell is the best its head reaches on those features
with settings chosen on the training split; a ``late`` pipeline's cell fuses its members' cells of the same
head (``fusion.py``), with weights chosen on the training split too. Each entry's features and each cell's
head are kept in the store, so a re-run only computes what changed. ``report.py`` writes the tables,
figures and HTML page.
"""
from __future__ import annotations

import time
from pathlib import Path

from .checks import check_bench
from .compare import mcnemar_p, test_answers
from .config import Config, ConfigError
from .extract import config_dataset, training_data
from .fitting import cached_head, fit_and_score, head_key, named_heads
from .fusion import Member, fit_fusion, fused_test_answers, fusion_key
from .metrics import accuracy_interval
from .report import write_report
from .runner import map_in_processes
from .summary import accuracy_text, chosen_text, seconds_text

#: A cell whose McNemar p-value against the best cell is at least this is indistinguishable from it.
SIGNIFICANCE = 0.05


def report_folder(cfg: Config, output=None) -> Path:
    """The folder of the bench's report: ``output``, else the config's ``output`` (relative to the working
    folder, as given)."""
    return Path(output or cfg.output).expanduser().absolute()


def run_bench(cfg: Config, quick: bool = False, output=None, name: str | None = None) -> list[dict]:
    """Run (or reuse) every cell of the matrix and write the report (titled ``name``, the config's name);
    returns one row per cell. Each cell's line ends with the time so far and an estimate of the rest."""
    if cfg.bench is None:
        raise ConfigError("bench: missing (name the pipelines to compare under bench.pipelines)")
    heads = named_heads(cfg)
    output = report_folder(cfg, output)
    dataset = config_dataset(cfg)
    if quick:
        dataset = dataset.take(cfg.bench.quick)
    check_bench(cfg, dataset, heads)
    single = {p: entry for p, entry in cfg.bench.pipelines.items() if entry.late is None}
    cells = [(p, head) for p, entry in single.items() for head in heads if _paired(entry, head)]
    cells += [(p, head) for p, entry in cfg.bench.pipelines.items() if entry.late is not None for head in heads
              if _paired(entry, head) and all(_paired(single[member], head) for member in entry.late)]
    unknown = sorted({h for entry in cfg.bench.pipelines.values() for h in entry.heads or []} - {h.name for h in heads})
    if unknown:
        raise ConfigError(f"bench.pipelines: no head named {unknown[0]!r} under heads")
    rows, answers, total, done, start = [], [], len(cells), 0, time.perf_counter()
    members = {}  # (pipeline, head name) -> (fusion.Member, its row): what late fusions fuse
    for pipeline_name, entry in single.items():
        sub = cfg.model_copy(update={"pipeline": entry.pipeline(), "train": entry.train(cfg.train)})
        print(f"[{done + 1}/{total}] {pipeline_name}: features for {len(dataset)} images", flush=True)
        data = training_data(sub, dataset)
        summary = data.store.summary(data.key)
        rate = summary["computed"] / summary["seconds"] if summary.get("computed") else None
        extract_seconds = _extraction_seconds(summary)
        features_seconds = _features_seconds(data)
        for _, spec in (c for c in cells if c[0] == pipeline_name):
            done += 1
            where = f"[{done}/{total}] {pipeline_name} x {spec.name}"
            head = spec.model_copy(update={"normalize": spec.normalize or entry.normalize})
            key = head_key(data, head, sub.train)
            cached = cached_head(data.store, key) is not None
            if not cached:
                print(f"{where}: fitting on {data.store.dimension(data.key)}-d features", flush=True)
            result = fit_and_score(data, head, sub.train, map_tasks=map_in_processes(sub.run.jobs))
            record = result.record
            answers.append(test_answers(data, result.model, result.normalization))
            print(f"{where}: {_result_text(record, cached)}; {_time_left(done, total, time.perf_counter() - start)}",
                  flush=True)
            rows.append(_row(pipeline_name, spec.name, key, data.key,
                             _kind(pipeline_name in cfg.bench.learned, spec.model == "mlp"), record,
                             extract_images_per_s=rate, extract_seconds=extract_seconds,
                             features_seconds=features_seconds))
            members[pipeline_name, spec.name] = Member(pipeline_name, key, data), rows[-1]
    for pipeline_name, spec in cells[len(rows):]:
        done += 1
        fused_members, member_rows = zip(*(members[m, spec.name] for m in cfg.bench.pipelines[pipeline_name].late))
        fused = fit_fusion(f"{pipeline_name} x {spec.name}", list(fused_members))
        record = fused.record
        answers.append(fused_test_answers(fused.members, [m.data for m in fused_members], fused.weights))
        print(f"[{done}/{total}] {pipeline_name} x {spec.name}: {_result_text(record, fused.cached)}; "
              f"{_time_left(done, total, time.perf_counter() - start)}", flush=True)
        rows.append(_row(pipeline_name, spec.name, fusion_key(list(fused_members)), fused_members[0].data.key,
                         "late fusion", record, extract_images_per_s=None,
                         extract_seconds=sum(r["extract_seconds"] for r in member_rows),
                         features_seconds=sum(r["cost_seconds"] for r in member_rows)))
    against_best(rows, answers)
    write_report(rows, cfg, dataset, output, quick, name)
    return rows


def _paired(entry, head) -> bool:
    """Whether the bench pairs pipeline ``entry`` with ``head``."""
    return entry.heads is None or head.name in entry.heads


def _result_text(record: dict, cached: bool) -> str:
    """A cell's line after its fit: ``test 83.3% [78.1, 87.5], chosen alpha=0.01, fit 2.1 s`` (in brackets
    with ``cached``)."""
    test = accuracy_text(record["test"]["accuracy"], record["test"]["n"])
    return (f"{'cached (' if cached else '    '}test {test}{')' if cached else ''}, chosen {chosen_text(record)}, "
            f"fit {seconds_text(record['fit_seconds'])}")


def _row(pipeline: str, head: str, key: str, feature_key: str, kind: str, record: dict, *, extract_images_per_s,
         extract_seconds: float, features_seconds: float) -> dict:
    """A cell's row of the report. ``features_seconds``: what its features cost (a late fusion's: all its
    members cost)."""
    return {"pipeline": pipeline, "head": head, "head_key": key, "feature_key": feature_key, "kind": kind,
            "feature_dim": record["feature_dim"], "extract_images_per_s": extract_images_per_s,
            "extract_seconds": extract_seconds, "fit_seconds": record["fit_seconds"],
            "search_seconds": record["search_seconds"], "features_seconds": features_seconds,
            "cost_seconds": features_seconds + record["search_seconds"] + record["fit_seconds"],
            "peak_fit_mib": record["peak_fit_mib"],
            "train_accuracy": record["train"]["accuracy"], "val_accuracy": record["val"]["accuracy"],
            "test_accuracy": record["test"]["accuracy"], **intervals(record),
            "test_mean_per_class": record["test"]["mean_per_class_accuracy"], "test_n": record["test"]["n"], "chosen": record["chosen"], "grid": record["grid"],
            "confusion_matrix": record["test"]["confusion_matrix"], "classes": record["classes"],
            "history": record["history"]}


def _features_seconds(data) -> float:
    """What a cell's features cost, as first computed: the pipeline's fit (loading its training images
    included) and the extraction of every item of its entry and of its augmented copies (a resumed entry's
    rate extrapolated to all its items)."""
    fit = data.store.summary(data.key).get("fit") or {}
    return fit.get("load", 0.0) + fit.get("fit", 0.0) + sum(_extraction_seconds(data.store.summary(key))
                                                             for key in [data.key, *data.augment])


def _extraction_seconds(summary: dict) -> float:
    """Seconds to extract every item of an entry, from its record (0 when none was computed)."""
    return summary["seconds"] * summary["n"] / summary["computed"] if summary.get("computed") else 0.0


def _time_left(done: int, total: int, elapsed: float) -> str:
    """``3 min 05 s so far, about 6 min 10 s to go``: the rest at the mean pace of the cells done."""
    if done == total:
        return f"all {total} cells in {_duration(elapsed)}"
    return f"{_duration(elapsed)} so far, about {_duration(elapsed / done * (total - done))} to go"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def intervals(record: dict) -> dict:
    """``{split}_95_low`` and ``{split}_95_high``: the 95% Wilson interval of a head's train, validation and
    test accuracy."""
    return {f"{split}_95_{end}": value for split in ("train", "val", "test")
            for end, value in zip(("low", "high"), accuracy_interval(record[split]["accuracy"], record[split]["n"]))}


def against_best(rows: list[dict], answers: list[dict]) -> None:
    """Add to each row McNemar's p-value against the cell of best test accuracy (``vs_best_p``; 1 for that cell)
    on the test images both labelled (``answers``, by row), and whether the two are indistinguishable at
    ``SIGNIFICANCE`` (``same_as_best``)."""
    if not rows:
        return
    best = max(range(len(rows)), key=lambda i: rows[i]["test_accuracy"])
    for row, cell in zip(rows, answers):
        row["vs_best_p"] = 1.0 if cell is answers[best] else mcnemar_p(cell, answers[best])
        row["same_as_best"] = row["vs_best_p"] >= SIGNIFICANCE


def _kind(raw_input: bool, mlp: bool) -> str:
    """A cell's family: features learned by an MLP from raw input, or hand-designed features + a head."""
    if raw_input:
        return "learned" if mlp else "raw pixels + linear"
    return "hand-designed + MLP" if mlp else "hand-designed + linear"
