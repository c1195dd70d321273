"""The heartbeat: every tick pings a URL outside, so that whoever expects the pings
(Healthchecks, Cronitor) notices when a cron line stops running.

Which URL a ping goes to follows the service's convention, chosen by config
`heartbeat.style` (`ping_url`):

    ping       healthchecks                  cronitor
    start      URL/start                     URL?state=run
    success    URL                           URL?state=complete
    fail       URL/EXIT_CODE, else URL/fail  URL?state=fail

`send` pings from a detached process: a double fork (the tick waits only for
the first fork to exit, at once), a new session, stdio on /dev/null, and an
exec of Python running `taskcron.heartbeat.__main__`, so that
no descriptor of the tick stays open in it and nothing of the tick's
threads or locks runs there. That process pings within the timeout and, when
the ping fails, appends a `heartbeat.failed` record to the home's log; it never
writes to stderr, which cron would mail every minute.

Light on purpose: an idle tick with a heartbeat imports it before the rest of
taskcron loads (see `taskcron.__main__`). It imports nothing of taskcron but its
errors, and of the standard library only what the idle tick has loaded already,
and `json` to send a ping.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskcron import errors

#: The pings: before a run, after a tick that went well, after one whose run failed.
START, SUCCESS, FAIL = "start", "success", "fail"
#: Cronitor's `state` of each ping.
_CRONITOR = {START: "run", SUCCESS: "complete", FAIL: "fail"}
#: Hands a ping to the process that sends it: the environment, which only its user can
#: read, rather than argv, which `ps` shows to everyone.
ENV_PING = "TASKCRON_HEARTBEAT_PING"
#: The number of the one descriptor the sending process keeps (see `send`'s `after`).
ENV_KEPT = "TASKCRON_HEARTBEAT_FD"
#: What the sending process runs: `taskcron.heartbeat.__main__`, from the directory that
#: holds this taskcron.
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv.pop(1));"
    " from taskcron.heartbeat.__main__ import main; main()"
)


def ping_url(
    url: str, ping: str, *, style: str = "healthchecks", exit_code: int | None = None
) -> str:
    """The URL of `ping` (`START`, `SUCCESS` or `FAIL`) by the convention of `style`
    (`configfile.HEARTBEAT_STYLES`).

    Healthchecks: a failed run's exit code (1 to 255) says it failed, and
    more; any other failure is `/fail`. A query in `url` is kept after the path.
    """
    if style == "cronitor":
        return f"{url}{'&' if '?' in url else '?'}state={_CRONITOR[ping]}"
    if ping == SUCCESS:
        return url
    if ping == FAIL and exit_code is not None and 0 < exit_code < 256:
        ping = str(exit_code)
    path, mark, query = url.partition("?")
    return f"{path.rstrip('/')}/{ping}{mark}{query}"


def check_url(url: str, where: str = "heartbeat URL") -> str:
    """`url` if it is an http:// or https:// URL with a host and no spaces or control
    characters, else an `InputError` naming `where`."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0]
    if (
        scheme.lower() not in ("http", "https")
        or not host
        or not url.isprintable()
        or any(c.isspace() for c in url)
    ):
        raise errors.InputError(
            f"invalid {where} {url!r}: expected an http:// or https:// URL, such as"
            " https://hc-ping.com/UUID"
        )
    return url


def send(
    url: str,
    ping: str,
    *,
    home: str | os.PathLike[str],
    exit_code: int | None = None,
    style: str | None = None,
    timeout: float | None = None,
    host: str | None = None,
    log: Mapping[str, Any] | None = None,
    after: int | None = None,
) -> int | None:
    """Ping `url` (`ping_url`) from a detached process, and return at once.

    That process takes at most `timeout` seconds (None: the config's default);
    a failed ping is a `heartbeat.failed` record in `home`'s log, written with
    `log` (the log store's `level`, `max_bytes` and `backups`, those missing as
    their defaults) and naming `host` (None: the node name).

    Pings must reach the service in order, and a short run ends before its
    `start` is sent: `send(START)` returns a descriptor that comes to its end
    once that ping is done. Passed as `after` to the next ping (which closes
    it), that one waits for it first, at most the same timeout.
    """
    import json

    shown = {key: log[key] for key in ("level", "max_bytes", "backups") if log and key in log}
    payload = {
        "url": ping_url(url, ping, style=style or "healthchecks", exit_code=exit_code),
        "ping": ping,
        "timeout": timeout,
        "log": str(Path(home) / "log"),
        "settings": shown,
        "host": host,
        "after": after is not None,
    }
    root = str(Path(__file__).absolute().parents[2])
    # Isolated (-I): neither the current directory nor PYTHON* settings change what it
    # imports; this very taskcron comes first.
    argv = [sys.executable, "-I", "-c", _BOOT, root]
    env = {**os.environ, ENV_PING: json.dumps(payload)}
    if ping != START:
        try:
            spawn(argv, env, keep=after)
        finally:
            if after is not None:
                os.close(after)
        return None
    done, held = os.pipe()  # the sender holds `held` until it exits: `done` then ends
    try:
        spawn(argv, env, keep=held)
    finally:
        os.close(held)
    return done


def spawn(argv: list[str], env: dict[str, str], *, keep: int | None = None) -> None:
    """Start `argv` detached: not a child of this process (never a zombie of it), in a
    session of its own, with stdio on /dev/null and no other descriptor of ours but
    `keep` (its number in `ENV_KEPT`). Waits only for the intermediate process, which
    exits as soon as it has forked."""
    if not argv[0]:
        return  # no interpreter to run it with (an embedded Python): no ping
    try:
        pid = os.fork()
    except OSError:
        return
    if pid == 0:
        _detach(argv, env, keep)  # never returns
    try:  # noqa: SIM105 (contextlib is not loaded on the idle path)
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # reaped by someone else already


def _detach(argv: list[str], env: dict[str, str], keep: int | None) -> None:
    """In the intermediate process: a new session, a grandchild that execs `argv`, exit."""
    try:
        os.setsid()
        if os.fork() == 0:
            import fcntl

            last = _max_fd()
            if keep is not None:
                keep = fcntl.fcntl(keep, fcntl.F_DUPFD, 3)  # clear of stdio
                os.set_inheritable(keep, True)
                env = {**env, ENV_KEPT: str(keep)}
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            if keep is None:
                os.closerange(3, last)
            else:
                os.closerange(3, keep)
                os.closerange(keep + 1, last)
            os.execve(argv[0], argv, env)
    except BaseException:  # nothing may reach the tick's stderr from here
        pass
    finally:
        os._exit(0)  # neither atexit handlers nor the tick's buffered output run twice


def _max_fd() -> int:
    try:
        return max(os.sysconf("SC_OPEN_MAX"), 256)
    except (OSError, ValueError):
        return 4096
