"""Database migrations, applied once by the launcher before any worker starts.

Never by each worker at import or in its lifespan: several workers would race to apply the same
migration, and a slow migration would hold every worker's start-up (and its health checks). A
failure stops the launch with a message naming DATABASE_URL, before any server starts.
`python -m launchers.migrate` applies them on its own, e.g. as a Kubernetes Job.
"""

from __future__ import annotations

import sys

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app import logs
from app.settings import Settings
from launchers.errors import ConfigError, load_settings, report

SCRIPTS = "app:migrations"


def upgrade(settings: Settings) -> None:
    config = Config()
    config.set_main_option("script_location", SCRIPTS)
    config.attributes["url"] = settings.database_url
    try:
        command.upgrade(config, "head")
    except (SQLAlchemyError, OSError) as error:
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = " ".join(str(getattr(error, "orig", None) or error).split())  # one paragraph
        raise ConfigError(
            f"DATABASE_URL={url}: cannot apply the migrations: {reason.rstrip('.')} (check that "
            "the database is reachable and that its user may create tables)."
        ) from None


def main() -> int:
    try:
        settings = load_settings()
        logs.configure(settings)  # what it applies is logged like everything else
        upgrade(settings)
    except ConfigError as error:
        return report(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
