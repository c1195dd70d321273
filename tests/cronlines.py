"""Crontab lines for the tests of generate-cron: a job built from fixed values, and
reading a line as Debian cron does."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from taskcron.cronline import CronJob, build
from taskcron.model import Scope

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
EXE = ("/opt/venv/bin/taskcron",)
HOME = Path("/srv/app/.taskcron")
#: Short texts made of the characters that can break a crontab line or its shell command.
HOSTILE = st.text(
    alphabet=st.sampled_from(list("\n\r\x00%#;$()'\"\\ \tab./-_é")), min_size=1, max_size=24
)


def make_job(home: Path = HOME, **overrides: Any) -> CronJob:
    """The job `build` makes for `home`, every minute at NOW in UTC, run by EXE; `overrides` win."""
    fields: dict[str, Any] = {
        "home": home,
        "scope": Scope(),
        "every": "1m",
        "now": NOW,
        "tz": timezone.utc,
        "command": EXE,
    }
    fields.update(overrides)
    return build(**fields)


def cron_command(line: str, *, system: bool = False) -> str:
    """What Debian cron hands to `sh -c` for `line` (an independent port of do_command's walk)."""
    rest = line.split(None, 6 if system else 5)[-1]
    out = ""
    escaped = False
    for char in rest:
        if escaped:
            escaped = False
            if char == "%":
                out = out[:-1] + "%"
                continue
        elif char == "\\":
            escaped = True
        elif char == "%":
            break
        out += char
    return out
