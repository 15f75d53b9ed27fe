"""The sample's migrations: `upgrade()` is what the launchers call (`MIGRATIONS`) before any worker
starts, and `python -m launchers.migrate` on its own (e.g. as a Kubernetes init container).

Never each worker at import or in its lifespan: several workers would race to apply the same
migration, and a slow one would hold every worker's start-up (and its health checks). A failure
stops the launch with one paragraph naming DATABASE_URL, before any server starts.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.settings import Settings
from launchers.errors import ConfigError, load_settings

SCRIPTS = "app:migrations"
# Alembic says which dialect it drives, and which plugins it loads, on every start; the revisions
# it applies still show.
_CHATTER = frozenset({"Context impl %s.", "Will assume %s DDL."})


def upgrade() -> None:
    settings = load_settings(Settings)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # before the import
    logging.getLogger("alembic.runtime.migration").addFilter(_quiet)
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", SCRIPTS)
    config.attributes["url"] = settings.database_url
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        command.upgrade(config, "head")
    except CommandError as error:
        # The database names a revision that no file under app/migrations/versions has: made by
        # other code (a branch, a deleted migration).
        raise ConfigError(
            f"DATABASE_URL={url}: the database's schema is at a revision this code does not "
            f"know ({error}). Delete the development database (e.g. `rm data/app.db`) to start "
            "afresh, or, if its tables do match this code, record that they do: "
            "`.venv/bin/python -m alembic stamp --purge head` in the project's directory."
        ) from None
    except (SQLAlchemyError, OSError) as error:
        reason = " ".join(str(getattr(error, "orig", None) or error).split())  # one paragraph
        raise ConfigError(
            f"DATABASE_URL={url}: cannot apply the migrations: {reason.rstrip('.')} (check that "
            "the database is reachable and that its user may create tables)."
        ) from None


def _quiet(record: logging.LogRecord) -> bool:
    return record.msg not in _CHATTER
