"""The metrics of real runs: ticks of the installed script, each its own process, read
back by `taskcron metrics` and from the textfile through prometheus_client's parsers."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from taskcron import metrics
from tests.conftest import clean_env, script, wait_for
from tests.metrics.conftest import (
    HOSTILE_KEY,
    HOSTILE_RULE,
    ODD_MODULE,
    Project,
    classic,
    parsed,
    sample,
    write_project,
)


def test_the_families_are_the_fixed_names_and_parse_when_empty(project: Project) -> None:
    families = parsed(project.run("metrics").stdout)

    assert list(families) == [family.base for family in metrics.FAMILIES]
    assert [family.name for family in metrics.FAMILIES] == [
        "taskcron_runs_total",
        "taskcron_run_duration_seconds",
        "taskcron_tasks",
        "taskcron_oldest_due_age_seconds",
        "taskcron_missed_total",
        "taskcron_alerts_total",
        "taskcron_last_success_timestamp_seconds",
        "taskcron_next_due_timestamp_seconds",
        "taskcron_last_tick_timestamp_seconds",
    ]


def test_runs_tasks_and_alerts_are_counted_across_processes_and_trimming(
    project: Project,
) -> None:
    for argv in (["true"], ["true"], ["false"]):
        project.run("schedule", ODD_MODULE, "--", *argv)
    recurring = project.run(
        "schedule", "nightly", "--every", "1h", "--key", HOSTILE_KEY, "--", "true"
    ).stdout.strip()
    for _ in range(3):
        project.run("tick", check=False)
    for _ in range(3):  # one task, three runs: the store keeps one (keep_runs = 1)
        project.run("run-now", recurring)
        project.run("tick")

    shown = project.run("show", recurring, "--json").stdout
    assert '"runs_total": 3' in shown and shown.count('"outcome": "done"') == 1
    families = parsed(project.run("metrics").stdout)

    assert sample(families, "taskcron_runs_total", module=ODD_MODULE, outcome="done") == 2
    assert sample(families, "taskcron_runs_total", module=ODD_MODULE, outcome="failed") == 1
    assert sample(families, "taskcron_runs_total", module="nightly", outcome="done") == 3
    count = sample(families, "taskcron_run_duration_seconds_count", module=ODD_MODULE)
    inf = sample(families, "taskcron_run_duration_seconds_bucket", module=ODD_MODULE, le="+Inf")
    assert count == inf == 3
    assert sample(families, "taskcron_tasks", module=ODD_MODULE, state="done") == 2
    assert sample(families, "taskcron_tasks", module=ODD_MODULE, state="failed") == 1
    assert sample(families, "taskcron_tasks", module="nightly", state="queued") == 1
    assert sample(families, "taskcron_oldest_due_age_seconds", module="nightly") == 0
    for channel in ("command", "json"):  # the scheme, never the URL
        assert sample(families, "taskcron_alerts_total", rule=HOSTILE_RULE, channel=channel) == 1
    success = sample(
        families, "taskcron_last_success_timestamp_seconds", task=HOSTILE_KEY, module="nightly"
    )
    due = sample(
        families, "taskcron_next_due_timestamp_seconds", task=HOSTILE_KEY, module="nightly"
    )
    assert success is not None and due is not None and 3000 < due - success <= 3600
    (tick,) = families["taskcron_last_tick_timestamp_seconds"]
    assert tick[1] == {"host": os.uname().nodename, "scope": "all"}

    project.run("prune", "--older-than", "0s")
    pruned = parsed(project.run("metrics").stdout)
    assert sample(pruned, "taskcron_runs_total", module=ODD_MODULE, outcome="done") == 2
    assert sample(pruned, "taskcron_tasks", module=ODD_MODULE, state="done") is None


def test_the_textfile_is_the_classic_text_of_the_same_values_written_whole(
    project: Project,
) -> None:
    project.run("schedule", "m", "--", "true")
    project.run("tick")

    mode = stat.S_IMODE(project.textfile.stat().st_mode)
    assert mode == 0o644
    assert [p.name for p in project.textfile.parent.iterdir()] == ["taskcron.prom"]  # no temp
    text = project.textfile.read_text()
    written = parsed(text, classic)
    assert sample(written, "taskcron_runs_total", module="m", outcome="done") == 1
    assert "# TYPE taskcron_runs_total counter\n" in text and "# EOF" not in text

    inode = project.textfile.stat().st_ino
    project.run("schedule", "m", "--", "true")
    project.run("tick")
    assert project.textfile.stat().st_ino != inode  # replaced, never rewritten in place
    again = parsed(project.textfile.read_text(), classic)
    assert sample(again, "taskcron_runs_total", module="m", outcome="done") == 2


def test_an_idle_tick_moves_the_textfiles_time_and_nothing_else(project: Project) -> None:
    project.run("schedule", "m", "--", "true")
    project.run("tick")
    before = project.textfile.read_bytes()
    os.utime(project.textfile, (1_000_000, 1_000_000))

    idle = project.run("tick")

    assert (idle.stdout, idle.stderr) == ("", "")
    assert project.textfile.stat().st_mtime > 1_000_000
    assert project.textfile.read_bytes() == before


def test_an_idle_tick_creates_no_textfile(tmp_path: Path) -> None:
    made = write_project(tmp_path)
    made.run("init")

    made.run("tick")

    assert not made.textfile.exists()
    assert (made.home / "ticks" / "all").exists()


def test_a_textfile_that_is_not_a_prom_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    made = write_project(tmp_path)
    made.config.write_text(made.config.read_text().replace("taskcron.prom", "taskcron.txt"))

    done = made.run("metrics", check=False)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "metrics.textfile" in done.stderr


def test_a_drain_writes_the_textfile_once_it_ends(project: Project) -> None:
    for _ in range(3):
        project.run("schedule", "m", "--", "true")

    project.run("tick", "--drain")

    written = parsed(project.textfile.read_text(), classic)
    assert sample(written, "taskcron_runs_total", module="m", outcome="done") == 3


def test_work_writes_the_textfile_as_it_runs(project: Project) -> None:
    worker = subprocess.Popen(
        [script(), "--config", str(project.config), "work"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        project.run("schedule", "m", "--", "true")

        def counted() -> float | None:
            if not project.textfile.exists():
                return None
            written = parsed(project.textfile.read_text(), classic)
            return sample(written, "taskcron_runs_total", module="m", outcome="done")

        assert wait_for(counted, timeout=30) == 1
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_textfile_that_cannot_be_written_is_a_warning_not_a_failed_tick(
    project: Project,
) -> None:
    project.textfile.parent.rmdir()
    project.run("schedule", "m", "--", "true")

    done = project.run("tick", check=False)

    assert done.returncode == 0
    assert done.stderr.startswith(
        f"taskcron: warning: cannot write the metrics to {project.textfile}"
    )
    assert project.run("show", "1", "--json").stdout.count('"outcome": "done"') == 1
