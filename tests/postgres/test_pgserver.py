"""The test suite's PostgreSQL server (tests/pgserver.py): reachable, private, and a new
database for each test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pgserver
from tests.pgserver import PostgresServer, PostgresUnavailable


def test_a_test_gets_an_empty_database_as_the_superuser(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        version = conn.execute("SELECT version()").fetchone()
        assert version is not None and version[0].startswith("PostgreSQL ")
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)
        encoding = conn.execute("SHOW server_encoding").fetchone()
        assert encoding == ("UTF8",)


def test_a_private_server_listens_on_a_unix_socket_only(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    if not postgres_server.private:
        pytest.skip("TASKCRON_TEST_POSTGRES names a server of its own")
    assert postgres_server.cluster is not None
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert conn.execute("SELECT inet_server_addr()").fetchone() == (None,)
        assert conn.execute("SELECT current_user").fetchone() == (pgserver.SUPERUSER,)
        assert conn.execute("SHOW max_connections").fetchone() == ("200",)
        assert conn.info.host == str(postgres_server.cluster.directory)


def test_fresh_databases_are_distinct(postgres_server: PostgresServer) -> None:
    import psycopg

    first, second = postgres_server.fresh_database(), postgres_server.fresh_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE only_here (x int)")
        one = conn.execute("SELECT current_database()").fetchone()
    with psycopg.connect(second) as conn:
        other = conn.execute("SELECT current_database()").fetchone()
        assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
    assert one != other


def test_without_binaries_the_reason_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pgserver, "DEBIAN_ROOT", tmp_path / "none")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PostgresUnavailable, match=r"no initdb and pg_ctl in .*apt-get install"):
        pgserver.find_binaries()


def test_the_newest_debian_version_is_chosen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for version in ("9.6", "15", "13"):
        for name in ("initdb", "pg_ctl"):
            (tmp_path / version / "bin").mkdir(parents=True, exist_ok=True)
            (tmp_path / version / "bin" / name).touch()
    monkeypatch.setattr(pgserver, "DEBIAN_ROOT", tmp_path)
    assert pgserver.find_binaries().initdb == tmp_path / "15" / "bin" / "initdb"


def test_as_root_without_a_postgres_user_the_reason_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(pgserver, "SYSTEM_USER", "no-such-user-for-taskcron")
    with pytest.raises(PostgresUnavailable, match=r"root.* no 'no-such-user-for-taskcron' user"):
        pgserver.system_user()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the `postgres` user can reach too (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="taskcron-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_failing_initdb_is_a_reason_and_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, shared_dir: Path
) -> None:
    bin_dir = shared_dir / "debian" / "99" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("initdb", "pg_ctl"):
        (bin_dir / name).write_text(
            "#!/bin/sh\necho 'initdb: error: the disk is on fire' >&2\nexit 1\n"
        )
        (bin_dir / name).chmod(0o755)
    monkeypatch.setattr(pgserver, "DEBIAN_ROOT", shared_dir / "debian")
    base = shared_dir / "base"
    base.mkdir()
    with pytest.raises(PostgresUnavailable, match=r"(?s)initdb exited 1:.*the disk is on fire"):
        PostgresServer.start(base)
    assert list(base.iterdir()) == []


def test_an_existing_servers_urls_keep_its_address_and_options() -> None:
    server = PostgresServer("postgresql://me:pw@db.example:5433/admin?sslmode=require")
    server.stop()
    assert server.url("t_1") == "postgresql://me:pw@db.example:5433/t_1?sslmode=require"
