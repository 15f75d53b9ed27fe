"""The database goes away under a running server and comes back: 503 with `Retry-After`
meanwhile, one log line as it goes and one as it returns, probes up, and no restart needed.

PostgreSQL is made to go away without stopping the shared server of TEST_DATABASE_URL: the app
reaches it through a TCP proxy in this process, which the test cuts and restores.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.db import CONNECT_TIMEOUT
from app.outage import is_outage
from tests.servers import SAMPLE_APP, Server, clean_env, launcher, serve, wait_for
from tests.test_notes import post

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
    # Liveness and readiness say nothing of the database: see launchers.features.probes.
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


def test_postgresql_goes_away_and_comes_back(postgresql: str, tmp_path: Path) -> None:
    url = postgresql
    with (
        proxy_to(url) as (proxy, proxied),
        serve(
            launcher("uvicorn"),
            tmp_path,
            APP=SAMPLE_APP,
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


def test_postgresql_that_stops_answering_is_given_up_on(postgresql: str, tmp_path: Path) -> None:
    """A host gone without a word refuses nothing: each connection attempt gives up after
    CONNECT_TIMEOUT instead of holding its request (and thread) indefinitely."""
    url = postgresql
    with (
        proxy_to(url) as (proxy, proxied),
        serve(
            launcher("uvicorn"),
            tmp_path,
            APP=SAMPLE_APP,
            WEB_CONCURRENCY="1",
            DATABASE_URL=proxied,
        ) as server,
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
        APP=SAMPLE_APP,
        WEB_CONCURRENCY="1",
        LOG_FORMAT="json",
        MIGRATE="false",  # the launcher would stop on it, before serving
        DATABASE_URL=url,
    ) as server:
        assert_unavailable(server)
        assert_unavailable(server)
        database.rmdir()
        migrate = [sys.executable, "-m", "launchers.migrate"]
        result = subprocess.run(
            migrate, env=clean_env(DATABASE_URL=url), capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        created = post(server.url, {"text": "after the outage"})
        assert created.status_code == 201
        assert_back(server, created.json())
        start, end = outage_lines(server)
    assert [start["event"], end["event"]] == OUTAGE_LOG
    assert (start["error"], start["reason"]) == ("OperationalError", "unable to open database file")


def test_a_missing_table_is_a_bug_not_an_outage(tmp_path: Path) -> None:
    """A model shipped without its migration: SQLite calls "no such table" an OperationalError
    too, but it is no outage: a 500 with its traceback, not a 503 that would hide it."""
    database = tmp_path / "data" / "app.db"
    database.parent.mkdir()
    database.touch()  # a database, empty: never migrated
    with serve(
        launcher("uvicorn"),
        tmp_path,
        APP=SAMPLE_APP,
        WEB_CONCURRENCY="1",
        LOG_FORMAT="json",
        MIGRATE="false",
        DATABASE_URL=f"sqlite:///{database}",
    ) as server:
        secret = {"Authorization": "Bearer s3cret-token", "Cookie": "session=s3cret-cookie"}
        response = httpx.post(server.url + "/notes", json={"text": "into no table"}, headers=secret)
        assert response.status_code == 500, response.text
        assert "retry-after" not in response.headers
        wait_for(lambda: "no such table: notes" in server.output(), what="the traceback")
        entries = [json.loads(line) for line in server.output().splitlines()]
    (error,) = [entry for entry in entries if entry["level"] == "error"]
    exception = error["exception"][0]  # the JSON log's traceback, then its cause's
    assert exception["exc_type"] == "OperationalError"
    assert "no such table: notes" in exception["exc_value"]
    assert exception["frames"]
    assert [entry for entry in entries if entry["logger"] == "app.outage"] == []
    assert "s3cret" not in server.output(), "a traceback logs no request header"


TABLE = "create table notes (id)"


def wrapped(error: Exception, invalidated: bool = False) -> DBAPIError:
    """`error` as SQLAlchemy hands it to the app: wrapped in the class named after the
    driver's (sqlite3.OperationalError in sqlalchemy.exc.OperationalError)."""
    base = sqlite3.Error if isinstance(error, sqlite3.Error) else psycopg.Error
    wrapper = DBAPIError.instance("select 1", None, error, base, connection_invalidated=invalidated)
    assert isinstance(wrapper, DBAPIError)
    return wrapper


@pytest.mark.parametrize(
    ("setup", "statement"),
    [
        pytest.param("", "insert into notes values (1)", id="no-such-table"),
        pytest.param(TABLE, "insert into notes (text) values (1)", id="no-such-column"),
        pytest.param(TABLE, "insert notes", id="syntax-error"),
        pytest.param(TABLE, "insert into notes values (1)", id="read-only"),  # opened mode=ro
    ],
)
def test_sqlite_errors_that_are_bugs(tmp_path: Path, setup: str, statement: str) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(setup)
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as caught:  # PEP 249's class for them all
        connection.execute(statement)
    connection.close()
    assert not is_outage(wrapped(caught.value))


def test_sqlite_errors_that_are_outages(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError) as cannot_open:
        sqlite3.connect(tmp_path)  # a directory
    holder = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
    holder.execute("begin exclusive")
    waiter = sqlite3.connect(tmp_path / "app.db", timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:
        waiter.execute("select 1 from sqlite_master")
    waiter.close()
    holder.close()
    for error in (cannot_open.value, locked.value):
        assert is_outage(wrapped(error)), error


@pytest.mark.parametrize(
    ("sqlstate", "outage"),
    [
        ("08006", True),  # connection failure
        ("57P01", True),  # admin shutdown
        ("57P03", True),  # cannot connect now
        ("53300", True),  # too many connections
        ("42P01", False),  # undefined table
        ("42703", False),  # undefined column
        ("25006", False),  # read-only transaction
    ],
)
def test_postgresql_outages_by_their_sqlstate(sqlstate: str, outage: bool) -> None:
    error = psycopg.errors.lookup(sqlstate)("from the server")
    assert is_outage(wrapped(error)) is outage


def test_postgresql_client_side_failures() -> None:
    refused = psycopg.OperationalError("connection failed: Connection refused")
    misuse = psycopg.ProgrammingError("the query has 1 placeholder but 2 parameters were passed")
    assert is_outage(wrapped(refused))
    assert not is_outage(wrapped(misuse))
    assert is_outage(wrapped(misuse, invalidated=True))


def test_a_worker_on_sqlite_loads_no_postgresql_driver() -> None:
    """Telling outages apart must not load psycopg (and libpq) into every worker."""
    check = "import sys, app.main; sys.exit('psycopg' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], env=clean_env(), timeout=60)
    assert done.returncode == 0
