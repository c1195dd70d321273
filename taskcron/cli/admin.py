"""The commands on a home: init, log, prune, check, alerts, metrics, migrate-store and the
dashboard."""

from __future__ import annotations

import sys

import click

from taskcron import errors, render
from taskcron.api import (
    LogWhere,
    alerts_test,
    broken_config_report,
    metrics_text,
)
from taskcron.cli.base import (
    INTEGER,
    cli,
    ctrl_c_interrupts,
    except_option,
    get_app,
    json_option,
    module_option,
    saying_outages,
)


@cli.command(short_help="Create the home, the store and a starter taskcron.toml.")
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the home and the store, and a commented starter ./taskcron.toml when no config
    file is found here or in a parent directory. Safe to repeat: an existing config is kept.
    """
    app = get_app(ctx)
    result = app.init()
    for said in render.initialized(result, store_configured=app.config.store is not None):
        render.line(said)


@cli.command(short_help="Print the last log records; -f keeps following.")
@click.option(
    "-n",
    "--lines",
    "count",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many records to print.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new records until interrupted.")
@click.option("--task", "task_id", type=INTEGER, metavar="ID", help="Only records of task ID.")
@module_option
@except_option
@click.option("--level", metavar="LEVEL", help="Minimum level: debug, info, warning, error.")
@click.option(
    "--since", metavar="DUR|TIME", help="Only records since DUR ago (1h) or TIME (ISO 8601)."
)
@json_option
@click.pass_context
def log(
    ctx: click.Context,
    count: int,
    follow: bool,
    task_id: int | None,
    modules: tuple[str, ...],
    excepts: tuple[str, ...],
    level: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """Print the last N log records, oldest first; with -f, keep following them.

    Records are JSON Lines in <home>/log/taskcron.jsonl (rotated to .1, .2, ...),
    so `tail -F` works too. With a PostgreSQL store, the records of every host
    sharing it are read from its log table, each line naming its host.
    """
    app = get_app(ctx)
    wanted = LogWhere(task=task_id, modules=modules, excepts=excepts, level=level, since=since)
    if follow:
        ctrl_c_interrupts()
        say = saying_outages(app, logged=False)
        batches = app.follow_log(count, keep=app.log_filter(**wanted), say=say)
    else:
        batches = iter([app.log(count, **wanted)])
    con = None if as_json else render.console()
    hosts = None if app.shared_log is None else 0  # the width of the host column
    try:
        for batch in batches:
            if hosts is not None:
                hosts = render.host_width(batch, hosts)
            for rec in batch:
                if con is None:
                    render.json_out(rec)
                else:
                    render.log_record(rec, out=con, host_width=hosts)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): nothing more to say


@cli.command(short_help="Remove old finished tasks and rotated log files.")
@click.option(
    "--older-than",
    metavar="DUR",
    help="Age to remove, with its unit (30d, 12h). [default: log.retention, 30d]",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@json_option
@click.pass_context
def prune(ctx: click.Context, older_than: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove finished one-off tasks (and their runs) and rotated log files older than
    DUR; with a PostgreSQL store, the records of its log table older than DUR too. Trim
    every other task's runs to the config's [history] limits (its --keep-runs), all at
    once: the newest run of each outcome stays.

    DUR needs a unit: a bare number is refused (30 what? e.g. 30d). Never
    touches queued, running or paused tasks. --json prints {"tasks", "runs",
    "log_files", "log_records"} (log_records: null without a log table).
    """
    pruned = get_app(ctx).prune(older_than, dry_run=dry_run)
    if as_json:
        render.json_out(
            {
                "tasks": pruned.tasks,
                "runs": pruned.runs,
                "log_files": pruned.files,
                "log_records": pruned.records,
            }
        )
    else:
        render.line(
            render.pruned(pruned.tasks, pruned.runs, pruned.files, pruned.records, dry_run=dry_run)
        )


@cli.command(short_help="Check the config, code, store, log and crontab.")
@click.option(
    "--max-tick-age",
    metavar="DUR",
    help="Also broken when no tick of the scope (--module, --except) has run on this host "
    "within DUR.",
)
@module_option
@except_option
@json_option
@click.pass_context
def check(
    ctx: click.Context,
    max_tick_age: str | None,
    modules: tuple[str, ...],
    excepts: tuple[str, ...],
    as_json: bool,
) -> None:
    """Check that this home can work, and say what is broken. Creates nothing.

    Prints the config file and home in use; imports the configured modules
    and lists the task names they register; resolves the target of every
    queued, paused or recurring task; checks the store's integrity and that
    the log directory is writable; and says whether a crontab line for this
    home is installed (reported, not required). Exit 0 when all is well, 1
    when something is broken.

    With --max-tick-age DUR (for monitoring systems that run commands), it is
    also broken when no tick of the scope has run on this host within DUR:
    `check --max-tick-age 5m -m billing` watches the line `tick -m billing`.
    """
    if (modules or excepts) and max_tick_age is None:
        raise click.UsageError("--module and --except name the scope of --max-tick-age")
    try:
        report = get_app(ctx).check(max_tick_age=max_tick_age, modules=modules, excepts=excepts)
    except errors.ConfigError as exc:
        report = broken_config_report(exc)
    if as_json:
        render.json_out(report.to_json())
    else:
        render.check_report(report.checks)
    if not report.ok:
        ctx.exit(1)


@cli.group(short_help="The config's alert rules: send a test alert.")
def alerts() -> None:
    """The config's alert rules ([[alerts]]): what tells someone when a task fails,
    recovers, misses its time, overruns or is interrupted."""


@alerts.command(name="test", short_help="Send a sample alert through each channel of a rule.")
@click.argument("name", required=False)
@json_option
@click.pass_context
def alerts_test_command(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Send a sample alert (its JSON says "test": true) through every channel of the
    alert rule NAME, or of every rule, and say what each channel answered.

    The channels of a rule are tried at once, each within the rule's timeout.
    Exit 0 when every channel took the alert, 1 when one failed. --json prints
    one object a channel: {"rule", "channel", "ok", "detail", "elapsed"}.
    """
    answers = alerts_test(get_app(ctx), name)
    if as_json:
        for answer in answers:
            render.json_out(answer.to_json())
    else:
        render.alert_answers(answers)
    if not all(answer.ok for answer in answers):
        ctx.exit(1)


@cli.command(short_help="Print the metrics, in the OpenMetrics text format.")
@click.pass_context
def metrics(ctx: click.Context) -> None:
    """Print the metrics in the OpenMetrics text format, as the dashboard's /metrics
    serves them: runs by module id and outcome, their durations, tasks by state, the
    oldest due task's wait, missed runs, alerts, each recurring task's last success and
    next due time, and when a tick of each scope last ran on this host.

    Every value is read from the store's counters, so it is the same from any process
    and any host sharing the store (the tick times aside: they are this host's).
    config [metrics] textfile has them written for node_exporter after every tick
    that ran something.
    """
    render.line(metrics_text(get_app(ctx)).rstrip("\n"))


@cli.command(name="migrate-store", short_help="Copy every task and run into a new, empty store.")
@click.option(
    "--to",
    metavar="URL",
    required=True,
    help="The empty store to copy into: postgresql://user@host/db, sqlite:////abs/path.db, ...",
)
@json_option
@click.pass_context
def migrate_store(ctx: click.Context, to: str, as_json: bool) -> None:
    """Copy every task and run of the current store into the empty store at URL, keeping
    ids, schedules, states, data, results and run records, with the runs counted and the
    log, in one transaction; the current store is left as it was. Then print the config
    line that points taskcron at the new store.

    The log goes into a PostgreSQL target's log table: a PostgreSQL store's log table,
    else this home's log files. A SQLite target keeps no log table: a PostgreSQL
    store's log stays there (each home keeps its own records in its log files).

    Refused, writing nothing, while any task is running (stop the ticks and workers
    first) or when the new store already holds tasks. Pools are not copied.

    \b
    Examples:
      taskcron migrate-store --to postgresql://app@db.internal/tasks
      taskcron --store sqlite:////srv/app/tasks.db migrate-store --to sqlite:////srv/new/tasks.db
    """
    app = get_app(ctx)
    result = app.migrate_store(to)
    if as_json:
        render.json_out(result.to_json())
        return
    for said in render.migrated(result, app.config.path):
        render.line(said)


@cli.command(short_help="Serve the web dashboard: live progress, the log and actions.")
@click.option(
    "--host", metavar="ADDR", help="The address to listen on. [default: config web.host, 127.0.0.1]"
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    metavar="N",
    help="The port to listen on; 0 picks a free one. [default: config web.port, 8765]",
)
@click.option(
    "--owner-link",
    metavar="OWNER",
    help="Print the read-only link to OWNER's tasks (signed with the token) and exit.",
)
@click.pass_context
def web(ctx: click.Context, host: str | None, port: int | None, owner_link: str | None) -> None:
    """Serve the web dashboard until Ctrl-C or SIGTERM: the overview, tasks, one task with its
    runs, and the log, updated live, with retry, cancel, pause, resume, remove and run now.
    It needs the web extra: pip install 'taskcron[web]'.

    Every request needs the token (config web.token or TASKCRON_WEB_TOKEN; without one a
    random one is made and printed with the URL to open); web.read_token sees but cannot
    act. It listens on 127.0.0.1 unless --host or web.host says otherwise, and another
    address needs a configured token.
    """
    from taskcron import web as dashboard

    app = get_app(ctx)
    if owner_link is not None:
        link = app.owner_link(owner_link)
        render.line(dashboard.settings(app, host=host, port=port).url.rstrip("/") + link)
        return
    dashboard.require_extra()
    sock, chosen = dashboard.listen(dashboard.settings(app, host=host, port=port))
    render.line(render.dashboard_open(chosen.url, chosen.token if chosen.generated else None))
    dashboard.serve(app, chosen, sock, say=saying_outages(app))
