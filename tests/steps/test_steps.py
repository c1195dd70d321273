"""Long jobs in time-boxed steps, through real subprocesses of the installed script.

A job saves where it got to in `ctx.state`, ends a step with `taskcron.Continue`,
and the next tick that reaches it goes on from there; its progress is kept with
the task. Commands do the same with `::state` and `::progress` lines and exit 75.
"""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from taskcron import TaskCron
from taskcron.config import load
from tests.conftest import SERIAL, clean_env, script, taskcron_in, wait_for

JOBS = '''
import json, os, time
from pathlib import Path
import taskcron

def counter(ctx, data):
    """Count to data["to"] in steps of data["step"], saving where it got to."""
    done = ctx.state.get("done", 0)
    Path(data["log"]).open("a").write(json.dumps({"step": ctx.step, "from": done}) + "\\n")
    done += data["step"]
    ctx.progress(min(done, data["to"]), data["to"], f"counted to {done}")
    if done < data["to"]:
        ctx.state["done"] = done
        raise taskcron.Continue(data.get("delay"))
    return {"counted": done}

def breaks_at_three(ctx, data):
    if ctx.step == 3:
        raise ValueError("step three breaks")
    ctx.state["seen"] = ctx.state.get("seen", []) + [ctx.step]
    raise taskcron.Continue()

def killable(ctx, data):
    """Step 1 saves {"at": 1}; step 2 hangs until killed; later steps say what they got."""
    Path(data["seen"]).open("a").write(json.dumps(ctx.state) + "\\n")
    if ctx.step == 1:
        ctx.state["at"] = 1
        raise taskcron.Continue()
    if not Path(data["marker"]).exists():
        Path(data["marker"]).write_text(str(os.getpid()))
        ctx.state["at"] = 99  # never saved: the step does not end
        time.sleep(60)
    return ctx.state

def forever(ctx, data):
    raise taskcron.Continue()

def slow(ctx, data):
    time.sleep(data["seconds"])

def noop(ctx, data):
    pass

def not_json(ctx, data):
    ctx.state["when"] = object()
    raise taskcron.Continue()
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text(JOBS)
    (tmp_path / "taskcron.toml").write_text("")
    return tmp_path


def app(project: Path) -> TaskCron:
    return TaskCron(config=load(project / "taskcron.toml"))


def tick(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = taskcron_in(project, "tick", *args)
    assert result.returncode == 0, result.stderr
    return result


def show(project: Path, task_id: int) -> dict[str, Any]:
    result = taskcron_in(project, "show", str(task_id), "--json")
    assert result.returncode == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_job_runs_in_steps_over_several_ticks_carrying_its_state(project: Path) -> None:
    log = project / "steps.jsonl"
    with app(project) as tc:
        job = tc.schedule(
            "reindex", call="jobs:counter", data={"to": 10, "step": 4, "log": str(log)}
        )
    percents = []
    for _ in range(3):
        result = tick(project, "--module", "reindex")
        assert (result.stdout, result.stderr) == ("", "")
        percents.append(show(project, job.id)["progress"]["percent"])
    assert lines(log) == [{"step": 1, "from": 0}, {"step": 2, "from": 4}, {"step": 3, "from": 8}]
    assert percents == [40.0, 80.0, 100.0]
    shown = show(project, job.id)
    assert shown["state"] == "done"
    assert shown["result"] == {"counted": 12}
    assert [r["outcome"] for r in shown["runs"]] == ["continued", "continued", "done"]
    assert shown["attempts"] == 1  # continued steps use no attempt
    assert shown["progress"]["message"] == "counted to 12"


def test_other_modules_run_between_the_steps_of_a_job(project: Path) -> None:
    log = project / "steps.jsonl"
    with app(project) as tc:
        job = tc.schedule(
            "reindex", call="jobs:counter", data={"to": 3, "step": 1, "log": str(log)}
        )
        mail = tc.schedule("mail", call="jobs:noop")
    tick(project)
    queued = json.loads(taskcron_in(project, "list", "--json").stdout)
    assert [(t["id"], t["state"]) for t in queued] == [(mail.id, "queued"), (job.id, "queued")]
    ran = json.loads(tick(project, "--json").stdout)["task"]["id"]
    assert ran == mail.id
    assert show(project, job.id)["runs"][-1]["outcome"] == "continued"


@pytest.mark.parametrize("delay", [3600, "1h", "PT"], ids=["seconds", "duration", "timedelta"])
def test_continue_with_a_delay_defers_the_next_step(project: Path, delay: Any) -> None:
    if delay == "PT":  # a timedelta cannot travel as JSON data: the handler builds one
        (project / "later.py").write_text(
            "import datetime, taskcron\n"
            "def job(ctx, data):\n"
            "    raise taskcron.Continue(delay=datetime.timedelta(hours=1))\n"
        )
        target = ("--call", "later:job")
    else:
        (project / "later.py").write_text(
            "import taskcron\n"
            "def job(ctx, data):\n"
            "    raise taskcron.Continue(delay=data['delay'])\n"
        )
        target = ("--call", "later:job", "--data", json.dumps({"delay": delay}))
    assert taskcron_in(project, "schedule", "m", *target).returncode == 0
    tick(project)
    task = show(project, 1)
    ran = task["runs"][-1]
    assert (task["state"], ran["outcome"]) == ("queued", "continued")
    from datetime import datetime

    wait = datetime.fromisoformat(task["due_at"]) - datetime.fromisoformat(ran["ended_at"])
    assert 3599 <= wait.total_seconds() <= 3601
    assert json.loads(tick(project, "--json").stdout) == {"outcome": "idle", "task": None}


def test_an_exception_in_step_three_fails_the_job_with_steps_one_and_two_recorded(
    project: Path,
) -> None:
    assert taskcron_in(project, "schedule", "m", "--call", "jobs:breaks_at_three").returncode == 0
    tick(project)
    tick(project)
    third = taskcron_in(project, "tick")
    assert third.returncode == 1
    assert third.stderr == "taskcron: error: task 1 (m) failed: ValueError: step three breaks\n"
    task = show(project, 1)
    assert task["state"] == "failed"
    assert [r["outcome"] for r in task["runs"]] == ["continued", "continued", "failed"]


@SERIAL
def test_a_step_killed_with_sigkill_resumes_from_the_last_saved_state(project: Path) -> None:
    (project / "taskcron.toml").write_text('lease = "1s"\n[retry]\nbackoff = "0s"\n')
    seen, marker = project / "seen.jsonl", project / "marker"
    data = json.dumps({"seen": str(seen), "marker": str(marker)})
    args = ("schedule", "m", "--call", "jobs:killable", "--data", data, "--max-attempts", "3")
    assert taskcron_in(project, *args).returncode == 0
    tick(project)
    ticking = subprocess.Popen(
        [script(), "tick"], cwd=project, env=clean_env(), stderr=subprocess.DEVNULL
    )
    wait_for(marker.exists)
    ticking.send_signal(signal.SIGKILL)
    ticking.wait(timeout=30)
    result = json.loads(tick(project, "--json").stdout)
    assert result["task"]["state"] == "done"
    assert lines(seen) == [{}, {"at": 1}, {"at": 1}]
    assert result["task"]["result"] == {"at": 1}
    outcomes = [r["outcome"] for r in show(project, 1)["runs"]]
    assert outcomes == ["continued", "interrupted", "done"]


def test_a_command_reports_progress_saves_state_and_exits_75_to_continue(project: Path) -> None:
    step = textwrap.dedent(
        """\
        input=$(cat)
        echo "step $TASKCRON_STEP got $input"
        echo "::progress $TASKCRON_STEP/2 half way"
        if [ "$TASKCRON_STEP" = 1 ]; then echo '::state {"page": 7}'; exit 75; fi
        echo done
        """
    )
    args = ("schedule", "m", "--data", '{"n": 1}', "--", "sh", "-c", step)
    assert taskcron_in(project, *args).returncode == 0
    first = tick(project)
    assert first.stdout == first.stderr == ""
    task = show(project, 1)
    assert task["state"] == "queued"
    assert task["runs"][0]["outcome"] == "continued"
    assert task["runs"][0]["output_tail"] == 'step 1 got {"n": 1}\n'
    assert task["progress"]["percent"] == 50.0
    tick(project)
    task = show(project, 1)
    assert task["state"] == "done"
    assert task["runs"][1]["output_tail"] == (
        'step 2 got {"data": {"n": 1}, "state": {"page": 7}}\ndone\n'
    )
    assert (task["progress"]["done"], task["progress"]["message"]) == (2, "half way")


def test_a_step_that_overruns_its_budget_is_recorded_not_killed(project: Path) -> None:
    args = ("schedule", "m", "--call", "jobs:slow", "--data", '{"seconds": 1.2}')
    assert taskcron_in(project, *args).returncode == 0
    tick(project, "--budget", "0.2s")
    assert show(project, 1)["state"] == "done"
    records = json.loads(
        "[" + ",".join(taskcron_in(project, "log", "--json").stdout.splitlines()) + "]"
    )
    overrun = [r for r in records if r["event"] == "task.overrun"]
    assert len(overrun) == 1
    assert overrun[0]["level"] == "warning"
    assert overrun[0]["budget"] == pytest.approx(0.2, abs=0.05)
    assert overrun[0]["elapsed"] >= 1.2


def test_a_job_that_continues_past_max_steps_fails_naming_the_cap(project: Path) -> None:
    (project / "taskcron.toml").write_text("max_steps = 3\n")
    assert taskcron_in(project, "schedule", "m", "--call", "jobs:forever").returncode == 0
    tick(project)
    tick(project)
    third = taskcron_in(project, "tick")
    assert third.returncode == 1
    assert "needs more than max_steps (3) steps" in third.stderr
    assert show(project, 1)["state"] == "failed"


def test_a_state_that_is_not_json_fails_the_step_and_keeps_the_previous_one(
    project: Path,
) -> None:
    assert taskcron_in(project, "schedule", "m", "--call", "jobs:not_json").returncode == 0
    result = taskcron_in(project, "tick")
    assert result.returncode == 1
    assert "ctx.state cannot be saved as a JSON object" in result.stderr


def test_a_continued_task_lists_as_queued_with_its_last_run_continued(project: Path) -> None:
    assert taskcron_in(project, "schedule", "m", "--call", "jobs:forever").returncode == 0
    tick(project)
    listed = taskcron_in(project, "list").stdout.splitlines()
    header, row = listed[0].split(), listed[1].split()
    assert header[-1] == "last"
    assert row[3] == "queued"
    assert row[-1] == "continued"
