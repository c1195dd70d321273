"""End to end with the real cron daemon: schedule, `generate-cron --install`, see the task done.

Runs only when CI or TASKCRON_E2E is set and a cron daemon is running (`.ci/run`
installs and starts Debian's cron when it runs as root); it edits the real
crontab of the user running the tests and always uninstalls its line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SERIAL, wait_for

pytestmark = SERIAL

Run = Callable[..., subprocess.CompletedProcess[Any]]
DAEMONS = {"cron", "crond"}


def cron_daemon_running() -> bool:
    """Whether a process named cron or crond is running on this machine."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in DAEMONS:
                return True
        except OSError:
            continue
    return False


def skip_reason() -> str | None:
    """Why the test cannot run here, or None."""
    if not (os.environ.get("CI") or os.environ.get("TASKCRON_E2E")):
        return "set CI or TASKCRON_E2E to run the end-to-end test with the real cron daemon"
    if shutil.which("crontab") is None:
        return "no crontab program (install Debian's cron package)"
    if not cron_daemon_running():
        return "no cron daemon is running (start it with `cron` as root)"
    return None


def test_the_real_cron_daemon_runs_an_installed_line(run_cli: Run, tmp_path: Path) -> None:
    reason = skip_reason()
    if reason is not None:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    marker = tmp_path / "ran-under-cron"
    scheduled = run_cli("schedule", "e2e.cron", "--", "/usr/bin/touch", str(marker))
    assert scheduled.returncode == 0, scheduled.stderr
    task_id = scheduled.stdout.strip()
    try:
        installed = run_cli("generate-cron", "-m", "e2e.cron", "--every", "1m", "--install")
        assert installed.returncode == 0, installed.stderr

        def done() -> bool:
            shown = run_cli("show", task_id, "--json")
            return json.loads(shown.stdout)["state"] == "done"

        wait_for(done, timeout=75, interval=1)
        assert marker.exists()
    finally:
        removed = run_cli("generate-cron", "-m", "e2e.cron", "--uninstall")
        assert removed.returncode == 0, removed.stderr
