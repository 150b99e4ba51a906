"""The text ``featurepipe train`` prints: one line per head and a table comparing them; with ``--verbose``, a
line per grid point as it is scored and each head's grid. Accuracies come with their 95% (Wilson) interval."""
from __future__ import annotations

from pathlib import Path

from .metrics import accuracy_interval


def log_point(split: int, n_splits: int, normalize, params: dict, accuracy: float) -> None:
    """Print one grid point's validation accuracy on one split (``fitting.fit_and_score``'s ``log``)."""
    print(f"  split {split + 1}/{n_splits}  {describe_normalize(normalize)}  {params_text(params)}: "
          f"validation {accuracy:.2%}", flush=True)


def describe_normalize(spec) -> str:
    """A normalisation spec as text: ``power(p=0.5) -> l2``."""
    steps = spec if isinstance(spec, (list, tuple)) else [] if spec in (None, "none") else [spec]
    if not steps:
        return "none"
    shown = []
    for step in steps:
        name, params = (step, {}) if isinstance(step, str) else next(iter(step.items()))
        shown.append(name + (f"({params_text(params or {})})" if params else ""))
    return " -> ".join(shown)


def params_text(params: dict) -> str:
    """``alpha=0.01, loss=log_loss``: floats to three significant digits."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def accuracy_text(accuracy: float, n: int) -> str:
    """``83.3% [78.1, 87.5]``: an accuracy on ``n`` images with its 95% Wilson interval, in percent."""
    return interval_text(accuracy, *accuracy_interval(accuracy, n))


def interval_text(accuracy: float, low: float, high: float) -> str:
    """``83.3% [78.1, 87.5]``: an accuracy and its interval, in percent."""
    return f"{accuracy:.1%} [{100 * low:.1f}, {100 * high:.1f}]"


def significant(value: float) -> str:
    """``value`` to three significant digits, without an exponent from 1000 on: ``0.0123``, ``61.2``, ``1,230``."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{float(f'{value:.3g}'):,.0f}"


def p_text(p: float) -> str:
    """A p-value as ``p=0.0123``; one too small for a double (0 after rounding) as ``p<1e-300``, not ``p=0``."""
    return f"p={significant(p)}" if p > 0 else "p<1e-300"


def seconds_text(seconds: float) -> str:
    """``2.34 s``, ``61.2 s``, ``2,710 s`` (``significant``)."""
    return f"{significant(seconds)} s"


def _searched(record: dict) -> list[str]:
    """The parameters whose value varied over a head's grid, and ``normalize`` when several chains were tried."""
    grid = record["grid"]
    varying = [k for k in grid[0]["params"] if len({str(r["params"].get(k)) for r in grid}) > 1]
    return varying + (["normalize"] if len({str(r["normalize"]) for r in grid}) > 1 else [])


def chosen_text(record: dict) -> str:
    """The chosen values of what was searched (``alpha=0.0123``), or ``no grid``."""
    chosen = record["chosen"]
    searched = _searched(record)
    shown = params_text({k: chosen["params"][k] for k in searched if k != "normalize"})
    if "normalize" in searched:
        shown = ", ".join(filter(None, [shown, describe_normalize(chosen["normalize"])]))
    return shown or "no grid"


def grid_text(record: dict) -> str:
    """A head's grid with each point's validation accuracy, the chosen one marked (``--verbose``)."""
    grid, chosen = record["grid"], record["chosen"]
    searched = [k for k in _searched(record) if k != "normalize"]
    fixed = {k: v for k, v in chosen["params"].items() if k not in searched}
    lines = [f"  grid over {', '.join(_searched(record)) or 'nothing'}; fixed: {params_text(fixed)}"]
    for row in grid:
        mark = " <- chosen" if row["params"] == chosen["params"] and row["normalize"] == chosen["normalize"] else ""
        values = params_text({k: row["params"][k] for k in searched})
        # a late fusion chooses by log loss (``fusion.choose_weights``): shown beside the accuracy
        loss = f"  log loss {row['val_log_loss']:.4f}" if "val_log_loss" in row else ""
        lines.append(f"  {describe_normalize(row['normalize']):<30} {values:<30} {row['val_accuracy']:.2%}{loss}{mark}")
    return "\n".join(lines)


def head_line(record: dict, folder, cached: bool = False) -> str:
    """One head's result on one line: the chosen setting and how, validation and test accuracy (with 95%
    intervals), the time, and where its folder is."""
    selection = record["selection"]
    how = f"{selection['splits']}-fold cross-validation" if selection["method"] == "kfold" else "a holdout split"
    edge = f" (at the edge of its automatic grid: {', '.join(record['at_edge'])})" if record["at_edge"] else ""
    source = "from the cache" if cached else seconds_text(record["search_seconds"] + record["fit_seconds"])
    choice = f"{chosen_text(record)}{edge} chosen on {how}" if _searched(record) else f"no grid, scored on {how}"
    return (f"{record['head']}: {choice}; "
            f"validation {accuracy_text(record['val']['accuracy'], record['val']['n'])}, "
            f"test {accuracy_text(record['test']['accuracy'], record['test']['n'])}{calibration_text(record['test'])}; "
            f"{source}; saved to {folder}")


def calibration_text(scores: dict) -> str:
    """How calibrated the probabilities scored were (expected calibration error), beside that of the raw scores
    for a Platt-scaled head; empty when not measured."""
    if "ece" not in scores:
        return ""
    raw = f", raw scores {scores['ece_uncalibrated']:.3f}" if "ece_uncalibrated" in scores else ""
    return f" (ECE {scores['ece']:.3f}{raw})"


def heads_table(records: list[dict], run) -> str:
    """The heads side by side: chosen setting, validation and test accuracy with 95% intervals, time (the
    search and the refit); and a line saying what the intervals are and how to compare two heads of the run
    folder ``run``."""
    header = ("head", "chosen", "validation (95%)", "test (95%)", "time")
    rows = [(r["head"], chosen_text(r), accuracy_text(r["val"]["accuracy"], r["val"]["n"]),
             accuracy_text(r["test"]["accuracy"], r["test"]["n"]), seconds_text(r["search_seconds"] + r["fit_seconds"]))
            for r in records]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    n_test = records[0]["test"]["n"] if records else 0
    pair = " ".join(str(Path(run, r["head"])) for r in records[:2]) if len(records) > 1 else "RUN/HEAD RUN/HEAD"
    lines.append(f"[low, high]: 95% Wilson intervals over the images scored ({n_test} test images); whether two heads "
                 f"differ on them: featurepipe compare {pair}")
    return "\n".join(lines)
