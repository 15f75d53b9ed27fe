"""The kit's in-app parts: what every served app gets from one call, `install(app)`.

Probes with draining (`/healthz`, `/readyz`), request ids and the access log, Prometheus metrics
summed across workers (`/metrics`), the body limit, FastAPI's 422 made safe for any input,
OpenTelemetry export, and the garbage-collector freeze once the app has started. They read the
kit's `Settings`, never the app's. An app that skips the call still serves under every launcher,
which then says what it lacks (`launchers.installed`).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from launchers import logs
from launchers.features import errors, metrics, probes, telemetry
from launchers.features.access import AccessLog
from launchers.features.body_limit import BodyLimit, Counter
from launchers.features.lifecycle import Lifecycle
from launchers.settings import Settings

PROCESS_FIGURES_EVERY = 5.0  # seconds between updates of this worker's memory and CPU gauges

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]
_installed: list[FastAPI] = []  # in this process, and in the workers a preloading master forks


def create_app(settings: Settings | None = None, **options: Any) -> FastAPI:
    """`FastAPI(**options)` with the kit's features installed."""
    return install(FastAPI(**options), settings)


def install(app: FastAPI, settings: Settings | None = None) -> FastAPI:
    """Give `app` the kit's features, where the app is made (before it serves); once is enough."""
    if app in _installed:
        return app
    settings = settings or Settings()
    logs.configure(settings)
    # First in the routing table: probes are matched before the app's own routes.
    app.router.routes[:0] = [*probes.router.routes, *metrics.router.routes]
    app.router.lifespan_context = _lifespan(app.router.lifespan_context, settings)
    app.exception_handlers[RequestValidationError] = errors.invalid
    # FastAPI's native telemetry asks for the global providers on every request: switched off
    # unless a collector is configured. Its config is read live from this dictionary.
    app._telemetry.update(telemetry.fastapi_config(settings))
    app.add_middleware(BodyLimit, max_size=settings.max_body_size)
    app.state.in_flight = Counter()
    access_log = logs.access_logger(settings)
    app.add_middleware(AccessLog, in_flight=app.state.in_flight, log=access_log)  # outermost
    _installed.append(app)
    return app


def _lifespan(inner: Lifespan, settings: Settings) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        lifecycle = Lifecycle()
        app.state.lifecycle = lifecycle
        stop_telemetry = telemetry.start(settings, app.title)
        figures = asyncio.create_task(_record_process_figures())
        async with inner(app) as state:
            # What exists now (modules, the app, its routes, what its lifespan made) lives as long
            # as the worker: frozen, full collections no longer walk it (docs: performance).
            gc.freeze()
            with lifecycle.watch_signals():
                lifecycle.started()
                yield state
                lifecycle.drain()
        figures.cancel()
        if stop_telemetry is not None:
            stop_telemetry()  # flushes what is still batched
        metrics.forget_this_worker()

    return lifespan


async def _record_process_figures() -> None:
    while True:
        metrics.record_process_figures()
        await asyncio.sleep(PROCESS_FIGURES_EVERY)
