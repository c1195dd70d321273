"""The exec'd command: a task whose target is an argv.

Its child execs the argv in a session of its own, with the task's data (and
state, after a step) as JSON on its standard input. Its `::progress` and
`::state` lines on stdout are read here, and its exit code says how it ended
(`EXIT_CONTINUE` asks to go on later).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from taskcron.model import Outcome, RunEnd, Task
from taskcron.runner.child import (
    Child,
    Finish,
    NotStarted,
    RunHooks,
    RunSettings,
    Started,
    environment,
    signal_name,
)

#: A command's exit status that asks to continue later (`EX_TEMPFAIL`).
EXIT_CONTINUE = 75
#: A command's stdout lines that report progress and save state; kept out of its output.
PROGRESS_LINE, STATE_LINE = b"::progress ", b"::state "


class Exec(NamedTuple):
    """What a command's child is given: its argv, environment, directory and input."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: Path | None
    input: bytes

    @classmethod
    def of(cls, task: Task, settings: RunSettings) -> Exec:
        """What `task` execs, with `settings`."""
        assert not isinstance(task.target.value, str)
        return cls(
            argv=tuple(task.target.value),
            env={**os.environ, **environment(task, settings)},
            cwd=settings.cwd,
            input=command_input(task),
        )


def command_input(task: Task) -> bytes:
    """A command's standard input: its data on the first step, data and state on later ones."""
    if task.steps == 0:
        return task.data_json.encode()
    # The data is spliced in as stored, not decoded and encoded again.
    state = task.step_state_json or "{}"
    return ('{"data": ' + task.data_json + ', "state": ' + state + "}").encode()


class Command(Child):
    """An exec'd command, as its execution sees it."""

    parsed = "stdout"

    def __init__(self, spec: Exec, hooks: RunHooks, *, state_json: str | None) -> None:
        self.spec = spec
        self.hooks = hooks
        self.given_state = state_json  #: The state it was given, if any.
        self.saved_state: str | None = None  #: Its last `::state` line.
        self._popen: Any = None

    starts_blocked = False  # exec resets the handlers; the mask would outlive it

    def start(self, loop_fds: list[int]) -> Started:
        """Exec the argv (its child closes every descriptor but its three pipes)."""
        import subprocess

        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = subprocess.Popen(
                self.spec.argv,
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                env=self.spec.env,
                cwd=self.spec.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            import shlex

            for fd in (in_w, out_r, err_r):
                os.close(fd)
            raise NotStarted(
                f"cannot start command {shlex.join(self.spec.argv)!r}: {exc.strerror}"
            ) from exc
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        self._popen = proc
        # The data may be large: the loop writes it as the pipe takes it, while it reads
        # the output, so that neither side waits on the other and no thread is needed.
        streams = {in_w: "stdin", out_r: "stdout", err_r: "stderr"}
        return Started(pid=proc.pid, streams=streams, input=self.spec.input)

    def take_line(self, line: bytes) -> bool:
        """Take a `::progress` or `::state` line out of the output (True when taken)."""
        if line.startswith(PROGRESS_LINE):
            return self._progress(line[len(PROGRESS_LINE) :].decode(errors="replace"))
        if line.startswith(STATE_LINE):
            self.saved_state = line[len(STATE_LINE) :].decode(errors="replace").strip()
            return True
        return False

    def _progress(self, text: str) -> bool:
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

    def exited(self, code: int) -> None:
        """Tell the `Popen` that its process was reaped, so that it never waits for the pid."""
        if self._popen is not None:
            self._popen.returncode = code

    def end(self, code: int, finish: Finish) -> RunEnd:
        """Done on 0; continued on `EXIT_CONTINUE` with the last `::state`; else failed."""
        if code == 0:
            return finish(Outcome.DONE, exit_code=0)
        if code == EXIT_CONTINUE:
            state = self.saved_state or self.given_state or "{}"
            try:
                if not isinstance(json.loads(state), dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                return finish(
                    Outcome.FAILED,
                    exit_code=code,
                    error=f"the ::state line is not a JSON object: {exc}",
                )
            return finish(Outcome.CONTINUED, exit_code=code, state_json=state)
        if code < 0:
            return finish(Outcome.FAILED, exit_code=code, error=f"killed by {signal_name(-code)}")
        return finish(Outcome.FAILED, exit_code=code, error=f"exited with code {code}")
