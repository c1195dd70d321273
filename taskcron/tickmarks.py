"""When a tick of each scope last ran on this host: one file a scope, touched at every tick.

A cron line that stops running cannot say so itself; something outside must
notice the silence (`taskcron check --max-tick-age`, the metric
`taskcron_last_tick_timestamp_seconds`). Every tick, an idle one too, touches
`HOME/ticks/SCOPE` (one `utime`, creating the file the first time): the file's
modification time is the tick's, and the store is never written for it. The home
is this host's, so the files say what ran here.

A scope's file is named by its module ids, sorted and joined by commas (`all`
for every module id), then `~` and the excepted ones (`all~legacy`); a name longer
than `NAME_MAX` becomes a digest. Module ids hold letters, digits, `_`, `-` and
dots, so a name is always a plain file name.

Light on purpose: the idle tick imports it before the rest of taskcron loads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

#: The directory in the home that holds the marks.
DIRECTORY = "ticks"
#: The longest scope name written as it is; longer ones become "scope-" and a digest.
NAME_MAX = 200


def scope_name(modules: Iterable[str] = (), excepts: Iterable[str] = ()) -> str:
    """The file name of a scope's mark: `all`, `billing,reports`, `all~legacy`."""
    name = ",".join(sorted(set(modules))) or "all"
    others = sorted(set(excepts))
    if others:
        name += "~" + ",".join(others)
    if len(name) > NAME_MAX:
        import hashlib  # 4 ms to import: only for a name this long, never on a plain tick

        name = "scope-" + hashlib.sha256(name.encode()).hexdigest()[:32]
    return name


def mark(home: Path, modules: Iterable[str] = (), excepts: Iterable[str] = ()) -> None:
    """Record that a tick of this scope runs now. Never fails the tick: a home that
    cannot be written is left as it is (the tick says so in its own way)."""
    path = home / DIRECTORY / scope_name(modules, excepts)
    try:
        os.utime(path)
    except FileNotFoundError:
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            path.touch(mode=0o600)
        except OSError:
            pass
    except OSError:
        pass


def last_tick(home: Path, modules: Iterable[str] = (), excepts: Iterable[str] = ()) -> float | None:
    """When a tick of this scope last ran here (seconds since the epoch); None if never."""
    try:
        return (home / DIRECTORY / scope_name(modules, excepts)).stat().st_mtime
    except OSError:
        return None


def last_ticks(home: Path) -> dict[str, float]:
    """When a tick of each scope last ran here, by scope name (seconds since the epoch)."""
    found: dict[str, float] = {}
    try:
        entries = list(os.scandir(home / DIRECTORY))
    except OSError:
        return found
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                found[entry.name] = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
    return dict(sorted(found.items()))
