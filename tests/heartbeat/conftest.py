"""A real endpoint for heartbeats: an HTTP server on a private port that records the
path of every request (and answers 500 under `/broken`), a port that accepts
connections and never answers, and one that refuses them; a project to tick in."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import taskcron_in, wait_for


class Pings:
    """What the local server received: request paths (with their queries), in order."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.paths: list[str] = []

    def wait(self, count: int, timeout: float = 20) -> list[str]:
        """The paths, once at least `count` have come (bounded polling)."""
        wait_for(lambda: len(self.paths) >= count, timeout=timeout)
        return list(self.paths)


@pytest.fixture
def pings() -> Iterator[Pings]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record.paths.append(self.path)
            self.send_response(500 if self.path.startswith("/broken") else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    record = Pings(server.server_port)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield record
    server.shutdown()
    server.server_close()


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """A URL whose server accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hang"


@pytest.fixture
def refused_url() -> str:
    """A URL on a port nothing listens on: the connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/closed"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with a config file and its home (`.taskcron` beside it)."""
    (tmp_path / "taskcron.toml").write_text("")
    ok(tmp_path, "init")
    return tmp_path


def configure(project: Path, text: str) -> None:
    (project / "taskcron.toml").write_text(text)


def ok(cwd: Path, *args: str) -> str:
    """What the installed script printed, run in `cwd`; it must succeed quietly."""
    done = taskcron_in(cwd, *args)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def tick(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return taskcron_in(cwd, "tick", *args)


def records(cwd: Path, event: str) -> list[dict[str, Any]]:
    """The log's records of `event`, oldest first."""
    printed = ok(cwd, "log", "--json", "-n", "1000")
    found = [json.loads(line) for line in printed.splitlines()]
    return [record for record in found if record["event"] == event]


def failed_pings(cwd: Path, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
    """The `heartbeat.failed` records, once at least `count` have come (bounded polling)."""

    def enough() -> list[dict[str, Any]] | None:
        found = records(cwd, "heartbeat.failed")
        return found if len(found) >= count else None

    found: list[dict[str, Any]] = wait_for(enough, timeout=timeout, interval=0.1)
    return found
