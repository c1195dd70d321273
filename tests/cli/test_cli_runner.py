"""Fast in-process checks of the command line with click's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from taskcron import __version__
from taskcron.cli import cli

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """Run `taskcron ARGS` in-process, in tmp_path, with a home in tmp_path."""
    monkeypatch.chdir(tmp_path)
    for name in ("TASKCRON_HOME", "TASKCRON_CONFIG", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(
            cli,
            list(args),
            input=input,
            env={"TASKCRON_HOME": str(tmp_path / "home")},
            prog_name="taskcron",
        )

    yield run


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_text(invoke: Invoke, name: str) -> None:
    command = cli.commands[name]
    summary = command.get_short_help_str(limit=200)
    assert summary.strip(), f"{name} has no help text"
    result = invoke(name, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: taskcron {name} ")
    first_line = (command.help or "").strip().splitlines()[0]
    assert " ".join(first_line.split()) in " ".join(result.stdout.split())
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{name} {param.opts[0]} has no help"


def test_top_level_help_names_every_command(invoke: Invoke) -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in cli.commands:
        assert f"  {name} " in result.stdout or result.stdout.rstrip().endswith(f"  {name}")


def test_version(invoke: Invoke) -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("no-such-command",),
        ("tick", "--no-such-option"),
        ("show",),
        ("show", "one"),
        ("cancel", "1", "2"),
        ("schedule",),
        ("schedule", "m"),
        ("schedule", "m", "--call", "a.b:c", "--task", "t"),
        ("schedule", "m", "--task", "t", "--", "true"),
        ("schedule", "m", "--priority", "x", "--", "true"),
        ("schedule", "m", "--max-attempts", "x", "--", "true"),
        ("list", "--state"),
        ("log", "-n", "-1"),
    ],
    ids=" ".join,
)
def test_usage_errors_exit_2(invoke: Invoke, args: tuple[str, ...], tmp_path: Path) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Error" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "home" / "tasks.db").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("schedule", "a..b", "--", "true"),
            "taskcron: error: invalid module id 'a..b': empty segment\n",
        ),
        (("schedule", "m", "--data", "{", "--", "true"), None),
        (("schedule", "m", "--timeout", "5x", "--", "true"), None),
        (("tick", "--module", "a b"), None),
        (("list", "--state", "nope"), None),
    ],
)
def test_input_errors_exit_2_with_one_line(
    invoke: Invoke, args: tuple[str, ...], line: str | None, tmp_path: Path
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("taskcron: error: ")
    if line is not None:
        assert result.stderr == line
    assert not (tmp_path / "home" / "tasks.db").exists()


def test_schedule_list_show_in_process(invoke: Invoke) -> None:
    assert invoke("schedule", "m.x", "--data", '{"a": [1]}', "--", "true").stdout == "1\n"
    listed = json.loads(invoke("list", "--json").stdout)
    assert [(t["id"], t["module"], t["state"], t["data"]) for t in listed] == [
        (1, "m.x", "queued", {"a": [1]})
    ]
    missing = invoke("show", "7")
    assert (missing.exit_code, missing.stdout, missing.stderr) == (
        1,
        "",
        "taskcron: error: no task with id 7\n",
    )
