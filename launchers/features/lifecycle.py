"""Readiness of this worker process: ready once started, draining from the first shutdown signal.

The ASGI lifespan only reports shutdown after the server has stopped serving, too late for a load
balancer to read `/readyz`. So the lifespan also chains onto the server's SIGTERM/SIGINT handlers
(uvicorn installs them with `signal.signal` in every worker; granian's workers through their event
loop, before the lifespan starts): the moment a stop is asked for, `/readyz` answers 503 while
in-flight requests finish.
"""

from __future__ import annotations

import enum
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

_CHAINED = (signal.SIGTERM, signal.SIGINT)


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"


class Lifecycle:
    def __init__(self) -> None:
        self.state = State.STARTING

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    def started(self) -> None:
        self.state = State.READY

    def drain(self) -> None:
        self.state = State.DRAINING

    @contextmanager
    def watch_signals(self) -> Iterator[None]:
        """Mark this worker draining on SIGTERM/SIGINT, then let the server's handler run."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread (e.g. TestClient)
            return
        previous = {sig: signal.getsignal(sig) for sig in _CHAINED}
        for sig, handler in previous.items():
            if callable(handler):
                signal.signal(sig, self._chain(handler))
        try:
            yield
        finally:
            for sig, handler in previous.items():
                if callable(handler):
                    signal.signal(sig, handler)

    def _chain(
        self, handler: Callable[[int, FrameType | None], object]
    ) -> Callable[[int, FrameType | None], None]:
        def on_signal(sig: int, frame: FrameType | None) -> None:
            self.drain()
            handler(sig, frame)

        return on_signal
