"""The sample's own: its endpoints (`app.main`) through httpx, its lifespan running, and its
settings' errors as the launchers report them. The kit's features are tested on the kit's test app
(`tests/test_features.py`)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.main import build_app
from app.settings import Settings
from launchers.settings import Settings as ServerSettings
from tests.servers import free_port, run_launcher, with_asgi
from tests.test_cli import assert_clear_error

Check = Callable[[httpx.AsyncClient], Awaitable[None]]


def with_app(check: Check, **settings: Any) -> None:
    app = build_app(Settings.model_validate(settings), ServerSettings.model_validate(settings))
    with_asgi(app, check)


def test_info_reports_this_process_and_how_it_is_served() -> None:
    async def check(client: httpx.AsyncClient) -> None:
        info = (await client.get("/info")).json()
        assert info["pid"] == os.getpid()
        assert info["ppid"] == os.getppid()
        assert (info["launcher"], info["workers"], info["tls"]) == ("gunicorn", 3, False)
        assert set(info["versions"]) == {"python", "fastapi", "uvicorn", "gunicorn"}

    with_app(check, launcher="gunicorn", web_concurrency=3)


def test_demo_sleep_awaits_and_is_bounded() -> None:
    async def check(client: httpx.AsyncClient) -> None:
        slept = (await client.get("/demo/sleep", params={"seconds": 0.05})).json()
        assert slept["pid"] == os.getpid()
        assert slept["elapsed_ms"] >= 50
        assert (await client.get("/demo/sleep", params={"seconds": 31})).status_code == 422
        assert (await client.get("/demo/sleep", params={"seconds": -1})).status_code == 422

    with_app(check, demo_endpoints=True)


def test_demo_cpu_burns_and_is_bounded() -> None:
    async def check(client: httpx.AsyncClient) -> None:
        burnt = (await client.get("/demo/cpu", params={"ms": 20})).json()
        assert burnt["elapsed_ms"] >= 20
        assert (await client.get("/demo/cpu", params={"ms": 2001})).status_code == 422
        assert (await client.get("/demo/cpu", params={"ms": 0})).status_code == 422

    with_app(check, demo_endpoints=True)


def test_demo_endpoints_are_off_by_default() -> None:
    async def check(client: httpx.AsyncClient) -> None:
        assert (await client.get("/demo/sleep", params={"seconds": 0})).status_code == 404
        assert (await client.get("/demo/cpu")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200

    with_app(check)


def test_app_object_is_importable_as_the_entrypoint() -> None:
    from app.main import app

    assert isinstance(app, FastAPI)


# --- The sample's DATABASE_URL, checked by its settings and its migrations ---------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("nonsense", "DATABASE_URL='nonsense' is not a database URL (e.g. sqlite:///data/app.db)"),
        ("mysql://u@h/db", "DATABASE_URL='mysql://u@h/db' is a 'mysql' database: use sqlite or"),
    ],
)
def test_database_url_that_is_wrong(tmp_path: Path, url: str, problem: str) -> None:
    assert_clear_error(run_launcher(tmp_path, "uvicorn", DATABASE_URL=url), problem)


@pytest.mark.parametrize("password", ["s3cr@t", "s3/cr@t"])
def test_database_url_that_is_wrong_shows_no_password(tmp_path: Path, password: str) -> None:
    result = run_launcher(tmp_path, "uvicorn", DATABASE_URL=f"mysql://app:{password}@db/app")
    assert_clear_error(result, "DATABASE_URL='mysql://app:***@db/app' is a 'mysql' database")
    assert "s3" not in result.stderr


def test_database_that_cannot_be_reached_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://app:s3cret@127.0.0.1:{free_port()}/app"
    result = run_launcher(tmp_path, "gunicorn", DATABASE_URL=url)
    assert_clear_error(
        result,
        "DATABASE_URL=postgresql+psycopg://app:***@127.0.0.1:",
        "cannot apply the migrations",
    )
    assert "s3cret" not in result.stderr + result.stdout


def test_sqlite_file_that_cannot_be_made(tmp_path: Path) -> None:
    result = run_launcher(tmp_path, "uvicorn", DATABASE_URL="sqlite:////proc/no/app.db")
    assert_clear_error(
        result, "DATABASE_URL=sqlite:////proc/no/app.db: cannot apply the migrations"
    )
