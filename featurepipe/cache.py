"""What ``featurepipe cache`` does and prints: the listing (root, one row per entry, the total), entries named
by key prefixes, verify, rm and gc with its size and age bounds. The store (``store/``) does the work."""
from __future__ import annotations

import inspect
import json
import os
import re
import sys
import time

from . import catalog
from .errors import UsageError
from .limits import human_bytes, human_duration
from .store import EntryInUseError, FeatureStore, precision

_PARAMETERS_WIDTH = 120  # characters of an entry's parameters that the listing shows, at most
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)
_BYTES = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str, option: str = "--max-size") -> int:
    """Bytes of ``text``: a number with an optional K, M, G or T suffix (powers of 1024: ``10G``, ``500M``)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{option}: expected a size such as 500M or 10G (K, M, G, T: powers of 1024), got {text!r}")
    return int(float(match[1]) * _BYTES[match[2].lower()])


def parse_age(text: str, option: str = "--older-than") -> float:
    """Seconds of ``text``: a number with an s, m, h or d suffix (``12h``, ``30d``)."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{option}: expected an age such as 12h or 30d (s, m, h, d), got {text!r}")
    return float(match[1]) * _SECONDS[match[2].lower()]


def resolve(store: FeatureStore, prefixes) -> list[dict]:
    """The entry each of ``prefixes`` names (a key, or a prefix of exactly one), all resolved before any is
    used: ``KeyError`` for one that names none, ``errors.UsageError`` for one that several keys share."""
    return [store.lookup(prefix) for prefix in prefixes]


# -- ls ------------------------------------------------------------------------------------------------------
def listing(store: FeatureStore, prefixes=()) -> list[str]:
    """The lines of ``cache ls``: the root, one row per entry (every entry, or those whose key starts with one
    of ``prefixes``; ``KeyError`` for a prefix no key starts with), then the count and total size."""
    if prefixes:
        entries, seen = [], set()
        for prefix in prefixes:
            found = store.entries(prefix=prefix)
            if not found:
                raise KeyError(f"{prefix}: no such entry in {store.root}")
            entries += [e for e in found if (e["namespace"], e["key"]) not in seen]
            seen.update((e["namespace"], e["key"]) for e in found)
    else:
        entries = store.entries()
    now = time.time()
    rows = [("NAMESPACE", "KEY", "AGE", "USED", "SIZE", "ITEMS", "STATE", "WHAT")]
    rows += [(e["namespace"], e["key"], _ago(now, e["created"]), _ago(now, e["used"]), human_bytes(e["bytes"]),
              _printable(_items(e)), _state(e), _printable(_what(e))) for e in entries]
    total = f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}, {human_bytes(sum(e['bytes'] for e in entries))}"
    return [f"cache {os.path.abspath(store.root)}", *_aligned(rows), total]


def _aligned(rows: list[tuple]) -> list[str]:
    """Rows of cells as lines, each column as wide as its widest cell (the last one as it is)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]).rstrip() for row in rows]


def _printable(text: str) -> str:
    """``text`` with what a terminal would act on (escape sequences, line breaks) shown escaped: entries are data."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _ago(now: float, then) -> str:
    return human_duration(now - then) if isinstance(then, (int, float)) else "?"


def _items(entry: dict) -> str:
    """Rows x width and the precision of a feature entry's features (``-`` for the other namespaces)."""
    if entry["namespace"] != "features" or "n" not in entry:
        return "-"
    storage = entry["storage"] if precision.known(entry.get("storage")) else "?"
    return f"{entry['n']} x {entry['d'] or '?'} {storage}"


def _state(entry: dict) -> str:
    if str(entry["what"]).startswith("unreadable"):
        return "unreadable"
    if not entry["complete"]:
        chunks = entry.get("chunks")
        return f"partial ({chunks[0]}/{chunks[1]} chunks)" if chunks else "partial"
    failed = entry.get("failed")
    return f"complete, {failed} failed" if isinstance(failed, int) and failed else "complete"


def _what(entry: dict) -> str:
    """A feature entry's pipeline (its non-default parameters) and data set -- its folder, and the start of its
    identity, which tells apart two listings of one folder (another test_fraction or seed, files changed);
    the others' own description."""
    if entry["namespace"] != "features" or "pipeline" not in entry:
        return str(entry["what"])
    identity = entry.get("dataset")
    listing = f" (listing {identity[:8]})" if isinstance(identity, str) else ""
    return f"{pipeline_text(entry['pipeline'])} on {entry.get('root')}{listing}"


def pipeline_text(description) -> str:
    """A stored pipeline description (``FeaturePipeline.describe``) as its extractor with the parameters that
    differ from their defaults, then ``<-`` its preprocessing steps; cut to ``_PARAMETERS_WIDTH`` characters:
    ``concat(extractors=[hog(cells_per_block=[2, 2]), hsv_hist]) <- resize(size=[32, 32])``. The description
    is data: anything unexpected in it is shown as it is."""
    if not isinstance(description, dict):
        return "?"
    text = _stage_text(description.get("extractor"), "extractor")
    steps = description.get("preprocess")
    if isinstance(steps, list) and steps:
        text += " <- " + ", ".join(_stage_text(step, "preprocess") for step in steps)
    return text if len(text) <= _PARAMETERS_WIDTH else text[:_PARAMETERS_WIDTH - 3] + "..."


def _stage_text(description, kind: str) -> str:
    """``name(param=value, ...)`` of the description of a stage of ``kind``, with only the parameters that
    differ from the registered stage's defaults (all of them when ``name`` is not registered)."""
    if not (isinstance(description, dict) and isinstance(description.get("name"), str)):
        return _value_text(description, kind)
    name, params = description["name"], description.get("params")
    factory = _registered(kind, name)
    defaults = catalog.defaults(kind, name) if factory is not None else {}
    constraints = getattr(factory, "_constraints", {})
    shown = []
    for param, value in params.items() if isinstance(params, dict) else []:
        part = constraints.get(param)
        part_kind = getattr(part, "kind", kind)  # a nested part's own kind (a Part), else the parent's (concat)
        if not _is_default(value, defaults.get(param, inspect.Parameter.empty), part_kind):
            shown.append(f"{param}={_value_text(value, part_kind)}")
    return f"{name}({', '.join(shown)})" if shown else name


def _value_text(value, kind: str) -> str:
    if isinstance(value, dict) and isinstance(value.get("name"), str) and "params" in value:
        return _stage_text(value, kind)
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(v, kind) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _is_default(value, default, kind: str) -> bool:
    """Whether a described value is ``default``: equal as JSON, or a nested stage described by its default
    name with its own defaults."""
    if default is inspect.Parameter.empty:
        return False
    if isinstance(value, dict) and isinstance(default, str):
        return value.get("name") == default and _stage_text(value, kind) == default
    try:
        return value == json.loads(json.dumps(default, default=list))
    except (TypeError, ValueError):
        return False


def _registered(kind: str, name: str):
    """The class or factory registered as ``name`` of ``kind`` (a feature-side kind), or None."""
    if kind not in catalog.PROVIDERS or name not in catalog.list(kind):
        return None
    return catalog.get(kind, name)


# -- verify, rm, gc ------------------------------------------------------------------------------------------
def verify(store: FeatureStore, prefixes=()) -> bool:
    """Check the named entries (default: every feature entry, fitted pipeline, head and data set), one line
    each; whether all passed."""
    entries = resolve(store, prefixes) if prefixes else store.entries(("features", "pipelines", "heads", "datasets"))
    if not entries:
        print(f"no entries to verify in {store.root}")
        return True
    ok = True
    for entry in entries:
        namespace, key = entry["namespace"], entry["key"]
        if namespace == "aliases":
            print(f"aliases {key}: an alias holds nothing to verify; verify the entry it names "
                  f"({entry['what'].removeprefix('-> ')})", file=sys.stderr)
            ok = False
            continue
        problems = store.verify(key) if namespace == "features" else store.verify_object(namespace, key)
        print(f"{namespace} {key}: " + ("ok" if not problems else "; ".join(problems)))
        ok = ok and not problems
    return ok


def rm(store: FeatureStore, prefixes) -> bool:
    """Remove the named entries and their dependents, one line each; an entry in use is left, with one line."""
    ok = True
    for entry in resolve(store, prefixes):
        try:
            removed = store.remove(entry["key"])
        except EntryInUseError as e:
            print(f"featurepipe: cache rm {entry['key']}: nothing removed: {e}", file=sys.stderr)
            ok = False
            continue
        for e in removed:
            print(f"{e['namespace']} {e['key']}: removed")
    return ok


def gc(store: FeatureStore, max_size: str | None = None, older_than: str | None = None) -> None:
    """Evict least recently used entries past ``max_size`` (``10G``) or ``older_than`` (``30d``), then remove
    orphans; one line per entry, then the total removed and what stays."""
    max_bytes = None if max_size is None else parse_size(max_size)
    seconds = None if older_than is None else parse_age(older_than)
    done = store.gc(max_bytes, seconds)
    for e in done:
        outcome = (f"kept: {e['kept']}" if "kept" in e else f"evicted ({e['evicted']})" if "evicted" in e
                   else f"removed ({e.get('what') or 'orphan'})")
        print(f"{e['namespace']} {e['key']}: {outcome}")
    gone = [e for e in done if "kept" not in e]
    evicted = sum("evicted" in e for e in gone)
    left = store.entries()
    print(f"{evicted} evicted, {len(gone) - evicted} orphan(s) removed ({human_bytes(sum(e.get('bytes', 0) for e in gone))}) "
          f"from {store.root}; {len(left)} entries left, {human_bytes(sum(e['bytes'] for e in left))}")
