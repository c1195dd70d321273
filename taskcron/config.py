"""The settings in effect as typed values (`Config`), with their defaults in one place,
and the starter config file.

`taskcron.configfile` finds, reads and checks them; `load` types them.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from taskcron import configfile, errors
from taskcron.configfile import DEFAULT_ALERT_ON, DEFAULT_HOME, HEARTBEAT_STYLES
from taskcron.inputs import zone
from taskcron.model import Lanes, Retention, Scope
from taskcron.values import field, value


@value
class RetryConfig:
    """How long a failed task waits before its next attempt."""

    backoff: timedelta = timedelta(seconds=10)  #: The first wait; it doubles per attempt.
    max_backoff: timedelta = timedelta(hours=1)  #: The longest wait.


@value
class LogConfig:
    """The log store's settings."""

    level: str = "info"
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 5
    retention: timedelta = timedelta(days=30)
    output_tail: int = 65536


@value
class HistoryConfig:
    """Which runs the store keeps of each task (config table `[history]`)."""

    keep_runs: int = 100  #: The newest runs kept of a task; 0: no limit.
    keep_for: timedelta = timedelta(days=30)  #: Runs older than this go; 0: no limit.

    def retention(self) -> Retention:
        """These settings as the store applies them."""
        return Retention(
            keep_runs=self.keep_runs, keep_for=self.keep_for if self.keep_for else None
        )


@value
class HeartbeatConfig:
    """What every tick pings outside, so that a cron line that stops is noticed (config
    table `[heartbeat]`; `taskcron.heartbeat`)."""

    url: str | None = None  #: The check's URL; None: no heartbeat. `tick --heartbeat` overrides it.
    style: str = HEARTBEAT_STYLES[0]  #: Whose convention the pings follow.
    timeout: timedelta = timedelta(seconds=3)  #: The longest a ping takes (in its own process).


@value
class WebConfig:
    """The dashboard's settings (`taskcron web`, config table `[web]`)."""

    host: str = "127.0.0.1"  #: The address it binds.
    port: int = 8765
    token: str | None = None  #: Lets a request see and act; TASKCRON_WEB_TOKEN overrides it.
    read_token: str | None = None  #: Lets a request see only.
    stylesheet: Path | None = None  #: A CSS file served after the built-in one.
    script: Path | None = None  #: A JavaScript file served after the built-in one.
    session_ttl: timedelta = timedelta(hours=12)  #: How long a login lasts.
    max_streams: int = 16  #: Event streams open at once per session, token or owner link.
    #: The dashboard's public base URL (`https://tasks.example.com`), for links in alerts.
    url: str | None = None
    metrics_token: str | None = None  #: Lets a request read `/metrics` only.

    def task_url(self, task_id: int) -> str | None:
        """The public address of a task's page, or None when `url` is not set."""
        return None if self.url is None else f"{self.url}/tasks/{task_id}"


@value
class MetricsConfig:
    """Where metrics are written (config table `[metrics]`)."""

    #: The file written for node_exporter's textfile collector after every tick that ran
    #: something (and every few seconds from `work`); None: none.
    textfile: Path | None = None


@value
class AlertRule:
    """One `[[alerts]]` rule: which tasks and events it covers, and where it sends.

    A channel is each Apprise URL of `notify`, the `command` (the alert's JSON on
    its stdin) and the `webhook` (the alert's JSON POSTed). `cooldown` and
    `repeat` are for whoever decides that an alert fires; `timeout` bounds one
    delivery through all the channels.
    """

    name: str
    scope: Scope = field(default_factory=Scope)  #: `modules` and `except`.
    on: tuple[str, ...] = DEFAULT_ALERT_ON  #: Events among `configfile.ALERT_EVENTS`.
    notify: tuple[str, ...] = ()  #: Apprise URLs.
    command: tuple[str, ...] = ()  #: A program and its arguments; empty: none.
    webhook: str | None = None  #: An http(s) URL.
    cooldown: timedelta | None = None  #: The least time between two alerts of a task and event.
    repeat: timedelta | None = None  #: Send `failed` again while it goes on failing, this often.
    timeout: timedelta = timedelta(seconds=10)  #: The longest a delivery takes.

    def covers(self, module: str, event: str) -> bool:
        """True when this rule sends `event` for a task of module id `module`."""
        return event in self.on and module in self.scope

    @classmethod
    def from_checked(cls, checked: dict[str, Any]) -> AlertRule:
        """A rule from `configfile`'s checked dict of it."""
        values = dict(checked)
        scope = Scope(modules=values.pop("modules", ()), excepts=values.pop("excepts", ()))
        return cls(scope=scope, **values)


@value
class Config:
    """Settings in effect, with defaults for whatever the file did not set."""

    path: Path | None = None  #: The config file read, if any.
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME).absolute())
    #: True when nothing named the home (no --home, TASKCRON_HOME, --config or config
    #: file found) nor a store elsewhere: `./.taskcron` here, the last fallback, holds the
    #: tasks.
    home_by_default: bool = False
    #: The store URL (`sqlite:///...`, resolved to an absolute path); None: `<home>/tasks.db`.
    store: str | None = None
    #: Where `store` came from when not from the config file ("--store" or
    #: "TASKCRON_STORE") and it differs from the file's; None otherwise.
    store_origin: str | None = None
    #: This host's name in leases, pools and log records; None: the node name.
    host: str | None = None
    modules: tuple[str, ...] = ()  #: Python modules to import so their `@task`s register.
    pythonpath: tuple[Path, ...] = ()  #: Directories put on sys.path, after the config's own.
    timezone: str | None = None
    budget: timedelta | None = None  #: A tick's default budget; None means no deadline.
    #: How long past due a recurring task may wait for a run before it is missed, unless
    #: it says (`--missed-after`); None ("0"): never.
    missed_after: timedelta | None = timedelta(minutes=5)
    #: What every tick pings (`[heartbeat]`), so that a cron line that stops is noticed.
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    lease: timedelta = timedelta(seconds=30)
    kill_grace: timedelta = timedelta(seconds=10)
    retry: RetryConfig = field(default_factory=RetryConfig)
    log: LogConfig = field(default_factory=LogConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)  #: Runs kept in the store.
    workers: int = 1  #: The size of `work`'s pool and of a draining tick's.
    #: How often an idle `work` looks for due tasks (on PostgreSQL it also wakes at once
    #: when one is scheduled).
    poll: timedelta = timedelta(seconds=1)
    lanes: Lanes = field(default_factory=Lanes)  #: Widened lanes: module id -> tasks at once.
    max_steps: int = 10_000  #: A job that asks to continue more often than this fails.
    web: WebConfig = field(default_factory=WebConfig)  #: The dashboard's settings.
    alerts: tuple[AlertRule, ...] = ()  #: The `[[alerts]]` rules, in the file's order.
    metrics: MetricsConfig = field(default_factory=MetricsConfig)  #: Metrics' textfile.
    #: What was wrong but not fatal while finding the config (a file skipped as unsafe).
    warnings: tuple[str, ...] = ()

    @property
    def directory(self) -> Path | None:
        """The config file's directory: first on sys.path when importing task code."""
        return None if self.path is None else self.path.parent

    @property
    def import_paths(self) -> tuple[Path, ...]:
        """Directories to put first on sys.path, in order, for task code."""
        first = () if self.directory is None else (self.directory,)
        return first + self.pythonpath


#: What each config key means, by its dotted name (`retry.backoff` is `backoff` in the
#: `[retry]` table); its type and default are the fields' above. The reference's
#: configuration page is generated from this table and those fields.
KEY_DOCS: dict[str, str] = {
    "home": "The directory of the logs, lock files and default store, relative to the "
    "config file; unset: `.taskcron` beside the config file (`./.taskcron` without one). "
    "`--home` and `TASKCRON_HOME` override it.",
    "store": "Where the tasks live, as a URL (`sqlite:///...` or `postgresql://...`); "
    "unset: `<home>/tasks.db`. `--store` and `TASKCRON_STORE` override it.",
    "host": "This host's name in leases, pools, runs and log records; unset: the node "
    "name. `TASKCRON_HOST` overrides it.",
    "modules": "Python modules to import so that their `@task` handlers register.",
    "pythonpath": "Extra `sys.path` directories for task code, after the config file's "
    "own directory.",
    "timezone": "The IANA time zone that cron expressions are read in; unset: the system's.",
    "budget": "A tick's default budget; unset: no deadline. Under `work`, each task's "
    "deadline is its start plus it.",
    "missed_after": "How long past due a recurring task may wait for a run before it is "
    'missed (recorded and alerted once); `"0"`: never. `--missed-after` sets a task\'s own.',
    "heartbeat.url": "The URL every tick pings (`https://hc-ping.com/UUID`), so that a service "
    "outside notices when the cron line stops; unset: no heartbeat. `tick --heartbeat URL` "
    "overrides it (see [Heartbeat and metrics](../guides/monitoring.md)).",
    "heartbeat.style": "Whose convention the pings follow: `healthchecks` (`URL/start`, `URL`, "
    "`URL/fail` or `URL/EXIT_CODE`) or `cronitor` (`URL?state=run`, `complete`, `fail`).",
    "heartbeat.timeout": "The longest a ping takes; the tick never waits for it (it is sent "
    "from a process of its own).",
    "lease": 'How long a running task\'s lease lasts; renewed every third of it; at least `"1s"`.',
    "kill_grace": "Time between SIGTERM and SIGKILL when stopping a task.",
    "retry.backoff": "The wait before the second attempt, doubling per attempt (±20%).",
    "retry.max_backoff": "The longest wait between attempts.",
    "log.level": "The lowest level written to the log store: `debug`, `info`, `warning` "
    "or `error`.",
    "log.max_bytes": "Rotate the log file past this size, in bytes.",
    "log.backups": "Rotated log files kept.",
    "log.retention": "What `prune` removes by default (a unit is required).",
    "log.output_tail": "Bytes of each run's output kept with the run.",
    "history.keep_runs": "The newest runs of each task the store keeps; older ones go as "
    "runs finish (50 at most a finish) and at `prune`. A task's `--keep-runs` overrides "
    "it; `0`: no limit. The newest run of each outcome stays whatever the limits.",
    "history.keep_for": "Runs that started longer ago than this go as runs finish and at "
    '`prune`; a unit is required; `"0s"`: no limit.',
    "workers": "The size of `work`'s pool and of `tick --drain`'s.",
    "poll": "How often an idle `work` looks for due tasks (on PostgreSQL it also wakes at once"
    " when one is scheduled).",
    "lanes": "A table: module id → how many of its tasks run at once, for each module id "
    "in its subtree; the most specific entry wins.",
    "max_steps": "Steps a long job may take before it fails.",
    "web.host": "The address `taskcron web` listens on.",
    "web.port": "The port `taskcron web` listens on.",
    "web.token": "The dashboard's token: sees and acts (`TASKCRON_WEB_TOKEN` overrides it); "
    "at least 16 characters, checked by `taskcron web` alone; unset: a random one at each "
    "start.",
    "web.read_token": "A token that sees but cannot act.",
    "web.stylesheet": "A CSS file served after the dashboard's own, relative to the config file.",
    "web.script": "A JavaScript file served after the dashboard's own, relative to the "
    "config file.",
    "web.session_ttl": "How long a login lasts; a shorter value also ends older sessions at once.",
    "web.max_streams": "Live event streams (`/events`) open at once per session, token or "
    "owner link.",
    "web.url": "The dashboard's public base URL (`https://tasks.example.com`): alerts link "
    "to the task's page under it; unset: alerts carry no link.",
    "web.metrics_token": "A token that reads `/metrics` only (`Authorization: Bearer ...`);"
    " unset: `/metrics` is open when the dashboard listens on the loopback, else refused.",
    "metrics.textfile": "A `.prom` file written for node_exporter's textfile collector after "
    "every tick that ran something, relative to the config file; unset: none (see "
    "[Heartbeat and metrics](../guides/monitoring.md)).",
    "alerts": "Alert rules, each an `[[alerts]]` table: `name`, `modules`, `except`, `on`, "
    "`notify`, `command`, `webhook`, `cooldown`, `repeat`, `timeout` (see "
    "[Alerts and missed runs](../guides/alerts.md)).",
}


def system_timezone() -> str:
    """The IANA name of the system's time zone: $TZ, else /etc/localtime's target, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(str(Path("/etc/localtime").readlink()).partition("zoneinfo/")[2])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    for name in candidates:
        if not name:
            continue
        try:
            zone(name)
        except errors.InputError:
            continue
        return name
    return "UTC"


def load(
    config: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    store: str | None = None,
) -> Config:
    """Read the config file in effect and resolve the home and the store URL.

    `config`, `home` and `store` are the command-line values; None means
    "consult the environment, then the file, then the default".
    """
    found = configfile.read(config, home=home, store=store)
    values = dict(found.values)
    tables = {
        "heartbeat": HeartbeatConfig,
        "retry": RetryConfig,
        "log": LogConfig,
        "web": WebConfig,
        "history": HistoryConfig,
        "metrics": MetricsConfig,
    }
    for key, table in tables.items():
        if key in values:
            values[key] = table(**values[key])
    if "lanes" in values:
        values["lanes"] = Lanes(values["lanes"])
    if "alerts" in values:
        values["alerts"] = tuple(AlertRule.from_checked(rule) for rule in values["alerts"])
    return Config(path=found.path, warnings=found.warnings, **values)


STARTER = """\
# taskcron configuration. Every key is shown with its default; uncomment to change.
# Relative paths are relative to this file. Durations are strings with a unit
# ("90s", "5m", "1h30m") or a number of seconds; sizes are integers of bytes.

# Where the store (tasks.db) and the log store (log/) live.
# The --home option and TASKCRON_HOME override it.
# home = ".taskcron"

# Where the tasks live, as a URL: "sqlite:////var/lib/app/tasks.db" (absolute,
# four slashes) or "sqlite:///tasks.db" (relative to this file). Unset means
# tasks.db in the home. The --store option and TASKCRON_STORE override it.
# A PostgreSQL store, shared by several hosts: "postgresql://user@host/db"
# (keep its password in ~/.pgpass or PGPASSWORD, not here).
# store = "sqlite:///.taskcron/tasks.db"

# This host's name in leases and log records (default: the node name).
# TASKCRON_HOST overrides it.
# host = "worker-1"

# Python modules to import so that their @taskcron.task handlers are registered.
# modules = ["myapp.tasks"]

# Extra directories for sys.path when importing task code. This file's own
# directory always comes first, so a tick started by cron from / finds your code.
# pythonpath = []

# Time zone for cron expressions (an IANA name); the system's when unset.
# timezone = "Europe/Berlin"

# A tick's default budget: the deadline a task sees. Unset means no deadline.
# Under `taskcron work`, each task's deadline is its start plus this.
# budget = "50s"

# A recurring task this long past due with no run started is missed: recorded
# and alerted once ("0": never). `schedule --missed-after` sets a task's own.
# missed_after = "5m"

# How long a running task's lease lasts before another tick may recover it
# (at least 1s).
# lease = "30s"

# How long a task gets after SIGTERM before SIGKILL, when it timed out or its
# tick was stopped by SIGTERM, SIGINT or SIGHUP.
# kill_grace = "10s"

# How many tasks a pool runs at once: `taskcron work`, and `tick --drain`.
# workers = 1

# How often an idle `taskcron work` looks for due tasks (on PostgreSQL it
# also wakes at once when one is scheduled).
# poll = "1s"

# A long job runs in steps (`raise taskcron.Continue()`, or exit 75 for a
# command); one that asks to continue more often than this fails.
# max_steps = 10000

[lanes]
# Every module id is a lane that runs one task at a time, in order. Widen the
# lanes of a subtree here: each module id under "mail" may run 8 tasks at once.
# The most specific entry wins.
# "mail" = 8

[heartbeat]
# Every tick pings this URL (Healthchecks: URL/start before a run, URL after a
# tick that went well, URL/fail or URL/EXIT_CODE after a failed run), so that a
# cron line that stops running is noticed. style = "cronitor" pings URL?state=...
# url = "https://hc-ping.com/your-check-uuid"
# style = "healthchecks"
# timeout = "3s"

[retry]
# The wait before a failed task's next attempt; it doubles per attempt (±20%).
# backoff = "10s"
# max_backoff = "1h"

[web]
# The dashboard, `taskcron web`. Every request needs a token; without one here
# (or in TASKCRON_WEB_TOKEN) a random one is made at each start. A read token
# sees but cannot act. Binding another address than the loopback needs a token.
# host = "127.0.0.1"
# port = 8765
# token = "a long random string"
# read_token = "another long random string"
# stylesheet = "dashboard.css"   # served after the built-in styles
# script = "dashboard.js"        # served after the built-in script
# session_ttl = "12h"            # how long a login lasts
# max_streams = 16               # live streams open at once per session, token or owner link
# url = "https://tasks.example.com"   # the public address: alerts link to task pages
# metrics_token = "a third long random string"   # reads /metrics only

[log]
# level = "info"          # debug, info, warning or error
# max_bytes = 10485760    # rotate the log file at this size
# backups = 5             # rotated files to keep
# retention = "30d"       # what prune removes: finished one-off tasks and old logs
# output_tail = 65536     # bytes of each run's output kept with the run

[history]
# The runs the store keeps of each task; older ones go as runs finish and
# at `prune`.
# The newest run of each outcome (the last failure) always stays.
# keep_runs = 100         # the newest runs of a task (0: no limit); --keep-runs overrides
# keep_for = "30d"        # runs that started longer ago go ("0s": no limit)

[metrics]
# The metrics for node_exporter's textfile collector (--collector.textfile.directory),
# written after every tick that ran something; `taskcron metrics` prints them.
# textfile = "/var/lib/node_exporter/textfile/taskcron.prom"

# Alerts: tell someone when a task fails, recovers or misses its time. One table
# a rule; notify takes Apprise URLs (pip install 'taskcron[alerts]').
# [[alerts]]
# name = "ops"
# modules = ["billing"]                      # default: every module id
# on = ["failed", "recovered", "missed"]     # also "overrun", "interrupted"
# notify = ["slack://TokenA/TokenB/TokenC"]
# command = ["/usr/local/bin/page-me"]       # the alert's JSON on its stdin
# webhook = "https://example.com/hook"       # the alert's JSON, POSTed
# cooldown = "1h"
"""
