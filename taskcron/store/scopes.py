"""A scope (modules, minus excepted ones) in SQL: its WHERE fragment, and the key ranges
of `module` it covers.

Both SQL stores and the idle question read the line through these, so that a
scope means the same rows everywhere. The module imports nothing (it is on the
idle path).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: A task running in scope, if any: a scope runs one task at a time. Its parameters are
#: the scope's.
SELECT_RUNNING = "SELECT id FROM tasks WHERE state = 'running' AND {scope} LIMIT 1"
#: The tasks watched for missed runs (tasks_watch): queued, with a `missed_after`, not
#: yet found missed; SQLite's time each is missed at (microseconds, as its due times).
WATCHED = "state = 'queued' AND missed_after IS NOT NULL AND missed_since IS NULL"
SQLITE_WATCH_AT = "(due_at + CAST(missed_after * 1000000 AS INTEGER))"
#: Whether any watched task is past its time, in SQLite: one probe of tasks_watch. Any
#: store's tick asks it, the idle tick too, so that one healthy line sees what others
#: miss.
SQLITE_ANY_MISSED = (
    f"SELECT 1 AS yes FROM tasks INDEXED BY tasks_watch WHERE {WATCHED}"
    f" AND {SQLITE_WATCH_AT} <= :now LIMIT 1"
)


def module_ranges(modules: Sequence[str]) -> list[tuple[str, str | None]]:
    """The key ranges of `module` that a scope of `modules` covers, merged so that no
    module is in two (all of them, one open range, when `modules` is empty).

    "m" covers ["m", "m/"): "/" is the character after ".". Overlaps come from
    nesting ("a" and "a.x") and from look-alikes ("e" and "e-x": "e-x" < "e/").
    """
    if not modules:
        return [("", None)]
    merged: list[tuple[str, str | None]] = []
    for low, high in sorted((m, m + "/") for m in modules):
        if merged:
            last_low, last_high = merged[-1]
            assert last_high is not None
            if low < last_high:
                merged[-1] = (last_low, max(last_high, high))
                continue
        merged.append((low, high))
    return merged


def scope_where(
    modules: Sequence[str], excepts: Sequence[str], mark: Callable[[str], str]
) -> tuple[str, dict[str, Any]]:
    """A scope's WHERE fragment on `module`, with parameters written by `mark` (a
    dialect's), and their values by name.

    A module and every module under it is matched as index-friendly ranges: "m",
    then ["m.", "m/") ("/" is the character after "."). An empty scope matches all.
    """
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for number, module in enumerate((*modules, *excepts)):
        name = f"scope{number}"
        params.update({name: module, f"{name}_low": module + ".", f"{name}_high": module + "/"})
        match = (
            f"(module = {mark(name)} OR (module >= {mark(name + '_low')}"
            f" AND module < {mark(name + '_high')}))"
        )
        clauses.append(match if number < len(modules) else f"NOT {match}")
    if modules:
        clauses[: len(modules)] = ["(" + " OR ".join(clauses[: len(modules)]) + ")"]
    return (" AND ".join(clauses) or "TRUE"), params
