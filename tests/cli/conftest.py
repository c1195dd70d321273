"""The command-line contract's store: `store_url`, and `EVERY_STORE` for the tests run on each.

A test marked `@EVERY_STORE` runs once on the home's SQLite file and once with
`TASKCRON_STORE` naming a new PostgreSQL database in the environment of every
subprocess it starts. The tests left on SQLite alone are about the SQLite file
itself, the home's files and `init`'s output, which a store URL changes by
design, or set up their tasks through the API on the home's default store.
"""

from __future__ import annotations

import pytest

import tests.conftest as shared

#: The stores a test marked `EVERY_STORE` runs on, by the ids it is parametrized with.
STORES = ("sqlite", "postgresql")
#: Runs the marked test once on each of `STORES`.
EVERY_STORE = pytest.mark.parametrize("store_url", STORES, indirect=True)


@pytest.fixture(autouse=True)
def store_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The URL every command of the test is given in TASKCRON_STORE, or None: the home's
    SQLite file (the default, and the only store of a test not marked `EVERY_STORE`)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    plain = shared.clean_env

    def with_store(**extra: str) -> dict[str, str]:
        return plain(**{"TASKCRON_STORE": url, **extra})

    monkeypatch.setattr(shared, "clean_env", with_store)
    if getattr(request.module, "clean_env", None) is plain:  # imported by name
        monkeypatch.setattr(request.module, "clean_env", with_store)
    return url
