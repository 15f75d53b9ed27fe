"""The databases the tests run on: a SQLite file of a server's own, or the PostgreSQL of
TEST_DATABASE_URL (CI starts one with `.ci/postgres`; elsewhere those tests skip and say why)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SQLITE = "sqlite:///data/app.db"  # the default: under the server's (fresh) working directory


def postgresql_url() -> str:
    """TEST_DATABASE_URL, emptied of what earlier tests left; skips the test without one."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("no PostgreSQL: set TEST_DATABASE_URL (.ci/postgres starts one and prints it)")
    empty(url)
    return url


def empty(url: str) -> None:
    """Drop what earlier tests left in a shared PostgreSQL database (a SQLite file is new)."""
    if url.startswith("sqlite"):
        return
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))  # psycopg 3
    with engine.begin() as connection:
        connection.execute(text("drop table if exists notes, alembic_version"))
    engine.dispose()
