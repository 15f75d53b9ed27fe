"""The sample service's own settings, apart from the kit's (`launchers.settings`).

Add your app's settings here: the launchers never read this model, so a new field needs no change
to the kit and draws no warning. `make docs` lists these in the settings table too
(docs/settings.md).
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_ignore_empty=True,  # `LAUNCHER=` (as `make run LAUNCHER=` sets it) means unset
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    database_url: str = Field(
        "sqlite:///data/app.db",
        description="SQLAlchemy URL of the database. Default: a SQLite file under `data/` in the "
        "working directory, made on first run. PostgreSQL: "
        "`postgresql://user:password@host:5432/name` (psycopg 3).",
    )
    demo_endpoints: bool = Field(
        False,
        description="Serve `/demo/*` (sleep, block, cpu, echo): slow and CPU-bound on purpose, "
        "so off by default; `make run-dev` turns them on.",
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("is not a database URL (e.g. sqlite:///data/app.db)") from None
        if url.drivername in ("postgres", "postgresql"):  # the usual spelling means psycopg 3 here
            url = url.set(drivername="postgresql+psycopg")
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            backend = url.get_backend_name()
            raise ValueError(f"is a {backend!r} database: use sqlite or postgresql")
        return url.render_as_string(hide_password=False)
