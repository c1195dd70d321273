"""The supervisor: one selector loop over every running child, and the stop signals.

It serves each execution's pipes as they become ready (never blocking a task
that prints a lot), steps each one's limits, and traps SIGTERM, SIGINT and
SIGHUP so that the tick decides what a signal means. The kind of child a task
needs is chosen here, once.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from taskcron.model import RunEnd, TargetKind, Task
from taskcron.runner.child import STOP_SIGNALS, Child, Clock, Handler, RunHooks, RunSettings
from taskcron.runner.command import Command, Exec
from taskcron.runner.execution import Execution
from taskcron.runner.forked import Call, ForkedCallable
from taskcron.runner.guard import LeaseGuard


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


def child_for(
    task: Task, settings: RunSettings, hooks: RunHooks, clock: Clock, handler: Handler | None
) -> Child:
    """The kind of child `task` runs in: an exec'd command, or a forked callable."""
    if task.target.kind is TargetKind.COMMAND:
        return Command(Exec.of(task, settings), hooks, state_json=task.step_state_json)
    return ForkedCallable(Call(task=task, settings=settings, clock=clock), hooks, handler)


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
        self._guard = LeaseGuard()  #: Kills a task in time if this loop is held up.
        self._watched: dict[int, Callable[[], bool]] = {}

    def __enter__(self) -> Supervisor:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._on_signal)
            # SIGCHLD only wakes the loop, so that a child's exit is seen at once.
            self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda n, f: None)
            self._previous[-1] = signal.set_wakeup_fd(self._wake_w)
        return self

    def __exit__(self, *exc: object) -> None:
        self._guard.close()
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
        child = child_for(task, settings, hooks, self.clock, handler)
        run = Execution(task, settings, hooks, self.clock, child, unwatch=self._unwatch)
        # What the loop holds must not live on in a forked child: the epoll instance (it
        # would keep reporting pipes the loop has closed) and the other tasks' pipes.
        loop_fds = [self._selector.fileno(), self._wake_r, self._wake_w, *self._watched]
        loop_fds += [fd for other in self.runs for fd in other.streams]
        blocked = _signals_blocked() if run.child.starts_blocked else contextlib.nullcontext()
        with blocked:  # a stop signal is the tick's to handle, never a forked child's
            fds = run.spawn(loop_fds)
        for fd in fds:
            mask = selectors.EVENT_WRITE if run.streams.get(fd) == "stdin" else selectors.EVENT_READ
            self._selector.register(fd, mask, run)
        self.runs.append(run)  # one that could not start is returned by the next `wait`
        if run.pid:
            self._guard.watch(run)
        return run

    def watch(self, fd: int, ready: Callable[[], bool]) -> None:
        """Watch `fd` too: `ready()` is called each time it is readable, and `wait` returns
        at once when it says True. The caller reads the descriptor, and `unwatch`es it
        before closing it; no forked child keeps it."""
        self._selector.register(fd, selectors.EVENT_READ, ready)
        self._watched[fd] = ready

    def unwatch(self, fd: int) -> None:
        """Stop watching a descriptor given to `watch`."""
        if self._watched.pop(fd, None) is not None:
            self._unwatch(fd)

    def _unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def stop_all(self, *, after: float) -> None:
        """Stop every child `after` seconds from now (SIGTERM, then SIGKILL after its grace)."""
        for run in self.runs:
            run.stop(after=after, why=self.signalled)

    def wait(self, timeout: float | None = None) -> list[Execution]:
        """Serve the children until one ends, a signal arrives, a watched descriptor's
        `ready()` says so or `timeout` passes.

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
                    self._guard.forget(run)
                    run.close()  # pipes a finished task's own children still hold
                return ended
            if self.interrupted() or (deadline is not None and now >= deadline):
                return []
            if deadline is not None:
                waits.append(deadline - now)
            woken = False
            for key, _ in self._selector.select(max(min(waits, default=0.5), 0)):
                fd = int(key.fd)
                if fd == self._wake_r:
                    _drain(fd)
                elif fd in self._watched:
                    woken = self._watched[fd]() or woken
                else:
                    key.data.ready(fd)
            if self.interrupted() or woken:
                return []


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
