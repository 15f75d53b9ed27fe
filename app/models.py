"""The tables, as SQLAlchemy models: imported by the app and by Alembic's migrations, which need
no web framework to run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime

MAX_TEXT = 10_000
# The largest id `notes.id` holds on every database: an INTEGER, 32 bits on PostgreSQL (64 on
# SQLite). The API refuses larger ids and offsets before the driver overflows on them.
MAX_ID = 2**31 - 1


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(MAX_TEXT))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
