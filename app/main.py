"""The application object, `app.main:app`, built once per worker process from `Settings`."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError

from app import demo, errors, health, info, logs, metrics, notes, outage, telemetry
from app.access import AccessLog
from app.db import Database
from app.lifecycle import Lifecycle
from app.middleware import BodyLimit, Counter
from app.settings import Settings

PROCESS_FIGURES_EVERY = 5.0  # seconds between updates of this worker's memory and CPU gauges


def create_app(settings: Settings) -> FastAPI:
    logs.configure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lifecycle = Lifecycle()
        app.state.lifecycle = lifecycle
        app.state.info = info.build_info(settings)
        app.state.database = Database(settings.database_url)  # this worker's own pool
        stop_telemetry = telemetry.start(settings)
        figures = asyncio.create_task(_record_process_figures())
        # What exists now (modules, the app, its routes) lives as long as the worker. Frozen,
        # it is no longer walked by every full collection: under fastapi-cli those came about
        # once a second under load and took 38 ms each (0.2 ms frozen), its p99 latency. No
        # collection first: it found nothing here, for 35 ms of each worker's start-up.
        gc.freeze()
        with lifecycle.watch_signals():
            lifecycle.started()
            yield
            lifecycle.drain()
        figures.cancel()
        if stop_telemetry is not None:
            stop_telemetry()  # flushes what is still batched
        app.state.database.close()
        metrics.forget_this_worker()

    routers = [health.router, info.router, metrics.router, notes.router]
    if settings.demo_endpoints:
        routers.append(demo.router)
    app = FastAPI(
        title="FastAPI launchers reference",
        lifespan=lifespan,
        telemetry=telemetry.fastapi_config(settings),
        # The routers' routes, registered on the app itself rather than with include_router:
        # FastAPI 0.16x resolves an included router on every request that reaches it, which
        # cost a sixth of a worker's throughput on /info here (README, "Measured"). Same
        # OpenAPI document; probes and /info first, as they are matched in order.
        routes=[route for router in routers for route in router.routes],
        exception_handlers={
            RequestValidationError: errors.invalid,
            DBAPIError: outage.unavailable,  # 503 while the database is away
        },
    )
    app.add_middleware(BodyLimit, max_size=settings.max_body_size)
    app.state.in_flight = Counter()
    access_log = logs.access_logger(settings)
    app.add_middleware(AccessLog, in_flight=app.state.in_flight, log=access_log)  # outermost
    return app


async def _record_process_figures() -> None:
    while True:
        metrics.record_process_figures()
        await asyncio.sleep(PROCESS_FIGURES_EVERY)


app = create_app(Settings())
