"""What every `--json` output holds: each shape's keys and what they mean, in one place.

Declarations only (no imports, no I/O). The JSON itself is built by the `to_json`
methods of `taskcron.model` (task, run, progress, target, schedule), `taskcron.api`
(status, migration), `taskcron.doctor` (check), `taskcron.lifecycle` (tick),
`taskcron.alerts` (alerts test) and by `taskcron.cli` (schedule, next, prune); the
reference's JSON page is generated from this table, and the test suite checks that the
keys here are the keys printed.
"""

from __future__ import annotations

from typing import NamedTuple


class Shape(NamedTuple):
    """One JSON object: its name, where it is printed, and its keys with their meaning."""

    name: str
    printed_by: str
    keys: dict[str, str]


TASK = Shape(
    "task",
    "`show --json`; `cancel`, `retry`, `pause`, `resume`, `remove` and `run-now` with "
    "`--json`; each element of `list --json` (without `runs`)",
    {
        "id": "the task's id, an integer",
        "module": "its module id",
        "title": "its title (a command's title is its argv as a shell would read it)",
        "target": "what it runs: a [target](#target) object",
        "state": "`queued`, `running`, `done`, `failed`, `cancelled` or `paused`",
        "priority": "orders it among the due tasks of its module id (higher first)",
        "data": "its JSON data (`{}` when none was given)",
        "due_at": "when it is next due (ISO 8601, UTC)",
        "attempts": "attempts used so far",
        "max_attempts": "attempts allowed (`--max-attempts`)",
        "timeout": "the limit that kills a run, in seconds, or null",
        "created_at": "when it was scheduled",
        "updated_at": "when it last changed",
        "result": "what its handler returned (JSON), or null",
        "owner": "who it belongs to (`--owner`), or null",
        "progress": "its last progress report: a [progress](#progress) object, or null",
        "steps": "how many steps of the current job asked to continue",
        "saved_state": "the state its last continued step saved (`ctx.state`), or null",
        "schedule": "a recurring task's [schedule](#schedule) object, or null",
        "max_lateness": "`--max-lateness` in seconds, or null",
        "key": "its dedupe key (`--key`), or null",
        "last_outcome": "the outcome of its newest run, or null",
        "keep_runs": "the newest runs the store keeps of it (`--keep-runs`; 0: no limit),"
        " or null for the config's `history.keep_runs`",
        "missed_after": "how long past due a recurring task may wait for a run before it is"
        " missed, in seconds (`--missed-after`, else the config's `missed_after`), or null:"
        " never (a one-off task)",
        "failing_since": "when its first run that failed for good since its last success"
        " ended (ISO 8601), or null: healthy",
        "missed": 'null, or, for a recurring task found missed, `{"since": the due time it'
        ' missed, "fire_times": how many fire times it has missed so far}`',
        "runs_kept": "how many of its runs the store holds (`runs` holds the newest of them:"
        " `--runs`), or null where not counted (`tick --json`)",
        "runs_total": "how many of its runs ended, those trimmed from the store too (only where"
        " the whole task is shown)",
        "outcomes": 'how many of its runs ended with each outcome, by outcome (`{"done": 41,'
        ' "failed": 2}`), those trimmed too (only where the whole task is shown)',
        "runs": "its runs, oldest first: [run](#run) objects (only where the whole task is shown)",
    },
)
RUN = Shape(
    "run",
    "each element of a task's `runs`",
    {
        "id": "the run's id",
        "attempt": "which attempt it was (continued steps use none)",
        "started_at": "when it started (ISO 8601, UTC)",
        "ended_at": "when it ended, or null while it runs",
        "elapsed": "how long it ran, in seconds (a monotonic clock), or null",
        "outcome": "`done`, `failed`, `timeout`, `interrupted` or `continued`, or null "
        "while it runs",
        "exit_code": "a command's exit code, or null",
        "error": "one line saying why it failed, or null",
        "traceback": "a callable's traceback, or null",
        "output_tail": "the last `log.output_tail` bytes of its output",
        "truncated": "true when the output was longer than the tail kept",
        "host": "the host that ran it",
        "pid": "the pid of the tick, pool or `work` that ran it",
        "child_pid": "the pid of the task's own process",
    },
)
PROGRESS = Shape(
    "progress",
    "a task's `progress`",
    {
        "done": "how much is done",
        "total": "out of how much, or null",
        "percent": "`100 * done / total`, rounded to one decimal, or null without a total",
        "message": "the report's message",
        "updated_at": "when it was reported",
    },
)
TARGET = Shape(
    "target",
    "a task's `target`",
    {
        "kind": "`call` (an import path), `task` (a registered name) or `command`",
        "value": "the import path or name, or a command's argv as a list",
    },
)
SCHEDULE = Shape(
    "schedule",
    "a recurring task's `schedule`: `cron` and `tz`, or `every` alone",
    {
        "cron": "the cron expression",
        "tz": "the zone it is read in",
        "every": "the period, in seconds",
    },
)
SCHEDULED = Shape(
    "schedule --json",
    "`schedule --json`: a [task](#task) object (with `runs`) and one key more",
    {"existing": "true when a task of the same `--key` was found and returned instead"},
)
NEXT = Shape(
    "next --json",
    "each element of `next --json`: a [task](#task) object without `runs`, whose key means",
    {"due_at": "this fire time (a recurring task has one element per fire time)"},
)
TICK = Shape(
    "tick --json",
    "`tick --json`; each line of `tick --drain --json`, `tick --workers N --json` and "
    "`work --json`",
    {
        "outcome": "`ran`, `idle` (nothing due) or `busy` (a task of its scope was running)",
        "task": "the task it ran (with its `runs`); when `busy`, the running task (without "
        "its runs) for a plain tick and null for a drain or pool; null when `idle`",
    },
)
STATUS = Shape(
    "status --json",
    "`status --json` and the dashboard's `/api/status`",
    {
        "modules": "`{MODULE: {STATE: COUNT}}` for every module id that has tasks",
        "running": "the running tasks ([task](#task) objects without `runs`), each with "
        "`step_elapsed` and `job_elapsed`, in seconds",
        "next": "the next five queued tasks by due time",
        "failures": "the last five failures, newest first",
    },
)
CHECK = Shape(
    "check --json",
    "`check --json`",
    {
        "ok": "true when nothing is broken",
        "config": "the config file in effect, or null",
        "home": "the home in use",
        "checks": 'a list of `{"name", "ok", "detail"}`, one per thing checked',
    },
)
PRUNE = Shape(
    "prune --json",
    "`prune --json` (with `--dry-run`: what would go)",
    {
        "tasks": "finished one-off tasks removed",
        "runs": "their runs removed",
        "log_files": "rotated log files removed",
        "log_records": "records removed from the store's log table, or null without one",
    },
)
MIGRATED = Shape(
    "migrate-store --json",
    "`migrate-store --json`",
    {
        "source": "the store copied (its URL, without a password)",
        "target": "the store written",
        "tasks": "tasks copied",
        "runs": "runs copied",
        "log_records": "log records copied into the target's log table, or null without one",
        "log_records_left": "records of the source's log table left there (a SQLite target"
        " keeps no log table), else 0",
        "config": 'the config line that points taskcron at the target: `store = "URL"`',
    },
)
ALERT_ANSWER = Shape(
    "alerts test --json",
    "each line of `alerts test --json`: one channel of a rule (the alert's own JSON is in"
    " [Alerts and missed runs](../guides/alerts.md#the-alerts-json))",
    {
        "rule": "the rule's name",
        "channel": "`webhook`, `command`, or a `notify` URL's scheme (`slack`; `slack#2` for a"
        " rule's second one)",
        "ok": "true when the channel took the alert",
        "detail": "what it answered (`HTTP 200`, `exit 0`, `sent`), or why it failed",
        "elapsed": "seconds it took",
    },
)
LOG_RECORD = Shape(
    "log record",
    "each line of `log --json` and of the log file; each event adds its own fields "
    "(see [Log events](log-events.md))",
    {
        "ts": "when it was written (ISO 8601, UTC, milliseconds)",
        "host": "the host that wrote it",
        "level": "`debug`, `info`, `warning` or `error`",
        "event": "what happened, such as `task.done`",
        "task": "the task's id, or null",
        "module": "the task's module id, or null",
        "message": "one line for people",
    },
)

#: Every shape, in the order the reference lists them.
SHAPES = (
    TASK,
    RUN,
    PROGRESS,
    TARGET,
    SCHEDULE,
    SCHEDULED,
    NEXT,
    TICK,
    STATUS,
    CHECK,
    PRUNE,
    MIGRATED,
    ALERT_ANSWER,
    LOG_RECORD,
)
