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

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from taskcron.api import TaskCron
    from taskcron.context import Context, Continue
    from taskcron.handlers import task
    from taskcron.lifecycle import TickResult
    from taskcron.model import Outcome, Run, State, Task

#: Where each name that needs more than the errors lives: it is imported on first use,
#: so that `taskcron tick` with nothing to do loads none of it (see taskcron.__main__).
_LAZY = {
    "TaskCron": "taskcron.api",
    "Context": "taskcron.context",
    "Continue": "taskcron.context",
    "task": "taskcron.handlers",
    "TickResult": "taskcron.lifecycle",
    "Outcome": "taskcron.model",
    "Run": "taskcron.model",
    "State": "taskcron.model",
    "Task": "taskcron.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskcron' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup finds it directly
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
