"""The dashboard's routes through Starlette's test client: pages, JSON, actions, security."""

from __future__ import annotations

import asyncio
import gc
import json
import random
import re
import tracemalloc
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from taskcron import TaskCron, values
from taskcron.config import WebConfig, load
from taskcron.model import State
from taskcron.web.auth import owner_signature
from taskcron.web.live import task_event
from taskcron.web.routes import Dashboard, build
from tests.conftest import FakeClock, wait_for
from tests.web.conftest import (
    OWNER_VIEW,
    READ_TOKEN,
    SCRIPT_TITLE,
    TOKEN,
    Home,
    bearer,
    log_in,
    settings,
    tasks_json,
)


def cookie(value: str) -> dict[str, str]:
    """The headers of a request that sends `value` as its login cookie."""
    return {"cookie": f"taskcron_session={value}"}


PAGES = ["/", "/tasks", "/tasks/1", "/log", "/tasks?state=all&limit=2"]
JSON = ["/api/status", "/api/tasks", "/api/tasks/1", "/api/log"]


# --- who may ask ----------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, *JSON, "/events"])
def test_every_page_json_and_stream_needs_a_token(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 401
    if path.startswith("/api/") or path == "/events":
        assert response.json() == {
            "error": "log in first: send Authorization: Bearer TOKEN, or open /login"
        }
    else:
        assert '<form method="post" action="/login"' in response.text


@pytest.mark.parametrize("path", JSON)
def test_a_wrong_bearer_token_is_401(client: TestClient, path: str) -> None:
    response = client.get(path, headers=bearer("not-the-token-at-all"))
    assert (response.status_code, response.json()) == (401, {"error": "invalid token"})


@pytest.mark.parametrize("token", [TOKEN, READ_TOKEN])
@pytest.mark.parametrize("path", JSON)
def test_either_token_reads_the_json(client: TestClient, path: str, token: str) -> None:
    assert client.get(path, headers=bearer(token)).status_code == 200


def test_login_by_form_sets_an_httponly_strict_cookie_without_the_token(client: TestClient) -> None:
    response = client.post("/login", data={"token": TOKEN})

    assert (response.status_code, response.headers["location"]) == (303, "/")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie
    assert client.get("/").status_code == 200


def test_the_printed_login_url_logs_in_and_leaves_the_token_out_of_the_address(
    client: TestClient,
) -> None:
    response = client.get(f"/login?token={TOKEN}")

    assert (response.status_code, response.headers["location"]) == (303, "/")
    assert client.get("/tasks").status_code == 200


@pytest.mark.parametrize("token", ["", "wrong-token-wrong-token"])
def test_login_with_a_wrong_token_is_401_and_sets_no_cookie(client: TestClient, token: str) -> None:
    response = client.post("/login", data={"token": token})

    assert response.status_code == 401
    assert "invalid token" in response.text
    assert "set-cookie" not in response.headers


def test_a_forged_or_stale_cookie_is_401(client: TestClient) -> None:
    client.cookies.set("taskcron_session", "act.nonce.0123456789abcdef")
    assert client.get("/").status_code == 401


def test_a_session_lasts_web_session_ttl(stocked: Home, clock: FakeClock) -> None:
    chosen = settings(session_ttl=timedelta(hours=1))
    with TestClient(build(stocked.app, chosen), follow_redirects=False) as client:
        response = client.post("/login", data={"token": TOKEN})
        assert "Max-Age=3600" in response.headers["set-cookie"]
        clock.advance(timedelta(minutes=59))
        assert client.get("/").status_code == 200
        clock.advance(timedelta(minutes=2))
        assert client.get("/").status_code == 401


def test_a_cookie_with_its_expiry_moved_or_outliving_the_ttl_is_401(
    stocked: Home, clock: FakeClock
) -> None:
    with TestClient(build(stocked.app, settings()), follow_redirects=False) as client:
        log_in(client)
        role, nonce, expires, mac = client.cookies["taskcron_session"].split(".")
    later = str(int(expires) + 3600)
    shorter = settings(session_ttl=timedelta(hours=1))
    with TestClient(build(stocked.app, shorter), follow_redirects=False) as other:
        assert other.get("/", headers=cookie(f"{role}.{nonce}.{later}.{mac}")).status_code == 401
        assert other.get("/", headers=cookie(f"{role}.{nonce}.{expires}.{mac}")).status_code == 401


def test_a_session_ends_when_its_token_changes(stocked: Home) -> None:
    with TestClient(build(stocked.app, settings()), follow_redirects=False) as first:
        log_in(first)
        cookie = first.cookies["taskcron_session"]
    changed = settings(token="another-token-another-token")
    with TestClient(build(stocked.app, changed), follow_redirects=False) as second:
        second.cookies.set("taskcron_session", cookie)
        assert second.get("/").status_code == 401


def test_logging_out_forgets_the_cookie(client: TestClient) -> None:
    csrf = log_in(client)
    response = client.post("/logout", data={"csrf": csrf})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert client.get("/").status_code == 401


def test_logging_out_without_the_csrf_token_is_403_and_keeps_the_session(
    client: TestClient,
) -> None:
    csrf = log_in(client)
    forged = {"origin": "https://elsewhere.example", "referer": "https://elsewhere.example/"}
    for data in ({}, {"csrf": ""}, {"csrf": csrf[:-1] + ("1" if csrf.endswith("0") else "0")}):
        response = client.post("/logout", data=data, headers=forged)
        assert response.status_code == 403, response.text
        assert "set-cookie" not in response.headers
    assert client.get("/").status_code == 200


def test_the_pages_log_out_form_carries_the_csrf_token(client: TestClient) -> None:
    csrf = log_in(client)
    form = re.search(r'<form method="post" action="/logout".*?</form>', client.get("/").text)
    assert form is not None and f'name="csrf" value="{csrf}"' in form.group(0)


def test_the_login_page_and_the_assets_need_no_token(client: TestClient) -> None:
    assert client.get("/login").status_code == 200
    assert client.get("/static/taskcron.js").status_code == 200
    assert client.get("/static/taskcron.css").status_code == 200


def test_the_favicon_is_served_without_a_token_and_every_page_links_it(
    client: TestClient,
) -> None:
    for path in ("/favicon.ico", "/static/favicon.svg"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.content.startswith(b"<svg")
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/login").text


def test_an_address_with_no_page_is_headed_not_found(client: TestClient) -> None:
    log_in(client)

    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert "<h1>Not found</h1>" in response.text
    assert "Not done" not in response.text


# --- pages and their JSON -------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_a_logged_in_browser(client: TestClient, path: str) -> None:
    log_in(client)
    response = client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_api_tasks_is_list_json(client: TestClient, stocked: Home) -> None:
    response = client.get("/api/tasks", headers=bearer())
    assert response.json() == tasks_json(stocked.app.list())


def test_api_task_is_show_json(client: TestClient, stocked: Home) -> None:
    task_id = stocked.ids["failed"]
    response = client.get(f"/api/tasks/{task_id}", headers=bearer())
    assert response.json() == stocked.app.get(task_id).to_json()
    assert response.json()["runs"][0]["outcome"] == "failed"


def test_api_task_gives_its_newest_runs_as_asked_with_the_runs_counted(
    client: TestClient, stocked: Home
) -> None:
    app = stocked.app
    task = app.schedule("r", command=["true"], every="1h")
    for _ in range(3):
        app.run_now(task.id)
        assert app.tick(modules=["r"]).outcome == "ran"

    two = client.get(f"/api/tasks/{task.id}?runs=2", headers=bearer()).json()
    assert [run["id"] for run in two["runs"]] == [run.id for run in app.get(task.id).runs[1:]]
    assert (two["runs_kept"], two["runs_total"], two["outcomes"]) == (3, 3, {"done": 3})
    every = client.get(f"/api/tasks/{task.id}?runs=all", headers=bearer()).json()
    assert len(every["runs"]) == 3
    bad = client.get(f"/api/tasks/{task.id}?runs=x", headers=bearer())
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid runs 'x': expected 0 to 1000000 or 'all'"


def test_api_status_is_status_json(client: TestClient, stocked: Home) -> None:
    response = client.get("/api/status?module=mail", headers=bearer())
    assert response.json() == stocked.app.status(modules=["mail"]).to_json()
    assert set(response.json()["modules"]) == {"mail.welcome", "mail.digest"}


def test_api_status_lists_module_ids_in_order(client: TestClient, stocked: Home) -> None:
    modules = [f"m{n:02d}.{kind}" for n in range(30) for kind in ("b", "a")]
    random.Random(7).shuffle(modules)
    for module in modules:
        stocked.app.schedule(module, command=["true"])
    every = {task.module for task in stocked.app.list(all=True)}
    response = client.get("/api/status", headers=bearer())
    assert list(response.json()["modules"]) == sorted(every)


def test_api_log_is_log_json(client: TestClient, stocked: Home) -> None:
    task_id = stocked.ids["failed"]
    response = client.get(f"/api/log?task={task_id}&level=error", headers=bearer())
    assert response.json() == stocked.app.log(100, task=task_id, level="error")
    assert [r["event"] for r in response.json()] == ["task.failed"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"modules": (), "excepts": ()}),
        ("?state=all", {"all": True}),
        ("?state=active", {}),
        ("?state=paused", {"state": "paused"}),
        ("?module=mail", {"modules": ["mail"]}),
        ("?module=mail&module=reports&state=all", {"modules": ["mail", "reports"], "all": True}),
        ("?module=mail,reports&state=all", {"modules": ["mail,reports"], "all": True}),
        ("?except=mail&state=all", {"excepts": ["mail"], "all": True}),
        ("?owner=ann&state=all", {"owner": "ann", "all": True}),
        ("?owner=ann", {"owner": "ann"}),
    ],
)
def test_api_tasks_filters_as_list_does(
    client: TestClient, stocked: Home, query: str, expected: dict[str, object]
) -> None:
    response = client.get("/api/tasks" + query, headers=bearer())
    assert response.json() == tasks_json(stocked.app.list(**expected))  # type: ignore[arg-type]


def test_api_tasks_pages_with_limit_and_offset(client: TestClient, stocked: Home) -> None:
    whole = [t["id"] for t in tasks_json(stocked.app.list(all=True))]
    pages = [
        [
            t["id"]
            for t in client.get(f"/api/tasks?state=all&limit=2&offset={o}", headers=bearer()).json()
        ]
        for o in (0, 2, 4, 6)
    ]
    assert pages == [whole[0:2], whole[2:4], whole[4:6], []]


def test_the_tasks_page_links_its_neighbours(client: TestClient) -> None:
    log_in(client)
    first = client.get("/tasks?state=all&limit=2").text
    middle = client.get("/tasks?state=all&limit=2&offset=2").text

    assert 'href="?state=all&amp;limit=2&amp;offset=2" rel="next"' in first
    assert 'rel="prev"' not in first
    assert 'href="?state=all&amp;limit=2&amp;offset=0" rel="prev"' in middle


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?limit=0", "invalid limit 0: expected 1 to 500"),
        ("?limit=x", "invalid limit 'x': expected an integer"),
        ("?offset=-1", "invalid offset -1: must be 0 or more"),
        ("?offset=9223372036854775807", "invalid offset 9223372036854775807: out of range"),
        pytest.param(
            "?offset=" + "9" * 5000,
            f"invalid offset {'9' * 21}... (5000 digits): out of range",
            id="5000-digits",
        ),
        ("?state=sleeping", "invalid state 'sleeping': expected one of active, all, queued,"),
        ("?module=a..b", "invalid module id 'a..b': empty segment"),
    ],
)
def test_bad_queries_are_400_with_the_clis_message(
    client: TestClient, query: str, message: str
) -> None:
    response = client.get("/api/tasks" + query, headers=bearer())
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert "\n" not in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/tasks/abc", 400, "invalid task id 'abc': expected an integer"),
        ("/api/tasks/%C2%B2", 400, "invalid task id '\u00b2': expected an integer"),
        ("/api/tasks/99999999999999999999", 400, "invalid task id 99999999999999999999: out"),
        pytest.param(
            "/api/tasks/" + "9" * 5000,
            400,
            f"invalid task id {'9' * 21}... (5000 digits): out of range",
            id="/api/tasks/<5000 digits>",
        ),
        ("/api/nowhere", 404, "no page at this address"),
        ("/api/tasks/1/retry", 405, "method not allowed here"),
    ],
)
def test_a_bad_task_id_or_address_is_refused_with_a_message(
    client: TestClient, path: str, status: int, message: str
) -> None:
    response = client.get(path, headers=bearer())
    assert response.status_code == status
    assert response.json()["error"].startswith(message)
    assert "\n" not in response.json()["error"]
    log_in(client)
    page = client.get(path.removeprefix("/api"))
    assert page.status_code == status and "Traceback" not in page.text


def test_an_unknown_task_is_404(client: TestClient) -> None:
    response = client.get("/api/tasks/999", headers=bearer())
    assert (response.status_code, response.json()) == (404, {"error": "no task with id 999"})
    log_in(client)
    assert client.get("/tasks/999").status_code == 404


def test_a_task_page_shows_data_schedule_runs_output_and_traceback(
    client: TestClient, stocked: Home
) -> None:
    log_in(client)
    page = client.get(f"/tasks/{stocked.ids['failed']}").text

    assert "&lt;b&gt;bold&lt;/b&gt; out" in page  # the output tail
    assert "exited with code 3" in page
    assert "one-off" in page
    assert "&#34;html&#34;: &#34;&lt;img src=x onerror=alert(1)&gt;&#34;" in page


# --- actions -----------------------------------------------------------------------

#: (action, state) -> the state after it; any other pair is refused with 409.
ALLOWED = {
    ("cancel", "queued"): "cancelled",
    ("cancel", "paused"): "cancelled",
    ("pause", "queued"): "paused",
    ("resume", "paused"): "queued",
    ("retry", "failed"): "queued",
    ("retry", "cancelled"): "queued",
    ("run-now", "queued"): "queued",
    **{
        ("remove", state): "removed"
        for state in ("queued", "done", "failed", "cancelled", "paused")
    },
}
STATES = ["queued", "done", "failed", "cancelled", "paused"]
ACTIONS = ["retry", "cancel", "pause", "resume", "remove", "run-now"]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_api_actions_act_or_are_refused_with_the_clis_message(
    client: TestClient, stocked: Home, action: str, state: str
) -> None:
    task_id = stocked.ids[state]
    response = client.post(f"/api/tasks/{task_id}/{action}", headers=bearer())

    after = ALLOWED.get((action, state))
    if after is None:
        words = action.replace("-", " ")
        assert (response.status_code, response.json()) == (
            409,
            {"error": f"cannot {words} task {task_id}: it is {state}"},
        )
        assert stocked.app.get(task_id).state.value == state
    elif after == "removed":
        assert response.status_code == 200
        assert response.json()["id"] == task_id
        assert task_id not in [t.id for t in stocked.app.list(all=True)]
    else:
        assert response.status_code == 200
        assert response.json()["state"] == after == stocked.app.get(task_id).state.value


def test_run_now_makes_a_delayed_task_due_now(client: TestClient, stocked: Home) -> None:
    task_id = stocked.ids["queued"]
    response = client.post(f"/api/tasks/{task_id}/run-now", headers=bearer())
    assert response.json()["due_at"] == stocked.app.clock().isoformat()


def test_an_action_on_an_unknown_task_or_an_unknown_action_is_404(client: TestClient) -> None:
    assert client.post("/api/tasks/999/retry", headers=bearer()).status_code == 404
    response = client.post("/api/tasks/1/explode", headers=bearer())
    assert response.status_code == 404
    assert response.json()["error"].startswith("no action 'explode'")


def test_the_read_token_sees_but_cannot_act(client: TestClient, stocked: Home) -> None:
    task_id = stocked.ids["failed"]
    response = client.post(f"/api/tasks/{task_id}/retry", headers=bearer(READ_TOKEN))

    assert (response.status_code, response.json()) == (
        403,
        {"error": "the read token can see but not act"},
    )
    assert stocked.app.get(task_id).state is State.FAILED
    log_in(client, READ_TOKEN)
    page = client.get(f"/tasks/{task_id}").text
    assert "data-action=" not in page
    assert client.post(f"/tasks/{task_id}/retry", data={"csrf": "x"}).status_code == 403


def test_a_form_action_with_its_csrf_token_acts_and_shows_the_task(
    client: TestClient, stocked: Home
) -> None:
    csrf = log_in(client)
    task_id = stocked.ids["failed"]
    response = client.post(f"/tasks/{task_id}/retry", data={"csrf": csrf})

    assert (response.status_code, response.headers["location"]) == (303, f"/tasks/{task_id}")
    assert stocked.app.get(task_id).state is State.QUEUED


@pytest.mark.parametrize("sent", [None, "", "0" * 64])
def test_a_cookie_action_without_its_csrf_token_is_403(
    client: TestClient, stocked: Home, sent: str | None
) -> None:
    log_in(client)
    task_id = stocked.ids["failed"]
    data = {} if sent is None else {"csrf": sent}
    response = client.post(f"/tasks/{task_id}/retry", data=data)
    api = client.post(f"/api/tasks/{task_id}/retry")

    assert response.status_code == 403
    assert "missing or wrong CSRF token" in response.text
    assert api.status_code == 403
    assert stocked.app.get(task_id).state is State.FAILED


def test_a_cookie_request_may_send_its_csrf_token_as_a_header(
    client: TestClient, stocked: Home
) -> None:
    csrf = log_in(client)
    task_id = stocked.ids["paused"]
    response = client.post(f"/api/tasks/{task_id}/resume", headers={"X-CSRF-Token": csrf})
    assert (response.status_code, response.json()["state"]) == (200, "queued")


def test_a_refused_form_action_is_409_with_the_clis_message(
    client: TestClient, stocked: Home
) -> None:
    csrf = log_in(client)
    task_id = stocked.ids["done"]
    response = client.post(f"/tasks/{task_id}/pause", data={"csrf": csrf})

    assert response.status_code == 409
    assert f"cannot pause task {task_id}: it is done" in response.text


def test_removing_from_a_form_goes_back_to_the_tasks(client: TestClient, stocked: Home) -> None:
    csrf = log_in(client)
    response = client.post(f"/tasks/{stocked.ids['done']}/remove", data={"csrf": csrf})
    assert (response.status_code, response.headers["location"]) == (303, "/tasks")


def test_a_task_page_offers_the_actions_its_state_allows(client: TestClient, stocked: Home) -> None:
    log_in(client)

    def offered(state: str) -> list[str]:
        page = client.get(f"/tasks/{stocked.ids[state]}").text
        return re.findall(r'data-action="([a-z-]+)"', page)

    assert offered("queued") == ["run-now", "pause", "cancel", "remove"]
    assert offered("failed") == ["retry", "remove"]
    assert offered("paused") == ["resume", "cancel", "remove"]


# --- escaping and the content security policy ---------------------------------------


@pytest.mark.parametrize("path", ["/", "/tasks?state=all", "/tasks/1", "/log", "/owner/ann"])
def test_a_script_title_is_text_on_every_page(client: TestClient, path: str) -> None:
    log_in(client)
    page = client.get(path).text

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert SCRIPT_TITLE not in page
    assert "<script>x()" not in page and "<img src=x" not in page


@pytest.mark.parametrize("path", ["/", "/tasks/1", "/log", "/login", "/api/tasks", "/nowhere"])
def test_every_response_forbids_inline_scripts_and_framing(client: TestClient, path: str) -> None:
    log_in(client)
    headers = client.get(path).headers

    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", [*PAGES, "/login", "/owner/ann"])
def test_pages_hold_no_inline_script_or_style(client: TestClient, path: str) -> None:
    log_in(client)
    page = client.get(path).text

    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert " style=" not in page and "<style" not in page
    assert re.findall(r"<[^>]*\son[a-z]+=", page) == []  # no event handler attributes


# --- owners ---------------------------------------------------------------------------


def owner_path(owner: str) -> str:
    return f"/owner/{quote(owner, safe='')}?sig={owner_signature(TOKEN, owner)}"


def test_an_owner_link_shows_that_owners_tasks_and_nothing_else(
    client: TestClient, stocked: Home
) -> None:
    response = client.get(owner_path("ann"))

    assert response.status_code == 200
    shown = [int(i) for i in re.findall(r'data-task-id="(\d+)"', response.text)]
    assert shown == [t.id for t in stocked.app.list(owner="ann", all=True)]
    assert stocked.ids["done"] not in shown  # bob's
    assert 'href="/tasks' not in response.text  # no way to the rest
    assert "data-action" not in response.text
    assert client.get("/").status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/owner/ann",
        "/owner/ann?sig=",
        f"/owner/ann?sig={owner_signature(TOKEN, 'bob')}",
        f"/owner/ann?sig={owner_signature(READ_TOKEN, 'ann')}",
    ],
)
def test_an_owner_page_without_a_valid_signature_is_401(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401


def test_an_owner_link_with_a_bad_signature_says_the_link_is_not_valid(
    client: TestClient,
) -> None:
    response = client.get(f"/owner/ann?sig={owner_signature(TOKEN, 'bob')}")

    assert response.status_code == 401
    assert "this link is not valid" in response.text
    assert "log in first" not in response.text


def test_the_owner_link_of_an_owner_with_a_slash_works(client: TestClient, stocked: Home) -> None:
    stocked.app.schedule("m", command=["true"], owner="tenant/7")
    response = client.get(owner_path("tenant/7"))
    assert response.status_code == 200
    assert "tenant/7" in response.text


def test_the_owner_link_of_a_session_like_owner_id_is_no_session(stocked: Home) -> None:
    """The exploit: an owner link for the owner id `session:act:abc` was the MAC of the
    cookie `act.abc.MAC`, and the link for `csrf:act:abc` that session's CSRF token."""
    task_id = stocked.ids["paused"]
    with TestClient(build(stocked.app, settings()), follow_redirects=False) as client:
        for value in (
            f"act.abc.{owner_signature(TOKEN, 'session:act:abc')}",
            f"act.abc.9999999999.{owner_signature(TOKEN, 'session:act:abc:9999999999')}",
        ):
            forged = {**cookie(value), "x-csrf-token": owner_signature(TOKEN, "csrf:act:abc")}
            assert client.get("/api/status", headers=forged).status_code == 401
            response = client.post(f"/api/tasks/{task_id}/resume", headers=forged)
            assert response.status_code == 401
    assert stocked.app.get(task_id).state is State.PAUSED


#: Owner ids whose link could pass for another kind of signature, given a session's parts.
CROSS_OWNERS = (
    "{nonce}",
    "session:{role}:{nonce}",
    "csrf:{role}:{nonce}",
    "session:{role}:{nonce}:{expires}",
    "{role}.{nonce}.{expires}",
    "session",
    "csrf",
    "owner-link",
    "taskcron session {role} v1",
    "taskcron csrf {role} v1",
    "taskcron owner-link v1",
)


@pytest.mark.parametrize("token", [TOKEN, READ_TOKEN])
def test_no_link_cookie_or_csrf_token_passes_for_another_kind(stocked: Home, token: str) -> None:
    task_id = stocked.ids["paused"]
    with TestClient(build(stocked.app, settings()), follow_redirects=False) as client:
        csrf = log_in(client, token)
        session = client.cookies["taskcron_session"]
        role, nonce, expires, mac = session.split(".")
        client.cookies.clear()
        parts = {"role": role, "nonce": nonce, "expires": expires}
        links = [owner_signature(TOKEN, o.format(**parts)) for o in CROSS_OWNERS]
        owners = [o.format(**parts) for o in CROSS_OWNERS]

        def shows_owner(owner: str, sig: str) -> bool:
            return client.get(f"/owner/{quote(owner, safe='')}", params={"sig": sig}).is_success

        def is_session(value: str) -> bool:
            return client.get("/api/status", headers=cookie(value)).is_success

        def acts(csrf_token: str) -> bool:
            headers = {**cookie(session), "x-csrf-token": csrf_token}
            return client.post(f"/api/tasks/{task_id}/pause", headers=headers).status_code != 403

        assert is_session(session) and not acts("")  # the session is good, and needs its token
        # an owner link as a cookie or a CSRF token
        assert not any(is_session(f"{role}.{nonce}.{expires}.{sig}") for sig in links)
        assert not any(is_session(f"{role}.{nonce}.{sig}") for sig in links)
        assert not any(acts(sig) for sig in links)
        # a CSRF token as a cookie or an owner link
        assert not is_session(f"{role}.{nonce}.{expires}.{csrf}")
        assert not any(shows_owner(owner, csrf) for owner in owners)
        # a cookie's MAC as a CSRF token or an owner link
        assert not acts(mac)
        assert not any(shows_owner(owner, mac) for owner in owners)
        # one role's signatures for the other's
        other = "read" if role == "act" else "act"
        assert not is_session(f"{other}.{nonce}.{expires}.{mac}")
    assert stocked.app.get(task_id).state is State.PAUSED


def test_an_owner_link_made_by_the_api_opens_its_page(stocked: Home) -> None:
    web = WebConfig(token=TOKEN)
    app = TaskCron(config=values.replace(stocked.app.config, web=web))
    link = app.owner_link("ann")
    with TestClient(build(stocked.app, settings()), follow_redirects=False) as client:
        assert client.get(link).status_code == 200
        assert client.get(link.replace("/owner/ann", "/owner/bob")).status_code == 401


# --- event streams ----------------------------------------------------------------------


class Streams:
    """`/events` streams opened straight on the ASGI application, each until closed."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.asgi = dashboard.asgi()

    async def open(self, path: str, **headers: str) -> Stream:
        stream = Stream()
        target, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": target,
            "raw_path": target.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        stream.task = asyncio.create_task(self.asgi(scope, stream.receive, stream.send))
        await asyncio.wait_for(stream.started.wait(), 10)
        return stream


class Stream:
    """One response read as it comes; `close()` is the client going away."""

    def __init__(self) -> None:
        self.status = 0
        self.body = b""
        self.started = asyncio.Event()
        self.chunk = asyncio.Event()
        self.gone = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def receive(self) -> dict[str, object]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])  # type: ignore[call-overload]
        elif message["type"] == "http.response.body":
            self.body += bytes(message.get("body", b""))  # type: ignore[arg-type]
            self.started.set()
            self.chunk.set()

    async def until(self, text: bytes) -> bytes:
        while text not in self.body:
            self.chunk.clear()
            await asyncio.wait_for(self.chunk.wait(), 10)
        return self.body

    async def close(self) -> None:
        self.gone.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


def test_an_owner_links_stream_carries_only_what_its_page_shows(stocked: Home) -> None:
    app = stocked.app
    task = app.get(stocked.ids["failed"])  # ann's, with a command, data and a run
    dashboard = Dashboard(app, settings(), interval=1.0)
    streams = Streams(dashboard)

    async def heard() -> dict[str, object]:
        stream = await streams.open(f"/events?owner=ann&sig={owner_signature(TOKEN, 'ann')}")
        dashboard.hub.publish([task_event(task, app.clock())])
        body = await stream.until(b"\n\nevent: task")
        body = await stream.until(b"}\n\n")
        await stream.close()
        data: dict[str, object] = json.loads(body.split(b"data: ")[1].split(b"\n")[0])
        return data

    data = asyncio.run(heard())
    assert sorted(data) == sorted(OWNER_VIEW)
    run = task.runs[-1]
    assert data == {
        "id": task.id,
        "title": task.title,
        "module": task.module,
        "state": "failed",
        "progress": None,
        "due_at": task.to_json()["due_at"],
        "started_at": run.to_json()["started_at"],
        "ended_at": run.to_json()["ended_at"],
    }


def _listening(url: str) -> bool:
    """Whether a session of the database at `url` listens (its last statement a LISTEN)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        ).fetchone()
    return bool(row and row[0])


def test_the_hub_sends_a_task_scheduled_on_postgresql_before_its_next_look(
    postgres_url: str, tmp_path: Path
) -> None:
    interval = 30.0  # the hub's poll: the event must come long before it
    config = tmp_path / "taskcron.toml"
    config.write_text(f"store = {json.dumps(postgres_url)}\n")
    app, other = TaskCron(config=load(config)), TaskCron(config=load(config))
    other.schedule("early", command=["true"])  # the store exists before the hub looks
    dashboard = Dashboard(app, settings(), interval=interval)
    streams = Streams(dashboard)

    async def heard() -> tuple[int, bytes, float]:
        stream = await streams.open("/events", **bearer())
        hub = asyncio.create_task(dashboard.hub.run())
        await stream.until(b"event: counts")  # the first look is done
        await asyncio.to_thread(wait_for, lambda: _listening(postgres_url))
        started = asyncio.get_running_loop().time()
        task = await asyncio.to_thread(other.schedule, "late", command=["true"])
        body = await asyncio.wait_for(stream.until(f'"id": {task.id},'.encode()), interval / 2)
        took = asyncio.get_running_loop().time() - started
        hub.cancel()
        await stream.close()
        return task.id, body, took

    task_id, body, took = asyncio.run(heard())
    assert took < interval
    event = next(e for e in body.split(b"\n\n") if f'"id": {task_id},'.encode() in e)
    assert event.startswith(b"event: task\ndata: ")
    assert json.loads(event.split(b"data: ", 1)[1])["state"] == "queued"
    app.close()
    other.close()


def test_event_streams_beyond_web_max_streams_are_429_per_session_token_and_link(
    stocked: Home,
) -> None:
    dashboard = Dashboard(stocked.app, settings(max_streams=2), interval=1.0)
    streams = Streams(dashboard)
    with TestClient(build(stocked.app, settings()), follow_redirects=False) as client:
        log_in(client)
        session = client.cookies["taskcron_session"]
    principals = [
        ("/events", bearer()),
        ("/events", bearer(READ_TOKEN)),
        ("/events", cookie(session)),
        (f"/events?owner=ann&sig={owner_signature(TOKEN, 'ann')}", {}),
        (f"/events?owner=bob&sig={owner_signature(TOKEN, 'bob')}", {}),
    ]

    async def probe() -> list[tuple[int, int, int, bytes]]:
        seen = []
        for path, headers in principals:
            first, second = await streams.open(path, **headers), await streams.open(path, **headers)
            third = await streams.open(path, **headers)
            await third.close()
            seen.append((first.status, second.status, third.status, third.body))
        return seen

    refused = b'{"error":"too many open event streams: at most 2 (web.max_streams)"}'
    assert asyncio.run(probe()) == [(200, 200, 429, refused)] * len(principals)


def test_a_thousand_streams_opened_and_closed_leave_nothing_behind(stocked: Home) -> None:
    dashboard = Dashboard(stocked.app, settings(), interval=1.0)
    streams = Streams(dashboard)
    rounds = [16] * 62 + [8]  # 1,000 streams, 16 at a time: web.max_streams

    async def cycle(count: int) -> tuple[list[int], int]:
        opened = [await streams.open("/events", **bearer()) for _ in range(count)]
        beyond = await streams.open("/events", **bearer())
        await beyond.close()
        for stream in opened:
            await stream.close()
        return [s.status for s in opened], beyond.status

    async def run_all() -> tuple[int, int]:
        await cycle(16)  # warm up: first imports and caches are no leak
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for count in rounds:
            assert await cycle(count) == ([200] * count, 200 if count < 16 else 429)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return sum(rounds), retained

    opened, retained = asyncio.run(run_all())
    print(f"\n{opened} streams opened and closed: {retained} bytes retained")
    assert (opened, len(dashboard.hub.listeners), dashboard.quota.open) == (1000, 0, {})
    assert retained < 1_000_000


# --- restyling ------------------------------------------------------------------------


def test_the_configured_stylesheet_and_script_are_served_after_the_built_in_ones(
    stocked: Home, tmp_path: object
) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "look.css").write_text("body { color: teal; }\n")
    (folder / "hook.js").write_text("document.addEventListener('taskcron:state', () => {});\n")
    chosen = settings(stylesheet=folder / "look.css", script=folder / "hook.js")
    with TestClient(build(stocked.app, chosen), follow_redirects=False) as client:
        log_in(client)
        page = client.get("/").text
        assert page.index("/static/taskcron.css") < page.index("/custom/style.css")
        assert page.index("/static/taskcron.js") < page.index("/custom/script.js")
        assert client.get("/custom/style.css").text == "body { color: teal; }\n"
        script = client.get("/custom/script.js")
        assert script.headers["content-type"].startswith("text/javascript")


def test_without_a_stylesheet_or_script_nothing_is_linked_or_served(client: TestClient) -> None:
    log_in(client)
    assert "/custom/" not in client.get("/").text
    assert client.get("/custom/style.css").status_code == 404
