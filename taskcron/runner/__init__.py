"""Running claimed tasks in child processes, watched by one selector loop.

Every task runs in a child process in a session (and process group) of its
own, so that a timeout or a signal can stop all of it and nothing it does can
take the tick down. `supervisor` holds the loop and the signals, `execution`
one child's pipes, limits and end, and one module per kind of child holds
what only that kind does: `forked` (a callable), `command` (an argv).
"""

from __future__ import annotations

from taskcron.runner.child import ENV_RUN_ID, Child, RunHooks, RunSettings
from taskcron.runner.command import EXIT_CONTINUE, PROGRESS_LINE, STATE_LINE
from taskcron.runner.execution import Execution
from taskcron.runner.forked import resolve
from taskcron.runner.process import kill_orphan, process_start
from taskcron.runner.supervisor import Supervisor, execute

__all__ = [
    "ENV_RUN_ID",
    "EXIT_CONTINUE",
    "PROGRESS_LINE",
    "STATE_LINE",
    "Child",
    "Execution",
    "RunHooks",
    "RunSettings",
    "Supervisor",
    "execute",
    "kill_orphan",
    "process_start",
    "resolve",
]
