"""The `taskcron` group and what every command shares: its options, the TaskCron of
an invocation, and how errors become one line and an exit code.

Exit codes: 0 success; 1 an operation failed (a task's run failed, no such
task, the store refused); 2 bad usage or bad input. Every error is one line on
stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from taskcron import __version__, errors, render
from taskcron.api import (
    ENV_DEBUG,
    TaskCron,
)

EXIT_CODES = ((errors.InputError, 2), (errors.TaskcronError, 1))


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


def get_app(ctx: click.Context) -> TaskCron:
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


class Integer(click.types.IntParamType):
    """click's integer, except that a number too long to read (Python reads at most 4300
    digits) is refused by its first digits and its length, not echoed whole."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        digits = str(value).strip().lstrip("+-")
        if digits.isdigit() and len(digits) > 4000:
            self.fail(f"{digits[:21]}... ({len(digits)} digits): out of range", param, ctx)
        return super().convert(value, param, ctx)


INTEGER = Integer()


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


def ctrl_c_interrupts() -> None:
    """Make Ctrl-C (SIGINT) end a command that waits for it, even when it was started with
    SIGINT ignored (as a shell starts a job in the background): Python then keeps it ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)


def die_of(number: int) -> None:
    """End the process by signal `number`, as shells and supervisors expect of a stopped job."""
    import os
    import signal

    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)


def saying_outages(app: TaskCron, *, logged: bool = True) -> Callable[[bool, str], None]:
    """A `taskcron.outage.Say` for a long-lived command: one line on stderr (the store
    lost: a warning) and, if `logged`, the same record in the log."""

    def say(lost: bool, message: str) -> None:
        if lost:
            render.warning(message)
        else:
            render.notice(message)
        if logged:
            app.recorder.say(lost, message)

    return say
