"""Every endpoint through httpx against the ASGI app, with its lifespan running."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import httpx
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings

Check = Callable[[httpx.AsyncClient], Awaitable[None]]


def with_app(check: Check, **settings: Any) -> None:
    app = create_app(Settings.model_validate(settings))

    async def go() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                await check(client)

    asyncio.run(go())


def test_probes() -> None:
    async def check(client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})

    with_app(check)


def test_startup_heap_is_frozen_out_of_full_collections() -> None:
    """What start-up made is walked by no collection after it (README: fastapi-cli's p99)."""
    gc.unfreeze()

    async def check(client: httpx.AsyncClient) -> None:
        assert gc.get_freeze_count() > 10_000  # the modules, the app and its routes

    try:
        with_app(check)
    finally:
        gc.unfreeze()


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

    with_app(check)


def test_demo_cpu_burns_and_is_bounded() -> None:
    async def check(client: httpx.AsyncClient) -> None:
        burnt = (await client.get("/demo/cpu", params={"ms": 20})).json()
        assert burnt["elapsed_ms"] >= 20
        assert (await client.get("/demo/cpu", params={"ms": 2001})).status_code == 422
        assert (await client.get("/demo/cpu", params={"ms": 0})).status_code == 422

    with_app(check)


def test_demo_endpoints_switched_off() -> None:
    async def check(client: httpx.AsyncClient) -> None:
        assert (await client.get("/demo/sleep", params={"seconds": 0})).status_code == 404
        assert (await client.get("/demo/cpu")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200

    with_app(check, demo_endpoints=False)


def test_readyz_turns_503_on_sigterm_and_the_server_handler_still_runs() -> None:
    """The lifespan chains onto the server's SIGTERM handler: drain first, then the server's."""
    received: list[int] = []

    def server_handler(sig: int, frame: FrameType | None) -> None:
        received.append(sig)

    previous = signal.signal(signal.SIGTERM, server_handler)
    try:

        async def check(client: httpx.AsyncClient) -> None:
            signal.raise_signal(signal.SIGTERM)
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
            assert (await client.get("/healthz")).status_code == 200

        with_app(check)
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is server_handler, "restored after the lifespan"
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_app_object_is_importable_as_the_entrypoint() -> None:
    from app.main import app

    assert isinstance(app, FastAPI)
