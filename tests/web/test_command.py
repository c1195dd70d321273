"""`taskcron web` as a real process: starting, refusing, owner links, and live events."""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest

from taskcron.web.auth import owner_signature
from tests.conftest import clean_env, script, wait_for
from tests.web.conftest import OWNER_VIEW, TOKEN, Server, run_tc, stop

ERROR = "taskcron: error: "


def one_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert (result.returncode, result.stdout) == (code, ""), result
    assert result.stderr.startswith(ERROR) and result.stderr.count("\n") == 1, result.stderr
    return result.stderr[len(ERROR) : -1]


def web(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script(), "--home", str(home), "web", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
    )


@pytest.fixture
def inited(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    subprocess.run(
        [script(), "--home", str(home), "init"], check=True, env=clean_env(), cwd=tmp_path
    )
    return home


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "example.org", "::"])
def test_another_address_than_the_loopback_needs_a_configured_token(
    inited: Path, host: str
) -> None:
    message = one_error(web(inited, "--host", host), 2)
    assert message == (
        f"refusing to listen on {host} without a configured token: set web.token in the"
        " config or TASKCRON_WEB_TOKEN, or bind 127.0.0.1"
    )


def test_without_the_web_extra_it_says_which_extra_to_install(inited: Path) -> None:
    probe = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "from taskcron import cli\n"
        "cli.main(['--home', sys.argv[1], 'web'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(inited)], capture_output=True, text=True, env=clean_env()
    )
    assert one_error(result, 1) == ("taskcron web needs the web extra: pip install 'taskcron[web]'")


def test_a_port_in_use_is_one_line_and_exit_1(inited: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = one_error(web(inited, "--port", str(port)), 1)
    assert message == f"cannot listen on 127.0.0.1:{port}: Address already in use"


def test_a_missing_home_is_said_at_start(tmp_path: Path) -> None:
    message = one_error(web(tmp_path / "nowhere"), 1)
    assert message.startswith(f"no taskcron home at {tmp_path / 'nowhere'} ")


def test_owner_link_prints_the_signed_link_and_exits(inited: Path) -> None:
    result = web(inited, "--owner-link", "user/42", TASKCRON_WEB_TOKEN=TOKEN)
    signature = owner_signature(TOKEN, "user/42")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"http://127.0.0.1:8765/owner/user%2F42?sig={signature}\n"


def test_owner_link_without_a_token_is_bad_input(inited: Path) -> None:
    message = one_error(web(inited, "--owner-link", "ann"), 2)
    assert message.startswith("an owner link is signed with the dashboard's token")


def test_without_a_configured_token_it_makes_one_and_prints_the_url_to_log_in(
    example_config: Path,
) -> None:
    run_tc(example_config, "init")
    process = subprocess.Popen(
        [script(), "--config", str(example_config), "web", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("taskcron web: open http://127.0.0.1:")
        url = line.split()[-1]
        assert "/login?token=" in url and len(url.rpartition("=")[2]) >= 24
        with httpx.Client() as client:
            response = client.get(url, follow_redirects=False)
            assert (response.status_code, response.headers["location"]) == (303, "/")
            assert client.get(url.partition("/login")[0] + "/api/status").status_code == 200
    finally:
        stop(process)
    assert "token=" not in (process.stderr.read() if process.stderr else "")


# --- live events, over a real socket -----------------------------------------------------


class Events:
    """An open `/events` stream, read line by line with a deadline."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.seen: list[str] = []  #: Every line read so far.

    def next_event(self, deadline: float | None = None) -> tuple[str, dict[str, Any]]:
        """The next event; past `deadline` (a `time.monotonic()`), a keep-alive comment
        ends the wait with an AssertionError instead of being skipped."""
        name = None
        for line in self.lines:
            self.seen.append(line)
            if line.startswith(":") and deadline is not None and time.monotonic() > deadline:
                raise AssertionError("no such event before the deadline")
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: ") and name is not None:
                return name, json.loads(line[len("data: ") :])
        raise AssertionError("the stream ended")

    def until(self, wanted: Any, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            name, data = self.next_event(deadline)
            if wanted(name, data):
                return data
        raise AssertionError(f"no such event within {timeout}s")


@pytest.fixture
def streams() -> Iterator[Callable[..., Events]]:
    """Opens `/events` streams of a server: `streams(server, path, **headers)`."""
    opened: list[httpx.Client] = []

    def open_stream(server: Server, path: str = "/events", **headers: str) -> Events:
        client = httpx.Client(base_url=server.base, timeout=httpx.Timeout(30, read=30))
        opened.append(client)
        response = client.send(client.build_request("GET", path, headers=headers), stream=True)
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return Events(response)

    yield open_stream
    for client in opened:
        client.close()


@pytest.fixture
def stream(server: Server, streams: Callable[..., Events]) -> Callable[..., Events]:
    """Opens `/events` streams of `server`: `stream(path, **headers)`."""
    return functools.partial(streams, server)


def api(server: Server, method: str, path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}"}
    return httpx.request(method, server.base + path, headers=headers, timeout=30)


def test_an_action_from_another_process_arrives_as_task_and_log_events(
    server_on: Server, streams: Any
) -> None:
    server = server_on
    events = streams(server, authorization=f"Bearer {server.token}")
    schedule = ("schedule", "mail.x", "--in", "1h", "--", "true")
    task_id = int(run_tc(server.config, *schedule, env=server.env).stdout)
    run_tc(server.config, "pause", str(task_id), env=server.env)

    paused = events.until(
        lambda n, d: n == "task" and d["id"] == task_id and d["state"] == "paused"
    )
    assert paused["module"] == "mail.x" and paused["run"] is None
    record = events.until(lambda n, d: n == "log" and d.get("event") == "task.paused")
    assert record["task"] == task_id


def test_an_action_through_the_dashboard_arrives_at_once(server: Server, stream: Any) -> None:
    task_id = int(run_tc(server.config, "schedule", "mail.x", "--in", "1h", "--", "true").stdout)
    events = stream(authorization=f"Bearer {server.token}")
    assert api(server, "POST", f"/api/tasks/{task_id}/cancel").status_code == 200

    events.until(lambda n, d: n == "task" and d["id"] == task_id and d["state"] == "cancelled")


def test_the_counts_by_module_and_state_arrive_when_a_task_moves(
    server: Server, stream: Any
) -> None:
    events = stream("/events?module=mail", authorization=f"Bearer {server.token}")
    run_tc(server.config, "schedule", "billing.y", "--in", "1h", "--", "true")
    task_id = int(run_tc(server.config, "schedule", "mail.x", "--in", "1h", "--", "true").stdout)
    run_tc(server.config, "pause", str(task_id))

    counts = events.until(lambda n, d: n == "counts" and "paused" in d["modules"].get("mail.x", {}))
    assert counts == {"modules": {"mail.x": {"paused": 1}}}


def test_a_stream_with_a_scope_hears_only_its_modules(server: Server, stream: Any) -> None:
    events = stream("/events?module=billing", authorization=f"Bearer {server.token}")
    other = int(run_tc(server.config, "schedule", "mail.x", "--in", "1h", "--", "true").stdout)
    mine = int(run_tc(server.config, "schedule", "billing.y", "--in", "1h", "--", "true").stdout)
    run_tc(server.config, "pause", str(other))
    run_tc(server.config, "pause", str(mine))

    heard = events.until(lambda n, d: n == "task" and d["state"] == "paused")
    assert heard["id"] == mine


def test_an_owner_link_stream_hears_only_that_owners_tasks_and_no_log(
    server: Server, stream: Any
) -> None:
    signature = owner_signature(server.token, "ann")
    events = stream(f"/events?owner=ann&sig={signature}")
    bob = int(
        run_tc(server.config, "schedule", "m", "--owner", "bob", "--in", "1h", "--", "true").stdout
    )
    ann = int(
        run_tc(server.config, "schedule", "m", "--owner", "ann", "--in", "1h", "--", "true").stdout
    )
    run_tc(server.config, "pause", str(bob))
    run_tc(server.config, "pause", str(ann))

    name, data = events.next_event()
    assert (name, data["id"]) == ("task", ann)


def test_a_stream_without_a_token_or_signature_is_401(server: Server) -> None:
    assert httpx.get(server.base + "/events", timeout=10).status_code == 401
    bad = httpx.get(server.base + "/events?owner=ann&sig=00", timeout=10)
    assert bad.status_code == 401


def test_a_running_tasks_progress_arrives_as_it_advances(server_on: Server, streams: Any) -> None:
    server = server_on
    tick = start_import(server.config, rows=6000, env=server.env)
    try:
        events = streams(server, authorization=f"Bearer {server.token}")

        def progress(name: str, data: dict[str, Any]) -> bool:
            return name == "task" and data["state"] == "running" and data["progress"] is not None

        first = events.until(progress)
        assert first["run"]["host"] and first["run"]["started_at"]
        assert 0 <= first["step_elapsed"] <= first["job_elapsed"]
        later = events.until(
            lambda n, d: progress(n, d) and d["progress"]["done"] > first["progress"]["done"]
        )
        assert later["id"] == first["id"]
    finally:
        stop(tick)


def start_import(
    config: Path, *, rows: int, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Schedule the example's stepwise CSV import of `rows` rows and start a tick running
    it, both with the TASKCRON_* settings in `env`."""
    csv = config.parent / "products.csv"
    lines = ["sku,name,price"] + [f"SKU-{n:05d},product {n},{n % 97}" for n in range(rows)]
    csv.write_text("\n".join(lines) + "\n")
    data = json.dumps({"path": str(csv)})
    run_tc(config, "schedule", "catalog.import", "--task", "import-csv", "--data", data, env=env)
    tick = subprocess.Popen(
        [script(), "--config", str(config), "tick", "--module", "catalog", "--budget", "120s"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(**(env or {})),
    )
    wait_for(lambda: "running" in run_tc(config, "list", "--module", "catalog", env=env).stdout)
    return tick


# --- security, against a real process ----------------------------------------------------


def link_of(server: Server, owner: str) -> str:
    """The path of `owner`'s link, as `taskcron web --owner-link` prints it."""
    env = {**server.env, "TASKCRON_WEB_TOKEN": server.token}
    printed = run_tc(server.config, "web", "--owner-link", owner, env=env).stdout.strip()
    return "/" + printed.split("/", 3)[3]


def sig_of(server: Server, owner: str) -> str:
    return link_of(server, owner).rpartition("sig=")[2]


def logged_in(server: Server) -> tuple[httpx.Client, str]:
    """A client logged in through the printed /login URL, and its session's CSRF token."""
    client = httpx.Client(base_url=server.base, timeout=30)
    assert client.get(f"/login?token={server.token}").status_code == 303
    page = client.get("/").text
    start = page.index('data-csrf="') + len('data-csrf="')
    return client, page[start : page.index('"', start)]


def test_a_real_dashboard_takes_no_owner_link_for_a_session_or_a_csrf_token(
    server: Server,
) -> None:
    task_id = int(run_tc(server.config, "schedule", "mail.x", "--in", "1h", "--", "true").stdout)
    assert httpx.get(server.base + link_of(server, "session:act:abc"), timeout=30).is_success
    forged_csrf = sig_of(server, "csrf:act:abc")
    for value in (
        f"act.abc.{sig_of(server, 'session:act:abc')}",
        f"act.abc.9999999999.{sig_of(server, 'session:act:abc:9999999999')}",
    ):
        headers = {"cookie": f"taskcron_session={value}", "x-csrf-token": forged_csrf}
        assert httpx.get(server.base + "/api/status", headers=headers).status_code == 401
        cancel = httpx.post(server.base + f"/api/tasks/{task_id}/cancel", headers=headers)
        assert cancel.status_code == 401
    client, csrf = logged_in(server)
    with contextlib.closing(client):
        _, nonce, _, mac = client.cookies["taskcron_session"].split(".")
        cancel = client.post(f"/api/tasks/{task_id}/cancel", headers={"x-csrf-token": mac})
        assert cancel.status_code == 403
    for owner in (nonce, f"csrf:act:{nonce}"):  # without the cookie: nothing but the sig
        page = httpx.get(f"{server.base}/owner/{owner}", params={"sig": csrf}, timeout=30)
        assert page.status_code == 401
    assert '"state": "queued"' in run_tc(server.config, "show", str(task_id), "--json").stdout


def test_a_real_owner_link_shows_no_byte_of_a_tasks_command_or_data(
    server: Server, stream: Any
) -> None:
    secret = "s3cret-0f-the-task"
    schedule = ("schedule", "m.secret", "--owner", "ann", "--data", json.dumps({"k": secret}))
    task_id = int(run_tc(server.config, *schedule, "--in", "1h", "--", "echo", secret).stdout)
    link = link_of(server, "ann")
    page = httpx.get(server.base + link, timeout=30)
    assert page.status_code == 200 and f'data-task-id="{task_id}"' in page.text
    events = stream("/events?" + urlencode({"owner": "ann", "sig": link.rpartition("sig=")[2]}))
    run_tc(server.config, "pause", str(task_id))

    heard = events.until(lambda n, d: n == "task" and d["id"] == task_id and d["state"] == "paused")
    assert sorted(heard) == sorted(OWNER_VIEW)
    assert heard["title"] == "m.secret"  # its default title was its command line
    assert secret not in page.text and secret not in json.dumps(heard)
    assert secret not in "\n".join(events.seen)
    sig = {"owner": "ann", "sig": link.rpartition("sig=")[2]}
    for path in ("/api/tasks", f"/api/tasks/{task_id}", "/api/log", "/api/status"):
        assert httpx.get(server.base + path, params=sig, timeout=30).status_code == 401


def test_a_real_cross_site_logout_without_the_csrf_token_keeps_the_session(
    server: Server,
) -> None:
    client, csrf = logged_in(server)
    with contextlib.closing(client):
        forged = client.post("/logout", headers={"origin": "https://elsewhere.example"})
        assert forged.status_code == 403 and "set-cookie" not in forged.headers
        assert client.get("/api/status").status_code == 200

        response = client.post("/logout", data={"csrf": csrf})
        assert (response.status_code, response.headers["location"]) == (303, "/login")
        assert "taskcron_session" not in client.cookies
        assert client.get("/api/status").status_code == 401


def open_raw(server: Server, path: str, **headers: str) -> tuple[socket.socket, int, bytes]:
    """A GET of `path` on a raw socket: the socket, the status, and what came first (a
    stream's `retry:` line, or a refusal's whole body)."""
    host, _, port = server.base.removeprefix("http://").rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    received = b""
    while b"\r\n\r\n" not in received or not received.rstrip().endswith((b"}", b"3000")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return sock, int(head.split()[1]), body


def test_a_real_dashboard_bounds_each_principals_streams_and_frees_those_hung_up(
    server: Server,
) -> None:
    token = {"Authorization": f"Bearer {server.token}"}
    held = [open_raw(server, "/events", **token) for _ in range(16)]  # web.max_streams
    link = link_of(server, "ann").replace("/owner/ann?", "/events?owner=ann&")
    other = open_raw(server, link)
    refused = open_raw(server, "/events", **token)
    try:
        assert [status for _, status, _ in held] == [200] * 16
        assert other[1] == 200  # an owner link counts apart
        assert refused[1:] == (
            429,
            b'{"error":"too many open event streams: at most 16 (web.max_streams)"}',
        )
        for sock, _, _ in held:
            sock.close()  # hang up, without a word

        def accepted() -> socket.socket | None:
            sock, status, _ = open_raw(server, "/events", **token)
            if status == 200:
                return sock
            sock.close()
            return None

        held = [(wait_for(accepted), 200, b"") for _ in range(16)]
        assert open_raw(server, "/events", **token)[1] == 429
    finally:
        for sock, _, _ in [*held, other, refused]:
            sock.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_streams = 0", "config key 'web.max_streams' must be a positive integer"),
        ('session_ttl = "0s"', "config key 'web.session_ttl' must be at least 1s"),
    ],
)
def test_a_bad_session_ttl_or_max_streams_is_one_line_and_exit_2(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "taskcron.toml"
    config.write_text(f"[web]\n{text}\n")
    result = subprocess.run(
        [script(), "--config", str(config), "web"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert one_error(result, 2) == message
