"""The commands that run tasks: `tick` (what cron runs) and `work` (a long-running pool)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

import click

from taskcron import render
from taskcron.api import (
    Task,
    TickResult,
)
from taskcron.cli.base import (
    INTEGER,
    cli,
    die_of,
    except_option,
    get_app,
    json_option,
    module_option,
    saying_outages,
)


@cli.command(short_help="Run at most one due task in scope. This is what cron runs.")
@module_option
@except_option
@click.option("--budget", metavar="DUR", help="The deadline tasks see; no task starts after it.")
@click.option(
    "--drain", is_flag=True, help="Go on to the next due task until none is due or the budget ends."
)
@click.option(
    "--max-tasks",
    type=INTEGER,
    metavar="N",
    help="With --drain: start at most N tasks. [default: 0, no limit]",
)
@click.option(
    "--workers",
    type=INTEGER,
    metavar="N",
    help="Run up to N tasks at once, in lanes; above 1 implies --drain. [default: config "
    "workers, 1]",
)
@click.option(
    "--heartbeat",
    metavar="URL",
    help="Ping URL as the tick goes (URL/start, URL, URL/fail), so that a monitor notices when "
    "this line stops. [default: config heartbeat.url]",
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
    heartbeat: str | None,
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

    With --heartbeat URL (or config [heartbeat]) every tick pings URL from a
    process of its own, never waiting for it: URL/start before a run, then URL,
    or URL/fail (URL/EXIT_CODE) after a failed one; a failed ping is a
    heartbeat.failed record in the log.
    """
    app = get_app(ctx)
    watcher = _Watcher(show_output=sys.stdout.isatty()) if verbose and not as_json else None
    ticks = app.ticks(
        modules=modules,
        excepts=excepts,
        budget=budget,
        drain=drain,
        workers=workers,
        max_tasks=max_tasks,
        watcher=watcher,
        heartbeat=heartbeat,
    )
    failed = _report_runs(ticks, as_json=as_json, verbose=verbose)
    signalled = ticks.signal
    if signalled is not None:
        ctx.find_root().close()  # close the store before the signal ends the process
        die_of(signalled)
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
                render.line(render.recovered(item))
            for task in result.skipped:
                render.line(render.skipped(task))
            render.line(render.tick_summary(result))
        failure = render.tick_failure(result)
        if failure is not None:
            failed = True
            render.error(failure)
    return failed


class _Watcher:
    """`tick -v`: say when the task starts and, at a terminal, show its output as it comes."""

    def __init__(self, *, show_output: bool) -> None:
        self.show_output = show_output

    def started(self, task: Task) -> None:
        render.line(render.tick_started(task))

    def output(self, task: Task, stream: str, lines: Sequence[str]) -> None:
        if self.show_output:
            for text in lines:
                render.line(render.one_line(text), file=sys.stdout)


@cli.command(short_help="Run a pool as a long-running process, e.g. a systemd service.")
@module_option
@except_option
@click.option(
    "--workers",
    type=INTEGER,
    metavar="N",
    help="Run up to N tasks at once. [default: config workers]",
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
    already serves an overlapping scope on this host. While the store cannot
    be reached it goes on, and says so once on stderr (and once when it is back).
    """
    watcher = _Watcher(show_output=sys.stdout.isatty()) if verbose and not as_json else None
    pool = get_app(ctx).work(
        modules=modules,
        excepts=excepts,
        workers=workers,
        budget=budget,
        watcher=watcher,
        say=saying_outages(get_app(ctx), logged=False),
    )
    _report_runs(pool, as_json=as_json, verbose=verbose)
    if pool.signal is not None and not pool.stopped_in_grace:
        ctx.find_root().close()
        die_of(pool.signal)
