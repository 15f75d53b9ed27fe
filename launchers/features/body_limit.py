"""Pure ASGI middleware (no `BaseHTTPMiddleware`: it costs a task and a copy per request)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE = "Request body larger than MAX_BODY_SIZE ({} bytes)."


class Counter:
    def __init__(self) -> None:
        self.value = 0


class BodyLimit:
    """413 for a body over `max_size`: at once when Content-Length announces it, and as soon as
    a chunked body passes it, counting chunks as they stream rather than reading the body.

    Not `FastAPI(max_body_size=...)`: its plain "Content Too Large" keeps the connection open, so
    the server goes on receiving the announced body it refused; this one says which setting to
    change and closes the connection.
    """

    def __init__(self, app: ASGIApp, max_size: int) -> None:
        self.app = app
        self.max_size = max_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_size:
                await self._refuse(send)
                return
            if name == b"transfer-encoding":
                chunked = True
        if scope["http_version"] in ("1.0", "1.1") and not chunked:
            # No body, or one whose announced length (under the limit) the server holds it to:
            # nothing to count. An HTTP/2 body may come without Content-Length.
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_size:
                # Raised into the endpoint that reads the body; FastAPI answers it with a 413.
                raise HTTPException(413, TOO_LARGE.format(self.max_size))
            return message

        return counted

    async def _refuse(self, send: Send) -> None:
        body = b'{"detail":"' + TOO_LARGE.format(self.max_size).encode() + b'"}'
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The body was never read: close rather than read it to reuse the connection.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
