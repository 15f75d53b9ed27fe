"""uvicorn's httptools protocol, made to drain without resets and to bound request headers.

uvicorn's own `shutdown()` closes every idle keep-alive connection at once. A client that has
just sent its next request on one (a load balancer, any busy client) sees the connection reset
under it: that is where stock servers fail requests during a rolling reload. Here a draining
connection answers its next request with `Connection: close`, and is closed only once it stays
idle for the keep-alive timeout. The same subclass bounds what httptools does not: the size of a
request's headers (431/414) and the time to send them (408), so a slow client cannot hold a
connection for ever. And a response with a known length leaves in one write rather than two
(head, then body): one TLS record instead of two, and one plain `write()` where uvloop sends two
buffers through a libuv write request (it flushes a stream's writes once per loop turn, and
takes that fast path only for a single buffer).

Those writes are sent together as the loop's turn ends (`_Outbox`), not each as its handler
returns: a turn then encrypts all its responses in a row, with OpenSSL's code and tables still
in the CPU's caches, instead of one between every two handlers, each evicting the other's.
Whatever closes a connection sends what the turn owes it first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol

from launchers.limits import limits_of


class _Outbox:
    """The writes of this turn of the event loop, in order, sent as it ends (a callback queued
    behind the turn's handlers), or at once when they reach `LIMIT`: a transport asks its
    writers to pause only for what it holds, so this bounds what it does not see yet.

    Measured against the same code without it, both at once on one CPU (as `make bench` takes
    its ratios): +2.8 % req/s over HTTP, +4.2 % over HTTPS (+5.8 % under gunicorn), and 1.263
    times a bare FastAPI app where it was 1.191.
    """

    LIMIT = 64 * 1024  # uvloop's default high-water mark for a transport's buffer

    __slots__ = ("due", "size")

    def __init__(self) -> None:
        self.due: list[tuple[asyncio.Transport, bytes]] = []
        self.size = 0

    def add(self, transport: asyncio.Transport, data: bytes) -> None:
        if not self.due:  # the turn's first: asking for the loop once a turn, not a write
            asyncio.get_running_loop().call_soon(self.send)
        self.due.append((transport, data))
        self.size += len(data)
        if self.size >= self.LIMIT:
            self.send()

    def send(self) -> None:
        due, self.due, self.size = self.due, [], 0
        for transport, data in due:
            if not transport.is_closing():  # its client has gone: nobody to read it
                transport.write(data)


OUTBOX = _Outbox()  # one event loop per worker process


class _OneWrite:
    """The transport as a connection's responses see it: the head of a response whose body has
    a known, non-zero length is held back and sent with the body's first part, and what is
    written goes out through the `OUTBOX`.

    Measured with `make bench`'s load, side by side: +3 % req/s over HTTP, +4 % over HTTPS, with
    the same p99 latency (7.0 to 7.2 ms at 50 connections, 7.0 to 7.6 without it).
    One per connection, told of each request's cycle (`cycle`), which it lets go of after the
    cycle's first write: a reference cycle per request costs more (7 % measured) than the write
    it saves, as the garbage collector has to find each one. A pipelined request's cycle may
    replace one that has not written yet: that head then leaves on its own, in order, only not
    joined to its body.
    """

    __slots__ = ("cycle", "held", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.cycle: RequestResponseCycle | None = None
        self.held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self.held is not None:
            data = self.held + data
            self.held = None
        elif (cycle := self.cycle) is not None:
            self.cycle = None
            # uvicorn writes a response's head once it has parsed its length: hold it if a
            # body write is sure to follow (not for HEAD, nor a 100 Continue, nor chunked).
            if (
                cycle.response_started
                and cycle.chunked_encoding is False
                and cycle.expected_content_length > 0
                and cycle.scope["method"] != "HEAD"
            ):
                self.held = data
                return
        OUTBOX.add(self.transport, data)

    def close(self) -> None:
        if self.held is not None:
            OUTBOX.add(self.transport, self.held)
            self.held = None
        OUTBOX.send()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # anything else a later uvicorn may use
        return getattr(self.transport, name)


class _Rejected(Exception):
    """Raised in a parser callback: httptools stops parsing, and uvicorn answers via
    `send_400_response`, which sends `rejection` instead."""


class HttpToolsProtocol(_HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits_of(self.config)
        self.draining = False
        self.header_bytes = 0
        self.headers_pending = False
        self.header_timer: asyncio.TimerHandle | None = None
        self.rejection: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.one_write = _OneWrite(transport)
        # uvicorn arms no timer before a connection's first request: one that never sends
        # anything would stay open for ever.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # A request's headers nearly always arrive in one read: the deadline is armed only for
        # those that did not, rather than armed and cancelled for every request.
        if self.headers_pending and self.header_timer is None and not self.transport.is_closing():
            self.header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        self.headers_pending = True

    # Counted inline, not in a shared method: these run for every header of every request.
    def on_url(self, url: bytes) -> None:
        self.header_bytes += len(url)
        if self.header_bytes > self.limits.max_header_size:
            self._reject(414, "Request URI too long.")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.limits.max_header_size:
            self._reject(431, "Request header fields too large.")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.headers_pending = False
        self._stop_header_timer()
        super().on_headers_complete()
        if (cycle := self.cycle) is not None:
            self.one_write.cycle = cycle
            cycle.transport = self.one_write  # type: ignore[assignment]
            if self.draining:
                cycle.keep_alive = False  # its response says `Connection: close`

    def shutdown(self) -> None:
        """Called by the server when it begins to drain."""
        self.draining = True
        if self.cycle is None or self.cycle.response_complete:
            # Idle, but a request may be on its way: the next one gets `Connection: close`,
            # and the keep-alive timer closes the connection once it is truly idle.
            if self.timeout_keep_alive_task is None and self.header_timer is None:
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
        elif not self.cycle.response_started:
            self.cycle.keep_alive = False
        # Otherwise the response went out promising keep-alive: let the client send its next
        # request, which is then answered with `Connection: close`.

    def timeout_keep_alive_handler(self) -> None:
        # Timers run before the callbacks a turn queued: a turn that overran the timeout may
        # still owe this connection its last response.
        OUTBOX.send()
        super().timeout_keep_alive_handler()

    def handle_websocket_upgrade(self) -> None:
        OUTBOX.send()  # the WebSocket protocol writes to the transport itself
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if self.rejection is None:
            OUTBOX.send()  # the answers to the connection's earlier requests first
            super().send_400_response(msg)
        else:
            self._send_error(*self.rejection)

    def _reject(self, status: int, message: str) -> None:
        self.rejection = (status, message)
        raise _Rejected(message)

    def _headers_late(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self._send_error(408, "Request headers not received in time.")

    def _stop_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _send_error(self, status: int, message: str) -> None:
        body = message.encode("ascii")
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        self.logger.warning("%s %s", status, message)
        OUTBOX.send()
        self.transport.write(b"".join(content))
        self.transport.close()
