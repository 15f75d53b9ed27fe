"""Alembic's environment: the URL comes from the one settings model, never from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from app import models  # noqa: F401 (registers the tables on Base.metadata, for autogenerate)
from app.db import Base, engine
from app.settings import Settings

LOCK = 7_2024_1124  # any number, the same for every launcher of this app

url = context.config.attributes.get("url") or Settings().database_url
connectable = engine(url)
try:
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,  # SQLite alters tables by copying them: let autogenerate say so
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several launchers may start at once (replicas, their init containers): the
                # first applies the migrations, the others wait here, then find nothing to do.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
            context.run_migrations()
finally:
    connectable.dispose()
