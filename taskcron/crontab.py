"""A user's crontab or a crontab file: reading it and splicing taskcron's lines in and out.

Installing splices the crontab's text: every line that is not taskcron's stays
byte-for-byte where it was. python-crontab only parses and checks (its own
rendering rewrites user lines: `0 * * * *` becomes `@hourly`). The
read-modify-write happens under an `flock`, and a crontab that cannot be read
is never written.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from taskcron import errors
from taskcron.cronline import (
    CronJob,
    check_text,
    check_user,
    cron_unescape,
    parse_marker,
    parse_with_python_crontab,
)
from taskcron.model import Scope
from taskcron.values import value

# --- splicing a crontab's text -------------------------------------------------


def split_lines(text: str) -> list[str]:
    """`text` cut after each `\\n` only (cron's line break); each keeps its `\\n`."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _runs_tick(line: str, home: Path) -> bool:
    text = line.strip()
    if not text or text.startswith("#"):
        return False
    try:
        words = shlex.split(cron_unescape(text)[0])
    except ValueError:
        return False
    homes = [Path(b) for a, b in itertools.pairwise(words) if a == "--home"]
    return "tick" in words and home in homes


def jobs_for_home(text: str, home: Path) -> list[tuple[Scope, list[str]]]:
    """Each taskcron job in `text` that ticks `home`: its marker's scope and its command's words."""
    lines = split_lines(text)
    found = []
    for index, line in enumerate(lines[:-1]):
        named = parse_marker(line.rstrip("\r\n"))
        job = lines[index + 1].strip()
        if named is None or named[0] != home or not _runs_tick(job, home):
            continue
        fields = 1 if job.startswith("@") else 5
        words = shlex.split(cron_unescape(job)[0])[fields:]
        found.append((named[1], words))
    return found


def find_blocks(text: str, home: Path, scope: Scope) -> list[tuple[int, int]]:
    """The (first, end) line ranges of taskcron's blocks for `home` and `scope` in `text`.

    A block is a marker line and, when it is a job line that ticks `home`, the
    line after it.
    """
    lines = split_lines(text)
    found: list[tuple[int, int]] = []
    index = 0
    while index < len(lines):
        if parse_marker(lines[index].rstrip("\r\n")) == (home, scope):
            end = index + 1
            if end < len(lines) and _runs_tick(lines[end], home):
                end += 1
            found.append((index, end))
            index = end
        else:
            index += 1
    return found


def splice(text: str, home: Path, scope: Scope, block: str | None) -> tuple[str, int]:
    """`text` without taskcron's blocks for `home` and `scope`, and with `block` in their place.

    `block` goes where the first old block was, else at the end (after a line
    break, if the last line had none). Every other line is kept byte-for-byte.
    Returns the new text and how many blocks were removed.
    """
    lines = split_lines(text)
    blocks = find_blocks(text, home, scope)
    drop = {i for first, end in blocks for i in range(first, end)}
    kept = [line for i, line in enumerate(lines) if i not in drop]
    if block is not None:
        if blocks:
            at = blocks[0][0]
            kept.insert(at - sum(1 for i in drop if i < at), block)
        else:
            if kept and not kept[-1].endswith("\n"):
                kept[-1] += "\n"
            kept.append(block)
    return "".join(kept), len(blocks)


# --- crontabs ---------------------------------------------------------------


class CrontabTarget(Protocol):
    """A crontab that jobs are installed into: a user's crontab or a crontab file."""

    @property
    def system(self) -> bool:
        """True for /etc/cron.d form (each job line carries a user)."""
        ...

    def describe(self) -> str:
        """A few words naming it, for messages."""
        ...

    def read(self) -> str:
        """Its whole text ("" when there is none yet); `TaskcronError` when it cannot be read."""
        ...

    def write(self, text: str) -> None:
        """Replace its whole text; `TaskcronError` when that fails.

        A user's crontab left blank (only spaces, tabs and line breaks) is
        removed instead; `read` gives "" for it either way.
        """
        ...


#: The only characters a blank crontab holds; one with anything else (a comment too) is kept.
_BLANK = " \t\r\n"
#: What `crontab -l` and `crontab -r` say when the user has no crontab.
_NO_CRONTAB = "no crontab for"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _first_line(data: bytes) -> str:
    text = _decode(data).strip()
    return text.splitlines()[0] if text else ""


def _why(done: subprocess.CompletedProcess[bytes]) -> str:
    return _first_line(done.stderr) or f"exit status {done.returncode}"


@value(kw_only=False)
class UserCrontab:
    """A user's crontab, through the `crontab` program (`-u USER` when `user` is given)."""

    user: str | None = None
    program: str = "crontab"
    system: bool = False

    def describe(self) -> str:
        """'the crontab of USER' or 'your crontab'."""
        return "your crontab" if self.user is None else f"the crontab of {self.user}"

    def _run(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        user = () if self.user is None else ("-u", self.user)
        try:
            return subprocess.run(
                [self.program, *user, *args],
                input=data,
                capture_output=True,
                check=False,
                env={**os.environ, "LC_ALL": "C"},
            )
        except OSError as exc:
            raise errors.TaskcronError(
                f"cannot run {self.program!r} for {self.describe()}: {exc.strerror}"
            ) from exc

    def read(self) -> str:
        """`crontab -l`; "" for "no crontab for USER", `TaskcronError` for any other failure."""
        done = self._run("-l")
        if done.returncode == 0:
            return _decode(done.stdout)
        why = _why(done)
        if _NO_CRONTAB in why:
            return ""
        raise errors.TaskcronError(f"cannot read {self.describe()}: crontab -l: {why}")

    def write(self, text: str) -> None:
        """`crontab -` with `text` on its standard input; `crontab -r` when `text` is blank.

        Blank means only spaces, tabs and line breaks: such a crontab runs
        nothing, so the user is left with none rather than an empty one.
        """
        if not text.strip(_BLANK):
            self._remove()
            return
        done = self._run("-", data=_encode(text))
        if done.returncode != 0:
            raise errors.TaskcronError(f"cannot write {self.describe()}: crontab: {_why(done)}")

    def _remove(self) -> None:
        done = self._run("-r")
        if done.returncode != 0 and _NO_CRONTAB not in _why(done):
            raise errors.TaskcronError(f"cannot remove {self.describe()}: crontab -r: {_why(done)}")


@value(kw_only=False)
class CrontabFile:
    """A crontab file, such as one in /etc/cron.d (`system`: each job line carries a user)."""

    path: Path
    system: bool = False

    def describe(self) -> str:
        """'crontab file PATH'."""
        return f"crontab file {self.path}"

    def read(self) -> str:
        """The file's text; "" when it does not exist."""
        try:
            return _decode(self.path.read_bytes())
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise errors.TaskcronError(f"cannot read {self.describe()}: {exc.strerror}") from exc

    def write(self, text: str) -> None:
        """Replace the file at once (a temporary file renamed over it), keeping its mode."""
        target = Path(os.path.realpath(self.path))
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
        except OSError as exc:
            raise errors.TaskcronError(f"cannot write {self.describe()}: {exc.strerror}") from exc
        # A dot in the name: Debian cron ignores such files in /etc/cron.d.
        try:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        except OSError as exc:
            raise errors.TaskcronError(f"cannot write {self.describe()}: {exc.strerror}") from exc
        temporary = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_encode(text))
                handle.flush()
                os.fsync(handle.fileno())
            temporary.chmod(mode)
            temporary.replace(target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise errors.TaskcronError(f"cannot write {self.describe()}: {exc.strerror}") from exc


def open_crontab(
    *, file: str | os.PathLike[str] | None = None, user: str | None = None
) -> CrontabTarget:
    """The crontab to edit: `file` (in /etc/cron.d form when `user` is given), else the
    crontab of `user` (default: the current user's).

    Only checks the names (`InputError`); nothing is read or written until asked.
    """
    if user is not None:
        check_user(user)
    if file is not None:
        check_text("crontab file", os.fspath(file))
        return CrontabFile(Path(file).expanduser().absolute(), system=user is not None)
    return UserCrontab(user)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if missing) for the block's duration."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise errors.TaskcronError(f"cannot open lock file {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@value
class Change:
    """What an install or uninstall did (or, on a dry run, would do)."""

    text: str  #: The crontab's resulting text.
    removed: int  #: taskcron blocks of that home and scope taken out.
    written: bool  #: Whether the crontab was written.


def install(
    job: CronJob, tab: CrontabTarget, *, lock: Path | None, dry_run: bool = False
) -> Change:
    """Put `job` into `tab`, replacing the block of the same home and scope.

    Under an `flock` on `lock` (none on a dry run): read, splice, check the new
    text with python-crontab, write, and read back to check that the block is
    there exactly once. A crontab that cannot be read is not written.
    """
    if job.user is not None and not tab.system:
        raise errors.InputError("a job line with a user field goes only into a crontab file")
    with _maybe_locked(None if dry_run else lock):
        old = tab.read()
        new, removed = splice(old, job.home, job.scope, job.block)
        _check_installed(new, job, tab.system)
        if dry_run:
            return Change(text=new, removed=removed, written=False)
        tab.write(new)
        back = tab.read()
        lines = split_lines(back)
        blocks = find_blocks(back, job.home, job.scope)
        if len(blocks) != 1 or "".join(lines[blocks[0][0] : blocks[0][1]]) != job.block:
            raise errors.TaskcronError(
                f"{tab.describe()} does not hold the line just written: check it with crontab -l"
            )
    return Change(text=new, removed=removed, written=True)


def uninstall(
    home: Path, scope: Scope, tab: CrontabTarget, *, lock: Path | None, dry_run: bool = False
) -> Change:
    """Take taskcron's blocks for `home` and `scope` out of `tab`; write only if there were any.

    A user's crontab that is left blank is removed (`crontab -r`); a crontab
    file is written even when empty, never deleted.
    """
    with _maybe_locked(None if dry_run else lock):
        old = tab.read()
        new, removed = splice(old, home, scope, None)
        if dry_run or not removed:
            return Change(text=new, removed=removed, written=False)
        tab.write(new)
        if find_blocks(tab.read(), home, scope):
            raise errors.TaskcronError(
                f"{tab.describe()} still holds the line after writing: check it with crontab -l"
            )
    return Change(text=new, removed=removed, written=True)


@contextlib.contextmanager
def _maybe_locked(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
    else:
        with locked(path):
            yield


def _check_installed(text: str, job: CronJob, system: bool) -> None:
    """python-crontab finds `job` in `text` exactly once, under its marker, meaning the same."""
    comment = job.marker[1:].strip()
    ours = [
        item for item in parse_with_python_crontab(text, system=system) if item.comment == comment
    ]
    if len(ours) != 1 or ours[0].command != job.command:
        raise errors.TaskcronError(
            "python-crontab does not read the new crontab as holding the job once; nothing was "
            "written"
        )
