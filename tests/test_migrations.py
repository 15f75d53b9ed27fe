"""The sample's migrations as a launch runs them: quiet when all is well, one paragraph when not."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import empty
from tests.servers import ROOT, SAMPLE_APP, clean_env, free_port, launcher, serve

MIGRATE = [sys.executable, "-m", "launchers.migrate"]
# What Alembic says on every start, whatever it applies: the dialect, the DDL mode, its plugins.
CHATTER = ("Context impl", "Will assume", "setup plugin")


def stamped(workdir: Path, revision: str) -> Path:
    """A SQLite database, at the default DATABASE_URL, at a revision of Alembic's table."""
    (workdir / "data").mkdir()
    database = workdir / "data" / "app.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        connection.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    connection.close()
    return database


def run(argv: list[str], workdir: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=workdir,
        env=clean_env(PORT=str(free_port()), APP=SAMPLE_APP, **settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_paragraph(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: "), line
    for part in parts:
        assert part in line


@pytest.mark.parametrize("argv", [launcher("uvicorn"), MIGRATE], ids=["uvicorn", "migrate"])
def test_a_database_at_an_unknown_revision_says_how_to_fix_it(
    argv: list[str], tmp_path: Path
) -> None:
    database = stamped(tmp_path, "9999")
    result = run(argv, tmp_path)
    assert_one_paragraph(
        result,
        "DATABASE_URL=sqlite:///data/app.db",
        "a revision this code does not know",
        "'9999'",
        "rm data/app.db",
        "`.venv/bin/python -m alembic stamp --purge head` in the project's directory",
    )
    assert revisions(database) == [("9999",)], "left as it was"

    # The advice works as given: the database is then at this code's revision.
    advised = re.search(r"`\.venv/bin/python (-m alembic [^`]+)`", result.stderr)
    assert advised is not None
    env = clean_env(DATABASE_URL=f"sqlite:///{database}")
    stamp = [sys.executable, *advised[1].split()]
    subprocess.run(stamp, cwd=ROOT, env=env, capture_output=True, check=True, timeout=60)
    assert revisions(database) == [("0001",)]


def revisions(database: Path) -> list[tuple[str]]:
    with sqlite3.connect(database) as connection:
        found = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    connection.close()
    return found


@pytest.mark.parametrize("argv", [launcher("uvicorn"), MIGRATE], ids=["uvicorn", "migrate"])
def test_migrations_that_cannot_be_imported(argv: list[str], tmp_path: Path) -> None:
    result = run(argv, tmp_path, MIGRATIONS="nosuch.module:upgrade")
    assert_one_paragraph(result, "MIGRATIONS='nosuch.module:upgrade' cannot be imported", "nosuch")
    assert not (tmp_path / "data").exists(), "nothing else ran"


def test_a_start_logs_what_it_applies_and_nothing_else(tmp_path: Path) -> None:
    with serve(launcher("uvicorn"), tmp_path, APP=SAMPLE_APP, WEB_CONCURRENCY="1") as first:
        pass
    assert first.output().count("Running upgrade") == 1, first.output()
    assert "Running upgrade  -> 0001" in first.output()
    for chatter in CHATTER:
        assert chatter not in first.output()
    with serve(launcher("uvicorn"), tmp_path, APP=SAMPLE_APP, WEB_CONCURRENCY="1") as second:
        pass
    assert "Running upgrade" not in second.output(), "the database is at head already"
    for chatter in CHATTER:
        assert chatter not in second.output()


IMPORTS_ALEMBIC = (
    "import sys; from app.migrations import upgrade; upgrade(); print('alembic' in sys.modules)"
)


def test_a_database_at_head_costs_one_query_and_no_alembic(database: str, tmp_path: Path) -> None:
    """The common case at every start, made cheap: Alembic (and its half second of imports) only
    when there is something to apply or to explain."""
    empty(database)
    first, again = (
        run([sys.executable, "-c", IMPORTS_ALEMBIC], tmp_path, DATABASE_URL=database)
        for _ in range(2)
    )
    assert (first.returncode, first.stdout) == (0, "True\n"), first.stderr
    assert (again.returncode, again.stdout, again.stderr) == (0, "False\n", "")
