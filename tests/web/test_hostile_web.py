"""Security through the dashboard: hostile text in one process, through Starlette's test client.

2,000 hostile strings (tests/hostile.py) go in as module ids, titles, owners,
data and command output (100 of the tasks run); every page that shows them
(overview, tasks, task, owner, log) shows them as text: no element or attribute
but the templates' own, every link on the site, the text of each cell the
string itself with its control characters as escapes (`routes.shown`), no raw
control character anywhere. The JSON and the live events carry them exactly,
and the pages' script shows what they bring as the pages do (run with node,
skipped without it).

4,000 more (10,000 with TASKCRON_STRESS=1) go in as query parameters (module,
except, owner, state, limit, offset, task, level, since, lines, sig) and path
segments (task ids, owners, static files), one route each in turn, and 1,000
as an event stream's scope: every answer is 200, or 400 or 404 with
a one-line message (405 when a "/" in a segment reaches an action's address,
307 to the same address when one ends in "/"), never a 500 or a traceback, and
no file outside the static folder. 2,000 go into actions, form fields, login
tokens, cookies and task ids: refused, and nothing changes but what the action
names. The token checks take 10,000 without an error. `pytest -s` prints
the figures.

SQLite only: the store's side of hostile text is tests/faults/test_hostile.py's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from taskcron import TaskCron, errors
from taskcron.config import Config
from taskcron.model import Scope, State, Task
from taskcron.web import routes
from taskcron.web.auth import Keys, Role, Who, bearer, owner_signature
from taskcron.web.live import Event, task_json
from taskcron.web.routes import build, shown
from tests.conftest import T0
from tests.hostile import hostile, schedule_hostile
from tests.web.conftest import READ_TOKEN, TOKEN, log_in, settings
from tests.web.conftest import bearer as auth

STRESS = os.environ.get("TASKCRON_STRESS") == "1"
TASKS = 2_000
RUNS = 100
QUERIES = 10_000 if STRESS else 4_000
ACTIONS = 2_000
TOKENS = 10_000
PAGE = 500

# --- what the templates may put on a page -------------------------------------------


def _template_markup() -> tuple[set[str], set[str]]:
    """The tag names and attribute names the templates write (their `{{ }}` and `{% %}`
    taken out): the only ones a page may hold."""
    tags: set[str] = set()
    attributes: set[str] = set()
    for path in (Path(routes.__file__).parent / "templates").glob("*.html"):
        source = re.sub(r"\{\{.*?\}\}", "x", path.read_text(encoding="utf-8"))
        source = re.sub(r"\{%.*?%\}", " ", source)
        for tag in re.findall(r"<[a-z][^>]*>", source):
            tags.add(re.match(r"<([a-z][a-z0-9]*)", tag).group(1))  # type: ignore[union-attr]
            attributes.update(re.findall(r"\s([a-z][a-z-]*)(?=[=\s>])", tag))
    return tags, attributes


TAGS, ATTRIBUTES = _template_markup()
VOID = {"meta", "link", "input", "br", "img", "hr"}


@dataclass
class Element:
    """One element of a parsed page: its tag, its attributes and all the text inside it."""

    tag: str
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Page(HTMLParser):
    """A page read as an HTML parser reads it (character references decoded)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for n in range(len(self._open) - 1, -1, -1):
            if self._open[n].tag == tag:
                del self._open[n:]
                return

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1].tag == "pre" and not self._open[-1].parts:
            data = data.removeprefix(
                "\n"
            )  # as a browser reads a <pre>: a first line break is not text
        for element in self._open:
            element.parts.append(data)

    def find(self, tag: str, **attrs: str) -> list[Element]:
        """The elements of `tag` whose attributes hold `attrs` (`class_` for class)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            e
            for e in self.elements
            if e.tag == tag and all(e.attrs.get(k) == v for k, v in wanted.items())
        ]

    def rows(self) -> dict[int, list[str]]:
        """The task tables' rows: each task id's cell texts."""
        found: dict[int, list[str]] = {}
        for n, element in enumerate(self.elements):
            if element.tag == "tr" and "data-task-id" in element.attrs:
                cells = [e.text for e in self.elements[n + 1 : n + 40] if e.tag == "td"][:7]
                found[int(element.attrs["data-task-id"])] = cells
        return found


def raw_controls(text: str) -> list[str]:
    """The characters of `text` a browser would not show as sent (all kept: space,
    line break, tab)."""
    return [c for c in text if not c.isprintable() and c not in " \n\t"]


def assert_markup_is_the_templates(html: str) -> Page:
    """Parse `html`: every tag and attribute is one the templates write, every link stays
    on the site, every script is a file of its own, no raw control character. The page."""
    assert not raw_controls(html), raw_controls(html)[:5]
    page = Page(html)
    for element in page.elements:
        assert element.tag in TAGS, element
        assert set(element.attrs) <= ATTRIBUTES, element
        for name in ("href", "src", "action"):
            if name in element.attrs:
                assert element.attrs[name].startswith(("/", "?")), element
                assert not element.attrs[name].startswith("//"), element
        if element.tag == "script":
            assert element.attrs.get("src", "").startswith("/static/") and not element.text
    return page


def row_of(task: Task) -> list[str]:
    """The first four cells a tasks table shows for `task`, as text: id, module, title,
    state (progress and due follow, then the owner)."""
    return [str(task.id), shown(task.module), shown(task.title), task.state.value]


def assert_rows(page: Page, tasks: dict[int, Task]) -> int:
    """Each task row of `page` shows its task's id, module, title, state and owner as
    text; how many rows."""
    rows = page.rows()
    for task_id, cells in rows.items():
        task = tasks[task_id]
        assert cells[:4] == row_of(task), (cells, task)
        assert cells[6] == shown(task.owner or "")
    return len(rows)


# --- a home of hostile tasks ----------------------------------------------------------


@dataclass
class Hostile:
    """A home of hostile tasks and a client logged in to its dashboard."""

    app: TaskCron
    client: TestClient
    kept: dict[int, str]  #: Each task's hostile string.
    refused: int


@pytest.fixture
def hostile_home(tmp_path: Path) -> Iterator[Hostile]:
    app = TaskCron(config=Config(home=tmp_path / "home"))
    kept: dict[int, str] = {}
    refused = 0
    for text in hostile(TASKS, seed=21):
        task, no = schedule_hostile(app, text)
        refused += no
        if task is not None:
            kept[task.id] = text
    for _ in range(RUNS):
        assert app.tick().outcome == "ran"
    with TestClient(build(app, settings()), follow_redirects=False) as client:
        yield Hostile(app=app, client=client, kept=kept, refused=refused)
    app.close()


def get(client: TestClient, path: str, **params: str) -> Any:
    return client.get(path, params=params, headers=auth())


def test_hostile_task_text_is_text_on_every_page_and_exact_in_the_json_and_events(
    hostile_home: Hostile, record_property: Any
) -> None:
    app, client, kept = hostile_home.app, hostile_home.client, hostile_home.kept
    started = time.perf_counter()
    tasks = {t.id: t for t in app.list(all=True)}
    assert set(tasks) == set(kept) and len(kept) > TASKS // 2
    pages = rows = 0

    def html(path: str, **params: str) -> Page:
        nonlocal pages
        response = get(client, path, **params)
        assert response.status_code == 200, (path, response.text[:300])
        pages += 1
        return assert_markup_is_the_templates(response.text)

    for offset in range(0, len(tasks), PAGE):
        page = html("/tasks", state="all", limit=str(PAGE), offset=str(offset))
        rows += assert_rows(page, tasks)
        listed = get(client, "/api/tasks", state="all", limit=str(PAGE), offset=str(offset))
        for item in listed.json():
            assert item == tasks[item["id"]].to_json(runs=False)
            text = kept[item["id"]]
            assert (item["title"], item["data"]) == (text, {"text": text})
            assert item["owner"] in (None, text)
    assert rows == len(tasks)
    rows += assert_rows(html("/"), tasks)

    ran = 0
    for task_id, text in kept.items():
        task = app.get(task_id)
        assert get(client, f"/api/tasks/{task_id}").json() == task.to_json()
        page = html(f"/tasks/{task_id}")
        [title] = page.find("span", class_="title")
        assert title.text == shown(text)
        [data] = page.find("pre", class_="data")
        assert data.text == shown(json.dumps({"text": text}, indent=2, ensure_ascii=False))
        outputs = [e.text for e in page.find("pre", class_="output")]
        assert outputs == [shown(r.output_tail) for r in reversed(task.runs) if r.output_tail]
        ran += bool(task.runs)
        event = Event("task", task_json(task, app.clock())).encode()
        name, data_line, *rest = event.split("\n")
        assert (name, rest) == ("event: task", ["", ""])
        assert json.loads(data_line.removeprefix("data: "))["title"] == text
    assert ran == RUNS

    owners = sorted({t.owner for t in tasks.values() if t.owner is not None})
    for owner in owners[:300]:
        page = html(f"/owner/{quote(owner, safe='')}", sig=owner_signature(TOKEN, owner))
        assert [e.text for e in page.find("span", class_="owner")] == [shown(owner)]
        shown_rows = page.rows()
        assert shown_rows and all(tasks[i].owner == owner for i in shown_rows)
        rows += assert_rows(page, tasks)

    records = app.log(10_000)
    page = html("/log", lines="10000")
    messages = [e.text for e in page.find("td", class_="message")]
    assert messages == [shown(str(r.get("message", ""))) for r in records]
    assert get(client, "/api/log", lines="10000").json() == records
    elapsed = time.perf_counter() - started

    figures = (
        f"{TASKS} hostile strings, {len(kept)} tasks kept ({hostile_home.refused} fields "
        f"refused), {RUNS} run; {pages} pages and {len(kept) * 2 + len(records)} JSON items "
        f"read in {elapsed:.1f}s: {rows} task rows and {len(records)} log lines as text, "
        "0 elements or attributes from the data, 0 raw control characters"
    )
    record_property("hostile_web_pages", figures)
    print(f"\nsuite 8, dashboard pages: {figures}")


# --- hostile requests -------------------------------------------------------------------

#: One request a hostile string makes: method, path and query (or form) for each route.
Request = Callable[[str], tuple[str, dict[str, str]]]
QUERY_ROUTES: list[tuple[str, Request]] = [
    ("/tasks?module", lambda t: ("/tasks", {"module": t})),
    ("/tasks?owner", lambda t: ("/tasks", {"owner": t, "state": "all"})),
    ("/tasks?except&state", lambda t: ("/tasks", {"except": t, "state": t})),
    ("/tasks?limit&offset", lambda t: ("/tasks", {"limit": t, "offset": t})),
    ("/api/tasks?module&owner", lambda t: ("/api/tasks", {"module": t, "owner": t})),
    ("/api/tasks?offset", lambda t: ("/api/tasks", {"offset": t})),
    ("/log?task&level", lambda t: ("/log", {"task": t, "level": t})),
    ("/log?since", lambda t: ("/log", {"since": t})),
    ("/api/log?module&since", lambda t: ("/api/log", {"module": t, "since": t})),
    ("/api/log?lines", lambda t: ("/api/log", {"lines": t})),
    ("/?module&except", lambda t: ("/", {"module": t, "except": t})),
    ("/api/status?module", lambda t: ("/api/status", {"module": t})),
    ("/tasks/ID", lambda t: (f"/tasks/{quote(t, safe='')}", {})),
    ("/api/tasks/ID", lambda t: (f"/api/tasks/{quote(t, safe='')}", {})),
    ("/owner/OWNER?sig", lambda t: (f"/owner/{quote(t, safe='')}", {"sig": t})),
    ("/owner/ann?sig", lambda t: ("/owner/ann", {"sig": t})),
    ("/static/PATH", lambda t: (f"/static/{quote(t)}", {})),
]
#: The words a refusal's message starts with.
REFUSAL = re.compile(r"(invalid|no task|no action|no page|method not allowed)\b")


def message_of(response: Any) -> str:
    """A refusal's message: the JSON's `error`, the page's error paragraph, or the text."""
    kind = response.headers["content-type"]
    if kind.startswith("application/json"):
        message: str = response.json()["error"]
        return message
    if kind.startswith("text/html"):
        page = assert_markup_is_the_templates(response.text)
        return "".join(e.text for e in page.find("p", class_="error"))
    return str(response.text).strip()


def assert_answered(response: Any, route: str) -> None:
    """200, 400 or 404 (405 for a GET that a "/" in a segment sent to an action's
    address, 307 to the same address without a trailing "/"); a page or JSON as the
    templates write it; a refusal with a one-line message; never a traceback."""
    assert response.status_code in (200, 307, 400, 404, 405), (route, response.text[:300])
    assert "Traceback" not in response.text and not raw_controls(response.text)
    if response.status_code == 307:  # a trailing "/" taken off: the same site
        assert response.headers["location"].startswith("http://testserver/")
        assert not raw_controls(response.headers["location"])
        return
    if response.status_code == 200:
        if response.headers["content-type"].startswith("text/html"):
            assert_markup_is_the_templates(response.text)
        else:
            response.json()
        return
    message = message_of(response)
    assert REFUSAL.match(message) and "\n" not in message, (route, message)


def test_hostile_query_parameters_and_path_segments_are_answered_or_refused_in_one_line(
    hostile_home: Hostile, record_property: Any
) -> None:
    client = hostile_home.client
    before = [t.to_json() for t in hostile_home.app.list(all=True)]
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    for n, text in enumerate(hostile(QUERIES, seed=22)):
        route, make = QUERY_ROUTES[n % len(QUERY_ROUTES)]
        path, params = make(text)
        response = get(client, path, **params)
        assert_answered(response, route)
        if route.startswith("/static/"):  # a page ("../" is read by the client), or 404
            assert response.status_code in (200, 404) and "root:" not in response.text
            assert response.status_code == 404 or response.text.startswith("<!doctype html>")
        statuses[response.status_code] += 1
    events = 0
    for text in hostile(1_000, seed=23):
        try:
            Scope.parse([text], [])
            continue  # a scope the stream would take: it would stay open
        except errors.InputError as exc:
            expected = str(exc)
        response = get(client, "/events", module=text)
        assert (response.status_code, response.json()) == (400, {"error": expected})
        events += 1
    elapsed = time.perf_counter() - started
    assert [t.to_json() for t in hostile_home.app.list(all=True)] == before
    assert statuses[200] and statuses[400] and statuses[404]

    figures = (
        f"{QUERIES} hostile query parameters and path segments over {len(QUERY_ROUTES)} "
        f"routes and {events} event streams' scopes in {elapsed:.1f}s: "
        f"{statuses[200]} answered; {statuses[400]} refused with 400, {statuses[404]} with "
        f"404, {statuses[405]} with 405, all in one line; {statuses[307]} redirected to the "
        "same address without its trailing slash; 0 errors, 0 tracebacks"
    )
    record_property("hostile_web_queries", figures)
    print(f"\nsuite 8, dashboard queries: {figures}")


def test_hostile_actions_forms_tokens_and_cookies_are_refused_and_change_nothing(
    hostile_home: Hostile, record_property: Any
) -> None:
    app, client = hostile_home.app, hostile_home.client
    queued = next(t for t in app.list(all=True) if t.state is State.QUEUED)
    csrf = log_in(client)
    session = client.cookies["taskcron_session"]
    before = {t.id: t.to_json() for t in app.list(all=True)}
    refused: Counter[int] = Counter()
    stranger = TestClient(build(app, settings()), follow_redirects=False)  # no cookie
    started = time.perf_counter()
    for n, text in enumerate(hostile(ACTIONS, seed=24)):
        step = n % 6
        if step == 0:  # an unknown action, by form and by the API
            response = client.post(
                f"/tasks/{queued.id}/{quote(text, safe='')}", data={"csrf": csrf}
            )
            assert_answered(response, "POST /tasks/ID/ACTION")
            assert response.status_code in (307, 404)
            response = client.post(f"/api/tasks/{queued.id}/{quote(text, safe='')}", headers=auth())
        elif step == 1:  # a forged CSRF token
            response = client.post(f"/tasks/{queued.id}/cancel", data={"csrf": text})
            assert response.status_code == 403
        elif step == 2:  # an action with hostile fields beside its own
            fields = {"csrf": csrf, "owner": text, "state": text, "task": text, "action": text}
            response = client.post(f"/tasks/{queued.id}/run-now", data=fields)
            assert (response.status_code, response.headers["location"]) == (
                303,
                f"/tasks/{queued.id}",
            )
        elif step == 3:  # a hostile token at the login form
            response = client.post("/login", data={"token": text})
            assert response.status_code == 401 and "set-cookie" not in response.headers
        elif step == 4:  # a hostile cookie or bearer token
            cookie = f"taskcron_session={text}".encode()
            response = stranger.get("/", headers={"cookie": cookie})
            assert response.status_code == 401
            token = b"Bearer " + text.encode()
            response = stranger.get("/api/status", headers={"authorization": token})
            assert response.status_code == 401
        else:  # an action on a hostile task id
            response = client.post(f"/api/tasks/{quote(text, safe='')}/cancel", headers=auth())
            assert response.status_code in (400, 404)
        assert response.status_code < 500 and "Traceback" not in response.text
        assert not raw_controls(response.text)
        refused[response.status_code] += 1
    elapsed = time.perf_counter() - started
    assert client.cookies["taskcron_session"] == session

    after = {t.id: t.to_json() for t in app.list(all=True)}
    moved = after.pop(queued.id)
    assert moved["state"] == "queued" and moved["due_at"] <= before[queued.id]["due_at"]
    assert {k: v for k, v in moved.items() if k not in ("due_at", "updated_at")} == {
        k: v for k, v in before.pop(queued.id).items() if k not in ("due_at", "updated_at")
    }
    assert after == before
    figures = (
        f"{ACTIONS} hostile actions, form fields, tokens, cookies and task ids in "
        f"{elapsed:.1f}s: {sum(refused.values()) - refused[303]} refused or redirected "
        f"({', '.join(f'{n} with {code}' for code, n in sorted(refused.items()) if code != 303)}), "
        f"{refused[303]} run-now with hostile fields beside it; 0 other tasks changed"
    )
    record_property("hostile_web_actions", figures)
    print(f"\nsuite 8, dashboard actions: {figures}")


def test_the_token_checks_take_any_text(record_property: Any) -> None:
    keys = Keys(token=TOKEN, read_token=READ_TOKEN)
    who = Who(role=Role.ACT, nonce="a-nonce")
    for text in hostile(TOKENS, seed=25):
        assert keys.role_of(text) is None
        assert keys.session(text, T0) is None
        assert keys.session(f"act.{text}.{text}", T0) is None
        assert keys.session(f"act.{text}.{text}.{text}", T0) is None
        assert not keys.csrf_ok(who, text)
        assert not keys.owner_ok("ann", text)
        assert not keys.owner_ok(text, text)
        bearer(text)
        bearer(f"Bearer {text}")
    print(f"\nsuite 8, dashboard tokens: {TOKENS} hostile tokens, cookies and signatures refused")


def test_live_updates_show_control_characters_as_the_pages_do() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    source = (Path(routes.__file__).parent / "static" / "taskcron.js").read_text()
    function = re.search(r"\n  function shown\(value\) \{\n.*?\n  \}\n", source, re.S)
    assert function is not None, "taskcron.js has no shown()"
    texts = [*hostile(2_000, seed=26), "\xa0\ufeff\x85\x7f", "\U000e0001 \u200b"]
    program = function.group(0) + (
        "let input = '';\n"
        "process.stdin.on('data', (chunk) => { input += chunk; });\n"
        "process.stdin.on('end', () => {\n"
        "  process.stdout.write(JSON.stringify(JSON.parse(input).map(shown)));\n"
        "});\n"
    )
    result = subprocess.run(
        [node, "-e", program],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == [shown(text) for text in texts]
