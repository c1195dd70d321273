"""Running one claimed task in a child process, and the child's side of it.

Every task runs in a child process of the tick, in a session of its own, so
that a timeout or a signal can stop all of it and nothing it does can take the
tick down. The tick watches the child with one selector loop: it reads its
stdout and stderr (never blocking a task that prints a lot), reads the
callable's events, renews the lease, and enforces the timeout with SIGTERM,
then SIGKILL after the kill grace.

A command task gets the task's data as JSON on its standard input and
`TASKCRON_TASK_ID` and `TASKCRON_DEADLINE` in its environment.

A callable task runs in `python -c "from taskcron.runner import child_main;
child_main()"`: the child reads a spec (and the data) on its standard input,
imports the handler, calls `handler(ctx, data)` and reports back on a
dedicated pipe, one JSON object per line: `log` records, then `result` or
`error`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from taskcron import errors, handlers
from taskcron.context import Context
from taskcron.model import Outcome, RunEnd, TargetKind, Task

log = logging.getLogger(__name__)

ENV_EVENT_FD = "TASKCRON_EVENT_FD"
ENV_RUN_ID = "TASKCRON_RUN_ID"
_CHUNK = 65536
_LINE_MAX = 65536  #: A line longer than this is passed on in pieces.
_EXIT_DRAIN = 1.0  #: How long to keep reading pipes held open by a finished task's children.


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


class RunHooks(Protocol):
    """What the tick wants to hear while a task runs (see `taskcron.lifecycle.RunLife`)."""

    def renew(self) -> bool:
        """Extend the lease; False means it was lost."""
        ...

    def started(self, pid: int) -> None:
        """The task's process has this pid."""
        ...

    def output(self, stream: str, lines: list[str]) -> None:
        """Whole lines the task printed on "stdout" or "stderr", a read's worth at a time."""
        ...

    def event(self, reported: dict[str, Any]) -> None:
        """What a callable reported: `{"event": "log", ...}` or `{"event": "progress", ...}`."""
        ...


# --- the tick's side --------------------------------------------------------


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


def _child_argv(task: Task) -> list[str]:
    if task.target.kind is TargetKind.COMMAND:
        assert isinstance(task.target.value, tuple)
        return list(task.target.value)
    return [sys.executable, "-c", "from taskcron.runner import child_main; child_main()"]


def _callable_input(task: Task, settings: RunSettings, now: datetime) -> bytes:
    spec = {
        "now": now.isoformat(),
        "task_id": task.id,
        "module": task.module,
        "target": task.target.to_json(),
        "attempt": task.attempts,
        "deadline": None if settings.deadline is None else settings.deadline.isoformat(),
        "import_paths": [str(p) for p in settings.import_paths],
        "modules": list(settings.modules),
        "log_level": settings.log_level,
    }
    # The data is spliced in as stored, not decoded and encoded again.
    return ('{"spec": ' + json.dumps(spec) + ', "data": ' + task.data_json + "}").encode()


def _feed(pipe: Any, payload: bytes) -> None:
    try:
        view = memoryview(payload)
        for start in range(0, len(view), 1 << 20):
            pipe.write(view[start : start + (1 << 20)])
        pipe.close()
    except (BrokenPipeError, OSError):
        pass  # the task does not read its input: that is its business


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def execute(
    task: Task,
    settings: RunSettings,
    *,
    clock: Callable[[], datetime],
    hooks: RunHooks,
) -> RunEnd:
    """Run `task` to its end in a child process and say how it ended.

    Never raises for anything the task does; `ended_at` comes from `clock`,
    `elapsed` from the monotonic clock, and the handler's `ctx` reads the same
    clock (as it stood when the child started, moving on in real time).
    """
    return _Execution(task, settings, hooks, clock).run()


class _Execution:
    def __init__(
        self,
        task: Task,
        settings: RunSettings,
        hooks: RunHooks,
        clock: Callable[[], datetime],
    ) -> None:
        self.clock = clock
        self.task = task
        self.settings = settings
        self.hooks = hooks
        self.tail = _Tail(settings.output_tail)
        self.partial: dict[str, bytearray] = {}
        self.events = bytearray()
        self.reply: dict[str, Any] | None = None
        self.signalled: int | None = None
        self.timed_out = False
        self.lease_lost = False

    def run(self) -> RunEnd:
        start = time.monotonic()
        is_command = self.task.target.kind is TargetKind.COMMAND
        env = dict(os.environ)
        env["TASKCRON_TASK_ID"] = str(self.task.id)
        env[ENV_RUN_ID] = str(self.settings.run_id)
        env["TASKCRON_MODULE"] = self.task.module
        env["TASKCRON_ATTEMPT"] = str(self.task.attempts)
        deadline = self.settings.deadline
        env["TASKCRON_DEADLINE"] = "" if deadline is None else deadline.isoformat()
        payload = (
            self.task.data_json.encode()
            if is_command
            else _callable_input(self.task, self.settings, self.clock())
        )
        # Signals are trapped before the task starts, so that a SIGTERM that
        # arrives at any moment of the run is recorded, never fatal to the tick.
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        previous = self._trap_signals(wake_w)
        try:
            return self._spawn(start, is_command, env, payload, wake_r)
        finally:
            self._restore_signals(previous)
            os.close(wake_r)
            os.close(wake_w)

    def _spawn(
        self, start: float, is_command: bool, env: dict[str, str], payload: bytes, wake_r: int
    ) -> RunEnd:
        event_r, event_w = os.pipe()
        if not is_command:
            env[ENV_EVENT_FD] = str(event_w)
        try:
            proc = subprocess.Popen(
                _child_argv(self.task),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self.settings.cwd,
                pass_fds=() if is_command else (event_w,),
                start_new_session=True,
            )
        except OSError as exc:
            os.close(event_r)
            os.close(event_w)
            what = shlex.join(_child_argv(self.task))
            return self._end(
                start, Outcome.FAILED, error=f"cannot start command {what!r}: {exc.strerror}"
            )
        os.close(event_w)
        self.hooks.started(proc.pid)
        feeder = threading.Thread(target=_feed, args=(proc.stdin, payload), daemon=True)
        feeder.start()
        try:
            self._watch(proc, event_r, wake_r, start)
        finally:
            os.close(event_r)
            feeder.join(timeout=1)
        return self._conclude(proc.returncode, start, is_command)

    # The loop: read pipes, renew the lease, enforce the timeout, honour signals.
    def _watch(
        self, proc: subprocess.Popen[bytes], event_r: int, wake_r: int, start: float
    ) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        selector = selectors.DefaultSelector()
        streams = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr", event_r: "event"}
        for fd in streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        timeout = self.task.timeout.total_seconds() if self.task.timeout is not None else None
        renew_every = max(self.settings.renew_every.total_seconds(), 0.05)
        next_renewal = start + renew_every
        kill_at: float | None = None
        exited_at: float | None = None
        try:
            while True:
                now = time.monotonic()
                if proc.poll() is not None:
                    exited_at = exited_at or now
                    if len(streams) == 0 or now - exited_at > _EXIT_DRAIN:
                        break
                stopping = self.signalled is not None or self.lease_lost
                if kill_at is None and (
                    stopping or (timeout is not None and now - start >= timeout)
                ):
                    self.timed_out = not stopping
                    self._kill(proc, signal.SIGTERM)
                    kill_at = now + self.settings.kill_grace.total_seconds()
                if kill_at is not None and now >= kill_at and proc.poll() is None:
                    self._kill(proc, signal.SIGKILL)
                    kill_at = now + 3600
                if now >= next_renewal:
                    if not self.hooks.renew():
                        self.lease_lost = True
                    next_renewal = now + renew_every
                waits = [next_renewal - now, 0.5 if exited_at is None else 0.05]
                if timeout is not None and kill_at is None:
                    waits.append(start + timeout - now)
                if kill_at is not None:
                    waits.append(kill_at - now)
                if not streams:
                    # Every pipe is closed: only the process is left to wait for.
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=max(min(waits), 0))
                    continue
                for key, _ in selector.select(max(min(waits), 0)):
                    fd = int(key.fd)
                    if fd == wake_r:
                        _drain(wake_r)
                        continue
                    chunk = _read(fd)
                    if chunk is None:
                        continue
                    if chunk:
                        self._take(streams[fd], chunk)
                    else:
                        selector.unregister(fd)
                        self._take(streams.pop(fd), b"")
        finally:
            selector.close()
            if proc.poll() is None:
                self._kill(proc, signal.SIGKILL)
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                pipe.close()

    def _trap_signals(self, wake_w: int) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(number: int, frame: object) -> None:
            self.signalled = number

        previous: dict[int, Any] = {}
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            previous[number] = signal.signal(number, handler)
        previous[-1] = signal.set_wakeup_fd(wake_w)
        return previous

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for number, old in previous.items():
            if number == -1:
                signal.set_wakeup_fd(old)
            else:
                signal.signal(number, old)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

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
        if not chunk and buffer:
            lines.append(bytes(buffer))
            buffer.clear()
        if lines:
            self.hooks.output(stream, [line.decode("utf-8", errors="replace") for line in lines])

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if event.get("event") in ("result", "error"):
            self.reply = event
        else:
            self.hooks.event(event)

    def _conclude(self, returncode: int, start: float, is_command: bool) -> RunEnd:
        if self.signalled is not None:
            return self._end(
                start,
                Outcome.INTERRUPTED,
                exit_code=returncode,
                error=f"the tick received {_signal_name(self.signalled)}",
                signal=self.signalled,
            )
        if self.lease_lost:
            return self._end(
                start,
                Outcome.INTERRUPTED,
                exit_code=returncode,
                error="the lease was lost to another tick",
            )
        if self.timed_out:
            assert self.task.timeout is not None
            return self._end(
                start,
                Outcome.TIMEOUT,
                exit_code=returncode,
                error=f"timed out after {self.task.timeout.total_seconds():g}s",
            )
        if is_command:
            if returncode == 0:
                return self._end(start, Outcome.DONE, exit_code=0)
            if returncode < 0:
                return self._end(
                    start,
                    Outcome.FAILED,
                    exit_code=returncode,
                    error=f"killed by {_signal_name(-returncode)}",
                )
            return self._end(
                start, Outcome.FAILED, exit_code=returncode, error=f"exited with code {returncode}"
            )
        reply = self.reply or {}
        if reply.get("event") == "result" and returncode == 0:
            return self._end(start, Outcome.DONE, result_json=json.dumps(reply.get("result")))
        if reply.get("event") == "error":
            return self._end(
                start,
                Outcome.FAILED,
                exit_code=returncode,
                error=str(reply.get("error")),
                traceback=reply.get("traceback"),
            )
        why = f"killed by {_signal_name(-returncode)}" if returncode < 0 else f"code {returncode}"
        return self._end(
            start,
            Outcome.FAILED,
            exit_code=returncode,
            error=f"the handler's process ended ({why}) without a result",
        )

    def _end(self, start: float, outcome: Outcome, **fields: Any) -> RunEnd:
        return RunEnd(
            outcome=outcome,
            ended_at=self.clock(),
            elapsed=round(time.monotonic() - start, 6),
            output_tail=self.tail.text(),
            truncated=self.tail.truncated,
            **fields,
        )


def _read(fd: int) -> bytes | None:
    """What the pipe has (b"" at its end), or None after a spurious wake-up."""
    try:
        return os.read(fd, _CHUNK)
    except BlockingIOError:
        return None


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def kill_orphan(pid: int, run_id: int) -> bool:
    """Kill the process group of a run whose tick died, if it is still that run's.

    The group leader's environment must name the run (`TASKCRON_RUN_ID`), so a
    reused pid is never killed. Returns True when a group was killed.
    """
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


# --- the child's side -------------------------------------------------------


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


def child_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of a callable task's child process (see the module docstring)."""
    raw = sys.stdin.buffer.read()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    channel = os.fdopen(int(os.environ[ENV_EVENT_FD]), "wb")
    lock = threading.Lock()

    def send(event: dict[str, Any]) -> None:
        line = json.dumps(event).encode() + b"\n"
        with lock:
            channel.write(line)
            channel.flush()

    try:
        message = json.loads(raw)
        spec, data = message["spec"], message["data"]
    except (ValueError, KeyError, TypeError) as exc:
        send({"event": "error", "error": f"bad input from the tick: {exc}"})
        sys.exit(1)
    handlers.add_import_paths(Path(p) for p in spec["import_paths"])
    root = logging.getLogger()
    root.handlers[:] = [_EventHandler(send)]
    root.setLevel(spec.get("log_level", "info").upper())
    task_log = logging.getLogger(f"taskcron.task.{spec['module']}")
    deadline = spec.get("deadline")
    ctx = Context(
        clock=_clock_from(spec.get("now")),
        task_id=spec["task_id"],
        module=spec["module"],
        data=data,
        attempt=spec["attempt"],
        deadline=None if deadline is None else datetime.fromisoformat(deadline),
        log=task_log,
        report=send,
    )
    target = spec["target"]
    try:
        if target["kind"] == TargetKind.CALL.value:
            fn = handlers.import_path(target["value"])
        else:
            fn = handlers.find(target["value"], spec["modules"])
        value = fn(ctx, data)
    except errors.HandlerError as exc:
        _flush_std()
        send({"event": "error", "error": str(exc), "traceback": None})
        sys.exit(1)
    except BaseException as exc:  # the task's failure, whatever it is, is data
        _flush_std()
        described = (
            f"the handler called sys.exit({exc.code!r})"
            if isinstance(exc, SystemExit)
            else f"{type(exc).__name__}: {exc}"
        )
        # The first frame is child_main's own call of the handler: leave it out.
        frames = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        trace = "".join(traceback.format_exception(type(exc), exc, frames))
        send({"event": "error", "error": described, "traceback": trace})
        sys.exit(1)
    _flush_std()
    try:
        encoded = json.dumps({"event": "result", "result": value})
    except (TypeError, ValueError) as exc:
        send({"event": "error", "error": f"the handler's result is not JSON: {exc}"})
        sys.exit(1)
    with lock:
        channel.write(encoded.encode() + b"\n")
        channel.flush()


def _clock_from(now: str | None) -> Callable[[], datetime]:
    """The tick's clock as it read `now` when the child started, moving on in real time."""
    if now is None:
        return lambda: datetime.now(timezone.utc)
    start, began = datetime.fromisoformat(now), time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - began)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
