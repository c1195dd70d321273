"""The forked callable: a task whose target is a Python callable.

Its child is forked from the tick (no new interpreter, no second import of
taskcron), calls the handler with its `Context` and data, and reports back on
a channel of its own, one JSON object per line: `log` records and `progress`,
then `result`, `continue` or `error`. It never touches the tick's store
connection and leaves with `os._exit`, so no finalizer of the parent's runs in it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple

from taskcron import errors, handlers
from taskcron.context import Context, Continue
from taskcron.model import Outcome, RunEnd, TargetKind, Task
from taskcron.runner.child import (
    STOP_SIGNALS,
    Child,
    Clock,
    Finish,
    Handler,
    NotStarted,
    RunHooks,
    RunSettings,
    Started,
    environment,
    signal_name,
)

_PROGRESS_EVERY = 0.1  #: A forked child sends its progress at most this often (seconds).

Send = Callable[[dict[str, Any]], None]


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


class Call(NamedTuple):
    """What a forked child is given: the task, where its code is and its limits, the clock."""

    task: Task
    settings: RunSettings
    clock: Clock


class ForkedCallable(Child):
    """A forked callable, as its execution sees it."""

    def __init__(self, call: Call, hooks: RunHooks, handler: Handler | None = None) -> None:
        self.call = call
        self.hooks = hooks
        self.handler = handler  #: The callable, when the tick has it imported already.
        self.events = bytearray()
        self.reply: dict[str, Any] | None = None  #: The child's `result`, `continue` or `error`.

    def start(self, loop_fds: list[int]) -> Started:
        """Fork; the child closes `loop_fds` and never returns."""
        handler = self.handler
        if handler is None and self.call.settings.preload:
            try:
                handler = resolve(self.call.task, self.call.settings)
            except errors.HandlerError as exc:
                raise NotStarted(str(exc)) from exc
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
            _child(self.call, handler, out_w, err_w, event_w)
        for fd in (out_w, err_w, event_w):
            os.close(fd)
        return Started(pid=pid, streams={out_r: "stdout", err_r: "stderr", event_r: "channel"})

    def channel(self, chunk: bytes) -> None:
        """Read the child's events: `result`, `continue` and `error` kept, the rest passed on."""
        self.events += chunk
        cut = self.events.find(b"\n")
        while cut >= 0:
            self._event(bytes(self.events[:cut]))
            del self.events[: cut + 1]
            cut = self.events.find(b"\n")
        if not chunk and self.events:
            self._event(bytes(self.events))

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

    def end(self, code: int, finish: Finish) -> RunEnd:
        """How the child's reply (and its exit code) says the call ended."""
        reply = self.reply or {}
        if reply.get("event") == "result" and code == 0:
            return finish(Outcome.DONE, result_json=json.dumps(reply.get("result")))
        if reply.get("event") == "continue" and code == 0:
            delay = timedelta(seconds=float(reply.get("delay") or 0))
            return finish(
                Outcome.CONTINUED,
                state_json=json.dumps(reply.get("state")),
                resume_at=self.call.clock() + delay,
            )
        if reply.get("event") == "error":
            return finish(
                Outcome.FAILED,
                exit_code=code,
                error=str(reply.get("error")),
                traceback=reply.get("traceback"),
            )
        why = f"killed by {signal_name(-code)}" if code < 0 else f"code {code}"
        return finish(
            Outcome.FAILED,
            exit_code=code,
            error=f"the handler's process ended ({why}) without a result",
        )


# --- the child's side ------------------------------------------------------------


class _EventHandler(logging.Handler):
    """Sends the handler's logging records to the tick, one JSON line each."""

    def __init__(self, send: Send) -> None:
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


def _child(call: Call, handler: Handler | None, out: int, err: int, events: int) -> None:
    """The forked child: set up its process, call the handler, report, and `os._exit`."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for number in (*STOP_SIGNALS, signal.SIGCHLD):
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        null = os.open(os.devnull, os.O_RDONLY)
        for source, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(source, target)
            os.close(source)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        os.environ.update(environment(call.task, call.settings))
        if call.settings.cwd is not None:
            os.chdir(call.settings.cwd)
        code = _call(call, handler, os.fdopen(events, "wb"))
    finally:
        _flush_std()
        os._exit(code)


def _call(call: Call, handler: Handler | None, channel: Any) -> int:
    """Call the handler with its `ctx` and data; send `result` or `error`; the exit code."""
    lock = threading.Lock()

    def send(event: dict[str, Any]) -> None:
        line = json.dumps(event).encode() + b"\n"
        with lock:
            channel.write(line)
            channel.flush()

    task = call.task
    report = _Throttled(send)
    root = logging.getLogger()
    root.handlers[:] = [_EventHandler(send)]
    root.setLevel(call.settings.log_level.upper())
    data = json.loads(task.data_json)
    ctx = _context(call, data, report)
    try:
        fn = handler if handler is not None else resolve(task, call.settings)
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
        send(_failure(exc))
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


def _context(call: Call, data: Any, report: Send) -> Context:
    """The `ctx` a handler is called with."""
    task = call.task
    return Context(
        state=json.loads(task.step_state_json or "{}"),
        step=task.steps + 1,
        task_id=task.id,
        module=task.module,
        data=data,
        attempt=task.attempts,
        deadline=call.settings.deadline,
        log=logging.getLogger(f"taskcron.task.{task.module}"),
        clock=call.clock,
        report=report,
        owner=task.owner,
    )


def _failure(exc: BaseException) -> dict[str, Any]:
    """The `error` event for what the handler raised, with its traceback."""
    described = (
        f"the handler called sys.exit({exc.code!r})"
        if isinstance(exc, SystemExit)
        else f"{type(exc).__name__}: {exc}"
    )
    # The first frame is `_call`'s own call of the handler: leave it out.
    frames = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    trace = "".join(traceback.format_exception(type(exc), exc, frames))
    return {"event": "error", "error": described, "traceback": trace}


def _continue(step: Continue, ctx: Context, send: Send) -> int:
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

    def __init__(self, send: Send) -> None:
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


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
