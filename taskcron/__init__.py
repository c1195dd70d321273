"""taskcron: background and periodic tasks for Python, run by one crontab line.

    from taskcron import TaskCron, task

    @task
    def send_invoices(ctx, data):
        ...

    TaskCron().schedule("billing.invoices", task="send_invoices", data={"day": 1})

Then `taskcron tick` from cron runs one due task per invocation.
"""

from __future__ import annotations

__version__ = "0.1.0"

from taskcron.api import TaskCron
from taskcron.context import Context, Continue
from taskcron.errors import (
    ConfigError,
    DataError,
    DurationError,
    ForeignStoreError,
    HandlerError,
    InputError,
    ModuleIdError,
    StateError,
    StateNameError,
    StoreError,
    StoreVersionError,
    TargetError,
    TaskcronError,
    TaskNotFoundError,
)
from taskcron.handlers import task
from taskcron.lifecycle import TickResult
from taskcron.model import Outcome, Run, State, Task

__all__ = [
    "ConfigError",
    "Context",
    "Continue",
    "DataError",
    "DurationError",
    "ForeignStoreError",
    "HandlerError",
    "InputError",
    "ModuleIdError",
    "Outcome",
    "Run",
    "State",
    "StateError",
    "StateNameError",
    "StoreError",
    "StoreVersionError",
    "TargetError",
    "Task",
    "TaskCron",
    "TaskNotFoundError",
    "TaskcronError",
    "TickResult",
    "__version__",
    "task",
]
