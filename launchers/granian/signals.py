"""A stop asked of a granian worker while it starts is kept, not lost until the kill timeout.

granian's worker hears SIGTERM and SIGINT through its event loop, set up after the app is
imported, and the manager tells each worker to stop with one SIGTERM. Until then a forked worker
(the default on Linux before Python 3.14) runs the manager's handlers, copied by `fork`; and
uvloop drops a signal that arrives while the loop is stopped, as it is between the ASGI
lifespan's startup and serving. So the worker holds its stops from birth (`held_stops`), and
releases them to a handler that acts itself when the loop cannot.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from granian import _signals

from launchers import held_stops

_granian_set_loop_signals: Callable[[asyncio.AbstractEventLoop], Any] = _signals.set_loop_signals


def keep_stop_signals() -> None:
    """In granian's manager, before it starts workers: each forked one is born holding them."""
    os.register_at_fork(before=held_stops.hold, after_in_parent=held_stops.release)


def in_worker() -> None:
    """In each worker, before it imports the app (a spawned one holds its stops from here)."""
    held_stops.hold()
    _signals.set_loop_signals = _set_loop_signals


def _set_loop_signals(loop: asyncio.AbstractEventLoop) -> Any:
    """granian's own, then the stop kept whichever way it comes."""
    shutdown = _granian_set_loop_signals(loop)
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if not stopping:  # a second `set` before serving would block forever
            stopping = True
            shutdown.set()

    def on_signal(sig: int, frame: FrameType | None) -> None:
        if not loop.is_running():  # else the loop hears it, and calls `stop`
            stop()

    for sig in (signal.SIGINT, signal.SIGTERM):  # granian's `_signals._get_signals()`
        loop.add_signal_handler(sig, stop)
        signal.signal(sig, on_signal)
    held_stops.release()  # a stop held since the fork reaches `on_signal` now
    return shutdown
