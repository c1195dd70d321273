"""The README documents every command and every option of the command line."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from taskcron.cli import cli

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_is_in_the_readme(name: str) -> None:
    assert f"taskcron {name}" in README


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (name, option)
        for name, command in sorted(cli.commands.items())
        for param in command.params
        if isinstance(param, click.Option)
        for option in param.opts
        if option.startswith("--") and option != "--help"
    ],
)
def test_every_long_option_is_in_the_readme(command: str, option: str) -> None:
    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", README), f"{command} {option}"
