"""Security: no unsafe serialisation or shells in the source, hostile text taken literally,
and a private home.

10,000 hostile strings (line breaks, NUL, shell and cron metacharacters, quotes,
ANSI escapes, rich markup, HTML) go in as module ids, titles, owners, data,
homes and scopes, through the API and the renderers in one process, and about 50
through the installed script: every one is refused as bad input or kept and
shown literally; none adds a crontab line or writes outside its home.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import taskcron
from taskcron import TaskCron, errors, render, values
from taskcron.config import Config
from taskcron.model import Task
from taskcron.render import status as render_status
from tests.conftest import clean_env, script
from tests.hostile import hostile, schedule_hostile

COUNT = 10_000
THROUGH_THE_SCRIPT = 50
#: An escape sequence rich writes for its own styles (SGR); any other is the input's.
SGR = re.compile(r"\x1b\[[0-9;]*m")


def assert_literal(output: str) -> None:
    """Colour output holds no escape sequence but rich's own styles, and no other control
    character than a line break."""
    left = SGR.sub("", output)
    bad = [c for c in left if (not c.isprintable() and c != "\n") or c in "\u202e\u2028"]
    assert not bad, (bad[:5], left[:300])


def colour_console() -> Any:
    from rich.console import Console

    return Console(
        file=io.StringIO(),
        width=160,
        force_terminal=True,
        color_system="truecolor",
        highlight=False,
        emoji=False,
        markup=False,
    )


def assert_one_job(text: str, home: Path) -> None:
    """A crontab of one marker comment and one job line whose command, as cron and a shell
    read it, gives exactly `home` to --home."""
    lines = [line for line in text.split("\n") if line]
    jobs = [line for line in lines if not line.startswith("#")]
    assert len(jobs) == 1 and len(lines) == 2, lines
    command = jobs[0].split(" ", 5)[5]
    assert re.search(r"(?<!\\)%", command) is None, "an unescaped % is a line break to cron"
    argv = shlex.split(command.replace("\\%", "%"))
    assert argv[argv.index("--home") + 1] == str(home)
    assert argv[-3:] == [">>", str(home / "cron.log"), "2>&1"]


# --- the source ---------------------------------------------------------------------


def test_the_source_uses_no_pickle_marshal_or_shell() -> None:
    package = Path(taskcron.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 10
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for pattern in (r"\bpickle\b", r"\bmarshal\b", r"shell\s*=\s*True"):
            assert re.search(pattern, text) is None, f"{path.name} holds {pattern}"


# --- through the API and the renderers ------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TaskCron]:
    with TaskCron(config=Config(home=tmp_path / "home")) as tc:
        yield tc


def test_hostile_strings_through_the_api_are_refused_or_kept_and_shown_literally(
    app: TaskCron, tmp_path: Path, record_property: Any
) -> None:
    texts = hostile(COUNT)
    kept: dict[int, str] = {}
    refused = 0
    for text in texts:
        task, no = schedule_hostile(app, text)
        refused += no
        if task is not None:
            kept[task.id] = text

    tasks = app.list(all=True)
    assert {t.id for t in tasks} == set(kept)
    with_owner = 0
    for task in tasks:
        text = kept[task.id]
        assert task.title == text
        assert json.loads(task.data_json) == {"text": text}
        assert task.owner in (None, text)
        with_owner += task.owner is not None
        assert task.to_json(runs=False)["title"] == text

    plain = render.capture(_table(tasks[:500]), width=400)
    for task in tasks[:500]:
        assert render.one_line(task.title)[:40] in plain
    con = colour_console()
    for start in range(0, len(tasks), 1000):
        render.task_table(tasks[start : start + 1000], out=con)
    for task in tasks[:300]:
        render.task_detail(app.get(task.id), out=con)
    render_status.status_report(app.status(), file=con.file)
    for rec in app.log(COUNT):
        render.log_record(rec, out=con)
    assert_literal(con.file.getvalue())
    assert "[red]" in con.file.getvalue() and "<script>" in con.file.getvalue()

    scopes = 0
    for text in texts[:2000]:
        try:
            app.list(modules=(text,))
            app.list(excepts=(text,))
            app.status(modules=(text,))
            scopes += 1
        except errors.InputError:
            pass

    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")} == {"home"}
    figures = (
        f"{COUNT} hostile strings, {len(kept)} tasks kept ({with_owner} with their owner), "
        f"{refused} fields refused as bad input, {scopes} accepted as scopes, 0 shown raw"
    )
    record_property("hostile_api", figures)
    print(f"\nsuite 8, API and renderers: {figures}")


def _table(tasks: list[Task]) -> Any:
    out = io.StringIO()
    con = render.console(out, width=400, plain=True)
    render.task_table(tasks, out=con)
    from rich.text import Text

    return Text(out.getvalue())


def test_hostile_homes_and_scopes_never_add_a_crontab_line(
    tmp_path: Path, record_property: Any
) -> None:
    crontab = tmp_path / "crontab"
    crontab.write_text("MAILTO=ops\n")
    lines = refused = 0
    for text in hostile(COUNT, seed=8):
        home = (tmp_path / "homes" / text).absolute()
        try:
            edit = _dry_run(home, crontab, excepts=(text,))
        except errors.InputError:
            refused += 1
            try:
                edit = _dry_run(home, crontab)
            except errors.InputError:
                continue
        assert edit.text is not None and edit.text.startswith("MAILTO=ops\n")
        assert_one_job(edit.text.removeprefix("MAILTO=ops\n"), home)
        lines += 1
    assert crontab.read_text() == "MAILTO=ops\n"
    assert not (tmp_path / "homes").exists(), "a dry run created a home"
    figures = f"{COUNT} hostile homes and scopes, {lines} crontab lines each one job, "
    figures += f"{refused} refused as bad input, 0 injected"
    record_property("hostile_crontab", figures)
    print(f"\nsuite 8, crontab: {figures}")


def _dry_run(home: Path, crontab: Path, excepts: tuple[str, ...] = ()) -> Any:
    app = TaskCron(config=Config(home=home))
    return app.generate_cron(every="5m", crontab_file=str(crontab), dry_run=True, excepts=excepts)


def test_hostile_homes_hold_their_files_inside(tmp_path: Path) -> None:
    made = 0
    for n, text in enumerate(hostile(100, seed=3)):
        base = tmp_path / str(n)
        base.mkdir()
        try:
            app = TaskCron(config=Config(home=(base / "h" / text).absolute()))
        except errors.InputError:
            continue
        with app:
            try:
                app.schedule("m", command=["true"], title=text)
            except errors.TaskcronError:
                continue  # a home whose path the system refuses (too long, say)
            made += 1
            home = app.home.resolve()
        for path in base.rglob("*"):
            if path.is_file():
                assert home in path.resolve().parents, path
    assert made > 50


# --- through the installed script ------------------------------------------------------


def test_hostile_strings_through_the_script_are_one_line_refusals_or_shown_literally(
    tmp_path: Path, record_property: Any
) -> None:
    home = tmp_path / "home"
    env = clean_env(TASKCRON_HOME=str(home), COLUMNS="300")

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [script(), *args], capture_output=True, env=env, cwd=tmp_path, timeout=60, check=False
        )

    texts = [t.replace("\0", "") for t in hostile(THROUGH_THE_SCRIPT, seed=50)]
    refused = unread = 0
    ids: dict[int, str] = {}
    for text in texts:
        data = json.dumps({"text": text})
        result = run(
            "schedule", "m", "--title", text, "--owner", text, "--data", data, "--", "true"
        )
        if result.returncode == 2:
            assert result.stderr.count(b"\n") == 1 and result.stderr.startswith(b"taskcron: error:")
            assert_literal(result.stderr.decode())
            refused += 1
            result = run("schedule", "m", "--title", text, "--data", data, "--", "true")
        if text == "":  # an empty title is refused: leave it out to use the target
            assert b"leave the title out to use the target" in result.stderr
            continue
        assert result.returncode == 0, result.stderr
        ids[int(result.stdout)] = text
        edit = run("--home", str(home / text), "generate-cron", "--every", "1m", "--dry-run",
                   "--crontab-file", str(tmp_path / "crontab"))  # fmt: skip
        if edit.returncode == 0:
            assert_one_job(edit.stdout.decode(), home / text)
        else:
            assert edit.returncode == 2 and edit.stderr.count(b"\n") == 1, edit.stderr
            unread += 1

    listed = json.loads(run("list", "--json").stdout)
    assert {t["id"]: (t["title"], t["data"]) for t in listed} == {
        i: (text, {"text": text}) for i, text in ids.items()
    }
    for args in (("list",), ("status",), *(("show", str(i)) for i in list(ids)[:10])):
        out = run(*args)
        assert out.returncode == 0 and out.stderr == b"", out.stderr
        assert_literal(out.stdout.decode())
        if args[0] == "show":
            assert render.one_line(ids[int(args[1])]) in out.stdout.decode()
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")} == {"home"}
    figures = f"{len(texts)} hostile strings, {refused} owners refused as bad input, "
    figures += f"{unread} homes refused as bad input, 0 shown raw, 0 injected"
    record_property("hostile_script", figures)
    print(f"\nsuite 8, installed script: {figures}")


# --- a private home ---------------------------------------------------------------------


def test_the_home_is_private_under_umask_000(tmp_path: Path) -> None:
    config = tmp_path / "taskcron.toml"
    config.write_text("[log]\nmax_bytes = 2000\nbackups = 3\n")
    config.chmod(0o644)
    home = tmp_path / "home"
    env = clean_env(TASKCRON_HOME=str(home))

    def run(*args: str) -> None:
        result = subprocess.run(
            [script(), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
            umask=0,
        )
        assert result.returncode == 0, result.stderr

    for n in range(12):
        run("schedule", f"m{n}", "--", "echo", "x" * 200)
    run("tick")
    run("tick", "--drain", "--workers", "3")
    run("generate-cron", "--every", "1m", "--install", "--crontab-file", str(tmp_path / "tab"))
    files = {
        p.relative_to(home).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in home.rglob("*")
    }
    assert {"tasks.db", "log/taskcron.jsonl.1", "log/taskcron.jsonl.2", "log/.lock"} <= set(files)
    assert "crontab.lock" in files
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name, mode in files.items():
        wanted = 0o700 if (home / name).is_dir() else 0o600
        assert mode == wanted, (name, oct(mode))
    assert (tmp_path / "tab").stat().st_size > 0


def test_the_files_of_a_home_in_use_are_private_under_umask_000(tmp_path: Path) -> None:
    """What the script's run leaves behind, and also what lives only while a home is
    open: the store's WAL and shared memory, and the active log after a rotation."""
    config = Config(home=tmp_path / "home")
    config = values.replace(config, log=values.replace(config.log, max_bytes=2000, backups=3))
    before = os.umask(0)
    try:
        with TaskCron(config=config) as app:
            for n in range(12):
                app.schedule(f"m{n}", command=["echo", "x" * 200])
            while app.tick().outcome == "ran":
                pass
            app.schedule("last", command=["true"])  # the active log, made after a rotation
            app.generate_cron(every="1m", install=True, crontab_file=str(tmp_path / "tab"))
            home = app.home
            files = {
                p.relative_to(home).as_posix(): stat.S_IMODE(p.stat().st_mode)
                for p in home.rglob("*")
            }
            mode = stat.S_IMODE(home.stat().st_mode)
    finally:
        os.umask(before)
    held = {"tasks.db", "tasks.db-wal", "tasks.db-shm", "log/taskcron.jsonl", "log/.lock"}
    assert held | {"log/taskcron.jsonl.1", "log/taskcron.jsonl.3", "crontab.lock"} <= set(files)
    assert mode == 0o700
    for name, found in files.items():
        wanted = 0o700 if (home / name).is_dir() else 0o600
        assert found == wanted, (name, oct(found))
