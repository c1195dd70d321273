"""Running claimed tasks in child processes, watched by one selector loop.

Every task runs in a child process in a session (and process group) of its
own, so that a timeout or a signal can stop all of it and nothing it does can
take the tick down. A callable runs in a child forked from the tick: no new
interpreter, no second import of taskcron. A command task's child execs its
argv, with the task's data as JSON on its standard input.

A `Supervisor` watches any number of children with one selector loop: it reads
their stdout and stderr (never blocking a task that prints a lot) and the
callables' events, renews each lease, enforces each timeout with SIGTERM then
SIGKILL after the kill grace, and traps SIGTERM, SIGINT and SIGHUP so that the
tick decides what a signal means. `execute` runs one task under its own
supervisor: what a plain tick does.

A forked child reports back on a dedicated pipe, one JSON object per line:
`log` records and `progress`, then `result` or `error`. It never touches the
tick's store connection and leaves with `os._exit`, so no finalizer of the
parent's runs in it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from taskcron import errors, handlers
from taskcron.context import Context, Continue
from taskcron.model import Outcome, RunEnd, TargetKind, Task

log = logging.getLogger(__name__)

ENV_RUN_ID = "TASKCRON_RUN_ID"
#: A command's exit status that asks to continue later (`EX_TEMPFAIL`).
EXIT_CONTINUE = 75
#: A command's stdout lines that report progress and save state; kept out of its output.
PROGRESS_LINE, STATE_LINE = b"::progress ", b"::state "
_PROGRESS_EVERY = 0.1  #: A forked child sends its progress at most this often (seconds).
_CHUNK = 65536
_LINE_MAX = 65536  #: A line longer than this is passed on in pieces.
_EXIT_DRAIN = 1.0  #: How long to keep reading pipes held open by a finished task's children.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

Clock = Callable[[], datetime]
Handler = Callable[..., Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """How to run a task: where its code is, and the limits that apply (from the config)."""

    run_id: int
    import_paths: tuple[Path, ...]
    modules: tuple[str, ...]
    cwd: Path | None
    deadline: datetime | None
    kill_grace: timedelta
    renew_every: timedelta
    output_tail: int
    log_level: str
    #: Import a callable's code in the tick before forking, so that later forks start warm.
    preload: bool = False
    #: What runs it, as a run stopped by a signal names it: the tick, or `taskcron work`.
    runner: str = "the tick"


class RunHooks(Protocol):
    """What the tick wants to hear while a task runs (see `taskcron.lifecycle.RunLife`)."""

    def renew(self) -> bool:
        """Extend the lease; False means it was lost."""
        ...

    def started(self, pid: int, start: str | None) -> None:
        """The task's process has this pid (and this start time in /proc)."""
        ...

    def output(self, stream: str, lines: list[str]) -> None:
        """Whole lines the task printed on "stdout" or "stderr", a read's worth at a time."""
        ...

    def event(self, reported: dict[str, Any]) -> None:
        """What a callable reported: `{"event": "log", ...}` or `{"event": "progress", ...}`."""
        ...


def execute(task: Task, settings: RunSettings, *, clock: Clock, hooks: RunHooks) -> RunEnd:
    """Run `task` to its end in a child process and say how it ended.

    Never raises for anything the task does. A SIGTERM, SIGINT or SIGHUP that
    arrives meanwhile stops the task at once (SIGTERM, SIGKILL after the kill
    grace) and the run ends `interrupted`, naming the signal in `RunEnd.signal`.
    """
    with Supervisor(clock) as supervisor:
        run = supervisor.start(task, settings, hooks)
        while not run.finished:
            supervisor.wait()
            if supervisor.signalled is not None:
                supervisor.stop_all(after=0.0)
        return run.end()


def resolve(task: Task, settings: RunSettings) -> Handler:
    """Import the callable a task names, in this process (`HandlerError` when it cannot)."""
    handlers.add_import_paths(settings.import_paths)
    target = task.target
    assert isinstance(target.value, str)
    try:
        if target.kind is TargetKind.CALL:
            return handlers.import_path(target.value)
        return handlers.find(target.value, settings.modules)
    except errors.HandlerError:
        raise
    except Exception as exc:  # code that fails at import time fails the task, not the tick
        raise errors.HandlerError(
            f"importing the code of {target.value!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


# --- the supervisor ------------------------------------------------------------


class Supervisor:
    """One selector loop over every running child; traps the stop signals while in use.

    Use it as a context manager: signals are trapped on entry (a signal that
    arrives sets `signalled`) and restored on exit.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.signalled: int | None = None
        self._told = False
        self.runs: list[Execution] = []
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Supervisor:
        if threading.current_thread() is threading.main_thread():
            for number in _STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._on_signal)
            # SIGCHLD only wakes the loop, so that a child's exit is seen at once.
            self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda n, f: None)
            self._previous[-1] = signal.set_wakeup_fd(self._wake_w)
        return self

    def __exit__(self, *exc: object) -> None:
        for run in self.runs:
            run.abandon()
        for number, old in self._previous.items():
            if number == -1:
                signal.set_wakeup_fd(old)
            else:
                signal.signal(number, old)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _on_signal(self, number: int, frame: object) -> None:
        self.signalled = number

    def interrupted(self) -> bool:
        """Whether a stop signal has arrived that `wait` has not yet returned for.

        `wait` returns early once for a signal, so that the caller can decide
        what it means; after that it serves the children as before.
        """
        if self.signalled is None or self._told:
            return False
        self._told = True
        return True

    @property
    def running(self) -> int:
        """How many children are still being watched."""
        return len(self.runs)

    def start(
        self, task: Task, settings: RunSettings, hooks: RunHooks, handler: Handler | None = None
    ) -> Execution:
        """Start `task` in a child process and watch it. `handler`: a callable already imported."""
        run = Execution(task, settings, hooks, self.clock, unwatch=self._unwatch)
        # What the loop holds must not live on in a forked child: the epoll instance (it
        # would keep reporting pipes the loop has closed) and the other tasks' pipes.
        loop_fds = [self._selector.fileno(), self._wake_r, self._wake_w]
        loop_fds += [fd for other in self.runs for fd in other.streams]
        with _signals_blocked():  # a stop signal is the tick's to handle, never the child's
            fds = run.spawn(handler, loop_fds)
        for fd in fds:
            mask = selectors.EVENT_WRITE if run.streams.get(fd) == "stdin" else selectors.EVENT_READ
            self._selector.register(fd, mask, run)
        self.runs.append(run)  # one that could not start is returned by the next `wait`
        return run

    def _unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def stop_all(self, *, after: float) -> None:
        """Stop every child `after` seconds from now (SIGTERM, then SIGKILL after its grace)."""
        for run in self.runs:
            run.stop(after=after, why=self.signalled)

    def wait(self, timeout: float | None = None) -> list[Execution]:
        """Serve the children until one ends, a signal arrives or `timeout` passes.

        Returns the executions that ended (their `end()` says how).
        """
        if not self.runs and timeout is None:
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            waits = [run.step(now) for run in self.runs]
            ended = [run for run in self.runs if run.finished]
            if ended:
                for run in ended:
                    self.runs.remove(run)
                    run.close()  # pipes a finished task's own children still hold
                return ended
            if self.interrupted() or (deadline is not None and now >= deadline):
                return []
            if deadline is not None:
                waits.append(deadline - now)
            for key, _ in self._selector.select(max(min(waits, default=0.5), 0)):
                fd = int(key.fd)
                if fd == self._wake_r:
                    _drain(fd)
                else:
                    key.data.ready(fd)
            if self.interrupted():
                return []


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --- one child -------------------------------------------------------------------


@dataclass(slots=True)
class _Tail:
    """The last `limit` bytes of merged output, and whether anything was cut."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]
            self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class Execution:
    """One task's child process: its pipes, its limits, and how it ended."""

    def __init__(
        self,
        task: Task,
        settings: RunSettings,
        hooks: RunHooks,
        clock: Clock,
        *,
        unwatch: Callable[[int], None] = lambda fd: None,
    ) -> None:
        self.task = task
        self._unwatch = unwatch
        self.settings = settings
        self.hooks = hooks
        self.clock = clock
        self.tail = _Tail(settings.output_tail)
        self.pid = 0
        self.returncode: int | None = None
        self.streams: dict[int, str] = {}
        self.partial: dict[str, bytearray] = {}
        self.events = bytearray()
        self.reply: dict[str, Any] | None = None
        self.started = time.monotonic()
        self.exited_at: float | None = None
        self.stop_at: float | None = None
        self.kill_at: float | None = None
        self.timed_out = False
        self.lease_lost = False
        self.stopped_by: int | None = None  #: The signal that had the tick stop this child.
        self._stop_why: int | None = None
        self.failure: str | None = None  #: Why the child could not start, if it could not.
        self._next_renewal = self.started + self._renew_every
        self._popen: Any = None  #: A command's `subprocess.Popen`.
        self.command_state: str | None = None  #: A command's last `::state` line.
        self._stdin: int | None = None  #: A command's standard input, while data is left for it.
        self._pending = memoryview(b"")

    @property
    def _renew_every(self) -> float:
        return max(self.settings.renew_every.total_seconds(), 0.05)

    @property
    def finished(self) -> bool:
        """True once the child has exited and its pipes are read (or given up on)."""
        if self.failure is not None:
            return True
        if self.returncode is None:
            return False
        assert self.exited_at is not None
        return not self.streams or time.monotonic() - self.exited_at > _EXIT_DRAIN

    def _environment(self) -> dict[str, str]:
        task, deadline = self.task, self.settings.deadline
        return {
            "TASKCRON_TASK_ID": str(task.id),
            ENV_RUN_ID: str(self.settings.run_id),
            "TASKCRON_MODULE": task.module,
            "TASKCRON_ATTEMPT": str(task.attempts),
            "TASKCRON_DEADLINE": "" if deadline is None else deadline.isoformat(),
            "TASKCRON_OWNER": task.owner or "",
            "TASKCRON_STEP": str(task.steps + 1),
        }

    def spawn(self, handler: Handler | None, loop_fds: list[int]) -> list[int]:
        """Start the child; the pipes to watch (none when it could not start).

        A forked child closes `loop_fds` (a command's child closes everything).
        """
        if self.task.target.kind is TargetKind.COMMAND:
            fds = self._exec_command()
        else:
            fds = self._fork(handler, loop_fds)
        if self.failure is None:
            self.hooks.started(self.pid, process_start(self.pid))
        return fds

    def _exec_command(self) -> list[int]:
        import subprocess

        argv = list(self.task.target.value)
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                env={**os.environ, **self._environment()},
                cwd=self.settings.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            import shlex

            for fd in (in_w, out_r, err_r):
                os.close(fd)
            self.failure = f"cannot start command {shlex.join(argv)!r}: {exc.strerror}"
            return []
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        self.pid = proc.pid
        self._popen = proc
        # The data may be large: the loop writes it as the pipe takes it, while it reads
        # the output, so that neither side waits on the other and no thread is needed.
        self._stdin = in_w
        self._pending = memoryview(_command_input(self.task))
        return self._watch({in_w: "stdin", out_r: "stdout", err_r: "stderr"})

    def _fork(self, handler: Handler | None, loop_fds: list[int]) -> list[int]:
        if handler is None and self.settings.preload:
            try:
                handler = resolve(self.task, self.settings)
            except errors.HandlerError as exc:
                self.failure = str(exc)
                return []
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        event_r, event_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()  # what the tick buffered must not be printed twice
        pid = os.fork()
        if pid == 0:  # the child: never returns
            for fd in (out_r, err_r, event_r, *loop_fds):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _child(self, handler, out_w, err_w, event_w)
        for fd in (out_w, err_w, event_w):
            os.close(fd)
        self.pid = pid
        return self._watch({out_r: "stdout", err_r: "stderr", event_r: "event"})

    def _watch(self, streams: dict[int, str]) -> list[int]:
        for fd in streams:
            os.set_blocking(fd, False)
        self.streams = streams
        return list(streams)

    # The loop's side: read pipes, renew the lease, enforce limits.

    def ready(self, fd: int) -> None:
        """Serve pipe `fd`: read what it has, or write the data it takes; close it at its end."""
        if fd == self._stdin:
            self._write_input(fd)
            return
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        self._take(self.streams[fd], chunk)
        if not chunk:
            self._close(fd)

    def _close(self, fd: int) -> None:
        """Stop watching pipe `fd` and close it (in that order: the number may be reused)."""
        if self.streams.pop(fd, None) is not None:
            self._unwatch(fd)
            os.close(fd)
        if fd == self._stdin:
            self._stdin = None

    def close(self) -> None:
        """Close every pipe still open."""
        for fd in list(self.streams):
            self._close(fd)

    def _write_input(self, fd: int) -> None:
        try:
            written = os.write(fd, self._pending[: 1 << 20]) if self._pending else 0
        except BlockingIOError:
            return
        except OSError:  # the task does not read its input: that is its business
            written = len(self._pending)
        self._pending = self._pending[written:]
        if not self._pending:
            self._close(fd)

    def step(self, now: float) -> float:
        """Reap, renew, time out and kill as due at `now`; seconds until it next needs a look."""
        if self.failure is not None:
            return 0.0
        self._reap(now)
        if self.returncode is not None:
            if self._stdin is not None:
                self._close(self._stdin)
            return 0.02 if self.streams else 0.0
        timeout = self.task.timeout
        if (
            self.stop_at is None
            and timeout is not None
            and now - self.started >= timeout.total_seconds()
        ):
            self.timed_out = True
            self.stop_at = now
        if self.stop_at is not None and self.kill_at is None and now >= self.stop_at:
            if not (self.timed_out or self.lease_lost):
                self.stopped_by = self._stop_why
            self._signal(signal.SIGTERM)
            self.kill_at = now + self.settings.kill_grace.total_seconds()
        if self.kill_at is not None and now >= self.kill_at:
            self._signal(signal.SIGKILL)
            self.kill_at = now + 3600
        if now >= self._next_renewal:
            if not self.hooks.renew() and self.stop_at is None:
                self.lease_lost = True
                self.stop_at = now
            self._next_renewal = now + self._renew_every
        waits = [self._next_renewal - now, 0.5]
        if timeout is not None and self.stop_at is None:
            waits.append(self.started + timeout.total_seconds() - now)
        for moment in (self.stop_at, self.kill_at):
            if moment is not None and moment > now:
                waits.append(moment - now)
        return max(min(waits), 0.0)

    def stop(self, *, after: float, why: int | None) -> None:
        """Stop the child `after` seconds from now, because of signal `why`.

        A child that ends by itself before then ends as it would have.
        """
        if self.returncode is not None or self.failure is not None:
            return
        self._stop_why = why
        moment = time.monotonic() + after
        self.stop_at = moment if self.stop_at is None else min(self.stop_at, moment)

    def abandon(self) -> None:
        """Kill the child and reap it: the loop is going away."""
        if self.pid and self.returncode is None:
            self._signal(signal.SIGKILL)
            self._reap(time.monotonic(), block=True)
        self.close()

    def _reap(self, now: float, *, block: bool = False) -> None:
        if self.returncode is not None or not self.pid:
            return
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid == 0:
            return
        self.returncode = os.waitstatus_to_exitcode(status)
        self.exited_at = now
        if self._popen is not None:
            self._popen.returncode = self.returncode

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _take(self, stream: str, chunk: bytes) -> None:
        if stream == "event":
            self.events += chunk
            cut = self.events.find(b"\n")
            while cut >= 0:
                self._event(bytes(self.events[:cut]))
                del self.events[: cut + 1]
                cut = self.events.find(b"\n")
            if not chunk and self.events:
                self._event(bytes(self.events))
            return
        directives = stream == "stdout" and self.task.target.kind is TargetKind.COMMAND
        if not directives:
            self.tail.add(chunk)
        buffer = self.partial.setdefault(stream, bytearray())
        buffer += chunk
        lines = []
        start = 0
        cut = buffer.find(b"\n")
        while cut >= 0:
            lines.append(bytes(buffer[start:cut]))
            start = cut + 1
            cut = buffer.find(b"\n", start)
        del buffer[:start]
        while len(buffer) >= _LINE_MAX:
            lines.append(bytes(buffer[:_LINE_MAX]))
            del buffer[:_LINE_MAX]
        unterminated = not chunk and bool(buffer)
        if unterminated:
            lines.append(bytes(buffer))
            buffer.clear()
        if directives:
            lines = self._directives(lines, unterminated=unterminated)
        if lines:
            self.hooks.output(stream, [line.decode("utf-8", errors="replace") for line in lines])

    def _directives(self, lines: list[bytes], *, unterminated: bool) -> list[bytes]:
        """Take a command's `::progress` and `::state` lines out of its output; the rest.

        The last line has no line break when `unterminated` (the output's end).
        """
        kept = []
        for index, line in enumerate(lines):
            if line.startswith(PROGRESS_LINE) and self._command_progress(
                line[len(PROGRESS_LINE) :].decode(errors="replace")
            ):
                continue
            if line.startswith(STATE_LINE):
                self.command_state = line[len(STATE_LINE) :].decode(errors="replace").strip()
            else:
                kept.append(line)
                last = unterminated and index == len(lines) - 1
                self.tail.add(line if last else line + b"\n")
        return kept

    def _command_progress(self, text: str) -> bool:
        """`::progress DONE[/TOTAL] [message]`; False for a line that does not parse (it stays
        in the output, where its author will see it)."""
        figures, _, message = text.strip().partition(" ")
        done_text, _, total_text = figures.partition("/")
        try:
            done = float(done_text)
            total = float(total_text) if total_text else None
        except ValueError:
            return False
        self.hooks.event(
            {"event": "progress", "done": done, "total": total, "message": message.strip()}
        )
        return True

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if event.get("event") in ("result", "error", "continue"):
            self.reply = event
        else:
            self.hooks.event(event)

    # How it ended.

    def end(self) -> RunEnd:
        """How the run ended; call once `finished`."""
        if self.failure is not None:
            return self._end(Outcome.FAILED, error=self.failure)
        code = self.returncode
        assert code is not None
        if self.stopped_by is not None:
            return self._end(
                Outcome.INTERRUPTED,
                exit_code=code,
                error=f"{self.settings.runner} received {_signal_name(self.stopped_by)}",
                signal=self.stopped_by,
            )
        if self.lease_lost:
            return self._end(
                Outcome.INTERRUPTED, exit_code=code, error="the lease was lost to another tick"
            )
        if self.timed_out:
            assert self.task.timeout is not None
            limit = self.task.timeout.total_seconds()
            return self._end(Outcome.TIMEOUT, exit_code=code, error=f"timed out after {limit:g}s")
        if self.task.target.kind is TargetKind.COMMAND:
            return self._command_end(code)
        return self._callable_end(code)

    def _command_end(self, code: int) -> RunEnd:
        if code == 0:
            return self._end(Outcome.DONE, exit_code=0)
        if code == EXIT_CONTINUE:
            state = self.command_state or self.task.step_state_json or "{}"
            try:
                if not isinstance(json.loads(state), dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                return self._end(
                    Outcome.FAILED,
                    exit_code=code,
                    error=f"the ::state line is not a JSON object: {exc}",
                )
            return self._end(Outcome.CONTINUED, exit_code=code, state_json=state)
        if code < 0:
            return self._end(
                Outcome.FAILED, exit_code=code, error=f"killed by {_signal_name(-code)}"
            )
        return self._end(Outcome.FAILED, exit_code=code, error=f"exited with code {code}")

    def _callable_end(self, code: int) -> RunEnd:
        reply = self.reply or {}
        if reply.get("event") == "result" and code == 0:
            return self._end(Outcome.DONE, result_json=json.dumps(reply.get("result")))
        if reply.get("event") == "continue" and code == 0:
            delay = timedelta(seconds=float(reply.get("delay") or 0))
            return self._end(
                Outcome.CONTINUED,
                state_json=json.dumps(reply.get("state")),
                resume_at=self.clock() + delay,
            )
        if reply.get("event") == "error":
            return self._end(
                Outcome.FAILED,
                exit_code=code,
                error=str(reply.get("error")),
                traceback=reply.get("traceback"),
            )
        why = f"killed by {_signal_name(-code)}" if code < 0 else f"code {code}"
        return self._end(
            Outcome.FAILED,
            exit_code=code,
            error=f"the handler's process ended ({why}) without a result",
        )

    def _end(self, outcome: Outcome, **fields: Any) -> RunEnd:
        return RunEnd(
            outcome=outcome,
            ended_at=self.clock(),
            elapsed=round(time.monotonic() - self.started, 6),
            output_tail=self.tail.text(),
            truncated=self.tail.truncated,
            **fields,
        )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def process_start(pid: int) -> str | None:
    """When process `pid` started (field 22 of /proc/PID/stat), or None when unknown.

    Together with the pid it names one process: a pid reused later starts later.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        stat = os.read(fd, 4096).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def kill_orphan(pid: int, run_id: int, start: str | None = None) -> bool:
    """Kill the process group of a run whose tick died, if it is still that run's.

    The group leader must be the process the run started: the same start time
    (`start`, when recorded) or an environment naming the run
    (`TASKCRON_RUN_ID`), so that a reused pid is never killed. Returns True
    when a group was killed.
    """
    if start is not None:
        if process_start(pid) != start:
            return False
    else:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return False
        if f"{ENV_RUN_ID}={run_id}".encode() not in environ.split(b"\0"):
            return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# --- the child's side ------------------------------------------------------------


class _EventHandler(logging.Handler):
    """Sends the handler's logging records to the tick, one JSON line each."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.send(
                {
                    "event": "log",
                    "logger": record.name,
                    "level": record.levelname.lower(),
                    "message": record.getMessage(),
                    "exc": None
                    if record.exc_info is None
                    else "".join(traceback.format_exception(*record.exc_info)),
                }
            )
        except Exception:
            self.handleError(record)


def _child(run: Execution, handler: Handler | None, out: int, err: int, events: int) -> None:
    """The forked child: set up its process, call the handler, report, and `os._exit`."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for number in (*_STOP_SIGNALS, signal.SIGCHLD):
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        null = os.open(os.devnull, os.O_RDONLY)
        for source, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(source, target)
            os.close(source)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        os.environ.update(run._environment())
        if run.settings.cwd is not None:
            os.chdir(run.settings.cwd)
        code = _call(run, handler, os.fdopen(events, "wb"))
    finally:
        _flush_std()
        os._exit(code)


def _call(run: Execution, handler: Handler | None, channel: Any) -> int:
    """Call the handler with its `ctx` and data; send `result` or `error`; the exit code."""
    lock = threading.Lock()

    def send(event: dict[str, Any]) -> None:
        line = json.dumps(event).encode() + b"\n"
        with lock:
            channel.write(line)
            channel.flush()

    task = run.task
    report = _Throttled(send)
    root = logging.getLogger()
    root.handlers[:] = [_EventHandler(send)]
    root.setLevel(run.settings.log_level.upper())
    data = json.loads(task.data_json)
    ctx = Context(
        state=json.loads(task.step_state_json or "{}"),
        step=task.steps + 1,
        task_id=task.id,
        module=task.module,
        data=data,
        attempt=task.attempts,
        deadline=run.settings.deadline,
        log=logging.getLogger(f"taskcron.task.{task.module}"),
        clock=run.clock,
        report=report,
        owner=task.owner,
    )
    try:
        fn = handler if handler is not None else resolve(task, run.settings)
        value = fn(ctx, data)
    except Continue as step:
        report.flush()
        _flush_std()
        return _continue(step, ctx, send)
    except errors.HandlerError as exc:
        _flush_std()
        send({"event": "error", "error": str(exc), "traceback": None})
        return 1
    except BaseException as exc:  # the task's failure, whatever it is, is data
        _flush_std()
        described = (
            f"the handler called sys.exit({exc.code!r})"
            if isinstance(exc, SystemExit)
            else f"{type(exc).__name__}: {exc}"
        )
        # The first frame is this function's own call of the handler: leave it out.
        frames = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        trace = "".join(traceback.format_exception(type(exc), exc, frames))
        send({"event": "error", "error": described, "traceback": trace})
        return 1
    report.flush()
    _flush_std()
    try:
        encoded = json.dumps({"event": "result", "result": value})
    except (TypeError, ValueError) as exc:
        send({"event": "error", "error": f"the handler's result is not JSON: {exc}"})
        return 1
    with lock:
        channel.write(encoded.encode() + b"\n")
        channel.flush()
    return 0


def _continue(step: Continue, ctx: Context, send: Callable[[dict[str, Any]], None]) -> int:
    """Send a step's request to go on later, with its state; the exit code."""
    try:
        delay = step.seconds()
    except errors.DurationError as exc:
        send({"event": "error", "error": f"Continue(delay=...): {exc}", "traceback": None})
        return 1
    try:
        json.dumps(ctx.state, allow_nan=False)
        if not isinstance(ctx.state, dict):
            raise TypeError(f"it is a {type(ctx.state).__name__}, not a dict")
    except (TypeError, ValueError) as exc:
        error = f"ctx.state cannot be saved as a JSON object: {exc}"
        send({"event": "error", "error": error, "traceback": None})
        return 1
    send({"event": "continue", "state": ctx.state, "delay": delay})
    return 0


class _Throttled:
    """Passes events on, but progress at most every `_PROGRESS_EVERY` seconds, keeping the last:
    a handler that reports in a tight loop does not slow itself down."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self.send = send
        self.pending: dict[str, Any] | None = None
        self.sent_at = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") != "progress":
            self.send(event)
            return
        self.pending = event
        now = time.monotonic()
        if now - self.sent_at >= _PROGRESS_EVERY:
            self.flush()
            self.sent_at = now

    def flush(self) -> None:
        """Send the last progress held back, if any."""
        if self.pending is not None:
            event, self.pending = self.pending, None
            self.send(event)


def _command_input(task: Task) -> bytes:
    """A command's standard input: its data on the first step, data and state on later ones."""
    if task.steps == 0:
        return task.data_json.encode()
    # The data is spliced in as stored, not decoded and encoded again.
    state = task.step_state_json or "{}"
    return ('{"data": ' + task.data_json + ', "state": ' + state + "}").encode()


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
