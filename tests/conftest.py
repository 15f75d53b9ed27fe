from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.databases import SQLITE, postgresql_url
from tests.servers import is_setting


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from the developer's shell or `.env` reaches a test."""
    for name in [name for name in os.environ if is_setting(name)]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def temporary_files_in_the_session(tmp_path_factory: pytest.TempPathFactory) -> None:
    """What servers leave in TMPDIR when a test kills them (their metrics directories) lands in
    pytest's own temporary tree, which keeps only the last few sessions, not in /tmp."""
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("tmp"))
    tempfile.tempdir = None  # asked again of TMPDIR, by this process too


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    """A DATABASE_URL, once for each database: SQLite, then PostgreSQL where there is one."""
    return SQLITE if request.param == "sqlite" else postgresql_url()


@pytest.fixture
def postgresql() -> str:
    """The PostgreSQL of TEST_DATABASE_URL, emptied; the test skips without one."""
    return postgresql_url()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What the image tests measured (its size, its drain), for the CI log and the docs."""
    from tests.podman import MEASURED

    if MEASURED:
        terminalreporter.section("measured")
        for line in MEASURED:
            terminalreporter.write_line(line)
