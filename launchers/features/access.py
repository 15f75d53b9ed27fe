"""Request ids, the access log and the request metrics, in one pure ASGI middleware.

It wraps the whole app, so it sees every request, the ones refused by inner middleware too. The
servers' own access logs are off (see `launchers.logs`): this one knows the route
template and the request id, and is the same under every launcher.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from launchers.features import metrics
from launchers.features.batched_values import before_write
from launchers.features.body_limit import Counter
from launchers.logs import REQUEST_ID, AccessLine

HEADER = b"x-request-id"
# Label values are kept few: any other method a client sends is counted as OTHER.
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
# An incoming id is kept only when it is short and made of characters that are safe in a log
# line and a header; anything else (too long, control characters, spaces) is replaced.
SANE_ID = re.compile(rb"[A-Za-z0-9._~:@+=/-]{1,128}")


def request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == HEADER and SANE_ID.fullmatch(value):
            return str(value.decode("ascii"))
    # 128 random bits, as a UUID has, without its system call: an id needs to be unique, not
    # secret (random reseeds itself in every forked worker).
    return f"{random.getrandbits(128):032x}"


class AccessLog:
    def __init__(self, app: ASGIApp, in_flight: Counter, log: AccessLine) -> None:
        self.app = app
        self.in_flight = in_flight
        self.log = log
        self.publishing = False  # the in-progress gauge is due to be set this turn
        # (method, route, status) -> its counter and histogram: looking labelled metrics up
        # once, not on every request, saves prometheus-client's checks and lock.
        self.series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.templates: dict[int, str] = {}  # id of a plain route's endpoint -> its path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        status = 500  # what the server answers when the app fails before responding

        # A plain function handing back send's awaitable, not a coroutine awaiting it: one
        # coroutine less to create and run per message.
        def send_with_id(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (HEADER, rid.encode())]
            return send(message)

        started = time.perf_counter()
        self.in_flight.value += 1
        if not self.publishing:
            self._publish_soon()
        # Set in this request's task only: every line logged while serving it carries the id.
        token = REQUEST_ID.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.in_flight.value -= 1
            if not self.publishing:
                self._publish_soon()
            self._record(scope, status, time.perf_counter() - started)
            REQUEST_ID.reset(token)

    def _publish_soon(self) -> None:
        # The requests-in-progress gauge is set from the count once, as the metrics are
        # written, rather than raised and lowered by every request: a scrape sees the same
        # values (changes are written once per loop turn anyway, see `batched_values`), and a
        # request makes three metric changes instead of five.
        self.publishing = True
        before_write(self._publish)

    def _publish(self) -> None:
        self.publishing = False
        metrics.IN_PROGRESS.set(self.in_flight.value)

    def _record(self, scope: Scope, status: int, duration: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or self._template(scope)
        method = scope["method"]
        key = (method if method in METHODS else "OTHER", template, status)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = (
                metrics.REQUESTS.labels(key[0], template, str(status)),
                metrics.DURATION.labels(key[0], template),
            )
        series[0].inc()
        series[1].observe(duration)
        client = scope.get("client")
        self.log(
            {
                "method": method,
                "route": template,
                "path": scope["path"],
                "status": status,
                "duration_ms": round(duration * 1000, 3),
                "client": f"{client[0]}:{client[1]}" if client else None,
            }
        )

    def _template(self, scope: Scope) -> str:
        # Only FastAPI's own routes put themselves in the scope; a plain starlette route (/docs,
        # /openapi.json) or mount leaves its endpoint there, which names it in the router.
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return metrics.UNMATCHED
        template = self.templates.get(id(endpoint))
        if template is None:
            template = self.templates[id(endpoint)] = _path_of(scope.get("router"), endpoint)
        return template


def _path_of(router: Any, endpoint: object) -> str:
    for route in getattr(router, "routes", ()):
        if getattr(route, "endpoint", None) is endpoint or getattr(route, "app", None) is endpoint:
            return str(route.path)
    return metrics.UNMATCHED
