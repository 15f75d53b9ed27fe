"""uvicorn's httptools protocol, made to drain without resets and to bound slow clients.

uvicorn's own `shutdown()` closes every idle keep-alive connection at once. A client that has
just sent its next request on one (a load balancer, any busy client) sees the connection reset
under it: that is where stock servers fail requests during a rolling reload. Here a draining
connection answers its next request with `Connection: close`, and is closed only once it stays
idle for the keep-alive timeout. The same subclass bounds what httptools does not: the size of a
request's headers (431/414), the time to send them and its body (408), so a slow client cannot
hold a connection for ever; it refuses the framing that RFC 9112 refuses and llhttp lets through
(`launchers.uvicorn.framing`); and `MAX_CONNECTIONS` counts requests in progress, not connections.

Its responses leave through `launchers.uvicorn.outbox`: a known length in one write, a turn's writes
together as the turn ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol

from launchers.drain import DRAIN
from launchers.uvicorn import framing
from launchers.uvicorn.limits import limits_of
from launchers.uvicorn.outbox import OUTBOX, OneWrite

# The least rate a request body may come at, on average, once its first `BODY_TIMEOUT` is spent:
# a client that trickles less holds a connection for next to nothing (Apache asks 500 bytes/s).
MIN_BODY_RATE = 1024  # bytes per second


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
        self.hosts = 0
        self.codings: bytes | None = None
        self.body_pending = False
        self.body_timer: asyncio.TimerHandle | None = None
        self.body_deadline = 0.0
        self.body_held = False
        # MAX_CONNECTIONS bounds requests in progress, not connections: an idle keep-alive one
        # costs next to nothing, and counting them let a flood of them fail a worker's probes.
        self.request_limit, self.limit_concurrency = self.limit_concurrency, None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.one_write = OneWrite(transport)
        # uvicorn arms no timer before a connection's first request: one that never sends
        # anything would stay open for ever.
        self._idle()
        if DRAIN.joined():
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        self._stop_body_timer()
        # uvicorn cancels the keep-alive timer only on a clean close; ours, armed from connect,
        # would hold a reset connection's protocol until it fires.
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # A request's headers nearly always arrive in one read, and its body with them: a
        # deadline is armed only for those that did not, rather than for every request.
        if self.headers_pending:
            if self.header_timer is None and not self.transport.is_closing():
                timeout = self.limits.header_timeout
                self.header_timer = self.loop.call_later(timeout, self._headers_late)
        elif self.body_pending and not self.transport.is_closing():
            self._body_received(len(data))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        self.headers_pending = True
        self.hosts = 0
        self.codings = None

    # Counted inline, not in a shared method: these run for every header of every request.
    def on_url(self, url: bytes) -> None:
        self.header_bytes += len(url)
        if self.header_bytes > self.limits.max_header_size:
            self._reject(414, "Request URI too long.")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)
        self.header_bytes += size + len(value) + 4
        if self.header_bytes > self.limits.max_header_size:
            self._reject(431, "Request header fields too large.")
        if size == 4 or size == 17:  # Host, Transfer-Encoding: the lengths that could be them
            self._framing_header(name.lower(), value)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.headers_pending = False
        self._stop_header_timer()
        if self.hosts != 1 or self.codings is not None:
            version = self.parser.get_http_version()
            if (refusal := framing.refusal(self.hosts, self.codings, version)) is not None:
                self._reject(*refusal)
        limit = self.request_limit  # uvicorn's own check answers 503 when given 0
        self.limit_concurrency = 0 if limit is not None and len(self.tasks) >= limit else None
        previous = self.cycle
        super().on_headers_complete()
        if (cycle := self.cycle) is not previous:  # a request, not an upgrade
            self.body_pending = True
            self.one_write.cycle = cycle
            cycle.transport = self.one_write  # type: ignore[assignment]
            if self.draining:
                cycle.keep_alive = False  # its response says `Connection: close`

    def on_message_complete(self) -> None:
        request = self.body_pending  # not an upgrade
        self.body_pending = self.body_held = False
        self._stop_body_timer()
        super().on_message_complete()
        # Answered before its body came: the keep-alive timer, stopped as the body came in,
        # is all that would close the connection.
        if request and self.cycle.response_complete and not self.pipeline:
            self._idle()

    def shutdown(self) -> None:
        """Called by the server when it begins to drain."""
        # Not uvicorn's: it closes an idle connection at once, resetting a request on its way.
        DRAIN.started = self.draining = True
        if self.cycle is None or self.cycle.response_complete:
            # Idle, but a request may be on its way: the next one gets `Connection: close`,
            # and the keep-alive timer closes the connection once it is truly idle.
            if self.header_timer is None:
                self._idle()
        elif not self.cycle.response_started:
            self.cycle.keep_alive = False
        # Otherwise the response went out promising keep-alive: let the client send its next
        # request, which is then answered with `Connection: close`.

    def _idle(self) -> None:
        if self.timeout_keep_alive_task is None and not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

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

    def _stop_body_timer(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _framing_header(self, name: bytes, value: bytes) -> None:
        if name == b"host":
            self.hosts += 1
            if not framing.valid_host(value):
                self._reject(400, "Invalid Host header.")
        elif name == b"transfer-encoding":
            self.codings = value if self.codings is None else self.codings + b"," + value

    def _body_received(self, size: int) -> None:
        now, timeout = time.monotonic(), self.limits.body_timeout
        if self.body_timer is None:
            self.body_deadline = now + timeout
            self.body_timer = self.loop.call_later(timeout, self._body_late)
        else:
            # Each read buys time at MIN_BODY_RATE, at most BODY_TIMEOUT ahead: a steady slow
            # upload goes on, a trickle runs out. The timer moves only when it fires.
            self.body_deadline = min(self.body_deadline + size / MIN_BODY_RATE, now + timeout)

    def _body_late(self) -> None:
        self.body_timer = None
        if not self.body_pending or self.transport.is_closing():
            return
        now, cycle = time.monotonic(), self.cycle
        # Reading paused (the app has not taken what came, or a pipelined request waits its
        # turn), or a 100 Continue not sent yet: the client waits on us, not we on it. It gets
        # a whole timeout from the next check too, as what it sent meanwhile is queued unread.
        held = self.flow.read_paused or cycle.waiting_for_100_continue
        if held or self.body_held:
            self.body_deadline = max(self.body_deadline, now + self.limits.body_timeout)
        self.body_held = held
        if now < self.body_deadline:
            self.body_timer = self.loop.call_later(self.body_deadline - now, self._body_late)
        elif cycle.response_started:  # too late for a 408: closing is all that is left
            self.logger.warning("Request body not received in time: connection closed.")
            self.one_write.close()
        else:
            self._send_error(408, "Request body not received in time.")

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
