"""The database going away and coming back, as one worker sees it.

A request that finds the database unavailable (connection refused or cut, PostgreSQL shutting
down, a SQLite file that cannot be opened or stays locked past the busy timeout) is answered
503 with `Retry-After`, not 500: neither the request nor the app is at fault, and nothing needs
a restart. Once the database answers again, `pool_pre_ping` replaces the pool's dead
connections at their next checkout. A 503 is never an acknowledgement: a note is only
acknowledged (201) after its commit returned.

Each worker logs one warning when it first finds the database gone and one line when a request
of its own goes through again; the requests in between log no traceback, just their access line.
"""

from __future__ import annotations

import threading
import time

import structlog
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError

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


def is_outage(error: DBAPIError) -> bool:
    """PEP 249's OperationalError ("not necessarily under the control of the programmer": a
    disconnect, a database not found) or any error SQLAlchemy found the connection dead on."""
    return isinstance(error, OperationalError) or error.connection_invalidated


async def unavailable(request: Request, error: DBAPIError) -> Response:
    """The exception handler for SQLAlchemy's DBAPIError: 503 for an outage; anything else (a
    bug) is raised again, a 500 with its traceback."""
    if not is_outage(error):
        raise error
    request.app.state.database.outage.began(error)
    headers = {"Retry-After": str(RETRY_AFTER)}
    return JSONResponse({"detail": UNAVAILABLE}, status_code=503, headers=headers)
