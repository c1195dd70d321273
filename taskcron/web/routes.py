"""The dashboard's routes: pages, the same data as JSON under /api, actions, login, events.

Pages:   /  /tasks  /tasks/{id}  /log  /login  /owner/{owner}
JSON:    /api/status  /api/tasks  /api/tasks/{id}  /api/log  (the CLI's `--json` shapes)
Metrics: /metrics (OpenMetrics text; `web.metrics_token`, else open on the loopback only)
Actions: POST /api/tasks/{id}/{action} and, for the pages' forms, POST /tasks/{id}/{action}
Live:    /events (Server-Sent Events `task` and `log`, see `taskcron.web.live`)

Status codes: 401 without a valid token, 403 for the read token acting or a
cookie request without its CSRF token, 404 for an unknown task or address, 405
for a method an address does not take, 409 (with the CLI's message) for an
action the task's state does not allow, 400 for bad input (a task id that is
not an integer too), 429 for an event stream beyond `web.max_streams`, 503
(with `Retry-After`) while the store's server cannot be reached: the dashboard
retries it with backoff and answers again once it is back. Every refusal says
why in one line, as JSON under /api and /events.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders, QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as Connection

from taskcron import errors
from taskcron.api import ACTIONS, TaskCron, allowed_in, metrics_text, parse_runs
from taskcron.inputs import shown_number
from taskcron.metrics import CONTENT_TYPE
from taskcron.model import Scope, State, Task, format_duration
from taskcron.outage import Say
from taskcron.values import replace
from taskcron.web import Settings, is_loopback
from taskcron.web.auth import COOKIE, CSRF_FIELD, CSRF_HEADER, Keys, Who, bearer, same_text
from taskcron.web.live import Calls, Hub, Listener, Quota, owner_title, task_event

HERE = Path(__file__).parent
PAGE = 50  #: Tasks a page by default.
MAX_PAGE = 500  #: The most tasks a page may ask for.
MAX_FORM = 65536  #: The largest form body read, in bytes.
KEEPALIVE = 15.0  #: Seconds between comments on a quiet event stream.
#: The actions each state allows: the buttons a page shows (the API decides).
ALLOWED = {state: allowed_in(state) for state in State}
#: Every response's headers: no inline script or style, no framing, no referrer.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self';"
    " img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
#: The error page's heading by status code; "Not done" for any other.
HEADINGS = {
    401: "Not allowed",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    503: "Store unreachable",
}
#: What a page of an owner link whose signature is wrong says.
INVALID_LINK = "this link is not valid: ask for a new one, or log in to look"
#: Errors as status codes, the first that matches.
STATUS = (
    (errors.StoreUnreachable, 503),
    (errors.TaskNotFoundError, 404),
    (errors.StateError, 409),
    (errors.InputError, 400),
    (errors.TaskcronError, 500),
)


class Refused(Exception):
    """A request that is not allowed: its status code and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def build(
    app: TaskCron, settings: Settings, *, interval: float = 1.0, say: Say | None = None
) -> Starlette:
    """The dashboard as an ASGI application serving `app`'s home; `say` hears once that
    the store is lost and once that it is back (see `taskcron.outage`)."""
    return Dashboard(app, settings, interval=interval, say=say).asgi()


class Dashboard:
    """The routes' shared state: the API, the tokens, the templates and the live hub."""

    def __init__(
        self, app: TaskCron, settings: Settings, *, interval: float, say: Say | None = None
    ) -> None:
        self.calls = Calls(app, say=say)
        self.app = app
        app.recorder.queue_alerts()  # a delivery never delays a page
        self.settings = settings
        self.keys = Keys(
            token=settings.token,
            read_token=settings.read_token,
            session_ttl=settings.session_ttl,
        )
        self.hub = Hub(self.calls, interval=interval)
        self.quota = Quota(settings.max_streams)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            finalize=shown,
        )
        self.templates.filters.update(when=_when, seconds=_seconds, pretty=_pretty)

    def asgi(self) -> Starlette:
        routes = [
            Route("/", self.overview),
            Route("/tasks", self.tasks),
            Route("/tasks/{task_id}", self.task),
            Route("/tasks/{task_id}/{action}", self.form_action, methods=["POST"]),
            Route("/log", self.log),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/owner/{owner:path}", self.owner),
            Route("/api/status", self.api_status),
            Route("/api/tasks", self.api_tasks),
            Route("/api/tasks/{task_id}", self.api_task),
            Route("/api/tasks/{task_id}/{action}", self.api_action, methods=["POST"]),
            Route("/api/log", self.api_log),
            Route("/events", self.events),
            Route("/metrics", self.metrics),
            Route("/favicon.ico", self.favicon),
            Route("/custom/style.css", self.custom_style),
            Route("/custom/script.js", self.custom_script),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return Starlette(
            routes=routes,
            exception_handlers={
                Refused: self.refused,
                errors.TaskcronError: self.failed,
                HTTPException: self.unrouted,
            },
            lifespan=self.lifespan,
            middleware=[Middleware(SecurityHeaders)],
        )

    @asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        poller = asyncio.create_task(self.hub.run())
        try:
            yield
        finally:
            poller.cancel()

    # --- who asks ------------------------------------------------------------

    def who(self, request: Request) -> Who:
        """The request's role, from its Bearer token or its login cookie; else 401."""
        token = bearer(request.headers.get("authorization"))
        if token is not None:
            role = self.keys.role_of(token)
            if role is None:
                raise Refused(401, "invalid token")
            return Who(role=role)
        session = self.session(request)
        if session is None:
            raise Refused(401, "log in first: send Authorization: Bearer TOKEN, or open /login")
        return session

    def session(self, request: Request) -> Who | None:
        """The request's login session, if its cookie holds a valid one now."""
        return self.keys.session(request.cookies.get(COOKIE, ""), self.app.clock())

    def acting(self, request: Request, form: Mapping[str, Any]) -> Who:
        """The request's role if it may act: the token, and a CSRF token with a cookie."""
        who = self.who(request)
        if not who.may_act:
            raise Refused(403, "the read token can see but not act")
        self.check_csrf(request, form, who)
        return who

    def check_csrf(self, request: Request, form: Mapping[str, Any], who: Who) -> None:
        """Refuse (403) a cookie request without its session's CSRF token."""
        sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if not self.keys.csrf_ok(who, sent if isinstance(sent, str) else None):
            raise Refused(403, "missing or wrong CSRF token: reload the page and try again")

    # --- rendering -------------------------------------------------------------

    def page(
        self,
        request: Request,
        name: str,
        who: Who | None,
        *,
        status: int = 200,
        events: str | None = "/events",
        **context: Any,
    ) -> HTMLResponse:
        html = self.templates.get_template(name).render(
            who=who,
            csrf="" if who is None else self.keys.csrf(who),
            may_act=who is not None and who.may_act,
            events=events,
            path=request.url.path,
            stylesheet=self.settings.stylesheet is not None,
            script=self.settings.script is not None,
            allowed=ALLOWED,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    async def refused(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return self.error(request, exc.status, str(exc))

    async def failed(self, request: Request, exc: Exception) -> Response:
        status = next(code for cls, code in STATUS if isinstance(exc, cls))
        if status != 503:
            return self.error(request, status, str(exc))
        response = self.error(request, status, f"the store is unreachable; retrying: {exc}")
        response.headers["retry-after"] = str(max(1, math.ceil(self.calls.outage.wait())))
        return response

    async def unrouted(self, request: Request, exc: Exception) -> Response:
        """No route (404) or not its method (405): said as every other refusal is."""
        assert isinstance(exc, HTTPException)
        messages = {404: "no page at this address", 405: "method not allowed here"}
        status = exc.status_code
        return self.error(request, status, messages.get(status, str(exc.detail).lower()))

    def error(
        self, request: Request, status: int, message: str, *, page: str | None = None
    ) -> Response:
        """A refusal: JSON under /api and /events, a line of text at /metrics; else the
        login page for a 401 and the error page, headed by what went wrong (`HEADINGS`),
        for the rest (or `page`)."""
        if request.url.path.startswith(("/api/", "/events")):
            return JSONResponse({"error": message}, status_code=status)
        if request.url.path == "/metrics":  # a scraper reads the status; a person, the line
            return PlainTextResponse(message + "\n", status_code=status)
        chosen = page or ("login.html" if status == 401 else "error.html")
        heading = HEADINGS.get(status, "Not done")
        return self.page(
            request, chosen, None, status=status, events=None, message=message, heading=heading
        )

    # --- pages -----------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        who = self.who(request)
        status = await self.calls(self.app.status, **_scope(request.query_params))
        return self.page(
            request,
            "overview.html",
            who,
            report=status,
            states=[s.value for s in State],
            events=_events_url(request.query_params, ("module", "except")),
        )

    async def tasks(self, request: Request) -> Response:
        who = self.who(request)
        query = request.query_params
        limit, offset = _page(query)
        found = await self.calls(self.app.list, **_listing(query), limit=limit + 1, offset=offset)
        return self.page(
            request,
            "tasks.html",
            who,
            tasks=found[:limit],
            query=query,
            states=["active", "all", *(s.value for s in State)],
            previous=_page_link(query, max(offset - limit, 0)) if offset else None,
            following=_page_link(query, offset + limit) if len(found) > limit else None,
            events=_events_url(query, ("module", "except")),
        )

    async def task(self, request: Request) -> Response:
        who = self.who(request)
        shown = parse_runs(request.query_params.get("runs"))
        task = await self.calls(self.app.get, _task_id(request), runs=shown)
        return self.page(request, "task_detail.html", who, task=task)

    async def log(self, request: Request) -> Response:
        who = self.who(request)
        query = request.query_params
        records = await self.calls(self.app.log, _count(query), **_log_filter(query))
        return self.page(
            request,
            "log.html",
            who,
            records=records,
            query=query,
            events=_events_url(query, ("module", "except", "task", "level")),
        )

    async def owner(self, request: Request) -> Response:
        owner = request.path_params["owner"]
        signature = request.query_params.get("sig")
        if not self.keys.owner_ok(owner, signature):
            try:
                self.who(request)  # someone logged in may look without a signature
            except Refused:
                if signature is None:
                    raise
                return self.error(request, 401, INVALID_LINK, page="error.html")
        limit, offset = _page(request.query_params)
        found = await self.calls(
            self.app.list, owner=owner, all=True, limit=limit + 1, offset=offset
        )
        signed = {"owner": owner, "sig": signature or ""}
        link = f"/owner/{quote(owner, safe='')}?"
        return self.page(
            request,
            "owner.html",
            None,
            owner=owner,
            tasks=[replace(t, title=owner_title(t)) for t in found[:limit]],
            previous=link + urlencode({"sig": signature or "", "offset": offset - limit})
            if offset
            else None,
            following=link + urlencode({"sig": signature or "", "offset": offset + limit})
            if len(found) > limit
            else None,
            events="/events?" + urlencode(signed),
        )

    async def login(self, request: Request) -> Response:
        if request.method == "POST":
            token = (await _form(request)).get("token")
        else:
            token = request.query_params.get("token")
        if token is None:
            return self.page(request, "login.html", None, events=None, message=None)
        role = self.keys.role_of(token)
        if role is None:
            return self.page(
                request, "login.html", None, status=401, events=None, message="invalid token"
            )
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            self.keys.new_session(role, self.app.clock()),
            max_age=int(self.settings.session_ttl.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        """End the cookie's session, with its CSRF token as every other POST needs; a
        request with no valid session has nothing to end and goes to /login."""
        session = self.session(request)
        if session is not None:
            self.check_csrf(request, await _form(request), session)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return response

    # --- actions ---------------------------------------------------------------

    async def act(self, task_id: int, action: str) -> Task:
        """Do `action` to a task through the API, and tell open pages at once."""
        found = ACTIONS.get(action)
        if found is None:
            names = ", ".join(ACTIONS)
            raise Refused(404, f"no action {action!r}: expected one of {names}")
        task: Task = await self.calls(self.app.act, found.name, task_id)
        if found.to is not None:
            self.hub.publish([task_event(task, self.app.clock())])
        return task

    async def form_action(self, request: Request) -> Response:
        self.acting(request, await _form(request))
        task_id = _task_id(request)
        await self.act(task_id, request.path_params["action"])
        where = "/tasks" if request.path_params["action"] == "remove" else f"/tasks/{task_id}"
        return RedirectResponse(where, status_code=303)

    async def api_action(self, request: Request) -> Response:
        self.acting(request, {})
        task = await self.act(_task_id(request), request.path_params["action"])
        return JSONResponse(task.to_json())

    # --- metrics ---------------------------------------------------------------

    async def metrics(self, request: Request) -> Response:
        """The metrics as OpenMetrics text: with `web.metrics_token`, for its Bearer
        token alone; without, open while the dashboard listens on the loopback only."""
        settings = self.settings
        if settings.metrics_token is not None:
            sent = bearer(request.headers.get("authorization"))
            if sent is None or not same_text(sent, settings.metrics_token):
                raise Refused(401, "send Authorization: Bearer METRICS_TOKEN (web.metrics_token)")
        elif not is_loopback(settings.host):
            raise Refused(403, "set web.metrics_token to serve /metrics beyond the loopback")
        body = await self.calls(metrics_text, self.app)
        return Response(body, media_type=None, headers={"content-type": CONTENT_TYPE})

    # --- JSON ------------------------------------------------------------------

    async def api_status(self, request: Request) -> Response:
        self.who(request)
        status = await self.calls(self.app.status, **_scope(request.query_params))
        return JSONResponse(status.to_json())

    async def api_tasks(self, request: Request) -> Response:
        self.who(request)
        query = request.query_params
        limit, offset = _page(query)
        found = await self.calls(self.app.list, **_listing(query), limit=limit, offset=offset)
        return JSONResponse([task.to_json(runs=False) for task in found])

    async def api_task(self, request: Request) -> Response:
        self.who(request)
        shown = parse_runs(request.query_params.get("runs"))
        task = await self.calls(self.app.get, _task_id(request), runs=shown)
        return JSONResponse(task.to_json())

    async def api_log(self, request: Request) -> Response:
        self.who(request)
        query = request.query_params
        records = await self.calls(self.app.log, _count(query), **_log_filter(query))
        return JSONResponse(records)

    # --- live ------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        principal, listener = self.listener(request)
        if not self.quota.take(principal):
            most = self.quota.most
            raise Refused(429, f"too many open event streams: at most {most} (web.max_streams)")
        self.hub.add(listener)

        def release() -> None:
            self.hub.remove(listener)
            self.quota.give_back(principal)

        async def stream() -> AsyncIterator[str]:
            yield "retry: 3000\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(listener.queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is None:
                    return  # it fell behind: the browser reconnects and starts afresh
                yield event.encode()

        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return EventStream(stream(), release, headers=headers)

    def listener(self, request: Request) -> tuple[str, Listener]:
        """Whom a stream counts against, and what it hears: an owner link its owner's tasks
        as their page shows them; a token or session what its query asks for (else 401)."""
        query = request.query_params
        owner = query.get("owner")
        if owner is not None and self.keys.owner_ok(owner, query.get("sig")):
            return f"owner:{owner}", Listener(owner=owner, linked=True)
        who = self.who(request)
        keep = self.app.log_filter(**_log_filter(query))
        scope = Scope.parse(**_scope(query))
        return who.principal, Listener(scope=scope, owner=owner, keep=keep)

    # --- restyling -------------------------------------------------------------

    async def favicon(self, request: Request) -> Response:
        """The icon, where a browser looks for it without being told (no token needed)."""
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    async def custom_style(self, request: Request) -> Response:
        return self._custom(self.settings.stylesheet, "text/css")

    async def custom_script(self, request: Request) -> Response:
        return self._custom(self.settings.script, "text/javascript")

    def _custom(self, path: Path | None, media_type: str) -> Response:
        if path is None or not path.is_file():
            return Response("not found\n", status_code=404, media_type="text/plain")
        return FileResponse(path, media_type=media_type)


class EventStream(StreamingResponse):
    """A Server-Sent Events response that calls `release` once it ends, however it ends:
    the stream ran out, the client went away, or the response never started."""

    def __init__(
        self, content: AsyncIterator[str], release: Callable[[], None], headers: dict[str, str]
    ) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self.release = release

    async def __call__(self, scope: Connection, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


class SecurityHeaders:
    """ASGI middleware: `SECURITY_HEADERS` on every response; `no-store` on all but assets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Connection, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        asset = path.startswith(("/static/", "/custom/")) or path == "/favicon.ico"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not asset:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- reading the query -------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    """A posted form's fields (URL-encoded: the pages send nothing else), first of each name."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    body = await request.body()
    if kind != "application/x-www-form-urlencoded" or len(body) > MAX_FORM:
        return {}
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


def _number(query: QueryParams, name: str, default: int) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    return _integer(name, text)


def _task_id(request: Request) -> int:
    """The task id in the path; an `InputError` naming it when it is not an integer."""
    text: str = request.path_params["task_id"]
    if not text.isascii() or not text.isdigit():
        raise errors.InputError(f"invalid task id {text!r}: expected an integer")
    return _integer("task id", text)


def _integer(name: str, text: str) -> int:
    """`text` as an integer; an `InputError` naming it when it is not one, or when it has
    more digits than Python converts (4,300: far out of any store's range)."""
    try:
        return int(text)
    except ValueError:
        digits = text.strip()
        digits = digits[1:] if digits[:1] in ("-", "+") else digits
        if digits.isascii() and digits.isdigit():
            raise errors.InputError(f"invalid {name} {shown_number(text)}: out of range") from None
        raise errors.InputError(f"invalid {name} {text!r}: expected an integer") from None


def _page(query: QueryParams) -> tuple[int, int]:
    limit, offset = _number(query, "limit", PAGE), _number(query, "offset", 0)
    if not 1 <= limit <= MAX_PAGE:
        raise errors.InputError(f"invalid limit {limit}: expected 1 to {MAX_PAGE}")
    if offset < 0:
        raise errors.InputError(f"invalid offset {offset}: must be 0 or more")
    return limit, offset


def _scope(query: QueryParams) -> dict[str, Any]:
    modules = [m for m in query.getlist("module") if m]
    excepts = [m for m in query.getlist("except") if m]
    return {"modules": modules, "excepts": excepts}


def _listing(query: QueryParams) -> dict[str, Any]:
    """`list`'s arguments: scope, owner and state (none or "active": the CLI's default)."""
    state = query.get("state") or None
    owner = query.get("owner") or None
    chosen: dict[str, Any] = {**_scope(query), "owner": owner}
    if state == "all":
        chosen["all"] = True
    elif state not in (None, "active"):
        if state not in {s.value for s in State}:
            names = ", ".join(["active", "all", *(s.value for s in State)])
            raise Refused(400, f"invalid state {state!r}: expected one of {names}")
        chosen["state"] = state
    return chosen


def _log_filter(query: QueryParams) -> dict[str, Any]:
    task = query.get("task") or None
    return {
        **_scope(query),
        "task": None if task is None else _number(query, "task", 0),
        "level": query.get("level") or None,
        "since": query.get("since") or None,
    }


def _count(query: QueryParams) -> int:
    count = _number(query, "lines", 100)
    if not 0 <= count <= 10_000:
        raise errors.InputError(f"invalid lines {count}: expected 0 to 10000")
    return count


def _page_link(query: QueryParams, offset: int) -> str:
    kept = [(k, v) for k, v in query.multi_items() if k != "offset"]
    return "?" + urlencode([*kept, ("offset", str(offset))])


def _events_url(query: QueryParams, names: tuple[str, ...]) -> str:
    kept = [(k, v) for k, v in query.multi_items() if k in names and v]
    return "/events" + ("?" + urlencode(kept) if kept else "")


# --- template filters ----------------------------------------------------------


def shown(value: Any) -> Any:
    """What a page shows of a template's value: text with its control characters as
    escapes (`\\x1b`, `\\r`, `\\u202e`), as the CLI prints them; line breaks and tabs kept.

    A browser drops NUL, reads CR as a line break, lets a bidi override turn the rest
    of a line around and shows other control characters as nothing: escaped, they
    are seen as sent. Markup (a macro's output) was made from values shown already;
    anything else is shown as its text (a task's target, say).
    """
    if isinstance(value, Markup):
        return value
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in " \n\t" else _escape(c) for c in text)


def _escape(character: str) -> str:
    return character.encode("unicode_escape").decode()


def _when(moment: datetime | str | None) -> str:
    """A time as `2026-01-05 12:00:03Z`."""
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _seconds(value: float | timedelta | None) -> str:
    if value is None:
        return ""
    delta = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if delta < timedelta(seconds=60):
        return f"{delta.total_seconds():.1f}s"
    return format_duration(delta)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
