"""Finding, reading and checking the config file, and resolving the home."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from taskcron import config, configfile, errors
from taskcron.config import Config, HistoryConfig, LogConfig, RetryConfig
from taskcron.model import Retention

KNOWN = (
    "alerts, budget, "
    "heartbeat, "
    "history, home, host, kill_grace, lanes, lease, log, max_steps, "
    "metrics, missed_after, modules, poll, "
    "pythonpath, retry, store, timezone, web, workers"
)


@pytest.fixture(autouse=True)
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in an empty tmp_path with no TASKCRON_* variable set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(configfile.ENV_HOME, raising=False)
    monkeypatch.delenv(configfile.ENV_CONFIG, raising=False)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def refused(message: str) -> str:
    """What load() says for a taskcron.toml holding a bad value."""
    with pytest.raises(errors.ConfigError) as info:
        config.load()
    assert isinstance(info.value, errors.InputError)
    assert str(info.value) == message
    return message


def test_without_a_config_file_every_setting_is_its_default(cwd: Path) -> None:
    cfg = config.load()
    assert cfg.path is None
    assert cfg.home == cwd / ".taskcron"
    assert cfg.modules == ()
    assert cfg.pythonpath == ()
    assert cfg.import_paths == ()
    assert cfg.timezone is None
    assert cfg.budget is None
    assert cfg.lease == timedelta(seconds=30)
    assert cfg.kill_grace == timedelta(seconds=10)
    assert cfg.retry == RetryConfig(backoff=timedelta(seconds=10), max_backoff=timedelta(hours=1))
    assert cfg.log == LogConfig(
        level="info",
        max_bytes=10 * 1024 * 1024,
        backups=5,
        retention=timedelta(days=30),
        output_tail=65536,
    )


def test_empty_taskcron_toml_is_used_with_defaults(cwd: Path) -> None:
    path = write(cwd / "taskcron.toml", "")
    cfg = config.load()
    assert cfg.path == path
    assert cfg.import_paths == (cwd,)
    assert cfg.home == cwd / ".taskcron"
    assert cfg.lease == Config().lease


def test_every_key_of_taskcron_toml_is_read(cwd: Path) -> None:
    write(
        cwd / "taskcron.toml",
        """
home = "/srv/tc"
modules = ["app.tasks", "app.more"]
pythonpath = ["/opt/lib", "/opt/lib2"]
timezone = "Europe/Berlin"
budget = "50s"
lease = 45
kill_grace = "2.5s"

[retry]
backoff = "5s"
max_backoff = "2h"

[log]
level = "debug"
max_bytes = 1000
backups = 0
retention = "7d"
output_tail = 10
""",
    )
    cfg = config.load()
    assert cfg.home == Path("/srv/tc")
    assert cfg.modules == ("app.tasks", "app.more")
    assert cfg.pythonpath == (Path("/opt/lib"), Path("/opt/lib2"))
    assert cfg.import_paths == (cwd, Path("/opt/lib"), Path("/opt/lib2"))
    assert cfg.timezone == "Europe/Berlin"
    assert cfg.budget == timedelta(seconds=50)
    assert cfg.lease == timedelta(seconds=45)
    assert cfg.kill_grace == timedelta(seconds=2.5)
    assert cfg.retry == RetryConfig(backoff=timedelta(seconds=5), max_backoff=timedelta(hours=2))
    assert cfg.log == LogConfig(
        level="debug", max_bytes=1000, backups=0, retention=timedelta(days=7), output_tail=10
    )


def test_partial_tables_keep_the_defaults_for_the_rest(cwd: Path) -> None:
    write(cwd / "taskcron.toml", '[retry]\nbackoff = "1s"\n[log]\nbackups = 2\n')
    cfg = config.load()
    assert cfg.retry == RetryConfig(backoff=timedelta(seconds=1))
    assert cfg.log == LogConfig(backups=2)


def test_relative_paths_are_relative_to_the_config_file_not_the_cwd(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = cwd / "project"
    path = write(project / "conf" / "tc.toml", 'home = "state"\npythonpath = ["src", "../lib"]\n')
    elsewhere = cwd / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = config.load(path)
    assert cfg.path == path
    assert cfg.home == project / "conf" / "state"
    assert cfg.pythonpath == (project / "conf" / "src", project / "conf" / ".." / "lib")
    assert cfg.import_paths[0] == project / "conf"


def test_explicit_relative_config_path_is_made_absolute(cwd: Path) -> None:
    write(cwd / "sub" / "my.toml", 'home = "h"\n')
    cfg = config.load("sub/my.toml")
    assert cfg.path == cwd / "sub" / "my.toml"
    assert cfg.home == cwd / "sub" / "h"


def test_pyproject_tool_taskcron_table_is_used_without_a_taskcron_toml(cwd: Path) -> None:
    path = write(
        cwd / "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.taskcron]\nmodules = ["app.tasks"]\nlease = "1m"\n',
    )
    cfg = config.load()
    assert cfg.path == path
    assert cfg.modules == ("app.tasks",)
    assert cfg.lease == timedelta(minutes=1)


def test_taskcron_toml_wins_over_pyproject(cwd: Path) -> None:
    write(cwd / "pyproject.toml", "[tool.taskcron]\nlease = 1\n")
    path = write(cwd / "taskcron.toml", "lease = 2\n")
    cfg = config.load()
    assert cfg.path == path
    assert cfg.lease == timedelta(seconds=2)


def test_pyproject_without_a_tool_taskcron_table_is_no_config(cwd: Path) -> None:
    write(cwd / "pyproject.toml", '[project]\nname = "x"\n[tool.ruff]\nline-length = 100\n')
    cfg = config.load()
    assert cfg.path is None
    assert cfg.import_paths == ()
    assert cfg == Config(home=cwd / ".taskcron", home_by_default=True)


def test_pyproject_whose_tool_is_not_a_table_is_not_a_crash(cwd: Path) -> None:
    write(cwd / "pyproject.toml", "tool = 1\n")
    try:
        cfg = config.load()
    except errors.ConfigError:
        return
    assert cfg.path is None


def test_explicit_pyproject_without_the_table_is_refused(cwd: Path) -> None:
    path = write(cwd / "pyproject.toml", '[project]\nname = "x"\n')
    with pytest.raises(errors.ConfigError) as info:
        config.load(path)
    assert str(info.value) == f"{path} has no [tool.taskcron] table"


def test_pyproject_with_tool_taskcron_not_a_table_is_refused(cwd: Path) -> None:
    write(cwd / "pyproject.toml", "[tool]\ntaskcron = 1\n")
    refused("config key 'tool.taskcron' must be a table")


def test_missing_explicit_config_file_is_refused(cwd: Path) -> None:
    with pytest.raises(errors.ConfigError) as info:
        config.load("nope.toml")
    assert str(info.value) == f"config file {str(cwd / 'nope.toml')!r} does not exist"


def test_missing_config_file_from_the_environment_is_refused(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(configfile.ENV_CONFIG, str(cwd / "gone.toml"))
    with pytest.raises(errors.ConfigError) as info:
        config.load()
    assert str(info.value) == f"config file {str(cwd / 'gone.toml')!r} does not exist"


def test_config_file_from_the_environment_is_used_when_none_is_given(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cwd / "taskcron.toml", "lease = 1\n")
    env_file = write(cwd / "env" / "tc.toml", "lease = 2\n")
    monkeypatch.setenv(configfile.ENV_CONFIG, str(env_file))
    cfg = config.load()
    assert cfg.path == env_file
    assert cfg.lease == timedelta(seconds=2)


def test_explicit_config_wins_over_the_environment(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(configfile.ENV_CONFIG, str(write(cwd / "env.toml", "lease = 2\n")))
    explicit = write(cwd / "cli.toml", "lease = 3\n")
    cfg = config.load(explicit)
    assert cfg.path == explicit
    assert cfg.lease == timedelta(seconds=3)


def test_environment_pyproject_without_the_table_is_refused(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(cwd / "sub" / "pyproject.toml", '[project]\nname = "x"\n')
    monkeypatch.setenv(configfile.ENV_CONFIG, str(path))
    refused(f"{path} has no [tool.taskcron] table")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus = 1\n", f"unknown config key 'bogus': known keys are {KNOWN}"),
        ("lese = 1\n", "unknown config key 'lese': did you mean 'lease'?"),
        (
            "[retry]\nbackof = 1\n",
            "unknown config key 'retry.backof': did you mean 'retry.backoff'?",
        ),
        (
            "[log]\nbogus = 1\n",
            "unknown config key 'log.bogus': "
            "known keys are backups, level, max_bytes, output_tail, retention",
        ),
        ("lease = true\n", "config key 'lease' must be a duration such as \"90s\" or a number"),
        ("workers = 0\n", "config key 'workers' must be a positive integer"),
        ("workers = 2.5\n", "config key 'workers' must be a positive integer"),
        ('poll = "0s"\n', "config key 'poll' must be more than zero"),
        ('lanes = 3\n', "config key 'lanes' must be a table"),
        ('[lanes]\n"mail" = 0\n', "config key 'lanes.mail' must be a positive integer"),
        ('[lanes]\n"mail" = -2\n', "config key 'lanes.mail' must be a positive integer"),
        ('[lanes]\n"mail" = "8"\n', "config key 'lanes.mail' must be a positive integer"),
        (
            '[lanes]\n"a..b" = 2\n',
            "config key 'lanes.a..b': invalid module id 'a..b': empty segment",
        ),
        ("budget = [1]\n", "config key 'budget' must be a duration such as \"90s\" or a number"),
        (
            "[retry]\nbackoff = false\n",
            "config key 'retry.backoff' must be a duration such as \"90s\" or a number",
        ),
        (
            'kill_grace = "-1s"\n',
            "config key 'kill_grace': invalid duration '-1s': must not be negative",
        ),
        (
            '[log]\nretention = "soon"\n',
            "config key 'log.retention': invalid duration 'soon': "
            "expected e.g. '90s', '1h30m', '1.5s' or a number of seconds",
        ),
        ('[log]\nmax_bytes = "x"\n', "config key 'log.max_bytes' must be a non-negative integer"),
        ("[log]\nbackups = -1\n", "config key 'log.backups' must be a non-negative integer"),
        ("[log]\noutput_tail = 1.5\n",
         "config key 'log.output_tail' must be a non-negative integer"),
        ("[log]\nbackups = true\n", "config key 'log.backups' must be a non-negative integer"),
        ("[log]\nlevel = 1\n", "config key 'log.level' must be a string"),
        (
            '[log]\nlevel = "INFO"\n',
            "config key 'log.level' must be one of debug, info, warning, error, not 'INFO'",
        ),
        ('modules = "x"\n', "config key 'modules' must be a list of strings"),
        ("modules = [1]\n", "config key 'modules' must be a list of strings"),
        ('pythonpath = "src"\n', "config key 'pythonpath' must be a list of strings"),
        ("home = 1\n", "config key 'home' must be a string"),
        ("timezone = 1\n", "config key 'timezone' must be a string"),
        ("retry = 1\n", "config key 'retry' must be a table"),
        ('log = "x"\n', "config key 'log' must be a table"),
        (
            "[history]\nkeep_for = 30\n",
            "config key 'history.keep_for': invalid duration '30': 30 what? e.g. 30d",
        ),
        (
            "[history]\nkeep_runs = -1\n",
            "config key 'history.keep_runs' must be a non-negative integer",
        ),
        (
            "[history]\nbogus = 1\n",
            "unknown config key 'history.bogus': known keys are keep_for, keep_runs",
        ),
        (
            'timezone = "Mars/Olympus"\n',
            "config key 'timezone': unknown time zone 'Mars/Olympus' "
            "(expected an IANA name such as Europe/Berlin)",
        ),
        (
            'timezone = "../etc/passwd"\n',
            "config key 'timezone': unknown time zone '../etc/passwd' "
            "(expected an IANA name such as Europe/Berlin)",
        ),
        (
            'timezone = ""\n',
            "config key 'timezone': unknown time zone '' "
            "(expected an IANA name such as Europe/Berlin)",
        ),
    ],
)  # fmt: skip
def test_bad_config_value_is_refused_naming_the_key(cwd: Path, text: str, message: str) -> None:
    write(cwd / "taskcron.toml", text)
    refused(message)


def test_time_zone_naming_a_zone_directory_is_refused(cwd: Path) -> None:
    write(cwd / "taskcron.toml", 'timezone = "America"\n')
    refused(
        "config key 'timezone': unknown time zone 'America' "
        "(expected an IANA name such as Europe/Berlin)"
    )


def test_bad_toml_is_refused_naming_the_file(cwd: Path) -> None:
    path = write(cwd / "taskcron.toml", "lease = \n")
    with pytest.raises(errors.ConfigError) as info:
        config.load()
    assert str(info.value).startswith(f"invalid config file {path}: ")


def test_config_file_that_is_not_utf8_is_refused(cwd: Path) -> None:
    (cwd / "taskcron.toml").write_bytes(b'home = "\xff"\n')
    with pytest.raises(errors.ConfigError, match=r"^invalid config file "):
        config.load()


# --- the home ---------------------------------------------------------------


def test_home_defaults_to_dot_taskcron_in_the_cwd(cwd: Path) -> None:
    assert config.load().home == cwd / ".taskcron"


def test_home_from_the_config_file_wins_over_the_default(cwd: Path) -> None:
    write(cwd / "taskcron.toml", 'home = "from-file"\n')
    assert config.load().home == cwd / "from-file"


def test_home_from_the_environment_wins_over_the_config_file(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cwd / "taskcron.toml", 'home = "from-file"\n')
    monkeypatch.setenv(configfile.ENV_HOME, "from-env")
    assert config.load().home == cwd / "from-env"


def test_home_argument_wins_over_the_environment_and_the_config_file(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cwd / "taskcron.toml", 'home = "from-file"\n')
    monkeypatch.setenv(configfile.ENV_HOME, "from-env")
    assert config.load(home="from-arg").home == cwd / "from-arg"
    assert config.load(home=cwd / "abs").home == cwd / "abs"


def test_empty_home_environment_variable_is_ignored(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cwd / "taskcron.toml", 'home = "from-file"\n')
    monkeypatch.setenv(configfile.ENV_HOME, "")
    assert config.load().home == cwd / "from-file"


def test_home_with_a_tilde_is_expanded(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(cwd / "user"))
    assert config.load(home="~/tc").home == cwd / "user" / "tc"
    write(cwd / "taskcron.toml", 'home = "~/fromfile"\n')
    assert config.load().home == cwd / "user" / "fromfile"


def test_starter_config_is_valid_and_gives_the_defaults(cwd: Path) -> None:
    write(cwd / "taskcron.toml", config.STARTER)
    cfg = config.load()
    assert cfg.retry == RetryConfig()
    assert cfg.log == LogConfig()
    assert cfg.home == cwd / ".taskcron"


def test_the_history_table_is_read_and_defaults_to_100_runs_for_30_days(cwd: Path) -> None:
    assert config.load().history == HistoryConfig(keep_runs=100, keep_for=timedelta(days=30))
    write(cwd / "taskcron.toml", '[history]\nkeep_runs = 0\nkeep_for = "0s"\n')
    settings = config.load().history
    assert settings == HistoryConfig(keep_runs=0, keep_for=timedelta(0))
    assert settings.retention() == Retention(keep_runs=0, keep_for=None)


def test_lanes_workers_and_poll_are_read(cwd: Path) -> None:
    write(
        cwd / "taskcron.toml", 'workers = 4\npoll = "250ms"\n[lanes]\n"mail" = 8\n"mail.bulk" = 2\n'
    )
    settings = config.load()
    assert settings.workers == 4
    assert settings.poll.total_seconds() == 0.25
    assert [settings.lanes.width(m) for m in ("mail", "mail.x", "mail.bulk.y", "other")] == [
        8,
        8,
        2,
        1,
    ]


def test_the_web_table_is_read_with_paths_relative_to_the_config(cwd: Path) -> None:
    write(
        cwd / "taskcron.toml",
        '[web]\nhost = "0.0.0.0"\nport = 9000\ntoken = "t0ken-t0ken-t0ken-1"\n'
        'read_token = "read-read-read-read-1"\nstylesheet = "look.css"\nscript = "js/hook.js"\n',
    )
    web = config.load().web
    assert (web.host, web.port) == ("0.0.0.0", 9000)
    assert (web.token, web.read_token) == ("t0ken-t0ken-t0ken-1", "read-read-read-read-1")
    assert (web.stylesheet, web.script) == (cwd / "look.css", cwd / "js" / "hook.js")


def test_the_web_session_ttl_and_max_streams_are_read(cwd: Path) -> None:
    write(cwd / "taskcron.toml", '[web]\nsession_ttl = "30m"\nmax_streams = 4\n')
    web = config.load().web
    assert (web.session_ttl, web.max_streams) == (timedelta(minutes=30), 4)
    assert (config.WebConfig().session_ttl, config.WebConfig().max_streams) == (
        timedelta(hours=12),
        16,
    )


def test_the_web_defaults_are_the_loopback_and_no_token(cwd: Path) -> None:
    assert config.load().web == config.WebConfig(host="127.0.0.1", port=8765)


def test_the_web_token_from_the_environment_wins(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cwd / "taskcron.toml", '[web]\ntoken = "from-the-file-0000"\n')
    monkeypatch.setenv(configfile.ENV_WEB_TOKEN, "from-the-environment-0")
    assert config.load().web.token == "from-the-environment-0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port = 70000", "config key 'web.port' must be a port number"),
        ('session_ttl = "0s"', "config key 'web.session_ttl' must be at least 1s"),
        ('session_ttl = "soon"', "config key 'web.session_ttl': invalid duration"),
        ("session_ttl = true", "config key 'web.session_ttl' must be a duration"),
        ("max_streams = 0", "config key 'web.max_streams' must be a positive integer"),
        ('max_streams = "16"', "config key 'web.max_streams' must be a positive integer"),
        ('tokn = "x"', "unknown config key 'web.tokn': did you mean 'web.token'?"),
        (
            'token = "same-same-same-same"\nread_token = "same-same-same-same"',
            "'web.token' and 'web.read_token' must differ",
        ),
    ],
)
def test_bad_web_settings_are_config_errors(cwd: Path, text: str, message: str) -> None:
    write(cwd / "taskcron.toml", f"[web]\n{text}\n")
    with pytest.raises(errors.ConfigError) as caught:
        config.load()
    assert message in str(caught.value)


@pytest.mark.parametrize("token", ["short", "has a space in it ok"])
def test_a_bad_web_token_is_read_and_refused_by_the_dashboards_check_alone(
    cwd: Path, token: str
) -> None:
    write(cwd / "taskcron.toml", f'[web]\ntoken = "{token}"\n')
    web = config.load().web
    with pytest.raises(errors.ConfigError) as caught:
        configfile.check_tokens(web.token, web.read_token)
    assert "invalid token (config key 'web.token')" in str(caught.value)
