"""Hostile text for the security suites: strings made of the fragments that break
terminals, shells, crontab lines, rich markup and HTML, the same on every run."""

from __future__ import annotations

import json
import random
from typing import Any

from taskcron import TaskCron, errors
from taskcron.model import Task

FRAGMENTS = (
    "\n", "\r", "\0", "%", "#", ";", "$", "(", ")", "$(id)", "`id`", "'", '"', "\\", "\t",
    "\x1b[31m", "\x1b]0;title\x07", "\x1b[2J", "\x07", "\x08", "\u202e", "\u2028",
    "[red]", "[/]", "[bold]x[/bold]", "[link=https://example.com]x[/link]", ":smile:",
    "<script>alert(1)</script>", "<b>", "&amp;", "../", "/etc/passwd", "~", "*", "{}",
    "é", " ", "a", "b.c", "x-y", "_",
)  # fmt: skip


def hostile(count: int, seed: int = 14) -> list[str]:
    """`count` strings of one to five hostile fragments, the same on every run."""
    rng = random.Random(seed)
    return ["".join(rng.choices(FRAGMENTS, k=rng.randint(1, 5))) for _ in range(count)]


def schedule_hostile(app: TaskCron, text: str) -> tuple[Task | None, int]:
    """Schedule `text` as module id, title, owner, data and command argument, dropping the
    module id and owner when they are refused; the task and how many fields were refused."""
    refused = 0
    fields: dict[str, Any] = {"title": text, "owner": text}
    for module in (text, "hostile"):
        for owner in (text, None):
            try:
                task = app.schedule(
                    module,
                    command=["printf", "%s", text],
                    data_json=json.dumps({"text": text}),
                    **{**fields, "owner": owner},
                )
            except errors.InputError:
                refused += 1
                continue
            return task, refused
    return None, refused
