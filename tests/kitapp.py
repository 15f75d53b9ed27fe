"""The kit's own test app, served through `APP=tests.kitapp:app`: no database, no sample.

It has what the kit's tests need to watch servers at work: who answered (`/info`), a wait that
does not block (`/sleep`), CPU burnt (`/cpu`) or the event loop blocked (`/block`) on purpose, and
a body read (`/echo`). `tests/plainapp.py` serves an app without the kit's features.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, Field

from launchers.features import create_app
from launchers.settings import Settings

log = logging.getLogger(__name__)  # a plain stdlib logger: its lines carry the request id too


class Text(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_app(settings, title="kit test app")
    seen = {"launcher": settings.launcher, "workers": settings.web_concurrency, "tls": settings.tls}

    @app.get("/info")
    async def info(request: Request) -> dict[str, Any]:
        client = request.client
        in_flight = getattr(request.app.state, "in_flight", None)
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            **seen,
            "root_path": request.scope.get("root_path", ""),
            "client": client.host if client else None,
            "in_flight": in_flight.value if in_flight is not None else None,
        }

    @app.get("/sleep")
    async def sleep(seconds: Annotated[float, Query(ge=0, le=30)] = 1.0) -> dict[str, Any]:
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        return {"pid": os.getpid(), "elapsed_ms": (time.perf_counter() - start) * 1000}

    @app.get("/block")
    async def block(seconds: Annotated[float, Query(ge=0, le=120)] = 1.0) -> dict[str, Any]:
        log.warning("blocking the event loop for %s s", seconds)
        time.sleep(seconds)  # on the event loop, on purpose: the worker answers nothing meanwhile
        return {"pid": os.getpid()}

    @app.get("/cpu")
    async def cpu(ms: Annotated[int, Query(ge=1, le=2000)] = 50) -> dict[str, Any]:
        deadline = time.perf_counter() + ms / 1000
        while time.perf_counter() < deadline:
            sum(range(1000))
        return {"pid": os.getpid()}

    @app.post("/echo")
    async def echo(body: Text) -> dict[str, Any]:
        return {"pid": os.getpid(), "length": len(body.text)}

    return app


app = build()
