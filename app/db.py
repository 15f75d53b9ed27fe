"""The database: one engine per worker process, made in its lifespan, never before a fork.

An engine holds open connections, and a connection copied into a forked child is shared by two
processes that each think they own it. So the app creates nothing at import time (gunicorn's
`preload_app` imports it in the master); each worker opens its own pool when it starts.

SQLite serves several worker processes through one file: WAL lets readers go on while one
writer commits, and a busy timeout makes a writer wait for the lock instead of failing with
"database is locked". Commits stay fully synchronous (SQLite's default), so a write is on disk
before its 201 is sent.

When the database goes away, requests get a 503 (`app.outage`) and the engine recovers by
itself once it is back: `pool_pre_ping` replaces dead pooled connections (PostgreSQL), and a
connection attempt gives up after CONNECT_TIMEOUT rather than hold a thread for minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.types import TypeDecorator

from app.outage import Outage

BUSY_TIMEOUT = 15  # seconds a SQLite writer waits for another's lock
CONNECT_TIMEOUT = 5  # seconds to reach PostgreSQL, unless the URL's `connect_timeout` says


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that reads back in UTC with its time zone, on SQLite (which keeps none) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # A host gone without a word (nothing refused) would otherwise hold each request, and
        # its thread, for psycopg's default of over two minutes.
        timeout = {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_TIMEOUT}
        return create_engine(url, pool_pre_ping=True, connect_args=timeout)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread off: FastAPI runs `def` endpoints in a thread pool, and the pool hands a
    # connection to one thread at a time.
    sqlite = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT, "check_same_thread": False})
    event.listen(sqlite, "connect", _wal)
    return sqlite


def _wal(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # the default, made explicit: see above
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """This worker's engine and sessions, and whether it last found the database unavailable."""

    def __init__(self, url: str) -> None:
        self.engine = engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.outage = Outage()

    def close(self) -> None:
        self.engine.dispose()
