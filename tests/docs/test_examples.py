"""The runnable examples of the README and the docs site print what they show.

An example is runnable when a ```console block with `$ ` prompts comes right after
a `<!-- run -->` line. Its commands run one after another in a shell, against an
empty home of their own (TASKCRON_HOME) with the installed `taskcron` first on
PATH, and what they print (stdout and stderr) is compared line by line with the
lines under each prompt: `...` in a line stands for any text (ids, times), and a
line that is only `...` for any number of lines.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import clean_env, script

ROOT = Path(__file__).resolve().parents[2]
MARK = "<!-- run -->"


class Step(NamedTuple):
    command: str
    expected: list[str]


class Example(NamedTuple):
    where: str
    steps: list[Step]


def examples_in(path: Path) -> list[Example]:
    """Every runnable example of a Markdown file."""
    lines = path.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        assert lines[i + 1] == "```console", f"{path}:{i + 2}: {MARK} needs a ```console block"
        end = lines.index("```", i + 2)
        steps: list[Step] = []
        for body in lines[i + 2 : end]:
            if body.startswith("$ "):
                steps.append(Step(body[2:], []))
            else:
                assert steps, f"{path}:{i + 3}: a runnable example starts with a $ prompt"
                steps[-1].expected.append(body)
        found.append(Example(f"{path.relative_to(ROOT)}:{i + 1}", steps))
    return found


def all_examples() -> list[Example]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs" / "pages").rglob("*.md"))]
    return [example for path in files for example in examples_in(path)]


def pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in line.split("...")) + r"\Z")


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether `actual` is `expected` with its ellipses filled in."""
    if not expected:
        return not actual
    first, rest = expected[0], expected[1:]
    if first == "...":
        return any(matches(rest, actual[n:]) for n in range(len(actual) + 1))
    if not actual or not pattern(first).match(actual[0].rstrip()):
        return False
    return matches(rest, actual[1:])


def test_the_readme_and_the_getting_started_page_have_runnable_examples() -> None:
    where = {example.where.split(":")[0] for example in all_examples()}

    assert {"README.md", "docs/pages/getting-started.md"} <= where


def test_an_ellipsis_matches_text_within_a_line_and_any_lines_alone() -> None:
    assert matches(["id ... done", "..."], ["id 12 at 10:00 done", "a", "b"])
    assert matches(["...", "end"], ["end"])
    assert not matches(["id ... done"], ["id 12 failed"])
    assert not matches(["one"], ["one", "two"])


@pytest.mark.parametrize("example", all_examples(), ids=lambda e: e.where)
def test_the_example_prints_what_it_shows(example: Example, tmp_path: Path) -> None:
    bin_dir = Path(script()).parent
    env = clean_env(
        TASKCRON_HOME=str(tmp_path / "home"),
        PATH=f"{bin_dir}:{clean_env()['PATH']}",
        COLUMNS="100",
        TZ="UTC",
    )
    for step in example.steps:
        result = subprocess.run(
            ["sh", "-c", f"{{ {step.command}\n}} 2>&1"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        actual = result.stdout.splitlines()
        assert matches(step.expected, actual), (
            f"{example.where}: $ {step.command}\nexpected:\n"
            + "\n".join(step.expected)
            + "\nprinted:\n"
            + "\n".join(actual)
        )
