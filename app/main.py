"""The sample service, `app.main:app`: its routes and lifespan, plus the kit's features.

`create_app` adds what every served app gets (probes, request ids, access log, metrics, body
limit, telemetry); the rest is the sample's own, to replace with yours.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from app import demo, info, notes, outage
from app.db import Database
from app.settings import Settings
from launchers.features import create_app
from launchers.settings import Settings as ServerSettings

# The service's name (`make rename` changes it): the API's title, and OpenTelemetry's
# `service.name` unless SERVICE_NAME says otherwise.
NAME = "fastapi-launchers"


def build_app(settings: Settings, server: ServerSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.info = info.build_info(server)
        app.state.database = Database(settings.database_url)  # this worker's own pool
        yield
        app.state.database.close()

    routers = [info.router, notes.router]
    if settings.demo_endpoints:
        routers.append(demo.router)
    return create_app(
        server,
        title=NAME,
        lifespan=lifespan,
        # The routers' routes, registered on the app itself rather than with include_router:
        # FastAPI 0.16x resolves an included router on every request that reaches it (docs:
        # performance). Same OpenAPI document; /info first, as routes are matched in order.
        routes=[route for router in routers for route in router.routes],
        exception_handlers={DBAPIError: outage.unavailable},  # 503 while the database is away
    )


app = build_app(Settings(), ServerSettings())
