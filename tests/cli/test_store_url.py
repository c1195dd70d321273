"""Choosing the store by URL: `--store`, `TASKCRON_STORE` and the config key `store`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import taskcron_in

ERROR = "taskcron: error: "


def taskcron(
    *args: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return taskcron_in(cwd, *args, env=env, input=input)


def modules_in(cwd: Path, *args: str) -> list[str]:
    listed = taskcron(*args, "list", "--json", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    return [task["module"] for task in json.loads(listed.stdout)]


def test_an_absolute_store_url_puts_the_tasks_there(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "tasks.db"
    db.parent.mkdir()
    url = f"sqlite:///{db}"
    assert url.startswith("sqlite:////")
    result = taskcron("--store", url, "schedule", "m", "--", "true", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert db.is_file()
    assert not (tmp_path / ".taskcron" / "tasks.db").exists()
    assert modules_in(tmp_path, "--store", url) == ["m"]
    assert modules_in(tmp_path) == [] or not (tmp_path / ".taskcron" / "tasks.db").exists()


def test_a_relative_store_url_in_the_config_is_relative_to_the_config_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "taskcron.toml").write_text('store = "sqlite:///data/tasks.db"\n')
    (tmp_path / "data").mkdir()
    sub = tmp_path / "sub"
    sub.mkdir()
    assert taskcron("schedule", "m", "--", "true", cwd=sub).returncode == 0
    assert (tmp_path / "data" / "tasks.db").is_file()
    assert modules_in(tmp_path) == ["m"]


def test_the_environment_names_the_store_and_the_option_wins_over_it(tmp_path: Path) -> None:
    env = {"TASKCRON_STORE": "sqlite:///from-env.db"}
    assert taskcron("schedule", "env", "--", "true", cwd=tmp_path, env=env).returncode == 0
    assert (tmp_path / "from-env.db").is_file()
    option = taskcron(
        "--store",
        "sqlite:///from-option.db",
        "schedule",
        "opt",
        "--",
        "true",
        cwd=tmp_path,
        env=env,
    )
    assert option.returncode == 0
    assert (tmp_path / "from-option.db").is_file()


def test_a_read_only_command_on_a_store_url_that_does_not_exist_creates_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / ".taskcron").mkdir()
    result = taskcron("--store", "sqlite:///missing.db", "list", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(ERROR + "no store at ")
    assert "taskcron init" in result.stderr
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize(
    "url",
    ["mysql://db/tasks", "tasks.db", "sqlite://host/tasks.db", "sqlite:///", "sqlite:///:memory:"],
)
def test_a_bad_store_url_is_bad_input_naming_the_known_schemes(tmp_path: Path, url: str) -> None:
    result = taskcron("--store", url, "schedule", "m", "--", "true", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(ERROR + "invalid store URL")
    assert len(result.stderr.splitlines()) == 1
    if "://" not in url or url.startswith("mysql"):
        assert "known: sqlite://" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "shown", "why"),
    [
        ("postgresql://u:secret@[::1/db", "postgresql://u@[::1/db", "Invalid IPv6 URL"),
        ("postgresql://u:secret@h:abc/db", "postgresql://u@h:abc/db", "Port could not be cast"),
        ("postgresql://u:secret@h:99999/db", "postgresql://u@h:99999/db", "Port out of range"),
        ("postgresql://u:secret@h/db?foo=1", "postgresql://u@h/db?foo=1", 'parameter: "foo"'),
        # libpq quotes the whole URL in this one: shown redacted.
        ("postgresql://u:secret@[::1]x/db", "postgresql://u@[::1]x/db", '"postgresql://u@[::1]x'),
        ("postgres://u@h/db?password=secret&x=1", "postgres://u@h/db?x=1", 'parameter: "x"'),
    ],
)
def test_a_malformed_postgresql_url_is_bad_input_that_never_shows_the_password(
    tmp_path: Path, url: str, shown: str, why: str
) -> None:
    pytest.importorskip("psycopg")
    result = taskcron("--store", url, "schedule", "m", "--", "true", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"{ERROR}invalid store URL {shown!r}: ")
    assert why in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "secret" not in result.stderr


def test_an_unreachable_postgresql_server_is_exit_1_without_the_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    url = "postgresql://u:secret@127.0.0.1:1/db"
    result = taskcron("--store", url, "schedule", "m", "--", "true", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(
        f"{ERROR}cannot connect to store postgresql://u@127.0.0.1:1/db: "
    )
    assert len(result.stderr.splitlines()) == 1
    assert "secret" not in result.stderr


def test_init_names_a_configured_store(tmp_path: Path) -> None:
    result = taskcron("--store", "sqlite:///x.db", "init", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == f"store sqlite:///{tmp_path / 'x.db'}"


def test_scheduling_creates_the_directories_a_store_url_names(tmp_path: Path) -> None:
    db = tmp_path / "var" / "lib" / "app" / "tasks.db"
    result = taskcron("--store", f"sqlite:///{db}", "schedule", "m", "--", "true", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert db.is_file()
