"""The process that sends one heartbeat ping, started detached by
`taskcron.heartbeat.send` with the ping in `TASKCRON_HEARTBEAT_PING` (JSON: `url`,
`ping`, `timeout`, `log`, `settings`, `host`, `after`).

With `after`, it first waits for the process that sends the ping before (the
tick's `start`) to end, so that the service sees the pings in order.

It asks for the URL (GET, following redirects) and takes at most the timeout for
all of it: the name lookup, the connection, TLS and the answer. Any answer below
400 is a ping received. Otherwise a `heartbeat.failed` record goes to the home's
log, with the URL shortened (a check's URL lets whoever knows it ping it). Its
stdout and stderr are /dev/null: it never says anything anywhere else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from typing import Any

from taskcron import __version__
from taskcron.heartbeat import ENV_KEPT, ENV_PING

#: The timeout when the config gives none (`HeartbeatConfig.timeout`'s default).
_DEFAULT_TIMEOUT = 3.0
#: How long the sender of the ping before may take to start, beside its timeout (seconds).
_STARTUP = 2.0


def main() -> None:
    """Send the ping in the environment; record its failure."""
    try:
        ping: dict[str, Any] = json.loads(os.environ.pop(ENV_PING))
        url = str(ping["url"])
    except (KeyError, ValueError, TypeError):
        return  # not started by `send`
    timeout = float(ping.get("timeout") or _default_timeout())
    if ping.get("after"):
        wait_for_the_ping_before(timeout + _STARTUP)
    started = time.monotonic()
    try:
        request(url, timeout)
    except Exception as exc:
        record(ping, reason(exc, timeout), time.monotonic() - started)


def wait_for_the_ping_before(limit: float) -> None:
    """Wait, at most `limit` seconds, for the process that sends the ping before this one
    to end: the kept descriptor then comes to its end."""
    import select

    try:
        fd = int(os.environ.pop(ENV_KEPT))
    except (KeyError, ValueError):
        return
    deadline = time.monotonic() + limit
    try:
        while (left := deadline - time.monotonic()) > 0:
            if select.select([fd], [], [], left)[0] and not os.read(fd, 512):
                return
    except OSError:
        return
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _default_timeout() -> float:
    try:
        from taskcron.config import HeartbeatConfig

        return HeartbeatConfig().timeout.total_seconds()
    except Exception:
        return _DEFAULT_TIMEOUT


def request(url: str, timeout: float) -> None:
    """GET `url`, all of it within `timeout` seconds (`TimeoutError` past it); an HTTP
    error status raises `urllib.error.HTTPError`."""
    import urllib.request

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError

    asked = urllib.request.Request(url, headers={"User-Agent": f"taskcron/{__version__}"})
    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with urllib.request.urlopen(asked, timeout=timeout) as answer:
            answer.read(65536)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def reason(exc: BaseException, timeout: float) -> str:
    """Why a ping failed, in a few words."""
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".rstrip()
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    elif isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def shorten(url: str) -> str:
    """`url` without its query, each path segment longer than 8 characters cut to its
    first 4 and `...`: enough to tell checks apart, not enough to ping one."""
    scheme, _, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    path = tail.partition("?")[0].partition("#")[0]
    cut = "/".join(part if len(part) <= 8 else part[:4] + "..." for part in path.split("/"))
    return f"{scheme}://{authority}{slash}{cut}"


def record(ping: dict[str, Any], detail: str, elapsed: float) -> None:
    """Append the `heartbeat.failed` record to the log of the home that sent `ping`."""
    from taskcron.home import utc_now
    from taskcron.lifecycle import Event, Recorder
    from taskcron.logstore import LogStore

    settings = ping.get("settings") or {}
    logstore = LogStore(str(ping["log"]), **settings)
    recorder = Recorder(lambda: logstore, utc_now, host=ping.get("host") or os.uname().nodename)
    shown = shorten(str(ping["url"]))
    recorder.emit(
        Event.HEARTBEAT_FAILED,
        level="warning",
        message=f"heartbeat ping ({ping.get('ping')}) to {shown} failed: {detail}",
        ping=ping.get("ping"),
        url=shown,
        detail=detail,
        elapsed=round(elapsed, 3),
    )


if __name__ == "__main__":
    main()
