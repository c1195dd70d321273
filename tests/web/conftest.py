"""Fixtures for the dashboard's tests: a home with tasks in every state, a test client,
and a real `taskcron web` process.

The whole directory is skipped when the `web` extra is not installed.
"""

from __future__ import annotations

import select
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed")

from starlette.testclient import TestClient

from taskcron import TaskCron
from taskcron.config import Config
from taskcron.model import Task
from taskcron.web import Settings
from taskcron.web.routes import build
from tests.conftest import FakeClock, clean_env, script, wait_for

TOKEN = "the-token-of-this-test-1"
READ_TOKEN = "the-read-token-of-this-test"
SCRIPT_TITLE = "<script>alert(1)</script>"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Every key an owner link shows of a task, and nothing else.
OWNER_VIEW = ("id", "title", "module", "state", "progress", "due_at", "started_at", "ended_at")


@dataclass
class Home:
    """A home with a task in each state; ids by state name."""

    app: TaskCron
    ids: dict[str, int]


def fill(app: TaskCron) -> dict[str, int]:
    """One task in each state a page can show, one of owner ann and one of bob."""
    failed = app.schedule(
        "billing.invoices",
        command=["sh", "-c", "echo '<b>bold</b> out'; echo '<script>x()</script>' >&2; exit 3"],
        title=SCRIPT_TITLE,
        data={"html": "<img src=x onerror=alert(1)>"},
        owner="ann",
    )
    assert app.tick().failed
    done = app.schedule("reports.daily", command=["true"], owner="bob")
    assert app.tick().outcome == "ran"
    queued = app.schedule("mail.welcome", command=["true"], delay="1h", owner="ann")
    paused = app.schedule("mail.digest", command=["true"], delay="2h")
    app.pause(paused.id)
    cancelled = app.schedule("mail.digest", command=["true"], delay="3h")
    app.cancel(cancelled.id)
    return {
        "failed": failed.id,
        "done": done.id,
        "queued": queued.id,
        "paused": paused.id,
        "cancelled": cancelled.id,
    }


#: The stores the dashboard's routes are tested on.
STORES = ("sqlite", "postgresql")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str | None:
    """The store URL of a test's home: None (SQLite, `<home>/tasks.db`) or a new
    PostgreSQL database's (skipped where no PostgreSQL server can be had)."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def stocked(tmp_path: Path, clock: FakeClock, store: str | None) -> Iterator[Home]:
    """A home filled by `fill`, on each of `STORES`."""
    app = TaskCron(config=Config(home=tmp_path / "home", store=store), clock=clock)
    ids = fill(app)
    yield Home(app=app, ids=ids)
    app.close()


def settings(**overrides: object) -> Settings:
    chosen: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 8765,
        "token": TOKEN,
        "read_token": READ_TOKEN,
    }
    chosen.update(overrides)
    return Settings(**chosen)  # type: ignore[arg-type]


@pytest.fixture
def client(stocked: Home) -> Iterator[TestClient]:
    """A client without credentials (cookies it is given, it keeps)."""
    with TestClient(build(stocked.app, settings()), follow_redirects=False) as test_client:
        yield test_client


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def log_in(client: TestClient, token: str = TOKEN) -> str:
    """Log the client in through /login; return the session's CSRF token."""
    response = client.post("/login", data={"token": token})
    assert response.status_code == 303, response.text
    page = client.get("/")
    marker = 'data-csrf="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


def tasks_json(tasks: list[Task]) -> list[dict[str, object]]:
    return [task.to_json(runs=False) for task in tasks]


# --- a real server ----------------------------------------------------------------


@dataclass
class Server:
    """A `taskcron web` process: its address and token."""

    process: subprocess.Popen[str]
    base: str
    token: str
    config: Path
    env: dict[str, str]  #: TASKCRON_* settings it and every command beside it run with.


def copy_examples(tmp_path: Path) -> Path:
    """The example project in `tmp_path`, without a home; its config file's path."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns(".taskcron", "*.png"))
    return target / "taskcron.toml"


def run_tc(
    config: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script(), "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=clean_env(**(env or {})),
        check=check,
        timeout=60,
    )


def start_server(config: Path, token: str = TOKEN, env: dict[str, str] | None = None) -> Server:
    """Start `taskcron web --port 0` and wait (bounded) for the line with its address."""
    chosen = dict(env or {})
    process = subprocess.Popen(
        [script(), "--config", str(config), "web", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(TASKCRON_WEB_TOKEN=token, **chosen),
    )
    assert process.stdout is not None
    ready = wait_for(
        lambda: select.select([process.stdout], [], [], 0.1)[0] or process.poll() is not None
    )
    assert ready and process.poll() is None, process.communicate(timeout=10)
    first = process.stdout.readline()
    prefix = "taskcron web: open "
    assert first.startswith(prefix), first
    base = first[len(prefix) :].split()[0].rstrip("/")
    return Server(process=process, base=base, token=token, config=config, env=chosen)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def example_config(tmp_path: Path) -> Path:
    return copy_examples(tmp_path)


@pytest.fixture
def server(example_config: Path) -> Iterator[Server]:
    """`taskcron web` on the example project's home, its store SQLite."""
    yield from serve(example_config, {})


@pytest.fixture
def server_on(example_config: Path, store: str | None) -> Iterator[Server]:
    """`taskcron web` on the example project's home, on each of `STORES` (TASKCRON_STORE)."""
    yield from serve(example_config, {} if store is None else {"TASKCRON_STORE": store})
    sqlite_file = example_config.parent / ".taskcron" / "tasks.db"
    assert sqlite_file.exists() is (store is None), "the server used another store"


def serve(config: Path, env: dict[str, str]) -> Iterator[Server]:
    run_tc(config, "init", env=env)
    started = start_server(config, env=env)
    try:
        yield started
    finally:
        stop(started.process)
