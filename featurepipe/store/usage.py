"""When each entry was last used, and in which order ``cache gc`` evicts entries.

An entry's last use is the modification time of its folder (of its file, for an alias): creating the
entry sets it, and the store sets it to now whenever it serves the entry (to an extract that finds or
fills it, a read or an export, a fitted pipeline, head or data set loaded: ``mark_used``). Listing and
checking an entry do not count. Where a user may not touch an entry of a shared cache (another user's
folder, a read-only mount), its last use stays the last one that could be recorded.

Eviction goes by group: an entry with every entry made from it (what ``cache rm`` removes with it), used
last when any of them was. The group used least recently goes first, the smaller one first at equal
times: a fitted pipeline is never evicted ahead of the recent features made from it. An alias (a few
bytes naming a feature entry) is not evicted on its own: it goes with the entry it names.
"""
from __future__ import annotations

import os
from pathlib import Path


def mark_used(path: Path) -> None:
    """Record that the entry at ``path`` is used now (nothing when it cannot be touched, see above)."""
    try:
        os.utime(path, follow_symlinks=False)
    except (OSError, NotImplementedError):
        pass


def last_used(path: Path) -> float:
    """When the entry at ``path`` was last used (seconds since the epoch)."""
    return os.stat(path, follow_symlinks=False).st_mtime


def groups_by_last_use(everything: list[dict]) -> list[list[dict]]:
    """Each entry of ``everything`` (``FeatureStore.entries``) but aliases, followed by the entries made from
    it, recursively: least recently used group first, the smaller first at equal times."""
    children: dict[str, list[dict]] = {}
    for entry in everything:
        for parent in entry["parents"]:
            children.setdefault(parent, []).append(entry)
    groups = []
    for entry in (e for e in everything if e["namespace"] != "aliases"):
        group, seen, todo = [], set(), [entry]
        while todo:
            member = todo.pop()
            if (member["namespace"], member["key"]) not in seen:
                seen.add((member["namespace"], member["key"]))
                group.append(member)
                todo += children.get(member["key"], [])
        groups.append(group)
    return sorted(groups, key=lambda group: (max(e["used"] for e in group), len(group)))
