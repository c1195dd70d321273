"""Every error taskcron raises on purpose.

The tree::

    TaskcronError                    anything taskcron refuses or cannot do
    ├── InputError                   the caller gave a bad value (the CLI exits 2)
    │   ├── ModuleIdError            a module id or scope that breaks the rules
    │   ├── DurationError            a duration that cannot be read
    │   ├── CronError                a cron expression that is not Debian cron's
    │   ├── DataError                task data that is not JSON, or is too big to store
    │   ├── TargetError              a --call, --task or command that is malformed
    │   ├── StateNameError           a state name that does not exist
    │   ├── ConfigError              a config file that cannot be read or is wrong
    │   └── StoreURLError            a store URL with an unknown scheme or a bad form
    ├── TaskNotFoundError            no task with that id
    ├── StateError                   the task's state does not allow the action
    ├── TasksRunningError            tasks are running, and the store cannot be moved now
    ├── HandlerError                 a task handler cannot be found, imported or registered
    ├── PoolBusyError                another pool serves an overlapping scope on this host
    ├── ExtraMissingError            a feature's optional packages are not installed
    └── StoreError                   the store cannot be opened, read or written
        ├── StoreVersionError        the store was written by a newer taskcron
        ├── ForeignStoreError        the file is not a taskcron store
        ├── StoreNotEmptyError       the store to copy into already holds tasks
        └── StoreMissingError        no store exists there, and this opening may not create one
            └── HomeMissingError     no home directory, so no store either

The core raises these and never prints or exits; only the CLI turns them into
exit codes. Each class's docstring is its default message.
"""

from __future__ import annotations

from collections.abc import Sequence


class TaskcronError(Exception):
    """taskcron could not do what was asked."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class InputError(TaskcronError):
    """Invalid input."""


class ModuleIdError(InputError):
    """Invalid module id."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"invalid module id {value!r}: {reason}")
        self.value = value
        self.reason = reason


class DurationError(InputError):
    """Invalid duration."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"invalid duration {value!r}: {reason}")
        self.value = value
        self.reason = reason


class CronError(InputError):
    """Invalid cron expression."""


class DataError(InputError):
    """Invalid task data: it must be JSON."""


class TargetError(InputError):
    """Invalid task target."""


class StateNameError(InputError):
    """Invalid state name."""

    def __init__(self, value: str, choices: list[str]) -> None:
        super().__init__(f"invalid state {value!r}: expected one of {', '.join(choices)}")
        self.value = value


class ConfigError(InputError):
    """Invalid configuration."""


class StoreURLError(InputError):
    """Invalid store URL."""


class TaskNotFoundError(TaskcronError):
    """No such task."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"no task with id {task_id}")
        self.task_id = task_id


class StateError(TaskcronError):
    """The task's state does not allow this action."""

    def __init__(self, task_id: int, state: str, action: str) -> None:
        super().__init__(f"cannot {action} task {task_id}: it is {state}")
        self.task_id = task_id
        self.state = state
        self.action = action


class ExtraMissingError(TaskcronError):
    """A feature needs packages that are not installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the {extra} extra: pip install 'taskcron[{extra}]'")
        self.feature = feature
        self.extra = extra


class TasksRunningError(TaskcronError):
    """Tasks are running: wait for them to finish, or stop the ticks, then try again."""

    def __init__(self, task_ids: tuple[int, ...]) -> None:
        shown = ", ".join(str(i) for i in task_ids[:10]) + (", ..." if len(task_ids) > 10 else "")
        if len(task_ids) == 1:
            which, them = f"task {shown} is", "it"
        else:
            which, them = f"{len(task_ids)} tasks ({shown}) are", "them"
        super().__init__(
            f"{which} running: wait for {them} to finish, or stop the ticks and workers, "
            "then try again"
        )
        self.task_ids = task_ids


class HandlerError(TaskcronError):
    """The task handler cannot be found or imported."""


class PoolBusyError(TaskcronError):
    """Another pool serves this scope on this host."""

    def __init__(self, pid: int, modules: Sequence[str], excepts: Sequence[str]) -> None:
        served = ", ".join(modules) or "every module id"
        but = f" except {', '.join(excepts)}" if excepts else ""
        super().__init__(f"another pool (pid {pid}) already serves {served}{but} on this host")
        self.pid = pid
        self.modules = tuple(modules)
        self.excepts = tuple(excepts)


class StoreError(TaskcronError):
    """The task store cannot be used."""


class StoreUnreachable(StoreError):
    """The store's server cannot be reached now: it refused the connection, or the
    connection was lost (a restart, a failover, a dropped link).

    A command that does one thing ends with it; a process that lives long
    retries (see `taskcron.outage`).
    """


class StoreVersionError(StoreError):
    """The store was written by a newer version of taskcron."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"store {path} has schema version {found}, newer than this taskcron supports "
            f"({supported}): upgrade taskcron"
        )
        self.path = path
        self.found = found
        self.supported = supported


class ForeignStoreError(StoreError):
    """The file is not a taskcron store."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is not a taskcron store; it was left untouched")
        self.path = path


class StoreNotEmptyError(StoreError):
    """The store to copy into already holds tasks."""

    def __init__(self, where: str, tasks: int, runs: int) -> None:
        super().__init__(
            f"store {where} already holds {tasks} task{'s' * (tasks != 1)} and {runs} "
            f"run{'s' * (runs != 1)}: tasks are copied into an empty store only; nothing was "
            "written"
        )
        self.where = where
        self.tasks = tasks
        self.runs = runs


class StoreMissingError(StoreError):
    """No store."""

    def __init__(self, where: str) -> None:
        super().__init__(f"no store at {where}: run 'taskcron init' to create one")
        self.where = where


class HomeMissingError(StoreMissingError):
    """No home."""

    def __init__(self, home: str, why: str) -> None:
        TaskcronError.__init__(
            self,
            f"no taskcron home at {home} ({why}): run 'taskcron init' to create one, "
            "or give --home or --config",
        )
        self.where = home
