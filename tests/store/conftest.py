"""Fixtures for the store suites: every `Store` implementation, on a real database.

The contract suite runs against each entry of `IMPLEMENTATIONS` through the
parametrized `store` fixture. A backend joins by adding one entry: a function
that makes a factory opening a fresh, empty store for a given directory.
Nothing here is mocked; the only fake is the clock, passed as explicit `now`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

import pytest

from taskcron.model import Outcome, Recurrence, Run, State, Target, Task
from taskcron.schedule import RetryPolicy
from taskcron.store import Lease, NewTask, Store
from taskcron.store.sqlite import SqliteStore
from tests.conftest import BRIEFS_EXAMPLE
from tests.pgserver import PostgresServer

#: The fake clock's origin: every test passes times derived from it.
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
#: This machine's host name, as the store and the API use it.
HOST = os.uname().nodename


class StoreFactory(Protocol):
    """Opens the store whose files (if any) live in `directory`, fresh and empty the first time.

    `host` is the host the store runs on, as its leases and pools name it;
    `machine` its machine id (None: this machine's).
    """

    def __call__(
        self, directory: Path, *, host: str = HOST, machine: str | None = None
    ) -> Store: ...


def open_sqlite(request: pytest.FixtureRequest) -> StoreFactory:
    def factory(directory: Path, *, host: str = HOST, machine: str | None = None) -> Store:
        return SqliteStore(directory / "tasks.db", host=host, machine=machine)

    return factory


def open_postgres(request: pytest.FixtureRequest) -> StoreFactory:
    """Stores in one database of the session's PostgreSQL server: a schema a directory.

    The store compares times with the caller's clock (`clock="caller"`), so that
    the tests' fake clock drives it as it drives SQLite's.
    """
    from taskcron.store.postgres import PostgresStore

    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database(server.unique_name())
    schemas: dict[Path, str] = {}

    def factory(directory: Path, *, host: str = HOST, machine: str | None = None) -> Store:
        schema = schemas.setdefault(directory, f"contract_{len(schemas)}")
        return PostgresStore(f"{url}&schema={schema}", host=host, machine=machine, clock="caller")

    return factory


#: Each implementation's factory maker, by the name tests are parametrized with.
IMPLEMENTATIONS: dict[str, Callable[[pytest.FixtureRequest], StoreFactory]] = {
    "sqlite": open_sqlite,
    "postgres": open_postgres,
}


@pytest.fixture(scope="session", params=sorted(IMPLEMENTATIONS))
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    """A factory for fresh stores of one implementation (safe to use per hypothesis example)."""
    return IMPLEMENTATIONS[request.param](request)


@pytest.fixture
def store(store_factory: StoreFactory, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each implementation, on a real database file in tmp_path."""
    opened = store_factory(tmp_path)
    yield opened
    opened.close()


def at(seconds: float) -> datetime:
    """The fake clock's time `seconds` after T0."""
    return T0 + timedelta(seconds=seconds)


def new_task(
    module: str = "m",
    *,
    title: str = "t",
    priority: int = 0,
    due_at: datetime = T0,
    max_attempts: int = 1,
    data_json: str = "null",
    timeout: timedelta | None = None,
    owner: str | None = None,
    recurrence: Recurrence | None = None,
) -> NewTask:
    """A NewTask running `true`, with the fields a test cares about."""
    return NewTask(
        module=module,
        title=title,
        target=Target.command(["true"]),
        data_json=data_json,
        priority=priority,
        due_at=due_at,
        max_attempts=max_attempts,
        timeout=timeout,
        owner=owner,
        recurrence=recurrence,
    )


def schedule_briefs_example(store: Store) -> dict[int, str]:
    """Schedule the brief's example one second apart, each titled by its name; names by id."""
    names = {}
    for offset, (name, module, priority) in enumerate(BRIEFS_EXAMPLE):
        new = new_task(module, title=name, priority=priority, due_at=at(offset))
        names[store.schedule(new, now=T0).id] = name
    return names


def lease(
    now: datetime,
    *,
    host: str = HOST,
    pid: int | None = None,
    ttl: timedelta = timedelta(minutes=5),
    machine: str = "",
) -> Lease:
    """A lease held by this process (or `pid` on `host`, `machine`) for `ttl` from `now`."""
    return Lease(
        host=host, machine=machine, pid=os.getpid() if pid is None else pid, expires_at=now + ttl
    )


def fixed_policy() -> RetryPolicy:
    """The product's retry policy (the `decide` callable), with a seeded random source."""
    return RetryPolicy(first=timedelta(seconds=10), cap=timedelta(hours=1), rng=random.Random(1234))


def decide(task: Task, outcome: Outcome, now: datetime) -> tuple[State, datetime]:
    """The product's `decide`: RetryPolicy.after_run with a seeded backoff."""
    return fixed_policy().after_run(task, outcome, now)


def get_run(store: Store, run_id: int) -> Run:
    """One run by id. Not part of `Store`: each backend offers it for its runner and tests."""
    reader: Callable[[int], Run] = store.get_run  # type: ignore[attr-defined]
    return reader(run_id)
