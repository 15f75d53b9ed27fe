"""How our protocol's responses leave: a known length in one write, a turn's writes together.

A response with a known length leaves in one write rather than two (head, then body): one TLS
record instead of two, and one plain `write()` where uvloop sends two buffers through a libuv
write request (it flushes a stream's writes once per loop turn, and takes that fast path only
for a single buffer).

Those writes are sent together as the loop's turn ends (`_Outbox`), not each as its handler
returns: a turn then encrypts all its responses in a row, with OpenSSL's code and tables still
in the CPU's caches, instead of one between every two handlers, each evicting the other's.
Whatever closes a connection sends what the turn owes it first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


class _Outbox:
    """The writes of this turn of the event loop, in order, sent as it ends (a callback queued
    behind the turn's handlers), or at once when they reach `LIMIT`: a transport asks its
    writers to pause only for what it holds, so this bounds what it does not see yet. What it
    gains is measured in docs/performance.md.
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


class OneWrite:
    """The transport as a connection's responses see it: the head of a response whose body has
    a known, non-zero length is held back and sent with the body's first part, and what is
    written goes out through the `OUTBOX`.

    One per connection, told of each request's cycle (`cycle`), which it lets go of after the
    cycle's first write: a reference cycle per request would cost more than the write it saves,
    as the garbage collector has to find each one. A pipelined request's cycle may
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
