"""The database going away and coming back, as one worker sees it.

A request that finds the database unavailable (connection refused or cut, PostgreSQL shutting
down or out of connection slots, a SQLite file that cannot be opened, is full, or stays locked
past the busy timeout) is answered 503 with `Retry-After`, not 500: neither the request nor the
app is at fault, and nothing needs a restart. Once the database answers again, `pool_pre_ping`
replaces the pool's dead connections at their next checkout. A 503 is never an
acknowledgement: a note is only acknowledged (201) after its commit returned.

An outage is told by the driver's own error code, not by PEP 249's OperationalError, which
also covers bugs (a missing table or column after a model change shipped without its
migration, an SQL syntax error, a read-only database): those stay a 500 with a traceback.

Each worker logs one warning when it first finds the database gone and one line when a request
of its own goes through again; the requests in between log no traceback, just their access line.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time

import structlog
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

RETRY_AFTER = 5  # seconds: long enough for a restarting database, short enough not to give up
UNAVAILABLE = "The database is unavailable; try again later."

log = structlog.get_logger(__name__)


class Outage:
    """Whether this worker last found the database unavailable, and since when."""

    def __init__(self) -> None:
        self.since: float | None = None
        self._lock = threading.Lock()  # requests run in FastAPI's thread pool

    def began(self, error: DBAPIError) -> None:
        with self._lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
        # The driver's own first line: it names host and port, never the password; not
        # SQLAlchemy's text, which carries the statement and its parameters (user data).
        reason = next(iter(str(error.orig).strip().splitlines()), "")
        log.warning("database unavailable", error=type(error.orig).__name__, reason=reason)

    def ended(self) -> None:
        if self.since is None:  # the common case, without the lock
            return
        with self._lock:
            if self.since is None:
                return
            seconds = time.monotonic() - self.since
            self.since = None
        log.info("database available again", unavailable_seconds=round(seconds, 1))


# PostgreSQL's SQLSTATEs for a server going or gone (class 08, connection exception, is taken
# whole): admin shutdown, crash shutdown, cannot connect now (starting up), too many connections.
_POSTGRESQL_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})
# SQLite's primary result codes for a file out of reach; an extended code (SQLITE_IOERR_WRITE,
# SQLITE_BUSY_SNAPSHOT) keeps its primary code in its low byte.
_SQLITE_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_PROTOCOL,
    }
)


def is_outage(error: DBAPIError) -> bool:
    """Whether the database, not the request or the app, is at fault: SQLAlchemy found the
    connection dead, or the driver's code says the server or file is out of reach."""
    if error.connection_invalidated:
        return True
    orig = error.orig
    # psycopg is loaded once a PostgreSQL URL is used: a worker on SQLite never pays for it.
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(orig, psycopg.Error):
        state = orig.sqlstate
        if state is None:  # the connection failed on the client's side: refused, cut, timed out
            return isinstance(orig, psycopg.OperationalError)  # not a client-side misuse
        return state.startswith("08") or state in _POSTGRESQL_UNAVAILABLE
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)  # absent on errors sqlite3 raises itself
        return code is not None and (code & 0xFF) in _SQLITE_UNAVAILABLE
    return False


async def unavailable(request: Request, error: DBAPIError) -> Response:
    """The exception handler for SQLAlchemy's DBAPIError: 503 for an outage; anything else (a
    bug) is raised again, a 500 with its traceback."""
    if not is_outage(error):
        raise error
    request.app.state.database.outage.began(error)
    headers = {"Retry-After": str(RETRY_AFTER)}
    return JSONResponse({"detail": UNAVAILABLE}, status_code=503, headers=headers)
