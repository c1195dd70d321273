"""The dashboard, `taskcron web`: pages, JSON, live updates and actions over the API.

    from taskcron import TaskCron
    from taskcron import web

    app = TaskCron()
    chosen = web.settings(app, host="127.0.0.1", port=8765)
    sock, chosen = web.listen(chosen)     # the port it got, when 0 asked for a free one
    web.serve(app, chosen, sock)          # until Ctrl-C or SIGTERM

This module needs nothing beyond the standard library: the web framework
(Starlette, uvicorn, Jinja2: the `web` extra) is imported by `routes` and
`live` only, and only when the dashboard starts. Nothing on the tick's path
imports this package.

Parts: `auth` (tokens, the login cookie, CSRF tokens, owner links: pure),
`live` (Server-Sent Events: one poller fans out to every open page),
`routes` (the pages, the JSON and the actions), `templates/` and `static/`.
"""

from __future__ import annotations

import importlib
import ipaddress
import secrets
import socket
from datetime import timedelta
from pathlib import Path

from taskcron import configfile, errors
from taskcron.api import TaskCron
from taskcron.outage import Say
from taskcron.values import replace, value

#: The packages of the `web` extra, by import name.
EXTRA = ("starlette", "uvicorn", "jinja2")


@value
class Settings:
    """How the dashboard runs: where it listens, its tokens and its extra files."""

    host: str
    port: int
    token: str  #: Sees and acts.
    read_token: str | None = None  #: Sees only.
    generated: bool = False  #: The token was made at start (none was configured).
    stylesheet: Path | None = None
    script: Path | None = None
    session_ttl: timedelta = timedelta(hours=12)  #: How long a login lasts.
    max_streams: int = 16  #: Event streams open at once per session, token or owner link.
    metrics_token: str | None = None  #: Reads `/metrics` only.

    @property
    def url(self) -> str:
        """The address to open, without any token."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def require_extra() -> None:
    """Raise `ExtraMissingError` unless the `web` extra's packages can be imported."""
    for name in EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            raise errors.ExtraMissingError("taskcron web", "web") from None


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only: `localhost` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def settings(app: TaskCron, *, host: str | None = None, port: int | None = None) -> Settings:
    """The dashboard's settings: `host` and `port` over the config's `[web]` table.

    With no token configured (`web.token`, TASKCRON_WEB_TOKEN) a random one is
    made, and only a loopback address may be bound: anything else is an
    `InputError`. The store is read once, so that a missing home is said at once.
    """
    web = app.config.web
    configfile.check_tokens(web.token, web.read_token, web.metrics_token)
    app.status(count=0)  # a home that is missing, or a store that cannot be read, says so now
    chosen_host = web.host if host is None else host
    chosen_port = web.port if port is None else port
    if not 0 <= chosen_port <= 65535:
        raise errors.InputError(f"invalid port {chosen_port}: expected 0 to 65535")
    if web.token is None and not is_loopback(chosen_host):
        raise errors.InputError(
            f"refusing to listen on {chosen_host} without a configured token: set web.token"
            " in the config or TASKCRON_WEB_TOKEN, or bind 127.0.0.1"
        )
    return Settings(
        host=chosen_host,
        port=chosen_port,
        token=web.token or secrets.token_urlsafe(24),
        read_token=web.read_token,
        generated=web.token is None,
        stylesheet=web.stylesheet,
        script=web.script,
        session_ttl=web.session_ttl,
        max_streams=web.max_streams,
        metrics_token=web.metrics_token,
    )


def listen(chosen: Settings) -> tuple[socket.socket, Settings]:
    """A listening socket on the settings' address, and the settings with the port it got
    (port 0 picks a free one); a `TaskcronError` saying why when it cannot."""
    try:
        info = socket.getaddrinfo(chosen.host, chosen.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = info[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise errors.InputError(f"cannot listen on {chosen.host}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise errors.TaskcronError(
            f"cannot listen on {chosen.host}:{chosen.port}: {reason}"
        ) from None
    port = sock.getsockname()[1]
    return sock, replace(chosen, port=port)


def serve(app: TaskCron, chosen: Settings, sock: socket.socket, say: Say | None = None) -> None:
    """Serve the dashboard on `sock` (from `listen`) until SIGINT or SIGTERM; `say` hears
    once that the store is lost and once that it is back (see `taskcron.outage`)."""
    require_extra()
    import uvicorn

    from taskcron.web.routes import build

    config = uvicorn.Config(
        build(app, chosen, say=say),
        access_log=False,  # an access log would keep /login?token=... and owner links
        log_level="warning",
        server_header=False,
        proxy_headers=True,
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run(sockets=[sock])
