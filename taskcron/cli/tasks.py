"""The commands on tasks: schedule, list, next, status, show, and the actions."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from taskcron import errors, render
from taskcron.api import (
    ACTIONS,
    SHOWN_RUNS,
    Action,
    Status,
    parse_module_id,
    parse_runs,
)
from taskcron.cli.base import (
    INTEGER,
    cli,
    ctrl_c_interrupts,
    except_option,
    get_app,
    json_option,
    module_option,
)

LIST_PAGE = 100  #: How many tasks `list` shows in its table unless --limit says.


def _read_data(value: str) -> str:
    if value == "-":
        raw = sys.stdin.buffer.read()
        where = "standard input"
    elif value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise errors.DataError(f"cannot read data file {str(path)!r}: {exc.strerror}") from None
        where = str(path)
    else:
        return value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.DataError(f"data from {where} is not UTF-8: {exc.reason}") from None


@cli.command(short_help="Add a task for a module id and print its id.")
@click.argument("module")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD [ARGS]...]")
@click.option("--call", metavar="PATH", help="Run a Python callable: package.module:function.")
@click.option("--task", "task_name", metavar="NAME", help="Run a handler registered with @task.")
@click.option(
    "--data",
    metavar="JSON|@FILE|-",
    help="The task's data: JSON text, @file.json, or - for standard input.",
)
@click.option(
    "--priority", type=INTEGER, default=0, show_default=True, help="Order within its module id."
)
@click.option("--title", metavar="T", help="A human title. [default: the target]")
@click.option(
    "--max-attempts", type=INTEGER, default=1, show_default=True, help="Runs before failed."
)
@click.option("--timeout", metavar="DUR", help="Kill a run after DUR (e.g. 90s, 5m).")
@click.option("--cron", metavar="EXPR", help="Recur by a cron expression (5 fields or @daily...).")
@click.option("--every", metavar="DUR", help="Recur DUR after each run ends (e.g. 5m, 2h, 1d).")
@click.option(
    "--tz", metavar="ZONE", help="Time zone of --cron and --at. [default: config, system]"
)
@click.option("--in", "delay", metavar="DUR", help="First due after DUR.")
@click.option("--at", metavar="TIME", help="First due at TIME (ISO 8601).")
@click.option("--max-lateness", metavar="DUR", help="Skip a run that is later than DUR.")
@click.option(
    "--missed-after",
    metavar="DUR",
    help="A recurring task DUR past due with no run started is missed: recorded and "
    "alerted once (0: never). [default: config missed_after, 5m]",
)
@click.option(
    "--keep-runs",
    type=click.IntRange(min=0),
    metavar="N",
    help="Keep its newest N runs in the store (0: no limit). [default: config history.keep_runs]",
)
@click.option(
    "--key",
    metavar="KEY",
    help="Keep the queued, running or paused task of this module and key, if any, as it is "
    "(a warning says where it differs), and print its id.",
)
@click.option("--owner", metavar="ID", help="Who the task belongs to: a session, user or tenant.")
@click.option(
    "--check",
    "check_target",
    is_flag=True,
    help="Refuse a target that does not resolve now (import, registered name, program).",
)
@click.option(
    "--no-check",
    "skip_check",
    is_flag=True,
    help="Do not check that a --task NAME is registered by the configured modules.",
)
@json_option
@click.pass_context
def schedule(
    ctx: click.Context,
    module: str,
    command: Sequence[str],
    call: str | None,
    task_name: str | None,
    data: str | None,
    priority: int,
    title: str | None,
    max_attempts: int,
    timeout: str | None,
    cron: str | None,
    every: str | None,
    tz: str | None,
    delay: str | None,
    at: str | None,
    max_lateness: str | None,
    missed_after: str | None,
    keep_runs: int | None,
    key: str | None,
    owner: str | None,
    check_target: bool,
    skip_check: bool,
    as_json: bool,
) -> None:
    """Add a task for MODULE (a dotted module id) and print its id.

    A --task NAME must be registered by the config's modules or an entry
    point (--no-check skips this); a --call path is checked for its form only,
    unless --check imports it. With --key, a task of MODULE and KEY that is
    queued, running or paused is kept as it is and its id printed; a warning
    names the fields in which it differs from this request.

    \b
    Examples:
      taskcron schedule billing.invoices --call myapp.billing:send --data '{"day": 1}'
      taskcron schedule reports --task weekly_report --cron "0 6 * * mon" --tz Europe/Berlin
      taskcron schedule backups --every 1d -- /usr/local/bin/backup --full
      taskcron schedule mail --in 10m --key welcome-42 --task send_welcome
    """
    parse_module_id(module)
    if sum(x is not None for x in (call, task_name)) + bool(command) != 1:
        raise click.UsageError("give exactly one of --call PATH, --task NAME or -- CMD [ARGS]...")
    if check_target and skip_check:
        raise click.UsageError("give --check or --no-check, not both")
    text = None if data is None else _read_data(data)
    scheduled = get_app(ctx).schedule_or_find(
        module,
        call=call,
        task=task_name,
        command=command or None,
        data_json=text,
        priority=priority,
        title=title,
        max_attempts=max_attempts,
        timeout=timeout,
        cron=cron,
        every=every,
        tz=tz,
        at=at,
        delay=delay,
        max_lateness=max_lateness,
        missed_after=missed_after,
        keep_runs=keep_runs,
        key=key,
        owner=owner,
        check=check_target,
        check_task=not skip_check,
    )
    if as_json:
        render.json_out({**scheduled.task.to_json(), "existing": scheduled.existing})
    else:
        render.line(str(scheduled.task.id))


@cli.command(name="list", short_help="List tasks in line order.")
@module_option
@except_option
@click.option("--state", metavar="S", help="Only tasks in state S (queued, running, done, ...).")
@click.option("--all", "show_all", is_flag=True, help="Include done and cancelled tasks.")
@click.option("--owner", metavar="ID", help="Only the tasks of owner ID.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    metavar="N",
    help=f"Show the first N tasks; 0 for all. [default: {LIST_PAGE} in the table, all with --json]",
)
@json_option
@click.pass_context
def list_(
    ctx: click.Context,
    modules: tuple[str, ...],
    excepts: tuple[str, ...],
    state: str | None,
    show_all: bool,
    owner: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List tasks in line order: queued, running, paused and failed ones by default.

    The table shows a page, and says how many more there are; --json prints
    every task unless --limit is given.
    """
    app = get_app(ctx)
    if as_json:
        page = None if limit == 0 else limit
        tasks = app.list(
            modules=modules, excepts=excepts, state=state, all=show_all, owner=owner, limit=page
        )
        render.json_out([t.to_json(runs=False) for t in tasks])
        return
    tasks = app.list(modules=modules, excepts=excepts, state=state, all=show_all, owner=owner)
    shown = LIST_PAGE if limit is None else limit or len(tasks)
    render.task_table(tasks[:shown], more=max(len(tasks) - shown, 0))


@cli.command(name="next", short_help="List the upcoming due times of queued tasks.")
@module_option
@except_option
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many due times to list, at most 10000.",
)
@json_option
@click.pass_context
def next_(
    ctx: click.Context,
    modules: tuple[str, ...],
    excepts: tuple[str, ...],
    count: int,
    as_json: bool,
) -> None:
    """List the upcoming due times of queued tasks in scope, soonest first.

    A recurring task appears once per fire time (as if each run took no time).
    """
    upcoming = get_app(ctx).upcoming(modules=modules, excepts=excepts, count=count)
    if as_json:
        render.json_out(
            [{**task.to_json(runs=False), "due_at": due.isoformat()} for due, task in upcoming]
        )
    else:
        render.upcoming_table(upcoming)


@cli.command(short_help="Show tasks by module, what runs, what is next and what failed.")
@module_option
@except_option
@click.option(
    "--watch", is_flag=True, help="Redraw it in place twice a second until Ctrl-C (a terminal)."
)
@json_option
@click.pass_context
def status(
    ctx: click.Context,
    modules: tuple[str, ...],
    excepts: tuple[str, ...],
    watch: bool,
    as_json: bool,
) -> None:
    """Show the tasks in scope at a glance: how many each module id has in each state, the
    running tasks (progress; `step`, the current run's elapsed time, and `job`, the wall time
    since the job's first step started; host), the next due tasks and the last failures.

    At a terminal it draws panels; piped or with NO_COLOR, plain text. --watch redraws
    it in place until Ctrl-C (it needs a terminal). Creates nothing.
    """
    if watch and as_json:
        raise click.UsageError("--watch draws for people: give --watch or --json, not both")
    if watch and not sys.stdout.isatty():
        raise click.UsageError("--watch redraws a terminal, and stdout is not one")
    app = get_app(ctx)

    def read() -> Status:
        return app.status(modules=modules, excepts=excepts)

    if as_json:
        render.json_out(read().to_json())
        return
    from taskcron.render import status as screen

    if not watch:
        screen.status_report(read())
    else:
        ctrl_c_interrupts()
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends
            screen.watch_status(read)


@cli.command(short_help="Show one task with its runs.")
@click.argument("task_id", metavar="ID", type=INTEGER)
@click.option(
    "--runs",
    "shown",
    metavar="N|all",
    default=str(SHOWN_RUNS),
    show_default=True,
    help="Show its newest N runs, or all of them.",
)
@json_option
@click.pass_context
def show(ctx: click.Context, task_id: int, shown: str, as_json: bool) -> None:
    """Show one task with its newest runs, and how many ran in all by outcome."""
    task = get_app(ctx).get(task_id, runs=parse_runs(shown))
    if as_json:
        render.json_out(task.to_json())
    else:
        render.task_detail(task)


def _action(action: Action) -> None:
    short = action.help.split(",")[0].rstrip(".") + "."

    @cli.command(name=action.name, help=action.help, short_help=short)
    @click.argument("task_id", metavar="ID", type=INTEGER)
    @json_option
    @click.pass_context
    def command(ctx: click.Context, task_id: int, as_json: bool) -> None:
        task = get_app(ctx).act(action.name, task_id)
        if as_json:
            render.json_out(task.to_json())
        else:
            render.line(render.acted(task, action.done))


@cli.command(short_help="Cancel a queued or paused task, or every one of an owner.")
@click.argument("task_id", metavar="[ID]", type=INTEGER, required=False)
@click.option("--owner", metavar="OWNER", help="Cancel every queued or paused task of OWNER.")
@json_option
@click.pass_context
def cancel(ctx: click.Context, task_id: int | None, owner: str | None, as_json: bool) -> None:
    """Cancel a queued or paused task; with --owner, every queued or paused task of OWNER."""
    if (task_id is None) == (owner is None):
        both = "not both" if task_id is not None else "one of them"
        raise click.UsageError(f"give a task ID or --owner OWNER, {both}")
    app = get_app(ctx)
    if task_id is not None:
        task = app.cancel(task_id)
        if as_json:
            render.json_out(task.to_json())
        else:
            render.line(render.acted(task, ACTIONS["cancel"].done))
        return
    assert owner is not None
    cancelled = app.cancel_owned(owner)
    if as_json:
        render.json_out([t.to_json(runs=False) for t in cancelled])
    else:
        render.line(render.cancelled_owned(cancelled, owner))


for _name in ("retry", "pause", "resume", "remove", "run-now"):  # cancel has --owner too
    _action(ACTIONS[_name])
