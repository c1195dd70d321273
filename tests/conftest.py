"""Shared fixtures: a fake clock, a home in tmp_path, the installed console script, the
brief's example of the order rule, and PostgreSQL databases (tests/pgserver.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from taskcron import TaskCron
from taskcron.config import Config
from tests.pgserver import Cluster, PostgresServer, PostgresUnavailable

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)

#: Tests that run one after another on one worker (`-n auto --dist loadgroup`): the
#: suites that try to break taskcron with many processes, kills and signals, and the
#: tests that bound how long something takes, which tests running beside them would
#: starve. A module marks itself with `pytestmark = SERIAL`, a test with `@SERIAL`.
SERIAL = pytest.mark.xdist_group("serial")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker under `--dist loadgroup`, name each grouped test `NODEID@GROUP`.

    That suffix is how the scheduler sends a group to one worker. pytest-xdist adds it
    by setting `item._nodeid`, which pytest 9.2 no longer reads (a node's id is now
    `item._id`): without this, `SERIAL` tests were spread over every worker, beside
    each other. Does nothing where xdist's own suffix took effect.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # before pytest 9.2: xdist's suffix works
        return

    for item in items:
        groups = sorted({str(mark.args[0]) for mark in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(groups)
        if groups and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
            item._id = NodeId.parse(item.nodeid + suffix)


#: The brief's example of the order rule, in due order: (name, module, priority).
BRIEFS_EXAMPLE = (
    ("a1", "a", 0),
    ("a2", "a", 10),
    ("ax", "a.x", 100),
    ("a3", "a", 5),
    ("b1", "b", 0),
    ("b2", "b", 5),
    ("c1", "c", -3),
)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | float) -> datetime:
        self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def utc_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC for the test (drawn times then read the same everywhere)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def tc(home: Path, clock: FakeClock) -> Iterator[TaskCron]:
    """A TaskCron on a fresh home with default settings and the fake clock."""
    app = TaskCron(config=Config(home=home), clock=clock)
    yield app
    app.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session: TASKCRON_TEST_POSTGRES's, else a private one.

    Each xdist worker is a session of its own: its private server has its own
    directory and socket, and stops when the worker ends.

    Skips, saying what is missing, when neither can be had.
    """
    try:
        server = PostgresServer.for_tests()
    except PostgresUnavailable as e:
        pytest.skip(
            "PostgreSQL tests need psycopg and a server (Debian's postgresql package,"
            f" or TASKCRON_TEST_POSTGRES=URL): {e}"
        )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module's own, which its tests may halt and restart
    (the session's is shared: never stop it). Skips when none can be started."""
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as e:
        pytest.skip(f"these tests need a private PostgreSQL server: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_cluster(private_postgres: PostgresServer) -> Iterator[Cluster]:
    """The private server's processes; running again after the test, whatever it did."""
    cluster = private_postgres.cluster
    assert cluster is not None
    yield cluster
    if not cluster.pidfile.exists():
        cluster.resume()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database for this test (dropped after it)."""
    name = postgres_server.unique_name()
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


def script() -> str:
    """The installed `taskcron` console script beside this interpreter."""
    path = Path(sys.executable).parent / "taskcron"
    assert path.exists(), f"taskcron is not installed beside {sys.executable}"
    return str(path)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any TASKCRON_* or NO_COLOR setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCRON_")}
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


@pytest.fixture
def run_cli(home: Path, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed `taskcron` script with TASKCRON_HOME set to the test's home.

    Runs in tmp_path (so no stray taskcron.toml is read); returns the completed
    process with text stdout and stderr.
    """

    def run(
        *args: str,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[Any]:
        binary = isinstance(input, bytes)
        return subprocess.run(
            [script(), *args],
            input=input,
            capture_output=True,
            text=not binary,
            env=clean_env(TASKCRON_HOME=str(home), **(env or {})),
            cwd=cwd or tmp_path,
            timeout=timeout,
            check=False,
        )

    return run


def taskcron_in(
    cwd: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed script in `cwd`, with no TASKCRON_* setting but those in `env`."""
    return subprocess.run(
        [script(), *args],
        cwd=cwd,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
        check=False,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.01) -> Any:
    """Poll `predicate` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
