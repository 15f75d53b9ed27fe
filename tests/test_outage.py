"""The database goes away under a running server and comes back: 503 with `Retry-After`
meanwhile, one log line as it goes and one as it returns, probes up, and no restart needed.

PostgreSQL is made to go away without stopping the shared server of TEST_DATABASE_URL: the app
reaches it through a TCP proxy in this process, which the test cuts and restores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.db import CONNECT_TIMEOUT
from tests.servers import Server, clean_env, launcher, serve, wait_for
from tests.test_notes import empty, post

UNAVAILABLE = {"detail": "The database is unavailable; try again later."}
OUTAGE_LOG = ["database unavailable", "database available again"]


class Proxy:
    """TCP from 127.0.0.1:`port` to `target`, a thread per direction of each connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0  # chosen by the kernel at the first `listen`, then kept
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.silent = False  # accept connections, forward nothing: a host gone without a word

    def listen(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        """The database goes away: no new connection is accepted, and every open one ends."""
        assert self._listener is not None
        _close(self._listener)  # the shutdown wakes the thread blocked in accept()
        self.end_connections()

    def end_connections(self) -> None:
        with self._lock:
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            if self.silent:
                with self._lock:
                    self._open.add(client)
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    _close(sink)  # one side ended: so does the other


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextmanager
def proxy_to(url: str) -> Iterator[tuple[Proxy, str]]:
    """A proxy to the database of `url`, and the URL that goes through it."""
    parsed = make_url(url)
    proxy = Proxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    proxy.listen()
    try:
        yield proxy, parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    finally:
        proxy.cut()


def assert_unavailable(server: Server) -> None:
    """What clients and probes get while the database is away."""
    for response in (post(server.url, {"text": "lost?"}), httpx.get(server.url + "/notes")):
        assert response.status_code == 503, response.text
        assert response.json() == UNAVAILABLE
        assert response.headers["retry-after"] == "5"
    # Liveness and readiness say nothing of the database: see app.health.
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def assert_back(server: Server, acknowledged: dict[str, Any]) -> None:
    """Without a restart: writes succeed again; what was acknowledged before is there, and
    nothing that was answered 503."""
    wait_for(lambda: post(server.url, {"text": "back"}).status_code == 201, what="a 201 again")
    notes = httpx.get(server.url + "/notes").json()
    assert [note["text"] for note in notes] == [acknowledged["text"], "back"]
    assert notes[0] == acknowledged


def outage_lines(server: Server) -> list[dict[str, Any]]:
    """The outage's log lines, once the last has been written; and no traceback at all."""
    lines: list[dict[str, Any]] = []

    def logged() -> bool:
        lines[:] = [e for e in map(json.loads, server.output().splitlines()) if "event" in e]
        return any(line["event"] == OUTAGE_LOG[-1] for line in lines)

    wait_for(logged, what="the outage's end in the log")
    assert "Traceback" not in server.output()
    assert [line for line in lines if line["level"] in ("error", "critical")] == []
    return [line for line in lines if line["logger"] == "app.outage"]


def test_postgresql_goes_away_and_comes_back(tmp_path: Path) -> None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("no PostgreSQL: set TEST_DATABASE_URL (.ci/postgres starts one and prints it)")
    empty(url)
    with (
        proxy_to(url) as (proxy, proxied),
        serve(
            launcher("uvicorn"),
            tmp_path,
            WEB_CONCURRENCY="1",
            LOG_FORMAT="json",
            DATABASE_URL=proxied,
        ) as server,
    ):
        created = post(server.url, {"text": "before the outage"})
        assert created.status_code == 201
        proxy.cut()
        assert_unavailable(server)
        assert_unavailable(server)  # a second time: still one log line
        proxy.listen()  # the same port: the server's URL has not changed
        assert_back(server, created.json())
        start, end = outage_lines(server)
    assert [start["event"], end["event"]] == OUTAGE_LOG
    assert start["level"] == "warning"
    assert start["error"] == "OperationalError"
    assert str(proxy.port) in start["reason"], "names where it tried"
    assert f":{make_url(url).password}@" not in server.output(), "no password logged"


def test_postgresql_that_stops_answering_is_given_up_on(tmp_path: Path) -> None:
    """A host gone without a word refuses nothing: each connection attempt gives up after
    CONNECT_TIMEOUT instead of holding its request (and thread) indefinitely."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("no PostgreSQL: set TEST_DATABASE_URL (.ci/postgres starts one and prints it)")
    empty(url)
    with (
        proxy_to(url) as (proxy, proxied),
        serve(launcher("uvicorn"), tmp_path, WEB_CONCURRENCY="1", DATABASE_URL=proxied) as server,
    ):
        assert post(server.url, {"text": "before"}).status_code == 201
        proxy.silent = True
        proxy.end_connections()
        started = time.monotonic()
        response = httpx.post(server.url + "/notes", json={"text": "lost?"}, timeout=30)
        assert (response.status_code, response.json()) == (503, UNAVAILABLE)
        assert CONNECT_TIMEOUT <= time.monotonic() - started < CONNECT_TIMEOUT + 5
        proxy.silent = False
        wait_for(lambda: post(server.url, {"text": "back"}).status_code == 201, what="a 201")


def test_sqlite_file_that_cannot_be_opened(tmp_path: Path) -> None:
    """A SQLite file that cannot be opened (here a directory in its place; a volume not mounted
    yet, or without permission, in real life) is an outage too, over once the file is there."""
    database = tmp_path / "data" / "app.db"
    database.mkdir(parents=True)
    url = f"sqlite:///{database}"
    with serve(
        launcher("uvicorn"),
        tmp_path,
        WEB_CONCURRENCY="1",
        LOG_FORMAT="json",
        MIGRATE="false",  # the launcher would stop on it, before serving
        DATABASE_URL=url,
    ) as server:
        assert_unavailable(server)
        assert_unavailable(server)
        database.rmdir()
        migrate = [sys.executable, "-m", "launchers.migrate"]
        result = subprocess.run(migrate, env=clean_env(DATABASE_URL=url), capture_output=True)
        assert result.returncode == 0, result.stderr
        created = post(server.url, {"text": "after the outage"})
        assert created.status_code == 201
        assert_back(server, created.json())
        start, end = outage_lines(server)
    assert [start["event"], end["event"]] == OUTAGE_LOG
    assert (start["error"], start["reason"]) == ("OperationalError", "unable to open database file")
