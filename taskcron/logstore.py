"""The log store: append-only JSON Lines under `<home>/log/`, rotated by size, tail-able.

The active file is `taskcron.jsonl`; rotated files are `taskcron.jsonl.1`
(newest) to `.N`. Each record is one line of JSON with at least `ts` (ISO 8601,
UTC, milliseconds), `level`, `event`, `task`, `module` and `message`; records
taskcron writes also name their `host` (config `host`, else the node name).

Concurrency: several processes append at once. A record (or a batch of whole
records) goes to the file in one `write()` on a descriptor opened with
O_APPEND, so records are never interleaved; what a write cut short by a full
disk or the file size limit left is blanked out, so no record is torn either.
Writers hold a shared `flock` on `log/.lock` while they open and write;
rotation holds it exclusively, so a writer always writes to the file that is
active at that moment and no record is lost across a rotation. Rotation
renames, so `tail -F` follows it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from taskcron.config import LogConfig
from taskcron.inputs import LOG_LEVELS
from taskcron.model import Scope
from taskcron.values import value

ACTIVE = "taskcron.jsonl"
_BLOCK = 65536
_DEFAULTS = LogConfig()


def level_number(name: str) -> int:
    """The rank of a level name (debug 0 … error 3); unknown names rank as info."""
    try:
        return LOG_LEVELS.index(name)
    except ValueError:
        return 1


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds: `2026-11-23T20:52:35.123+00:00`."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def record(
    event: str,
    *,
    at: datetime,
    level: str = "info",
    host: str | None = None,
    task: int | None = None,
    module: str | None = None,
    message: str = "",
    **fields: Any,
) -> dict[str, Any]:
    """A log record with the fields every record has (`host` when given), then `fields`."""
    head = {"ts": timestamp(at)} if host is None else {"ts": timestamp(at), "host": host}
    return {
        **head,
        "level": level,
        "event": event,
        "task": task,
        "module": module,
        "message": message,
        **fields,
    }


def encode(rec: Mapping[str, Any]) -> bytes:
    """One line of JSON. Non-ASCII and control characters are escaped, so a line is a record."""
    return json.dumps(rec, default=str).encode("ascii") + b"\n"


class LogStore:
    """The log directory: append records, rotate by size, read back from the end."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        level: str = _DEFAULTS.level,
        max_bytes: int = _DEFAULTS.max_bytes,
        backups: int = _DEFAULTS.backups,
    ) -> None:
        self.directory = Path(directory)
        self.level = level
        self.max_bytes = max_bytes
        self.backups = backups

    @property
    def active(self) -> Path:
        """The file being appended to."""
        return self.directory / ACTIVE

    def rotated(self) -> list[Path]:
        """The rotated files that exist, newest first."""
        found = []
        for n in range(1, self.backups + 1):
            path = self.directory / f"{ACTIVE}.{n}"
            if path.exists():
                found.append(path)
        return found

    def files(self) -> list[Path]:
        """Every log file, newest first (the active one first)."""
        return [p for p in [self.active, *self.rotated()] if p.exists()]

    def enabled(self, level: str) -> bool:
        """Whether records of `level` are written under the configured level."""
        return level_number(level) >= level_number(self.level)

    # --- writing -------------------------------------------------------------

    def append(self, *records: Mapping[str, Any]) -> None:
        """Append records (those at or above the configured level) in one write."""
        data = b"".join(encode(r) for r in records if self.enabled(str(r.get("level", "info"))))
        if data:
            self.write(data)

    def write(self, data: bytes) -> None:
        """Append whole encoded lines in one write, then rotate if the file grew too big."""
        self._ensure_directory()
        with self._lock(fcntl.LOCK_SH):
            fd = os.open(self.active, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                _append_whole(fd, data)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
        if self.max_bytes and size > self.max_bytes:
            self.rotate()

    def rotate(self) -> bool:
        """Shift `.N-1` to `.N` … and the active file to `.1`, if it is still too big."""
        with self._lock(fcntl.LOCK_EX):
            try:
                size = self.active.stat().st_size
            except FileNotFoundError:
                return False
            if size <= self.max_bytes:
                return False  # another process rotated first
            if self.backups <= 0:
                self.active.unlink()
                return True
            for n in range(self.backups - 1, 0, -1):
                older = self.directory / f"{ACTIVE}.{n}"
                if older.exists():
                    older.rename(self.directory / f"{ACTIVE}.{n + 1}")
            self.active.rename(self.directory / f"{ACTIVE}.1")
            return True

    def _ensure_directory(self) -> None:
        with contextlib.suppress(FileExistsError):
            self.directory.mkdir(mode=0o700)

    @contextlib.contextmanager
    def _lock(self, kind: int) -> Iterator[None]:
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, kind)
            yield
        finally:
            os.close(fd)

    # --- reading -------------------------------------------------------------

    def tail(
        self,
        count: int,
        *,
        keep: Callable[[dict[str, Any]], bool] = lambda r: True,
        stop: Callable[[dict[str, Any]], bool] = lambda r: False,
        end: int | None = None,
    ) -> list[dict[str, Any]]:
        """The last `count` records that `keep` accepts, oldest first.

        Reads backwards from the end of the newest file, one block at a time,
        so its cost depends on how far back the matches are, not on the size
        of the log. `stop` ends the search at the first record it accepts
        (for `--since`: records are in time order). `end` limits how much of
        the active file is read (a `Follower` takes over from there).
        """
        found: list[dict[str, Any]] = []
        if count <= 0:
            return found
        for path in self.files():
            for rec in _backwards(path, end if path == self.active else None):
                if stop(rec):
                    found.reverse()
                    return found
                if keep(rec):
                    found.append(rec)
                    if len(found) >= count:
                        found.reverse()
                        return found
        found.reverse()
        return found


def _append_whole(fd: int, data: bytes) -> None:
    """Append `data` to the file open on `fd` (O_APPEND), or leave no part of it behind.

    A write cut short (a full disk, the file size limit) leaves the front of a
    record at the end of the file, where the next record would be glued to it:
    those bytes are overwritten with blanks and a newline (overwriting takes no
    new room on most filesystems), so every line stays a whole record or an
    empty one. Then the error is raised.
    """
    written = 0
    try:
        while written < len(data):
            written += os.write(fd, data[written:])
    except OSError:
        if written:
            with contextlib.suppress(OSError):
                # O_APPEND left the offset just past this write's own bytes, which no
                # other writer can have touched; pwrite needs O_APPEND off to go there.
                end = os.lseek(fd, 0, os.SEEK_CUR)
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_APPEND)
                os.pwrite(fd, b" " * (written - 1) + b"\n", end - written)
        raise


def _backwards(path: Path, end: int | None = None) -> Iterator[dict[str, Any]]:
    """The records of one file (up to byte `end`), newest first, read from the end in blocks."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell() if end is None else min(end, handle.tell())
        rest = b""
        while position > 0:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            chunk = handle.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                parsed = _parse(line)
                if parsed is not None:
                    yield parsed
        parsed = _parse(rest)
        if parsed is not None:
            yield parsed


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@value
class LogFilter:
    """What `taskcron log` keeps: a task, a scope, a minimum level, a start time."""

    task: int | None = None
    scope: Scope | None = None
    level: str | None = None
    since: datetime | None = None

    def __call__(self, rec: Mapping[str, Any]) -> bool:
        if self.task is not None and rec.get("task") != self.task:
            return False
        if self.scope is not None and (self.scope.modules or self.scope.excepts):
            module = rec.get("module")
            if not isinstance(module, str) or module not in self.scope:
                return False
        if self.level is not None and level_number(str(rec.get("level"))) < level_number(
            self.level
        ):
            return False
        return not (self.since is not None and self.before_since(rec))

    def before_since(self, rec: Mapping[str, Any]) -> bool:
        """True when the record is older than `since` (unreadable times count as older)."""
        if self.since is None:
            return False
        try:
            return datetime.fromisoformat(str(rec.get("ts"))) < self.since
        except ValueError:
            return True


class Follower:
    """Reads records appended to the active file after it was opened, across rotations."""

    def __init__(self, store: LogStore, *, from_end: bool = True) -> None:
        self.store = store
        self._handle: Any = None
        self._inode: int | None = None
        self._rest = b""
        self._open(from_end=from_end)

    def _open(self, *, from_end: bool) -> None:
        try:
            handle = self.store.active.open("rb")
        except FileNotFoundError:
            self._handle, self._inode = None, None
            return
        if from_end:
            handle.seek(0, os.SEEK_END)
        self._handle, self._inode = handle, os.fstat(handle.fileno()).st_ino

    @property
    def position(self) -> int:
        """The byte offset in the active file from which it follows."""
        return 0 if self._handle is None else int(self._handle.tell()) - len(self._rest)

    def poll(self) -> list[dict[str, Any]]:
        """Records written since the last poll (the rest of a rotated file first)."""
        out = self._read()
        try:
            current = self.store.active.stat().st_ino
        except FileNotFoundError:
            current = None
        if current is not None and current != self._inode:
            out += self._read()  # what was written to the old file before it was renamed
            if self._handle is not None:
                self._handle.close()
            self._rest = b""
            self._open(from_end=False)
            out += self._read()
        return out

    def _read(self) -> list[dict[str, Any]]:
        if self._handle is None:
            return []
        data = self._rest + self._handle.read()
        lines = data.split(b"\n")
        self._rest = lines.pop()
        return [r for r in (_parse(line) for line in lines) if r is not None]

    def close(self) -> None:
        """Close the file being followed."""
        if self._handle is not None:
            self._handle.close()


def prune_rotated(store: LogStore, before: datetime, *, dry_run: bool = False) -> int:
    """Delete rotated log files last written before `before`; return how many (with
    `dry_run`, only count them)."""
    removed = 0
    for path in store.rotated():
        try:
            mtime = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        except FileNotFoundError:
            continue
        if mtime < before and dry_run:
            removed += 1
        elif mtime < before:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def iter_all(store: LogStore) -> Iterable[dict[str, Any]]:
    """Every record, oldest first (for tests and tools; reads everything)."""
    for path in reversed(store.files()):
        with path.open("rb") as handle:
            for line in handle:
                parsed = _parse(line.rstrip(b"\n"))
                if parsed is not None:
                    yield parsed
