"""uvicorn's zttp protocols (`HTTP2=true`), made to drain without resets as ours does.

uvicorn's zttp `shutdown()` closes every idle connection at once, HTTP/1.1 and HTTP/2 alike: a
client whose next request is already on its way sees the connection closed under it. Here:

- HTTP/1.1: as `launchers.uvicorn.protocol`, the next request is answered with
  `Connection: close`, and a connection that stays idle is closed by the keep-alive timer.
- HTTP/2: GOAWAY names the last stream served, sent once no stream is in flight (httpx fails a
  stream whose response is still coming when GOAWAY arrives) and once one stream at least was
  served (httpx takes a GOAWAY naming stream 0 as an error, not as "retry elsewhere"). Streams
  that cross it are ignored: the client retries them on a new connection, as RFC 9113 says it
  may. The client then closes the connection, or the keep-alive timer does.

uvicorn builds its own dispatcher when `http2=True`: `server_options` passes `http2=False` with
`AutoZttpProtocol` below as the protocol class, which still offers h2 through ALPN.
"""

from __future__ import annotations

import asyncio

import zttp
from uvicorn.protocols.http import auto_zttp_impl, zttp_h2_impl, zttp_impl

from launchers.drain import DRAIN


class ZttpProtocol(zttp_impl.ZttpProtocol):
    draining = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if DRAIN.joined():
            self.shutdown()

    def shutdown(self) -> None:
        """Called by the server when it begins to drain."""
        DRAIN.started = self.draining = True
        if self.cycle is None or self.cycle.response_complete:
            # Idle, but a request may be on its way: it gets `Connection: close`, and the timer
            # closes the connection once it is truly idle (zttp arms none before a first request).
            if self.timeout_keep_alive_task is None and not self.transport.is_closing():
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
        else:
            self._last_response()

    def handle_events(self, event: zttp.Event) -> None:
        super().handle_events(event)
        if self.draining:
            self._last_response()

    def _last_response(self) -> None:
        # A response already started promised keep-alive: the next request's then says close.
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            cycle.keep_alive = False
            cycle.default_headers = [*cycle.default_headers, (b"connection", b"close")]


class ZttpH2Protocol(zttp_h2_impl.ZttpH2Protocol):
    draining = False
    goaway_sent = False
    served = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if DRAIN.joined():
            self.shutdown()

    def shutdown(self) -> None:
        """Called by the server when it begins to drain."""
        DRAIN.started = self.draining = True
        self._goaway_if_between_streams()
        if self.timeout_keep_alive_task is None and not self.cycles:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def handle_request(self, event: zttp.Request) -> None:
        if not self.goaway_sent:  # else beyond the GOAWAY's last stream: the client retries it
            self.served += 1
            super().handle_request(event)

    def on_stream_closed(self) -> None:
        super().on_stream_closed()
        self._goaway_if_between_streams()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._goaway_if_between_streams()  # a WINDOW_UPDATE may have let a last response out

    def _goaway_if_between_streams(self) -> None:
        if (
            self.draining
            and not self.goaway_sent
            and self.served
            and not self.cycles
            and not self.conn.has_pending_send()
            and not self.transport.is_closing()
        ):
            self.goaway_sent = True
            self.conn.close()  # GOAWAY, NO_ERROR, naming the last stream zttp has seen
            self.flush()

    def _close_connection(self) -> None:
        if self.goaway_sent:  # a second GOAWAY would name the ignored streams too
            self.transport.close()
        else:
            super()._close_connection()


class AutoZttpProtocol(auto_zttp_impl.AutoZttpProtocol):
    """uvicorn's dispatcher (ALPN over TLS, the preface sniffed in cleartext), to ours."""

    def shutdown(self) -> None:
        # Cleartext, nothing or part of a preface read yet: its keep-alive timer closes it,
        # unless a request comes, which the protocol it switches to then drains.
        DRAIN.started = True

    def _switch(self, http2: bool, initial_data: bytes = b"") -> None:
        protocol_class = ZttpH2Protocol if http2 else ZttpProtocol
        protocol = protocol_class(
            config=self.config,
            server_state=self.server_state,
            app_state=self.app_state,
            _loop=self.loop,
        )
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if initial_data:
            protocol.data_received(initial_data)
