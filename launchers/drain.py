"""Whether this worker has begun to drain, for the connections made after it began.

uvicorn's `Server.shutdown()` tells the connections it holds to drain, but a TLS connection is
made (`connection_made`) only once its handshake ends: one still shaking hands when the drain
begins would be served keep-alive until `GRACEFUL_TIMEOUT` cuts it. So our protocols ask here
as each connection is made. A drain begins on SIGTERM or SIGINT (a stop, a reload: the managers
send one to each old worker), seen by chaining onto the server's own handlers, or as the first
connection is told to drain (`MAX_REQUESTS`, which sends no signal).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    def __init__(self) -> None:
        self.started = False
        self.watching = False

    def joined(self) -> bool:
        """Called as a connection is made: whether it must drain at once (its TLS handshake
        ended after the drain began)."""
        if not self.watching:
            self.watch()
        return self.started

    def watch(self) -> None:
        """Chain onto the server's SIGTERM and SIGINT handlers, once per process. Called from
        the first connection: by then the server has installed them."""
        self.watching = True
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread
        for sig in _SIGNALS:
            handler = signal.getsignal(sig)
            if callable(handler):
                signal.signal(sig, self._chain(handler))

    def _chain(
        self, handler: Callable[[int, FrameType | None], object]
    ) -> Callable[[int, FrameType | None], None]:
        def on_signal(sig: int, frame: FrameType | None) -> None:
            self.started = True
            handler(sig, frame)

        return on_signal


DRAIN = Drain()  # one server per worker process
