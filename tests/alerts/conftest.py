"""Real endpoints for alerts: an HTTP server that records what is POSTed to it (and
answers 500 on `/fail`, never on `/hang`), and an SMTP server."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest


class Hooks:
    """What the local HTTP server received: (path, JSON body) pairs, in order."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.received: list[tuple[str, Any]] = []
        self.release = threading.Event()  # lets `/hang` requests go at the end


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            record.received.append((self.path, json.loads(body)))
            if self.path.startswith("/hang"):
                record.release.wait(30)
            self.send_response(500 if self.path.startswith("/fail") else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    record = Hooks(server.server_port)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield record
    record.release.set()
    server.shutdown()
    server.server_close()


class Mailbox:
    """The mails the local SMTP server received: (from, to, message text)."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], str]] = []
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content.decode(errors="replace")
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), content))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        box.port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()
