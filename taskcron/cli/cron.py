"""`generate-cron`: print, install or uninstall the crontab line that ticks."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from taskcron import render
from taskcron.api import (
    CronEdit,
)
from taskcron.cli.base import (
    cli,
    except_option,
    get_app,
    module_option,
)


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
    "--heartbeat",
    metavar="URL",
    help="Each tick pings URL (tick --heartbeat), so that a monitor notices when the line "
    "stops. [default: config heartbeat.url, read by each tick]",
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
    heartbeat: str | None,
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
    app = get_app(ctx)
    if uninstall:
        edit = app.uninstall_cron(
            modules=modules, excepts=excepts, crontab_file=crontab_file, user=user, dry_run=dry_run
        )
        _report_uninstall(edit, app.home, dry_run=dry_run)
        return
    edit = app.generate_cron(
        modules=modules,
        excepts=excepts,
        every=every,
        cron=cron_expr,
        budget=budget,
        mail=mail,
        drain=drain,
        heartbeat=heartbeat,
        install=install,
        crontab_file=crontab_file,
        user=user,
        dry_run=dry_run,
    )
    if dry_run:
        assert edit.text is not None
        _write_text(edit.text)
        return
    if edit.written:
        render.line(render.cron_installed(edit), file=sys.stderr)
    assert edit.job is not None
    _write_text(edit.job)


def _report_uninstall(edit: CronEdit, home: Path, *, dry_run: bool) -> None:
    if dry_run:
        assert edit.text is not None
        _write_text(edit.text)
    if (edit.removed and not dry_run) or not edit.removed:
        render.line(render.cron_uninstalled(edit, home), file=sys.stderr)


def _write_text(text: str) -> None:
    """Write crontab text to stdout byte-for-byte (it may hold bytes that are not UTF-8)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
    sys.stdout.buffer.flush()
