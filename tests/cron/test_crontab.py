"""Splicing taskcron's lines into a crontab's text, and installing them into a crontab file."""

from __future__ import annotations

import shlex
from pathlib import Path

from crontab import CronTab
from hypothesis import given, settings

from taskcron import crontab, errors
from taskcron.crontab import CrontabFile
from taskcron.model import Scope
from tests.cronlines import HOME, HOSTILE, cron_command, make_job

USER_TEXT = (
    "MAILTO=''\n"
    "# my own jobs\n"
    "\n"
    "0 * * * * cmd # comment\n"
    "*/5 * * * *   date +\\%s > /tmp/stamp   \n"
    "30 4 * * * backup %input%line\n"
)


# --- splicing -------------------------------------------------------------------


def test_installing_keeps_every_user_line_byte_for_byte() -> None:
    job = make_job()
    text, removed = crontab.splice(USER_TEXT, job.home, job.scope, job.block)
    assert (text, removed) == (USER_TEXT + job.block, 0)


def test_installing_after_a_last_line_without_a_line_break_adds_one() -> None:
    job = make_job()
    assert crontab.splice("0 * * * * cmd", HOME, Scope(), job.block)[0] == (
        "0 * * * * cmd\n" + job.block
    )


def test_installing_twice_gives_one_line_in_the_same_place() -> None:
    first = make_job(every="1m")
    second = make_job(every="5m")
    once, _ = crontab.splice(USER_TEXT, HOME, Scope(), first.block)
    twice, removed = crontab.splice(once + "# after\n", HOME, Scope(), second.block)
    assert removed == 1
    assert twice == USER_TEXT + second.block + "# after\n"


def test_scopes_compare_normalised() -> None:
    one = make_job(scope=Scope.parse(["b,a"]))
    other = make_job(scope=Scope.parse(["a", "b", "a"]), every="5m")
    text, _ = crontab.splice("", HOME, one.scope, one.block)
    assert crontab.splice(text, HOME, other.scope, other.block) == (other.block, 1)


def test_a_second_scope_or_home_adds_a_second_line() -> None:
    billing = make_job(scope=Scope.parse(["billing"]))
    rest = make_job(scope=Scope.parse([], ["billing"]))
    elsewhere = make_job(Path("/srv/other"), scope=Scope.parse(["billing"]))
    text = USER_TEXT
    for job in (billing, rest, elsewhere):
        text, removed = crontab.splice(text, job.home, job.scope, job.block)
        assert removed == 0
    assert text == USER_TEXT + billing.block + rest.block + elsewhere.block
    assert len(CronTab(tab=text).crons) == 3 + 3


def test_uninstalling_removes_only_our_line() -> None:
    billing = make_job(scope=Scope.parse(["billing"]))
    rest = make_job(scope=Scope.parse([], ["billing"]))
    text = USER_TEXT + billing.block + "# between\n" + rest.block
    assert crontab.splice(text, HOME, billing.scope, None) == (
        USER_TEXT + "# between\n" + rest.block,
        1,
    )
    assert crontab.splice(USER_TEXT, HOME, billing.scope, None) == (USER_TEXT, 0)


def test_an_orphaned_marker_never_takes_the_users_next_line_with_it() -> None:
    job = make_job()
    text = job.marker + "\n0 * * * * cmd\n"
    assert crontab.splice(text, HOME, Scope(), None) == ("0 * * * * cmd\n", 1)


def test_bytes_that_are_not_utf8_survive_a_file_install(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    user_bytes = b"# caf\xe9 latin-1\n0 * * * * cmd\n"
    path.write_bytes(user_bytes)
    job = make_job()
    change = crontab.install(job, CrontabFile(path), lock=tmp_path / "lock")
    assert change.written
    assert path.read_bytes() == user_bytes + job.block.encode()
    assert crontab.uninstall(HOME, Scope(), CrontabFile(path), lock=tmp_path / "lock").removed == 1
    assert path.read_bytes() == user_bytes


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    change = crontab.install(make_job(), CrontabFile(path), lock=None, dry_run=True)
    assert not change.written and not path.exists()
    assert change.text == make_job().block


def test_a_file_install_keeps_the_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    path.write_text("")
    path.chmod(0o600)
    crontab.install(make_job(), CrontabFile(path), lock=tmp_path / "lock")
    assert path.stat().st_mode & 0o777 == 0o600


# --- hypothesis: hostile input ------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(name=HOSTILE)
def test_a_home_is_refused_only_for_line_breaks_and_nul(name: str) -> None:
    home = Path("/srv", name)
    try:
        job = make_job(home)
    except errors.InputError:
        assert any(c in str(home) for c in "\n\r\x00")
        return
    text, _ = crontab.splice(USER_TEXT, job.home, job.scope, job.block)
    (item,) = [i for i in CronTab(tab=text).crons if "taskcron" in i.command]
    assert item.is_valid()
    line = crontab.split_lines(text)[-1].rstrip("\n")
    assert cron_command(line) == item.command
    words = shlex.split(cron_command(line))
    assert words[words.index("--home") + 1] == str(home)
    assert "tick" in words


def test_a_home_with_an_equals_sign_installs_and_uninstalls(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    home = tmp_path / "app=prod" / "[link=x]"
    job = make_job(home)
    assert crontab.install(job, CrontabFile(path), lock=tmp_path / "lock").written
    ours = [item for item in CronTab(tab=path.read_text()) if item.comment]
    assert [item.command for item in ours] == [job.command]
    assert crontab.uninstall(home, Scope(), CrontabFile(path), lock=tmp_path / "lock").removed == 1
