"""The sample's migrations: `upgrade()` is what the launchers call (`MIGRATIONS`) before any worker
starts, and `python -m launchers.migrate` on its own (e.g. as a Kubernetes init container).

Never each worker at import or in its lifespan: several workers would race to apply the same
migration, and a slow one would hold every worker's start-up (and its health checks). A failure
stops the launch with one paragraph naming DATABASE_URL, before any server starts.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from app.settings import Settings
from launchers.errors import ConfigError, load_settings

SCRIPTS = "app:migrations"
VERSIONS = Path(__file__).parent / "versions"
# Alembic says which dialect it drives, and which plugins it loads, on every start; the revisions
# it applies still show.
_CHATTER = frozenset({"Context impl %s.", "Will assume %s DDL."})


def upgrade() -> None:
    settings = load_settings(Settings)
    if _at_head(settings.database_url):
        return  # the common case, at every start: one query, and Alembic not even imported
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


def _at_head(database_url: str) -> bool:
    """Whether the database is at this code's newest revisions, read without Alembic: the
    revisions the scripts declare that no script names as its parent, against the database's
    `alembic_version`. Anything else (no table yet, no file yet, another revision, the database
    away) is for Alembic to handle and to explain."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return False  # connecting would make the file: the migrations will
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            current = {row[0] for row in connection.execute(text(_VERSION))}
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()
    return current == _heads()


_VERSION = "SELECT version_num FROM alembic_version"


def _heads() -> set[str]:
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in VERSIONS.glob("*.py"):
        for node in ast.parse(script.read_bytes()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:  # newer templates
                target, value = node.target, node.value
            else:
                continue
            name = target.id if isinstance(target, ast.Name) else None
            if name == "revision":
                revisions.add(ast.literal_eval(value))
            elif name == "down_revision":
                parent = ast.literal_eval(value)
                parents |= set(parent) if isinstance(parent, tuple | list) else {parent}
    return revisions - parents
