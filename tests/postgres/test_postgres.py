"""A PostgreSQL store through the real CLI: selecting it, creating it, and every way
a URL can be wrong. The server is the tests' private one (tests/pgserver.py)."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from taskcron import TaskCron
from taskcron.config import Config
from tests.conftest import script, taskcron_in
from tests.pgserver import PostgresServer

ERROR = "taskcron: error: "
SECRET = "s3cr3t-Pa55"


def taskcron(
    *args: str, cwd: Path, store: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    extra = dict(env or {})
    if store is not None:
        extra["TASKCRON_STORE"] = store
    return taskcron_in(cwd, *args, env=extra)


def one_error_line(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single error line a failing command printed; it exited `code`."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith(ERROR), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


def schemas(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%'"
            " AND nspname NOT IN ('information_schema', 'public')"
        ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize("command", [["list"], ["show", "1"], ["status"], ["next"]])
def test_read_only_commands_on_a_database_without_the_schema_name_it_and_create_nothing(
    tmp_path: Path, postgres_url: str, command: list[str]
) -> None:
    error = one_error_line(taskcron(*command, cwd=tmp_path, store=postgres_url))
    assert error == f"{ERROR}no store at {postgres_url}: run 'taskcron init' to create one"
    assert schemas(postgres_url) == set()
    assert list(tmp_path.iterdir()) == []


def test_status_lists_module_ids_in_order_as_on_sqlite(tmp_path: Path, postgres_url: str) -> None:
    modules = [f"m{n:02d}.{kind}" for n in range(30) for kind in ("b", "a")]
    random.Random(7).shuffle(modules)
    with TaskCron(config=Config(home=tmp_path / "home", store=postgres_url)) as app:
        for module in modules:
            app.schedule(module, command=["true"])
    result = taskcron("status", "--json", cwd=tmp_path, store=postgres_url)
    assert (result.returncode, result.stderr) == (0, "")
    assert list(json.loads(result.stdout)["modules"]) == sorted(modules)


def test_init_creates_the_schema_and_the_store_then_runs_tasks(
    tmp_path: Path, postgres_url: str
) -> None:
    init = taskcron("init", cwd=tmp_path, store=postgres_url)
    assert init.returncode == 0, init.stderr
    assert init.stdout.splitlines()[-1] == f"store {postgres_url}"
    assert schemas(postgres_url) == {"taskcron"}
    scheduled = taskcron(
        "schedule", "billing.eu", "--", "echo", "hi", cwd=tmp_path, store=postgres_url
    )
    assert scheduled.returncode == 0, scheduled.stderr
    tick = taskcron("tick", cwd=tmp_path, store=postgres_url)
    assert tick.returncode == 0, tick.stderr
    shown = json.loads(taskcron("show", "1", "--json", cwd=tmp_path, store=postgres_url).stdout)
    assert shown["state"] == "done"
    assert shown["runs"][0]["output_tail"] == "hi\n"


def test_a_schema_parameter_puts_the_tables_in_that_schema(
    tmp_path: Path, postgres_url: str
) -> None:
    url = postgres_url + "&schema=team_a"
    assert taskcron("schedule", "m", "--", "true", cwd=tmp_path, store=url).returncode == 0
    assert schemas(postgres_url) == {"team_a"}
    assert taskcron("list", cwd=tmp_path, store=postgres_url).returncode == 1


def test_a_newer_schema_is_refused_untouched(tmp_path: Path, postgres_url: str) -> None:
    assert taskcron("init", cwd=tmp_path, store=postgres_url).returncode == 0
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE taskcron.store_meta SET version = 99")
    for command in (["list"], ["schedule", "m", "--", "true"], ["tick"]):
        error = one_error_line(taskcron(*command, cwd=tmp_path, store=postgres_url))
        assert "schema version 99, newer than this taskcron supports" in error
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM taskcron.store_meta").fetchone() == (99,)
        assert conn.execute("SELECT count(*) FROM taskcron.tasks").fetchone() == (0,)


def test_tables_that_are_not_taskcrons_are_refused_untouched(
    tmp_path: Path, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA taskcron")
        conn.execute("CREATE TABLE taskcron.tasks (name text)")
        conn.execute("INSERT INTO taskcron.tasks VALUES ('mine')")
    for command in (["list"], ["init"], ["schedule", "m", "--", "true"]):
        error = one_error_line(taskcron(*command, cwd=tmp_path, store=postgres_url))
        assert error.endswith("is not a taskcron store; it was left untouched")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT name FROM taskcron.tasks").fetchall() == [("mine",)]


def test_hosts_starting_at_once_create_the_schema_once(tmp_path: Path, postgres_url: str) -> None:
    env = {"TASKCRON_STORE": postgres_url}
    from tests.conftest import clean_env

    procs = [
        subprocess.Popen(
            [script(), "schedule", f"m{i}", "--", "true"],
            cwd=tmp_path,
            env=clean_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 8, results
    listed = json.loads(taskcron("list", "--json", cwd=tmp_path, store=postgres_url).stdout)
    assert sorted(task["module"] for task in listed) == [f"m{i}" for i in range(8)]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"postgresql://u:{SECRET}@nosuchhost.invalid/db", "nosuchhost.invalid"),
        (f"postgresql://u:{SECRET}@127.0.0.1:1/db", "Connection refused"),
        (f"postgres://u@127.0.0.1:1/db?password={SECRET}&connect_timeout=5", "refused"),
    ],
)
def test_a_server_that_cannot_be_reached_is_one_line_without_the_password(
    tmp_path: Path, url: str, says: str
) -> None:
    for command in (["list"], ["schedule", "m", "--", "true"], ["tick"], ["init"]):
        error = one_error_line(taskcron(*command, cwd=tmp_path, store=url))
        assert error.startswith(f"{ERROR}cannot connect to store postgres")
        assert says in error
        assert SECRET not in error


def test_a_missing_database_is_one_line(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.url("no_such_database")
    error = one_error_line(taskcron("list", cwd=tmp_path, store=url))
    assert error.startswith(f"{ERROR}cannot connect to store {url}: ")
    assert 'database "no_such_database" does not exist' in error


def test_a_wrong_password_is_one_line_and_the_right_one_works_from_the_environment(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    if not postgres_server.private:
        pytest.skip("only the private server is known to ask for a password")
    dbname = urlsplit(postgres_url).path.lstrip("/")
    url = postgres_server.password_url(dbname, SECRET)
    wrong = url.replace("taskcron_pw@", "taskcron_pw:wrong-one@", 1)
    error = one_error_line(taskcron("list", cwd=tmp_path, store=wrong))
    assert "password authentication failed" in error
    assert "wrong-one" not in error
    assert error.startswith(f"{ERROR}cannot connect to store {url}: ")
    env = {"PGPASSWORD": SECRET}
    assert taskcron("init", cwd=tmp_path, store=url, env=env).returncode == 0
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:*:taskcron_pw:{SECRET}\n")
    pgpass.chmod(0o600)
    listed = taskcron("list", cwd=tmp_path, store=url, env={"PGPASSFILE": str(pgpass)})
    assert listed.returncode == 0, listed.stderr


def test_a_bad_schema_name_is_bad_input(tmp_path: Path, postgres_url: str) -> None:
    error = one_error_line(
        taskcron("list", cwd=tmp_path, store=postgres_url + "&schema=Drop-Table"), code=2
    )
    assert "schema 'Drop-Table' must be a lower-case identifier" in error


def test_without_psycopg_a_postgres_url_names_the_extra(tmp_path: Path, postgres_url: str) -> None:
    blocker = tmp_path / "blocker"
    (blocker / "psycopg").mkdir(parents=True)
    (blocker / "psycopg" / "__init__.py").write_text("raise ImportError('no psycopg here')\n")
    work = tmp_path / "work"
    work.mkdir()
    result = taskcron("list", cwd=work, store=postgres_url, env={"PYTHONPATH": str(blocker)})
    error = one_error_line(result)
    assert error == (
        f"{ERROR}store {postgres_url} is a PostgreSQL database, which needs psycopg:"
        " pip install 'taskcron[postgres]'"
    )


def test_check_reports_the_server_the_schema_and_the_round_trip(
    tmp_path: Path, postgres_url: str
) -> None:
    assert taskcron("init", cwd=tmp_path, store=postgres_url).returncode == 0
    report = json.loads(taskcron("check", "--json", cwd=tmp_path, store=postgres_url).stdout)
    store = next(item for item in report["checks"] if item["name"] == "store")
    assert store["ok"] is True
    assert store["detail"].startswith(f"{postgres_url}: PostgreSQL ")
    assert ", round trip " in store["detail"]
    assert store["detail"].endswith(", schema 5, integrity ok")


def test_generate_cron_refuses_a_store_url_with_a_password_from_the_environment(
    tmp_path: Path,
) -> None:
    url = f"postgresql://app:{SECRET}@db.example/tasks"
    tab = tmp_path / "cron.d"
    result = taskcron(
        *("generate-cron", "--module", "m", "--every", "5m"),
        *("--crontab-file", str(tab), "--user", "root", "--install"),
        cwd=tmp_path,
        store=url,
    )
    error = one_error_line(result, code=2)
    assert "holds a password" in error
    assert "~/.pgpass" in error
    assert 'store = "postgresql://app@db.example/tasks"' in error
    assert SECRET not in error
    assert not tab.exists()


def test_generate_cron_names_the_config_file_that_holds_the_store(
    tmp_path: Path, postgres_url: str
) -> None:
    (tmp_path / "taskcron.toml").write_text(f"store = {json.dumps(postgres_url)}\n")
    tab = tmp_path / "cron.d"
    result = taskcron(
        *("generate-cron", "--module", "m", "--every", "5m"),
        *("--crontab-file", str(tab), "--user", "root", "--install"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    line = tab.read_text()
    assert f"--config {tmp_path / 'taskcron.toml'}" in line
    assert "postgresql" not in line
    same = taskcron("generate-cron", "--every", "5m", cwd=tmp_path, store=postgres_url)
    assert same.returncode == 0, same.stderr
    elsewhere = taskcron(
        "generate-cron", "--every", "5m", cwd=tmp_path, store=postgres_url + "&schema=other"
    )
    assert "is not the config file's" in one_error_line(elsewhere, code=2)


def test_a_url_without_a_host_part_reaches_the_socket_named_in_its_query(
    tmp_path: Path, postgres_url: str
) -> None:
    parts = urlsplit(postgres_url)
    user = parts.username or ""
    url = f"postgresql://{parts.path}?{parts.query}&user={user}&schema=by_query"
    assert url.startswith("postgresql:///")
    assert taskcron("schedule", "m", "--", "true", cwd=tmp_path, store=url).returncode == 0
    assert schemas(postgres_url) == {"by_query"}
    listed = taskcron("list", "--json", cwd=tmp_path, store=url)
    assert [task["module"] for task in json.loads(listed.stdout)] == ["m"]
