"""The `taskcron` command: parse, call the API, render. Only this module knows exit codes.

Exit codes: 0 success; 1 an operation failed (a task's run failed, no such
task, the store refused); 2 bad usage or bad input. Every error is one line on
stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from taskcron import __version__, errors, render
from taskcron.api import CronEdit, Status, TaskCron, broken_config_report
from taskcron.configfile import ENV_DEBUG
from taskcron.lifecycle import TickResult
from taskcron.model import State, Task

EXIT_CODES = ((errors.InputError, 2), (errors.TaskcronError, 1))

LIST_PAGE = 100  #: How many tasks `list` shows in its table unless --limit says.

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """Turns taskcron's errors into one line on stderr and the exit code from EXIT_CODES."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.TaskcronError as exc:
            render.error(str(exc), exc=exc, debug=_debug(ctx))
            ctx.exit(next(code for cls, code in EXIT_CODES if isinstance(exc, cls)))
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            ctx.exit(130)
        except BrokenPipeError:
            _reader_gone()
            ctx.exit(141)  # 128 + SIGPIPE, as a shell reports `yes | head`
        except Exception as exc:
            if _debug(ctx):
                raise
            render.error(
                f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"
            )
            ctx.exit(1)


def _reader_gone() -> None:
    """The pipe stdout writes to was closed (`taskcron list | head`): point stdout at
    /dev/null, so that flushing it at exit does not fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug") or root.meta.get("taskcron.debug"))


def _app(ctx: click.Context) -> TaskCron:
    """The TaskCron for this invocation, built on first use (so --help reads no config)."""
    root = ctx.find_root()
    app: TaskCron | None = root.meta.get("taskcron.app")
    if app is None:
        params = root.params
        app = TaskCron(params.get("home"), config=params.get("config"), store=params.get("store"))
        root.meta["taskcron.app"] = app
        root.call_on_close(app.close)
        for warning in app.config.warnings:
            render.warning(warning)
    return app


module_option = click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    metavar="M",
    help="Only module id M and those under M. (repeat, or comma-separate)",
)
except_option = click.option(
    "--except",
    "-x",
    "excepts",
    multiple=True,
    metavar="M",
    help="Leave out module id M and those under M. (repeat, or comma-separate)",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--home",
    metavar="DIR",
    envvar="TASKCRON_HOME",
    help="The directory of the store and logs. [env TASKCRON_HOME; default: from the config, "
    "else ./.taskcron]",
)
@click.option(
    "--config",
    metavar="FILE",
    envvar="TASKCRON_CONFIG",
    help="The config file. [env TASKCRON_CONFIG; default: the nearest taskcron.toml, or "
    "pyproject.toml with [tool.taskcron], here or in a parent directory]",
)
@click.option(
    "--store",
    metavar="URL",
    help="Where the tasks live: sqlite:////abs/path.db, sqlite:///relative.db or "
    "postgresql://user@host/db (the postgres extra). "
    "[env TASKCRON_STORE; default: from the config, else <home>/tasks.db]",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar=ENV_DEBUG,
    help="Show tracebacks on errors (also after the command). [env TASKCRON_DEBUG=1]",
)
@click.version_option(__version__, "--version", prog_name="taskcron")
def cli(home: str | None, config: str | None, store: str | None, debug: bool) -> None:
    """Background and periodic tasks run by cron: one due task per `taskcron tick`.

    Schedule tasks with `taskcron schedule`, add `taskcron tick` to your
    crontab, and watch them with `taskcron list` and `taskcron show`.
    """


@cli.command(short_help="Create the home, the store and a starter taskcron.toml.")
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the home and the store, and a commented starter ./taskcron.toml when no config
    file is found here or in a parent directory. Safe to repeat: an existing config is kept.
    """
    result = _app(ctx).init()
    if result.written is not None:
        render.line(f"wrote {result.written}")
    elif result.config is not None:
        render.line(f"kept {result.config}")
    render.line(f"home {result.home}")
    if _app(ctx).config.store is not None:
        render.line(f"store {result.store}")


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
    "--priority", type=int, default=0, show_default=True, help="Order within its module id."
)
@click.option("--title", metavar="T", help="A human title. [default: the target]")
@click.option("--max-attempts", type=int, default=1, show_default=True, help="Runs before failed.")
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
    from taskcron.syntax import parse_module_id

    parse_module_id(module)
    if sum(x is not None for x in (call, task_name)) + bool(command) != 1:
        raise click.UsageError("give exactly one of --call PATH, --task NAME or -- CMD [ARGS]...")
    if check_target and skip_check:
        raise click.UsageError("give --check or --no-check, not both")
    text = None if data is None else _read_data(data)
    scheduled = _app(ctx).schedule_or_find(
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
        key=key,
        owner=owner,
        check=check_target,
        check_task=not skip_check,
    )
    if as_json:
        render.json_out({**scheduled.task.to_json(), "existing": scheduled.existing})
    else:
        render.line(str(scheduled.task.id))


@cli.command(short_help="Run at most one due task in scope. This is what cron runs.")
@module_option
@except_option
@click.option("--budget", metavar="DUR", help="The deadline tasks see; no task starts after it.")
@click.option(
    "--drain", is_flag=True, help="Go on to the next due task until none is due or the budget ends."
)
@click.option(
    "--max-tasks",
    type=int,
    metavar="N",
    help="With --drain: start at most N tasks. [default: 0, no limit]",
)
@click.option(
    "--workers",
    type=int,
    metavar="N",
    help="Run up to N tasks at once, in lanes; above 1 implies --drain. [default: config "
    "workers, 1]",
)
@click.option(
    "--verbose", "-v", is_flag=True, help="Say what happens (and, at a terminal, show its output)."
)
@json_option
@click.pass_context
def tick(
    ctx: click.Context,
    modules: tuple[str, ...],
    excepts: tuple[str, ...],
    budget: str | None,
    drain: bool,
    max_tasks: int | None,
    workers: int | None,
    verbose: bool,
    as_json: bool,
) -> None:
    """Run at most one due task in scope, then exit. This is what cron runs.

    Prints nothing when all went well (unless -v or --json). Exit 0 when the
    task succeeded, nothing was due, or the scope was busy; exit 1 when the
    task's run failed, with one line on stderr. A tick stopped by SIGTERM,
    SIGINT or SIGHUP records its task's run as interrupted, then dies of the
    same signal (exit 128 + N in a shell).

    With --drain it goes on to the next due task until none is due, the budget
    ends or --max-tasks have started; --json then prints one line per run.
    With --workers N it runs up to N at once, one task per module id unless
    config [lanes] widens it; one such pool serves a scope on a host at a time.
    """
    pooled = drain or (workers is not None and workers != 1)  # a bad size is the API's to refuse
    if max_tasks is not None and not pooled:
        raise click.UsageError("--max-tasks goes with --drain or --workers")
    app = _app(ctx)
    watcher = _Watcher(show_output=sys.stdout.isatty()) if verbose and not as_json else None
    where: dict[str, Any] = {"modules": modules, "excepts": excepts, "budget": budget}
    if pooled:
        pool = app.drain(**where, workers=workers, max_tasks=max_tasks or 0, watcher=watcher)
        failed = _report_runs(pool, as_json=as_json, verbose=verbose)
        signalled = pool.signal
    else:
        result = app.tick(**where, watcher=watcher)
        failed = _report_runs([result], as_json=as_json, verbose=verbose)
        signalled = result.signal
    if signalled is not None:
        ctx.find_root().close()  # close the store before the signal ends the process
        _die_of(signalled)
    if failed:
        ctx.exit(1)


def _report_runs(results: Iterable[TickResult], *, as_json: bool, verbose: bool) -> bool:
    """Print each run's result as it comes: JSON, a summary with -v, a line per failure.

    True when any run failed. A drain's idle or busy line names no task.
    """
    failed = False
    for result in results:
        if as_json:
            render.json_out(result.to_json())
        elif verbose:
            for item in result.recovered:
                task = item.task
                render.line(f"recovered task {task.id} ({task.module}): {item.run.error}")
            for task in result.skipped:
                render.line(_skipped(task))
            render.line(_tick_summary(result))
        failure = result.failure()
        if failure is not None:
            failed = True
            render.error(failure)
    return failed


class _Watcher:
    """`tick -v`: say when the task starts and, at a terminal, show its output as it comes."""

    def __init__(self, *, show_output: bool) -> None:
        self.show_output = show_output

    def started(self, task: Task) -> None:
        render.line(f"running task {task.id} ({task.module}): {render.one_line(task.title)}")

    def output(self, task: Task, stream: str, lines: Sequence[str]) -> None:
        if self.show_output:
            for text in lines:
                render.line(render.one_line(text), file=sys.stdout)


def _ctrl_c_interrupts() -> None:
    """Make Ctrl-C (SIGINT) end a command that waits for it, even when it was started with
    SIGINT ignored (as a shell starts a job in the background): Python then keeps it ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)


def _die_of(number: int) -> None:
    """End the process by signal `number`, as shells and supervisors expect of a stopped job."""
    import os
    import signal

    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)


def _skipped(task: Task) -> str:
    """`tick -v`'s line for a task it passed over, being later than its max lateness."""
    then = f"next due {task.due_at:%Y-%m-%d %H:%M:%S} UTC" if task.state is State.QUEUED else ""
    return f"skipped task {task.id} ({task.module}): later than its max lateness; " + (
        then or f"now {task.state.value}"
    )


def _tick_summary(result: TickResult) -> str:
    task = result.task
    if result.outcome == "idle":
        return "idle: nothing due"
    if result.outcome == "busy":
        if task is None:  # a drain's or a pool's: it names no task
            return "busy: another tick or pool serves this scope"
        return f"busy: task {task.id} ({task.module}) is running"
    assert task is not None, "a run names its task"
    run = task.last_run
    elapsed = "" if run is None or run.elapsed is None else f" in {run.elapsed:.3f}s"
    outcome = "?" if run is None or run.outcome is None else run.outcome.value
    return f"ran task {task.id} ({task.module}): {outcome}{elapsed}"


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
    app = _app(ctx)
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
    upcoming = _app(ctx).upcoming(modules=modules, excepts=excepts, count=count)
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
    app = _app(ctx)

    def read() -> Status:
        return app.status(modules=modules, excepts=excepts)

    if as_json:
        render.json_out(read().to_json())
    elif not watch:
        render.status_report(read())
    else:
        _ctrl_c_interrupts()
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends
            render.watch_status(read)


@cli.command(short_help="Show one task with its runs.")
@click.argument("task_id", metavar="ID", type=int)
@json_option
@click.pass_context
def show(ctx: click.Context, task_id: int, as_json: bool) -> None:
    """Show one task with its runs."""
    task = _app(ctx).get(task_id)
    if as_json:
        render.json_out(task.to_json())
    else:
        render.task_detail(task)


def _action(name: str, verb: str, help_text: str) -> None:
    @cli.command(name=name, help=help_text, short_help=help_text.split(",")[0].rstrip(".") + ".")
    @click.argument("task_id", metavar="ID", type=int)
    @json_option
    @click.pass_context
    def command(ctx: click.Context, task_id: int, as_json: bool) -> None:
        task = getattr(_app(ctx), name.replace("-", "_"))(task_id)
        if as_json:
            render.json_out(task.to_json())
        else:
            render.line(f"task {task.id} {verb}")


@cli.command(short_help="Cancel a queued or paused task, or every one of an owner.")
@click.argument("task_id", metavar="[ID]", type=int, required=False)
@click.option("--owner", metavar="OWNER", help="Cancel every queued or paused task of OWNER.")
@json_option
@click.pass_context
def cancel(ctx: click.Context, task_id: int | None, owner: str | None, as_json: bool) -> None:
    """Cancel a queued or paused task; with --owner, every queued or paused task of OWNER."""
    if (task_id is None) == (owner is None):
        both = "not both" if task_id is not None else "one of them"
        raise click.UsageError(f"give a task ID or --owner OWNER, {both}")
    app = _app(ctx)
    if task_id is not None:
        task = app.cancel(task_id)
        if as_json:
            render.json_out(task.to_json())
        else:
            render.line(f"task {task.id} cancelled")
        return
    assert owner is not None
    cancelled = app.cancel_owned(owner)
    if as_json:
        render.json_out([t.to_json(runs=False) for t in cancelled])
    else:
        render.line(f"cancelled {len(cancelled)} task{'s' * (len(cancelled) != 1)} of {owner}")


_action("retry", "queued again", "Put a failed or cancelled task back in line, attempts reset.")
_action("pause", "paused", "Hold a queued task until `resume`.")
_action("resume", "resumed", "Put a paused task back in line.")
_action("remove", "removed", "Delete a task that is not running, with its runs.")
_action(
    "run-now",
    "due now",
    "Make a queued task due now, at the back of the line; a due one keeps its place.",
)


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
@click.option("--task", "task_id", type=int, metavar="ID", help="Only records of task ID.")
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
    app = _app(ctx)
    wanted: dict[str, Any] = {
        "task": task_id,
        "modules": modules,
        "excepts": excepts,
        "level": level,
        "since": since,
    }
    if follow:
        _ctrl_c_interrupts()
        batches = app.follow_log(count, keep=app.log_filter(**wanted))
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
    DUR; with a PostgreSQL store, the records of its log table older than DUR too.

    DUR needs a unit: a bare number is refused (30 what? e.g. 30d). Never
    touches queued, running or paused tasks. --json prints {"tasks", "runs",
    "log_files", "log_records"} (log_records: null without a log table).
    """
    pruned = _app(ctx).prune(older_than, dry_run=dry_run)
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
        render.line(render.pruned(pruned.tasks, pruned.files, pruned.records, dry_run=dry_run))


@cli.command(short_help="Check the config, code, store, log and crontab.")
@json_option
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Check that this home can work, and say what is broken. Creates nothing.

    Prints the config file and home in use; imports the configured modules
    and lists the task names they register; resolves the target of every
    queued, paused or recurring task; checks the store's integrity and that
    the log directory is writable; and says whether a crontab line for this
    home is installed (reported, not required). Exit 0 when all is well, 1
    when something is broken.
    """
    try:
        report = _app(ctx).check()
    except errors.ConfigError as exc:
        report = broken_config_report(exc)
    if as_json:
        render.json_out(report.to_json())
    else:
        render.check_report(report.checks)
    if not report.ok:
        ctx.exit(1)


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
    ids, schedules, states, data, results and run records, in one transaction; the current
    store is left as it was. Then print the config line that points taskcron at the new store.

    Refused, writing nothing, while any task is running (stop the ticks and workers
    first) or when the new store already holds tasks. Pools are not copied.

    \b
    Examples:
      taskcron migrate-store --to postgresql://app@db.internal/tasks
      taskcron --store sqlite:////srv/app/tasks.db migrate-store --to sqlite:////srv/new/tasks.db
    """
    app = _app(ctx)
    result = app.migrate_store(to)
    if as_json:
        render.json_out(result.to_json())
        return
    tasks, runs = result.tasks, result.runs
    render.line(
        f"copied {tasks} task{'s' * (tasks != 1)} and {runs} run{'s' * (runs != 1)} "
        f"from {result.source} to {result.target}"
    )
    where = "a config file" if app.config.path is None else str(app.config.path)
    render.line(f"to use it, set in {where} (or give --store or TASKCRON_STORE):")
    render.line(result.config_line)
    if result.password_left_out:
        render.line("(the password is left out: keep it in ~/.pgpass or PGPASSWORD)")


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

    app = _app(ctx)
    if owner_link is not None:
        link = app.owner_link(owner_link)
        render.line(dashboard.settings(app, host=host, port=port).url.rstrip("/") + link)
        return
    dashboard.require_extra()
    sock, chosen = dashboard.listen(dashboard.settings(app, host=host, port=port))
    if chosen.generated:
        render.line(f"taskcron web: open {chosen.url}login?token={chosen.token}")
    else:
        render.line(f"taskcron web: open {chosen.url} and log in with the configured token")
    dashboard.serve(app, chosen, sock)


@cli.command(short_help="Run a pool as a long-running process, e.g. a systemd service.")
@module_option
@except_option
@click.option(
    "--workers", type=int, metavar="N", help="Run up to N tasks at once. [default: config workers]"
)
@click.option(
    "--budget",
    metavar="DUR",
    help="Each task's deadline is its start plus DUR (stepwise jobs yield there). "
    "[default: config budget]",
)
@click.option("--verbose", "-v", is_flag=True, help="Say what happens, run by run.")
@json_option
@click.pass_context
def work(
    ctx: click.Context,
    modules: tuple[str, ...],
    excepts: tuple[str, ...],
    workers: int | None,
    budget: str | None,
    verbose: bool,
    as_json: bool,
) -> None:
    """Run due tasks in scope as they fall due, up to N at once in lanes, until stopped.

    When nothing is due it looks again every `poll` (config, default 1s).
    SIGTERM or SIGINT: it stops claiming, lets running tasks finish for up to
    `kill_grace`, then stops them as a tick does (recorded interrupted). Exit
    0 when every running task finished in time; otherwise it dies of the
    signal. One line on stderr per failed run; exit 1 when another pool
    already serves an overlapping scope on this host.
    """
    watcher = _Watcher(show_output=sys.stdout.isatty()) if verbose and not as_json else None
    pool = _app(ctx).work(
        modules=modules, excepts=excepts, workers=workers, budget=budget, watcher=watcher
    )
    _report_runs(pool, as_json=as_json, verbose=verbose)
    if pool.signal is not None and not pool.stopped_in_grace:
        ctx.find_root().close()
        _die_of(pool.signal)


@cli.command(name="generate-cron", short_help="Print or install the crontab line that ticks.")
@module_option
@except_option
@click.option(
    "--every",
    metavar="PERIOD",
    help="Tick every PERIOD: minutes dividing 60 (1m, 5m, 15m, 30m), hours dividing 24 "
    "(1h, 2h, 6h, 12h) or 1d.",
)
@click.option(
    "--cron",
    "cron_expr",
    metavar="EXPR",
    help="Tick on a cron schedule instead: five fields or an @-word, e.g. '*/10 8-18 * * 1-5'.",
)
@click.option(
    "--budget",
    metavar="DUR",
    help="The tick's budget. [default: the period less 10%, at least 5s less; for --cron, the "
    "shortest gap between its next 100 fire times less the same]",
)
@click.option(
    "--drain",
    is_flag=True,
    help="Each tick runs due tasks one after another until its budget ends (tick --drain).",
)
@click.option(
    "--mail",
    is_flag=True,
    help="Leave the output to cron, which mails it, instead of appending it to <home>/cron.log.",
)
@click.option(
    "--install", is_flag=True, help="Put the line into the crontab, replacing this scope's line."
)
@click.option(
    "--uninstall",
    is_flag=True,
    help="Take this home and scope's line out of the crontab (--every/--cron not needed).",
)
@click.option(
    "--crontab-file",
    metavar="FILE",
    help="Edit FILE instead of a user's crontab (with --user, in /etc/cron.d form).",
)
@click.option(
    "--user",
    metavar="USER",
    help="Edit USER's crontab (crontab -u USER); with --crontab-file, run the job as USER.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the crontab as --install (or --uninstall) would leave it, and write nothing.",
)
@click.pass_context
def generate_cron(
    ctx: click.Context,
    modules: tuple[str, ...],
    excepts: tuple[str, ...],
    every: str | None,
    cron_expr: str | None,
    budget: str | None,
    drain: bool,
    mail: bool,
    install: bool,
    uninstall: bool,
    crontab_file: str | None,
    user: str | None,
    dry_run: bool,
) -> None:
    """Print the crontab line that runs `taskcron tick` for this home and scope; or install it.

    The line uses absolute paths (the taskcron script, --home, --config), so it
    works under cron's bare environment, and appends its output to
    <home>/cron.log. A marker comment before it names the home and scope:
    installing again replaces that line, another scope adds a line, and every
    other line of the crontab is kept as it was.

    \b
    Examples:
      taskcron generate-cron --every 1m --install
      taskcron generate-cron --module billing --every 5m --install
      taskcron generate-cron --except billing --cron '*/10 * * * *' --dry-run
      taskcron generate-cron --module billing --uninstall
    """
    if install and uninstall:
        raise click.UsageError("give --install or --uninstall, not both")
    if not uninstall and (every is None) == (cron_expr is None):
        raise click.UsageError("give exactly one of --every PERIOD or --cron EXPR")
    if (crontab_file is not None or user is not None) and not (install or uninstall or dry_run):
        raise click.UsageError(
            "--crontab-file and --user say where to install: add --install, --uninstall or "
            "--dry-run"
        )
    app = _app(ctx)
    where: dict[str, Any] = {
        "modules": modules,
        "excepts": excepts,
        "crontab_file": crontab_file,
        "user": user,
        "dry_run": dry_run,
    }
    if uninstall:
        _report_uninstall(app.uninstall_cron(**where), app.home, dry_run=dry_run)
        return
    edit = app.generate_cron(
        every=every,
        cron=cron_expr,
        budget=budget,
        mail=mail,
        drain=drain,
        install=install,
        **where,
    )
    if dry_run:
        assert edit.text is not None
        _write_text(edit.text)
        return
    if edit.written:
        replaced = " (replacing the previous one)" if edit.removed else ""
        render.line(f"installed in {edit.where}{replaced}", file=sys.stderr)
    assert edit.job is not None
    _write_text(edit.job)


def _report_uninstall(edit: CronEdit, home: Path, *, dry_run: bool) -> None:
    if dry_run:
        assert edit.text is not None
        _write_text(edit.text)
    elif edit.removed:
        render.line(f"removed the taskcron line for home {home} from {edit.where}", file=sys.stderr)
    if not edit.removed:
        render.line(
            f"nothing to uninstall: {edit.where} has no taskcron line for home {home} and "
            f"{edit.scope}",
            file=sys.stderr,
        )


def _write_text(text: str) -> None:
    """Write crontab text to stdout byte-for-byte (it may hold bytes that are not UTF-8)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
    sys.stdout.buffer.flush()


def _accept_debug_anywhere(group: click.Group) -> None:
    """Give every command a hidden --debug, so that it works after the command name too."""

    def remember(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            ctx.find_root().meta["taskcron.debug"] = True

    for command in group.commands.values():
        command.params.append(
            click.Option(
                ["--debug"], is_flag=True, expose_value=False, hidden=True, callback=remember
            )
        )


_accept_debug_anywhere(cli)


class _Warnings(logging.Handler):
    """The core's warnings (a log record, a lease or a process it could not write) as
    `taskcron: warning:` lines. A forked task replaces the root logger's handlers."""

    def emit(self, record: logging.LogRecord) -> None:
        render.warning(record.getMessage())


def main(argv: Sequence[str] | None = None) -> None:
    """The console script. click's usage errors become one line in taskcron's form (exit 2)."""
    root = logging.getLogger()
    if not any(isinstance(handler, _Warnings) for handler in root.handlers):
        root.addHandler(_Warnings(logging.WARNING))
    try:
        code = cli.main(args=argv, prog_name=render.PROG, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        render.line(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(2)
    except click.ClickException as exc:
        render.error(exc.format_message())
        sys.exit(exc.exit_code)
    except click.Abort:
        render.error("aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
