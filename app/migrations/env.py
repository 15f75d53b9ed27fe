"""Alembic's environment: the URL comes from the one settings model, never from alembic.ini."""

from __future__ import annotations

from alembic import context

from app import models  # noqa: F401 (registers the tables on Base.metadata, for autogenerate)
from app.db import Base, engine
from app.settings import Settings

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
            context.run_migrations()
finally:
    connectable.dispose()
