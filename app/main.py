"""The application object, `app.main:app`, built once per worker process from `Settings`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import demo, health, info
from app.lifecycle import Lifecycle
from app.middleware import BodyLimit, Counter, InFlight
from app.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lifecycle = Lifecycle()
        app.state.lifecycle = lifecycle
        app.state.info = info.build_info(settings)
        with lifecycle.watch_signals():
            lifecycle.started()
            yield
            lifecycle.drain()

    app = FastAPI(title="FastAPI launchers reference", lifespan=lifespan)
    app.include_router(health.router)
    app.include_router(info.router)
    if settings.demo_endpoints:
        app.include_router(demo.router)
    app.add_middleware(BodyLimit, max_size=settings.max_body_size)
    app.state.in_flight = Counter()
    app.add_middleware(InFlight, counter=app.state.in_flight)
    return app


app = create_app(Settings())
