"""A stop asked of a granian worker while it starts is kept, not lost until the kill timeout.

granian's worker hears SIGTERM and SIGINT only once its event loop handles them, after the app is
imported, and the manager tells its workers to stop with one SIGTERM each. Two gaps lost it:
- Forked workers (the default on Linux before Python 3.14) run the manager's handlers, copied by
  `fork`, until then: a stop during the app's import did nothing.
- uvloop, unlike asyncio's loop, drops a signal that arrives while the loop is stopped, as it is
  between the ASGI lifespan's startup and serving.
So a worker remembers a stop from its first instant, and its signal handler acts itself when the
loop cannot; the worker's shutdown event is set once, however the signal came.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from granian import _signals

_granian_set_loop_signals: Callable[[asyncio.AbstractEventLoop], Any] = _signals.set_loop_signals
STOPS = frozenset({signal.SIGINT, signal.SIGTERM})  # granian's `_signals._get_signals()`
_asked: list[int] = []  # stops received before the worker's loop could hear them


def keep_stop_signals() -> None:
    """In granian's manager, before it starts workers; `in_worker` also runs in each one."""
    os.register_at_fork(after_in_child=in_worker)


def in_worker() -> None:
    """From a forked worker's first instant, or before a spawned one imports the app."""
    for sig in STOPS:
        signal.signal(sig, _remember)
    _signals.set_loop_signals = _set_loop_signals


def _remember(sig: int, frame: FrameType | None) -> None:
    _asked.append(sig)


def _set_loop_signals(loop: asyncio.AbstractEventLoop) -> Any:
    """granian's own, then the stop kept whichever way it comes."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)  # none lost while the handlers change
    try:
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

        for sig in STOPS:
            loop.add_signal_handler(sig, stop)
            signal.signal(sig, on_signal)
        if _asked:
            stop()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
    return shutdown
