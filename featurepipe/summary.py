"""The text ``featurepipe train`` prints: a line per grid point as it is scored, and each head's summary."""
from __future__ import annotations


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


def summary(record: dict, folder) -> str:
    """The grid with validation scores (the parameters that vary), the chosen setting, and train,
    validation and test accuracy of a head's ``fitting`` record, saved to ``folder``."""
    grid = record["grid"]
    varying = [k for k in grid[0]["params"] if len({str(r["params"].get(k)) for r in grid}) > 1]
    fixed = {k: v for k, v in record["chosen"]["params"].items() if k not in varying}
    searched = varying + (["normalize"] if len({str(r["normalize"]) for r in grid}) > 1 else [])
    lines = [f"  grid over {', '.join(searched) or 'nothing'}; fixed: {params_text(fixed)}"]
    for row in grid:
        chosen = " <- chosen" if row["params"] == record["chosen"]["params"] and row["normalize"] == record["chosen"]["normalize"] else ""
        lines.append(f"  {describe_normalize(row['normalize']):<30} {params_text({k: row['params'][k] for k in varying}):<30} "
                     f"{row['val_accuracy']:.2%}{chosen}")
    if record["at_edge"]:
        lines.append(f"  note: the chosen {', '.join(record['at_edge'])} is at the edge of its automatic grid")
    selection = record["selection"]
    how = f"{selection['splits']}-fold cross-validation" if selection["method"] == "kfold" else "a holdout split"
    lines.append(f"{record['head']}: chosen on {how}; train {record['train']['accuracy']:.1%}, validation "
                 f"{record['val']['accuracy']:.1%}, test {record['test']['accuracy']:.1%} "
                 f"({record['fit_seconds']:.1f} s to fit); saved to {folder}")
    return "\n".join(lines)
