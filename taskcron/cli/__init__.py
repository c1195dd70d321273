"""The `taskcron` command: parse, call the API, render. Only this package knows exit codes.

Each module holds a family of commands; importing them here adds them to the group.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click

from taskcron import render
from taskcron.cli import admin, cron, tasks, ticks  # noqa: F401 - each adds its commands
from taskcron.cli.base import EXIT_CODES, cli

__all__ = ["EXIT_CODES", "cli", "main"]


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
