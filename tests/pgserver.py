"""A PostgreSQL server for the test suite: a private one, or the one TASKCRON_TEST_POSTGRES names.

`PostgresServer.for_tests()` is what the fixtures use. With `TASKCRON_TEST_POSTGRES` set
to the URL of a database on an existing server (whose user may CREATE DATABASE), the
tests create their databases on that server. Otherwise it starts a private server:

- `initdb` (Debian's newest under /usr/lib/postgresql/*/bin, else the one on PATH) into
  a new temporary directory, with `taskcron` as the superuser and `trust` authentication;
- the server listens on no TCP address, only on a Unix socket in that directory. The
  port number only names the socket file (`.s.PGSQL.<port>`), in a directory no other
  server uses, so a random one cannot clash;
- `fsync` is off (nothing here must survive a crash) and `max_connections` is 200, for
  tests that open many connections at once.

PostgreSQL refuses to run as root. When the tests run as root, `initdb` and `pg_ctl`
run as the `postgres` system user, which owns the temporary directory (root reaches
the socket in it regardless).

A server is never left behind: `stop()` runs from the fixture's finalizer and at exit,
and a small watchdog process, started with the server, stops it and removes its
directory if the test process dies without doing so (SIGKILL, SIGTERM).

Anything that makes PostgreSQL tests impossible here (no binaries, no psycopg, no
`postgres` user while root, initdb or the server failing) raises `PostgresUnavailable`,
whose message says what is missing; the fixtures turn it into a skip.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import pwd
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import psycopg

#: The URL of a database on an existing server to use instead of a private one.
ENV_URL = "TASKCRON_TEST_POSTGRES"
#: Where Debian installs each PostgreSQL version's programs (<version>/bin).
DEBIAN_ROOT = Path("/usr/lib/postgresql")
#: The superuser `initdb` creates; the URLs connect as it, without a password.
SUPERUSER = "taskcron"
#: A role that must give its password (SCRAM), for tests of passwords right and wrong.
PASSWORD_ROLE = "taskcron_pw"
#: The system user that runs the server when the tests run as root.
SYSTEM_USER = "postgres"
#: Seconds `pg_ctl` may wait for the server to start or stop.
PG_CTL_WAIT = 60
#: Lines of a failing program's output (or of the server log) quoted in the reason.
TAIL_LINES = 15

#: Run by the watchdog: wait for a byte from `stop()` or for end of file (the test
#: process died), then shut the server down at once (SIGQUIT is pg_ctl's immediate
#: mode) if it still runs, wait a bounded time for it to go, and remove the directory.
_WATCHDOG = """\
import os, shutil, signal, sys, time
directory, pidfile = sys.argv[1], sys.argv[2]
sys.stdin.buffer.read(1)
try:
    with open(pidfile) as f:
        os.kill(int(f.readline()), signal.SIGQUIT)
except (OSError, ValueError):
    pass
deadline = time.monotonic() + 30
while os.path.exists(pidfile) and time.monotonic() < deadline:
    time.sleep(0.05)
shutil.rmtree(directory, ignore_errors=True)
"""


class PostgresUnavailable(Exception):
    """PostgreSQL tests cannot run here; the message says what is missing."""


class Binaries(NamedTuple):
    initdb: Path
    pg_ctl: Path


def find_binaries() -> Binaries:
    """Debian's newest `initdb` and `pg_ctl`, else those on PATH."""
    debian = [
        directory
        for directory in DEBIAN_ROOT.glob("*/bin")
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file()
    ]
    if debian:
        newest = max(debian, key=lambda d: [int(n) for n in re.findall(r"\d+", d.parent.name)])
        return Binaries(newest / "initdb", newest / "pg_ctl")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Binaries(Path(initdb), Path(pg_ctl))
    raise PostgresUnavailable(
        f"no initdb and pg_ctl in {DEBIAN_ROOT}/*/bin or on PATH"
        " (Debian: apt-get install postgresql)"
    )


def require_psycopg() -> None:
    """Raise `PostgresUnavailable` unless psycopg (3) can be imported."""
    try:
        import psycopg  # noqa: F401
    except ImportError as e:
        raise PostgresUnavailable(
            f"psycopg is not installed (pip install -e '.[postgres]'): {e}"
        ) from e


def system_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL's programs as: `postgres` when we are root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"the tests run as root, which PostgreSQL refuses, and there is no"
            f" {SYSTEM_USER!r} user to run it as"
        ) from None


def tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-TAIL_LINES:])


@contextlib.contextmanager
def adopting_orphans() -> Iterator[None]:
    """Within the block, this process adopts the descendants that lose their parent (Linux).

    `pg_ctl start` leaves the server without a parent; adopted, it is ours to reap once
    stopped, instead of init's, which in some containers never reaps it.
    """
    set_reaper, get_reaper = 36, 37  # PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER
    prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None
    was = ctypes.c_int(0)
    if prctl is not None and prctl(get_reaper, ctypes.byref(was), 0, 0, 0) == 0 and not was:
        prctl(set_reaper, 1, 0, 0, 0)
        try:
            yield
        finally:
            prctl(set_reaper, 0, 0, 0, 0)
    else:
        yield


def reap(pid: int, timeout: float = 10) -> None:
    """Wait (bounded) for child `pid` to end and collect it; return at once if not our child."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.01)


def conf_string(value: str) -> str:
    """`value` quoted for postgresql.conf."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class Cluster:
    """A private server's directory and processes: initdb, start, stop.

    Layout of `directory`: `data/` (the cluster), `server.log`, and the socket
    `.s.PGSQL.<port>` (with its lock file).
    """

    def __init__(self, directory: Path, binaries: Binaries, user: pwd.struct_passwd | None):
        self.directory = directory
        self.data = directory / "data"
        self.log = directory / "server.log"
        self.port = random.randint(20000, 60000)
        self.binaries = binaries
        self.user = user
        self.watchdog: subprocess.Popen[bytes] | None = None
        self.server_pid: int | None = None

    @classmethod
    def start(cls, base: Path | None = None) -> Cluster:
        """A new server, running, in a new temporary directory under `base`.

        `base` defaults to the system's temporary directory; when root, the `postgres`
        user must be able to reach it. Short paths matter: a socket path has at most
        107 bytes.
        """
        binaries = find_binaries()
        user = system_user()
        directory = Path(tempfile.mkdtemp(prefix="taskcron-pg-", dir=base))
        cluster = cls(directory, binaries, user)
        try:
            if user is not None:
                os.chown(directory, user.pw_uid, user.pw_gid)
            cluster.watch()
            cluster.initdb()
            cluster.configure()
            cluster.run_server()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def run(self, *args: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program (as `postgres` when root), in the directory, no PG* env."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        user = self.user
        try:
            return subprocess.run(
                [str(a) for a in args],
                cwd=self.directory,
                env=env,
                user=None if user is None else user.pw_uid,
                group=None if user is None else user.pw_gid,
                extra_groups=None if user is None else [],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except OSError as e:
            as_user = "" if user is None else f" as {user.pw_name}"
            raise PostgresUnavailable(f"could not run {args[0]}{as_user}: {e}") from e

    def watch(self) -> None:
        """Start the watchdog that cleans up if this process dies first."""
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(self.directory), str(self.pidfile)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C at the terminal is for pytest, not for it
        )

    @property
    def pidfile(self) -> Path:
        return self.data / "postmaster.pid"

    def initdb(self) -> None:
        done = self.run(
            self.binaries.initdb,
            f"--pgdata={self.data}",
            f"--username={SUPERUSER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            timeout=120,
        )
        if done.returncode != 0:
            output = tail(done.stdout + done.stderr)
            raise PostgresUnavailable(f"{self.binaries.initdb} exited {done.returncode}:\n{output}")

    def configure(self) -> None:
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": conf_string(str(self.directory)),
            "port": str(self.port),
            "max_connections": "200",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# A private server for taskcron's tests (tests/pgserver.py).\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        hba = self.data / "pg_hba.conf"
        rule = f"local all {PASSWORD_ROLE} scram-sha-256\n"
        hba.write_text(rule + hba.read_text())

    def run_server(self) -> None:
        with adopting_orphans():
            done = self.run(
                self.binaries.pg_ctl,
                *("--pgdata", self.data, "--log", self.log, "--wait"),
                *("--timeout", str(PG_CTL_WAIT), "start"),
                timeout=PG_CTL_WAIT + 30,
            )
        with contextlib.suppress(OSError, ValueError):
            self.server_pid = int(self.pidfile.read_text().split()[0])
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise PostgresUnavailable(
                f"the server did not start ({self.binaries.pg_ctl} exited {done.returncode}):\n"
                + tail(done.stdout + done.stderr + log)
            )

    # --- faults: what a database does in production, for the fault suites ---------------

    def halt(self, mode: str = "fast") -> None:
        """Stop the server and keep its data (`pg_ctl stop -m mode`): connections drop,
        and new ones are refused until `resume`."""
        done = self.run(
            self.binaries.pg_ctl,
            *("--pgdata", self.data, "--mode", mode, "--wait"),
            *("--timeout", str(PG_CTL_WAIT), "stop"),
            timeout=PG_CTL_WAIT + 30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop exited {done.returncode}: {tail(done.stderr)}")
        if self.server_pid is not None:
            reap(self.server_pid)

    def resume(self) -> None:
        """Start the server again after `halt`, on the same data and socket."""
        self.run_server()

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m mode`, as an upgrade or a configuration change does."""
        self.halt(mode)
        self.resume()

    def stop(self) -> None:
        """Stop the server (immediate mode: the data is thrown away) and remove the directory."""
        try:
            if self.pidfile.exists():
                self.run(
                    self.binaries.pg_ctl,
                    *("--pgdata", self.data, "--mode", "immediate", "--wait"),
                    *("--timeout", str(PG_CTL_WAIT), "stop"),
                    timeout=PG_CTL_WAIT + 30,
                )
        finally:
            # The watchdog signals the server if pg_ctl could not stop it, then removes
            # the directory.
            try:
                self.release_watchdog()
                if self.server_pid is not None:
                    reap(self.server_pid)
            finally:
                shutil.rmtree(self.directory, ignore_errors=True)

    def release_watchdog(self) -> None:
        """Wake the watchdog (it cleans up what is left, then exits) and wait for it."""
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is None:
            return
        stdin: IO[bytes] | None = watchdog.stdin
        if stdin is not None:
            with contextlib.suppress(BrokenPipeError):  # it has gone already
                stdin.write(b"x")
                stdin.flush()
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
        watchdog.wait(timeout=60)


class PostgresServer:
    """A server the tests create databases on, reached through `admin_url`.

    `admin_url` names a database on it (whose user may CREATE DATABASE) that the
    tests do not use themselves. Started with `start()`, the server is private and
    `stop()` stops it; made with `existing()`, `stop()` drops the databases it created.
    """

    def __init__(self, admin_url: str, cluster: Cluster | None = None) -> None:
        self.admin_url = admin_url
        self.cluster = cluster
        self.created: set[str] = set()
        self.stopped = False
        self._owner_pid = os.getpid()
        self._prefix = f"taskcron_test_{secrets.token_hex(4)}"
        self._counter = itertools.count(1)
        atexit.register(self.stop)

    @classmethod
    def for_tests(cls) -> PostgresServer:
        """The server `TASKCRON_TEST_POSTGRES` names if it is set, else a new private one."""
        url = os.environ.get(ENV_URL)
        return cls.existing(url) if url else cls.start()

    @classmethod
    def start(cls, base: Path | None = None) -> PostgresServer:
        """Start a private server in a new temporary directory under `base` (`Cluster.start`)."""
        require_psycopg()
        cluster = Cluster.start(base)
        host = quote(str(cluster.directory), safe="/")
        return cls(f"postgresql://{SUPERUSER}@/postgres?host={host}&port={cluster.port}", cluster)

    @classmethod
    def existing(cls, admin_url: str) -> PostgresServer:
        """The server of `admin_url` (a postgresql:// URL), once it answers."""
        if urlsplit(admin_url).scheme not in {"postgresql", "postgres"}:
            raise ValueError(f"{ENV_URL} must be a postgresql:// URL, not {admin_url!r}")
        require_psycopg()
        import psycopg

        try:
            psycopg.connect(admin_url, connect_timeout=10).close()
        except psycopg.Error as e:
            raise RuntimeError(f"{ENV_URL} is set but its server does not answer: {e}") from e
        return cls(admin_url)

    @property
    def private(self) -> bool:
        """Whether this server was started for these tests (and listens on no TCP port)."""
        return self.cluster is not None

    def url(self, dbname: str) -> str:
        """The URL of database `dbname` on this server."""
        return urlsplit(self.admin_url)._replace(path="/" + quote(dbname, safe="")).geturl()

    def unique_name(self) -> str:
        """A database name this object has not given before (and, being partly random,
        one that a concurrent test run on a shared server will not choose either)."""
        return f"{self._prefix}_{next(self._counter)}"

    def create_database(self, name: str) -> str:
        """Create the empty database `name` (UTF-8, C collation) and return its URL."""
        from psycopg import sql

        statement = sql.SQL(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        ).format(sql.Identifier(name))
        with self._admin() as conn:
            if conn.info.server_version >= 150000:  # copying files is faster for tiny databases
                statement += sql.SQL(" STRATEGY FILE_COPY")
            conn.execute(statement)
        self.created.add(name)
        return self.url(name)

    def fresh_database(self) -> str:
        """Create a new, uniquely named, empty database and return its URL."""
        return self.create_database(self.unique_name())

    def drop_database(self, name: str) -> None:
        """Drop database `name`, ending any session still connected to it."""
        from psycopg import sql

        statement = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        with self._admin() as conn:
            if conn.info.server_version >= 130000:
                statement += sql.SQL(" WITH (FORCE)")
            conn.execute(statement)
        self.created.discard(name)

    def stop(self) -> None:
        """Stop a private server; on an existing one, drop the databases left from these tests.

        Safe to call twice; does nothing in a process forked from the one that started it.
        """
        if self.stopped or os.getpid() != self._owner_pid:
            return
        self.stopped = True
        atexit.unregister(self.stop)
        if self.cluster is not None:
            self.cluster.stop()
        else:
            for name in sorted(self.created):
                self.drop_database(name)

    def password_url(self, dbname: str, password: str) -> str:
        """The URL of `dbname` as PASSWORD_ROLE (made with `password`), without the password.

        Only a private server is known to ask that role for its password.
        """
        from psycopg import sql

        with self._admin() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (PASSWORD_ROLE,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                    sql.Identifier(PASSWORD_ROLE), sql.Literal(password)
                )
            )
        return self.url(dbname).replace(f"//{SUPERUSER}@", f"//{PASSWORD_ROLE}@", 1)

    def _admin(self) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)
